package gold

import (
	"context"
	"testing"
)

// BenchmarkSessionsUpdate measures one gold.sessions update in a steady
// state: simulated viewers (200 player events a second, about 5 new
// sessions a second watching 3 minutes on average) after 5 minutes of
// warm-up; each op is one silver batch of 10 simulated seconds (about
// 3,500 rows: 2,000 player events and the CDN log lines due) read, the
// sessions it touches (every live one: each sends a STREAM every 5 s)
// recomputed from all their events in silver and joined to the CDN, and
// replaced in gold with both positions. Simulating and the silver commits
// are not timed.
//
// The cost of an op grows with the span of the oldest live session, whose
// events (and every silver file of that span) each update reads again:
// run with a higher -benchtime to see it.
func BenchmarkSessionsUpdate(b *testing.B) {
	ctx := context.Background()
	e := openSessions(b, b.TempDir())
	e.stage.MaxRows = 1_000_000 // one silver batch, one increment
	feed := newSimFeed(b, 5, 200)
	warm, warmCDN := feed.next(b, 300, false)
	commitPlayerEvents(b, e, warm)
	commitCDNRequests(b, e, warmCDN)
	drainSessions(b, e)
	var rows, batches int
	for b.Loop() {
		b.StopTimer()
		player, cdn := feed.next(b, 10, false)
		commitPlayerEvents(b, e, player)
		commitCDNRequests(b, e, cdn)
		b.StartTimer()
		n, err := e.stage.RunOnce(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if n != len(player)+len(cdn) {
			b.Fatalf("increment of %d rows, want %d", n, len(player)+len(cdn))
		}
		rows += n
		batches++
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "silver_rows/s")
	b.ReportMetric(float64(rows)/float64(batches), "rows/batch")
}
