package bronze

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/qoslake/qoslake/ingest/kinesis"
	"github.com/qoslake/qoslake/lake"
	"github.com/qoslake/qoslake/simulate"
)

// BenchmarkPlayerEventPath measures the bronze player-event path in one
// goroutine: decode and validate the JSON, extract type and time, build the
// Arrow columns, and encode Parquet (zstd) — everything but the catalog
// commit. Run with -cpu 1 for a per-core figure.
func BenchmarkPlayerEventPath(b *testing.B) {
	dir := b.TempDir()
	l, err := lake.Open(context.Background(), lake.Options{URI: filepath.Join(dir, "c.db"), Warehouse: filepath.Join(dir, "w")})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	events, err := l.Ensure(context.Background(), PlayerEventsTable)
	if err != nil {
		b.Fatal(err)
	}
	rejects, err := l.Ensure(context.Background(), RejectsTable)
	if err != nil {
		b.Fatal(err)
	}

	start := time.Date(2026, 3, 2, 18, 0, 0, 0, time.UTC)
	g := simulate.New(simulate.Config{Seed: 1, Start: start, Rate: 2000})
	var recs []kinesis.Record
	for len(recs) < 10_000 {
		evs, _ := g.Tick()
		for _, e := range evs {
			recs = append(recs, kinesis.Record{Shard: "shardId-000000000000", Seq: "49590338271490256608559692538361571095921575989136588898", Data: e.JSON, Arrival: e.Time})
		}
	}
	batch := kinesis.Batch{Shard: "shardId-000000000000", Records: recs[:10_000], Last: "1"}
	var size int
	for _, r := range batch.Records {
		size += len(r.Data)
	}

	p := &PlayerEvents{Events: events, Rejects: rejects, Stream: "s", Now: func() time.Time { return start.Add(time.Hour) }}
	p.sink.committed = map[string]string{}
	if err := p.init(); err != nil {
		b.Fatal(err)
	}
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithCompressionLevel(1)) // as the bronze tables
	var buf bytes.Buffer
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p.Add(batch)
		rec := p.sink.out.Batch()
		buf.Reset()
		w, err := pqarrow.NewFileWriter(rec.Schema(), &buf, props, pqarrow.DefaultWriterProps())
		if err != nil {
			b.Fatal(err)
		}
		if err := w.Write(rec); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		rec.Release()
		p.sink.pendingLast, p.sink.nRows, p.sink.nBytes = map[string]string{}, 0, 0
	}
	b.ReportMetric(float64(b.N*len(batch.Records))/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(b.N*len(batch.Records)), "records")
}
