package lake_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/qoslake/qoslake/lake"
)

func snapshotCount(t *testing.T, tbl *lake.Table) int {
	t.Helper()
	if _, err := tbl.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	return len(tbl.Iceberg().Metadata().Snapshots())
}

func replace(t *testing.T, tbl *lake.Table, b lake.ReplaceBatch) lake.Committed {
	t.Helper()
	c, err := tbl.Replace(t.Context(), b)
	if err != nil {
		t.Fatalf("replace: %v", err)
	}
	return c
}

// filterIDs keeps the ids of want whose number satisfies keep.
func filterIDs(ids []string, keep func(n int) bool) []string {
	var out []string
	for _, id := range ids {
		n, _ := strconv.Atoi(id[len(id)-1:])
		if i := lastDash(id); i >= 0 {
			n, _ = strconv.Atoi(id[i+1:])
		}
		if keep(n) {
			out = append(out, id)
		}
	}
	return out
}

func lastDash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '-' {
			return i
		}
	}
	return -1
}

var (
	isPlay = func(n int) bool { return n%2 == 0 } // rows(): even rows are kind play
	isStop = func(n int) bool { return n%2 == 1 }
)

// A replace removes the rows its filter selects and adds the new rows in
// exactly one snapshot, carrying the checkpoint forward and advancing it.
func TestReplaceDeletesAndAddsInOneSnapshot(t *testing.T) {
	l := openLake(t, t.TempDir())
	tbl := ensure(t, l, eventsDef)
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "a", 10)}, Advance: []lake.Position{{Key: "other", To: "7"}}})
	before := snapshotCount(t, tbl)

	b := lake.ReplaceBatch{
		Batch: lake.Batch{
			ID:      "replace-1",
			Records: []arrow.RecordBatch{rows(t, tbl, "r", 4)},
			Advance: []lake.Position{{Key: "upstream:silver", To: "5:5"}},
		},
		Delete: iceberg.EqualTo(iceberg.Reference("kind"), "play"),
	}
	c := replace(t, tbl, b)
	if c.AlreadyLanded || c.Rows != 4 {
		t.Errorf("replace = %+v, want 4 new rows", c)
	}
	if got := snapshotCount(t, tbl); got != before+1 {
		t.Errorf("snapshots %d -> %d, want one new snapshot", before, got)
	}
	snap := tbl.Iceberg().CurrentSnapshot()
	if snap.Summary.Operation != table.OpOverwrite || snap.Summary.Properties["deleted-data-files"] == "" ||
		snap.Summary.Properties["added-data-files"] == "" {
		t.Errorf("replace snapshot summary = %v %v, want an overwrite that deletes and adds files", snap.Summary.Operation, snap.Summary.Properties)
	}
	want := sorted(append(filterIDs(expectIDs("a", 10), isStop), expectIDs("r", 4)...))
	if got := ids(t, tbl); !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v", got, want)
	}
	cp, _ := tbl.Checkpoint()
	if cp["other"] != "7" || cp["upstream:silver"] != "5:5" {
		t.Errorf("checkpoint = %v, want other carried and upstream advanced", cp)
	}

	// The same batch again (a retry after an unknown outcome) lands nothing.
	if again := replace(t, tbl, b); !again.AlreadyLanded {
		t.Errorf("retried replace = %+v, want AlreadyLanded", again)
	}
	if got := snapshotCount(t, tbl); got != before+1 {
		t.Errorf("retried replace added a snapshot (%d)", got)
	}
	// A replace from a stale checkpoint is refused and changes nothing.
	_, err := tbl.Replace(t.Context(), lake.ReplaceBatch{
		Batch:  lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "x", 2)}, Advance: []lake.Position{{Key: "upstream:silver", From: "1:1", To: "9:9"}}},
		Delete: iceberg.AlwaysTrue{},
	})
	if !errors.Is(err, lake.ErrCheckpointMoved) {
		t.Errorf("stale replace: err = %v, want ErrCheckpointMoved", err)
	}
	if _, err := tbl.Replace(t.Context(), lake.ReplaceBatch{}); !errors.Is(err, lake.ErrNoDeleteFilter) {
		t.Errorf("replace without a filter: err = %v", err)
	}
	if got := ids(t, tbl); !slices.Equal(got, want) {
		t.Errorf("refused replaces changed rows: %v", got)
	}
}

