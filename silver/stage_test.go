package silver_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/qoslake/qoslake/anonymize"
	"github.com/qoslake/qoslake/bronze"
	"github.com/qoslake/qoslake/lake"
	"github.com/qoslake/qoslake/silver"
)

type pipeline struct {
	bronze, silver *lake.Table
	stage          *silver.Stage
}

// open gives each caller its own catalog connection, as a separate process
// would have.
func open(t *testing.T, dir string) pipeline {
	t.Helper()
	l, err := lake.Open(context.Background(), lake.Options{URI: filepath.Join(dir, "c.db"), Warehouse: filepath.Join(dir, "w")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	b, err := l.Ensure(context.Background(), bronze.PlayerEventsTable)
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Ensure(context.Background(), silver.PlayerEventsTable)
	if err != nil {
		t.Fatal(err)
	}
	return pipeline{b, s, &silver.Stage{
		Kind: silver.Player, Bronze: b, Silver: s, Lateness: time.Hour, MaxRows: 1,
		Transformer: &silver.Transformer{Pseudonyms: anonymize.NewPseudonymizer(anonymize.DemoKey)},
	}}
}

var seq int

func commitBronze(t *testing.T, p pipeline, payloads ...string) {
	t.Helper()
	r, err := p.bronze.NewRows()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	now := time.Now().UTC()
	for _, pl := range payloads {
		seq++
		r.String("event_type", "play")
		r.Time("event_time", now)
		r.String("stream", "s")
		r.String("shard_id", "shard-0")
		r.String("sequence_number", fmt.Sprint(seq))
		r.Int32("sub_sequence", 0)
		r.Int32("event_index", 0)
		r.NullableString("partition_key", "")
		r.Time("arrival_time", now)
		r.Time("ingest_time", now)
		r.String("payload", pl)
	}
	rec := r.Batch()
	defer rec.Release()
	if _, err := p.bronze.Commit(context.Background(), lake.Batch{Records: []arrow.RecordBatch{rec}}); err != nil {
		t.Fatal(err)
	}
}

func silverIDs(t *testing.T, p pipeline) []string {
	t.Helper()
	if _, err := p.silver.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	var ids []string
	err := p.silver.Scan(context.Background(), lake.ScanOptions{Fields: []string{"event_id"}}, func(r arrow.RecordBatch) error {
		col := r.Column(0).(*array.String)
		for i := range col.Len() {
			ids = append(ids, col.Value(i))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// A duplicate whose two copies are moved by two processes, each taking one
// bronze increment, is still dropped: each stage first learns the ids the
// other committed.
func TestDuplicateSplitAcrossTwoProcesses(t *testing.T) {
	dir := t.TempDir()
	a, b := open(t, dir), open(t, dir)
	x := fmt.Sprintf(`{"metrictype":"play","timestamp":%d,"user_id":"u"}`, time.Now().UnixMilli())

	// b starts (and builds its memory of silver) before a commits anything.
	if _, err := b.stage.RunOnce(context.Background()); !errors.Is(err, lake.ErrNoChange) {
		t.Fatalf("empty bronze: %v", err)
	}
	commitBronze(t, a, x)
	if n, err := a.stage.RunOnce(context.Background()); err != nil || n != 1 {
		t.Fatalf("a: %d rows, %v", n, err)
	}
	commitBronze(t, a, x) // the producer's retry
	if n, err := b.stage.RunOnce(context.Background()); err != nil || n != 0 {
		t.Fatalf("b moved %d rows (%v), want the duplicate dropped", n, err)
	}
	if ids := silverIDs(t, a); len(ids) != 1 {
		t.Errorf("silver holds %v, want one row", ids)
	}
}
