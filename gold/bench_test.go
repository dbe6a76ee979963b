package gold

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkCDNStageIncrement measures one gold update: a silver batch of
// 10,000 CDN rows spread over 5 minutes is read, those 5 windows are
// recomputed from silver and replaced in gold with the position advance.
// The silver commit is not timed.
func BenchmarkCDNStageIncrement(b *testing.B) {
	e := open(b, b.TempDir())
	e.stage.MaxRows = 100_000
	r := rand.New(rand.NewPCG(9, 10))
	ctx := context.Background()
	const rows = 10_000
	i := 0
	for b.Loop() {
		b.StopTimer()
		commitSilver(b, e, genRows(r, rows, minutes(base.Add(time.Duration(5*i)*time.Minute), 5)...))
		i++
		b.StartTimer()
		n, err := e.stage.RunOnce(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if n != rows {
			b.Fatalf("increment of %d rows, want %d", n, rows)
		}
	}
	b.ReportMetric(float64(rows*i)/b.Elapsed().Seconds(), "silver_rows/s")
}

// BenchmarkCDNStageLateBatch measures a late batch: silver holds a day of
// CDN rows (1,440 minutes × 20 rows), and each iteration commits 200 rows
// for one minute of that day. The stage recomputes only that minute: the
// share of silver it reads (scanned rows / silver rows) is reported beside
// the time, against 1.0 for a full recompute.
func BenchmarkCDNStageLateBatch(b *testing.B) {
	e := open(b, b.TempDir())
	e.stage.MaxRows = 100_000
	r := rand.New(rand.NewPCG(11, 12))
	ctx := context.Background()
	day := minutes(base, 1440)
	var silverRows int64
	for i := 0; i < len(day); i += 240 {
		rows := genRows(r, 240*20, day[i:i+240]...)
		commitSilver(b, e, rows)
		silverRows += int64(len(rows))
	}
	if err := e.stage.Drain(ctx); err != nil {
		b.Fatal(err)
	}
	var seen updates
	e.stage.Observer = &seen
	i := 0
	for b.Loop() {
		b.StopTimer()
		late := genRows(r, 200, day[(i*97)%len(day)])
		commitSilver(b, e, late)
		silverRows += int64(len(late))
		i++
		b.StartTimer()
		if _, err := e.stage.RunOnce(ctx); err != nil {
			b.Fatal(err)
		}
	}
	var scanned int64
	for _, u := range seen {
		scanned += u.Scanned
	}
	b.ReportMetric(float64(scanned)/float64(len(seen))/float64(silverRows), "share_read")
	b.ReportMetric(float64(scanned)/float64(len(seen)), "rows_read/op")
}