// A filter that cuts through data files (not along partitions) rewrites
// them without the matching rows; the replace then records itself as the
// table's last rewrite, so the sequence-number fallback cannot reread the
// kept rows.
func TestReplaceRewritingFilesRecordsLastRewrite(t *testing.T) {
	l := openLake(t, t.TempDir())
	tbl := ensure(t, l, eventsDef)
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "a", 10)}})
	replace(t, tbl, lake.ReplaceBatch{
		Batch:  lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "r", 2)}},
		Delete: iceberg.GreaterThanEqual(iceberg.Reference("value"), int64(6)),
	})
	want := sorted(append(filterIDs(expectIDs("a", 10), func(n int) bool { return n < 6 }), expectIDs("r", 2)...))
	if got := ids(t, tbl); !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v", got, want)
	}
	snap := tbl.Iceberg().CurrentSnapshot()
	if got := tbl.SnapshotSummary()["last-rewrite-seq"]; got != strconv.FormatInt(snap.SequenceNumber, 10) {
		t.Errorf("last-rewrite-seq = %q, want the replace's own sequence number %d", got, snap.SequenceNumber)
	}
	// A later append carries it forward.
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "b", 2)}})
	if got := tbl.SnapshotSummary()["last-rewrite-seq"]; got != strconv.FormatInt(snap.SequenceNumber, 10) {
		t.Errorf("append after replace: last-rewrite-seq = %q, want %d", got, snap.SequenceNumber)
	}

	// A replace whose filter selects no file rewrites nothing and leaves the
	// last rewrite where it was.
	replace(t, tbl, lake.ReplaceBatch{
		Batch:  lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "c", 2)}},
		Delete: iceberg.EqualTo(iceberg.Reference("kind"), "seek"),
	})
	if got := tbl.SnapshotSummary()["last-rewrite-seq"]; got != strconv.FormatInt(snap.SequenceNumber, 10) {
		t.Errorf("replace of nothing: last-rewrite-seq = %q, want %d", got, snap.SequenceNumber)
	}
}

// A replace on an empty table only adds; one that adds nothing only
// deletes; both are one snapshot each.
func TestReplaceOnEmptyTableAndDeleteOnly(t *testing.T) {
	l := openLake(t, t.TempDir())
	tbl := ensure(t, l, eventsDef)
	replace(t, tbl, lake.ReplaceBatch{
		Batch:  lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "r", 4)}, Advance: []lake.Position{{Key: "k", To: "1"}}},
		Delete: iceberg.AlwaysTrue{},
	})
	if got := ids(t, tbl); !slices.Equal(got, expectIDs("r", 4)) {
		t.Errorf("ids = %v", got)
	}
	replace(t, tbl, lake.ReplaceBatch{
		Batch:  lake.Batch{Advance: []lake.Position{{Key: "k", From: "1", To: "2"}}},
		Delete: iceberg.EqualTo(iceberg.Reference("kind"), "stop"),
	})
	if got := ids(t, tbl); !slices.Equal(got, filterIDs(expectIDs("r", 4), isPlay)) {
		t.Errorf("ids after delete-only replace = %v", got)
	}
	if got := snapshotCount(t, tbl); got != 2 {
		t.Errorf("%d snapshots, want 2", got)
	}
	cp, _ := tbl.Checkpoint()
	if cp["k"] != "2" {
		t.Errorf("checkpoint = %v", cp)
	}
}

// Another writer commits between the replace's planning and its commit
// (from inside the first attempt's guard, so the timing is certain). The
// replace conflicts, plans its delete again on the reloaded table and
// lands once: the other writer's rows its filter does not select are kept,
// and no row is doubled.
func TestReplaceReplansAfterConcurrentCommit(t *testing.T) {
	dir := t.TempDir()
	writer := ensure(t, openLake(t, dir), eventsDef)
	gold := ensure(t, openLake(t, dir), eventsDef)
	commit(t, writer, lake.Batch{Records: []arrow.RecordBatch{rows(t, writer, "a", 6)}, Advance: []lake.Position{{Key: "w", To: "1"}}})
	if _, err := gold.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}

	guardCalls := 0
	c, err := gold.Replace(t.Context(), lake.ReplaceBatch{
		Batch: lake.Batch{
			Records: []arrow.RecordBatch{rows(t, gold, "r", 4)},
			Advance: []lake.Position{{Key: "g", To: "1"}},
			Guard: func(ctx context.Context, s lake.State) error {
				guardCalls++
				if guardCalls == 1 {
					_, err := writer.Commit(ctx, lake.Batch{
						Records: []arrow.RecordBatch{rows(t, writer, "c", 4)},
						Advance: []lake.Position{{Key: "w", From: "1", To: "2"}},
					})
					return err
				}
				return nil
			},
		},
		Delete: iceberg.EqualTo(iceberg.Reference("kind"), "stop"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Attempts < 2 || guardCalls < 2 {
		t.Errorf("replace took %d attempts, guard ran %d times; want a conflict and a retry", c.Attempts, guardCalls)
	}
	// a and c's play rows stay (the filter does not select them), their stop
	// rows are replaced by r's rows.
	want := sorted(slices.Concat(filterIDs(expectIDs("a", 6), isPlay), filterIDs(expectIDs("c", 4), isPlay), expectIDs("r", 4)))
	if got := ids(t, gold); !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v", got, want)
	}
	if got := snapshotCount(t, gold); got != 3 {
		t.Errorf("%d snapshots, want 3 (a, c, the replace)", got)
	}
	cp, _ := gold.Checkpoint()
	if cp["w"] != "2" || cp["g"] != "1" {
		t.Errorf("checkpoint = %v, want both writers' keys", cp)
	}
}
