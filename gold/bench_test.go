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
