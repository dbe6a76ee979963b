package lake_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"

	"github.com/qoslake/qoslake/lake"
)

// A read pinned to a snapshot keeps seeing that snapshot after later
// commits and replaces, on this handle and on another one.
func TestPinnedReadDoesNotSeeLaterCommits(t *testing.T) {
	dir := t.TempDir()
	tbl := ensure(t, openLake(t, dir), eventsDef)
	other := ensure(t, openLake(t, dir), eventsDef)
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "a", 4)}})
	pins, err := lake.Pin(t.Context(), tbl)
	if err != nil {
		t.Fatal(err)
	}
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "b", 4)}})
	replace(t, tbl, lake.ReplaceBatch{
		Batch:  lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "r", 2)}},
		Delete: iceberg.EqualTo(iceberg.Reference("kind"), "play"),
	})
	read := func(h *lake.Table, o lake.ScanOptions) []string {
		t.Helper()
		var got []string
		if err := h.Scan(t.Context(), o, func(r arrow.RecordBatch) error {
			got = append(got, idsOf(r)...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		return got
	}
	at := lake.ScanOptions{Fields: []string{"id"}, Snapshot: pins[tbl.Name()]}
	for name, h := range map[string]*lake.Table{"same handle": tbl, "stale handle": other} {
		if got := read(h, at); !slices.Equal(got, expectIDs("a", 4)) {
			t.Errorf("%s: pinned read = %v, want a's rows only", name, got)
		}
	}
	if got := read(tbl, lake.ScanOptions{Fields: []string{"id"}}); slices.Equal(got, expectIDs("a", 4)) {
		t.Errorf("unpinned read = %v, want the later commits too", got)
	}
	// A pin on an expired snapshot says so.
	if _, err := tbl.Maintain(t.Context(), lake.MaintainOptions{MinInputFiles: 1000, ExpireOlderThan: time.Nanosecond, RetainLast: 1}); err != nil {
		t.Fatal(err)
	}
	err = tbl.Scan(t.Context(), at, func(arrow.RecordBatch) error { return nil })
	if !errors.Is(err, lake.ErrSnapshotExpired) {
		t.Errorf("read at expired pin: err = %v, want ErrSnapshotExpired", err)
	}
}

// The change feed reports an append, a replace and a retention delete
// with their operations, the partitions of the files each added and
// removed, and the row counts.
func TestChangesReportAppendReplaceAndDelete(t *testing.T) {
	l := openLake(t, t.TempDir())
	tbl := ensure(t, l, eventsDef)
	commit(t, tbl, lake.Batch{ID: "first", Records: []arrow.RecordBatch{rows(t, tbl, "a", 4)}})
	from := tbl.Snapshot()

	commit(t, tbl, lake.Batch{ID: "append", Records: []arrow.RecordBatch{rows(t, tbl, "b", 4)}})
	replace(t, tbl, lake.ReplaceBatch{
		Batch:  lake.Batch{ID: "replace", Records: []arrow.RecordBatch{rows(t, tbl, "r", 1)}},
		Delete: iceberg.EqualTo(iceberg.Reference("kind"), "play"),
	})
	// Retention: every row of 2026-03-02 (the play rows) goes.
	if _, err := tbl.Maintain(t.Context(), lake.MaintainOptions{
		MinInputFiles: 1000, DeleteBefore: time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC), RetentionColumn: "event_time",
	}); err != nil {
		t.Fatal(err)
	}

	changes, err := tbl.Changes(t.Context(), from)
	if err != nil {
		t.Fatal(err)
	}
	const play, stop = "event_day=2026-03-02/kind=play", "event_day=2026-03-03/kind=stop"
	type summary struct {
		op, id           string
		added, removed   []string
		addRows, remRows int64
	}
	var got []summary
	for _, c := range changes {
		s := summary{op: c.Operation, id: c.CommitID, addRows: c.AddedRows, remRows: c.RemovedRows}
		for _, f := range c.Added {
			s.added = append(s.added, f.Partition)
		}
		for _, f := range c.Removed {
			s.removed = append(s.removed, f.Partition)
		}
		slices.Sort(s.added)
		slices.Sort(s.removed)
		got = append(got, s)
	}
	want := []summary{
		{op: "append", id: "append", added: []string{play, stop}, addRows: 4},
		// a's and b's play files go; r's one play row comes.
		{op: "overwrite", id: "replace", added: []string{play}, removed: []string{play, play}, addRows: 1, remRows: 4},
		{op: "delete", removed: []string{play}, remRows: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("changes = %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.op != w.op || g.id != w.id || !slices.Equal(g.added, w.added) || !slices.Equal(g.removed, w.removed) ||
			g.addRows != w.addRows || g.remRows != w.remRows {
			t.Errorf("change %d = %+v, want %+v", i, g, w)
		}
	}
	if p := lake.Partitions(changes); !slices.Equal(p, []string{play, stop}) {
		t.Errorf("partitions = %v", p)
	}
	if v := changes[0].Added[0].Values["kind"]; v != "play" && v != "stop" {
		t.Errorf("raw partition value of kind = %#v", v)
	}
	if changes[len(changes)-1].Snapshot != tbl.Snapshot() {
		t.Errorf("last change %v is not the current snapshot %v", changes[len(changes)-1].Snapshot, tbl.Snapshot())
	}

	// Nothing after the head; an expired start is an error, not silence.
	if c, err := tbl.Changes(t.Context(), tbl.Snapshot()); err != nil || len(c) != 0 {
		t.Errorf("changes after head = %v, %v", c, err)
	}
	if _, err := tbl.Changes(t.Context(), lake.SnapshotPos{SnapshotID: 42, SequenceNumber: 1}); !errors.Is(err, lake.ErrSnapshotExpired) {
		t.Errorf("changes after unknown snapshot: err = %v", err)
	}
}
