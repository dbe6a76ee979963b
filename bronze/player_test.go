package bronze

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/qoslake/qoslake/ingest/kinesis"
	"github.com/qoslake/qoslake/lake"
)

func playerTables(t *testing.T) (events, rejects *lake.Table) {
	t.Helper()
	ts := bronzeTables(t, PlayerEventsTable, RejectsTable)
	return ts[0], ts[1]
}

func kinesisBatch(shard string, first, n int, bad int) kinesis.Batch {
	b := kinesis.Batch{Shard: shard}
	now := time.Now()
	for i := range n {
		seq := fmt.Sprint(first + i)
		data := fmt.Sprintf(`{"metrictype":"play","timestamp":%d,"user_id":"u%d"}`, now.UnixMilli(), first+i)
		if i < bad {
			data = `{"not json`
		}
		b.Records = append(b.Records, kinesis.Record{Shard: shard, Seq: seq, Data: []byte(data), Arrival: now})
		b.Last = seq
	}
	return b
}

// A Flush whose commit fails keeps its rows, rejects and positions
// together: before this change the rows and rejects were gone after the
// failure and the next Flush advanced the positions without them.
func TestFailedFlushIsRetriedWhole(t *testing.T) {
	events, rejects := playerTables(t)
	p := &PlayerEvents{Events: events, Rejects: rejects, Stream: "s"}
	if _, err := p.Positions(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := p.init(); err != nil {
		t.Fatal(err)
	}
	p.Add(kinesisBatch("shard-0", 100, 10, 2))
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.Flush(cancelled); err == nil {
		t.Fatal("flush with a cancelled context succeeded; the test proves nothing")
	}
	p.Add(kinesisBatch("shard-0", 110, 5, 1))
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := events.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := rejects.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d, _ := events.Describe(); d.Rows != 12 {
		t.Errorf("%d events in bronze, want 12", d.Rows)
	}
	if d, _ := rejects.Describe(); d.Rows != 3 {
		t.Errorf("%d rejects in bronze, want 3", d.Rows)
	}
	cp, _ := events.Checkpoint()
	if cp[CheckpointKey("shard-0")] != "114" {
		t.Errorf("checkpoint %v, want shard-0 at 114", cp)
	}
}
