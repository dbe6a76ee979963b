package cloudfront_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"testing"
	"time"

	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/simulate"
)

// BenchmarkParseLines measures reading decompressed CloudFront log lines:
// line splitting, header mapping, field split and log time. Run with -cpu 1
// for a per-core figure.
func BenchmarkParseLines(b *testing.B) {
	g := simulate.New(simulate.Config{Seed: 1, Start: time.Date(2026, 3, 2, 18, 0, 0, 0, time.UTC), Rate: 5000})
	out := &logs{}
	if _, err := simulate.Run(context.Background(), g, out, simulate.RunOptions{Duration: 30 * time.Second, Fast: true}); err != nil {
		b.Fatal(err)
	}
	data := out.buf.Bytes()
	lines := bytes.Count(data, []byte{'\n'})
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	var fields []string
	for b.Loop() {
		r := cloudfront.NewReader(bytes.NewReader(data), 64<<10)
		for {
			l, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			fields = cloudfront.Split(l.Text, fields[:0])
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
	_ = lines
}

// logs concatenates the simulator's log files, decompressed, headers and all.
type logs struct{ buf bytes.Buffer }

func (l *logs) PutEvents(_ context.Context, ev []simulate.Event) (int, error) { return len(ev), nil }
func (l *logs) PutRealtime(context.Context, []simulate.RealtimeRecord) error  { return nil }
func (l *logs) PutLog(_ context.Context, f simulate.LogFile) error {
	zr, err := gzip.NewReader(bytes.NewReader(f.Body))
	if err != nil {
		return err
	}
	_, err = io.Copy(&l.buf, zr)
	return err
}
