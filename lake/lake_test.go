package lake_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"

	"github.com/qoslake/qoslake/lake"
)

var eventsDef = lake.TableDef{
	Namespace: "test",
	Name:      "events",
	Columns: []lake.Column{
		{Name: "id", Type: iceberg.PrimitiveTypes.String, Required: true},
		{Name: "kind", Type: iceberg.PrimitiveTypes.String, Required: true},
		{Name: "event_time", Type: iceberg.PrimitiveTypes.TimestampTz, Required: true},
		{Name: "value", Type: iceberg.PrimitiveTypes.Int64},
	},
	Partition: []lake.PartitionField{
		{Column: "event_time", Transform: iceberg.DayTransform{}, Name: "event_day"},
		{Column: "kind", Transform: iceberg.IdentityTransform{}, Name: "kind"},
	},
}

// openLake opens a SQLite catalog and file warehouse in dir.
func openLake(t *testing.T, dir string) *lake.Lake {
	t.Helper()
	l, err := lake.Open(t.Context(), lake.Options{
		URI:       filepath.Join(dir, "catalog.db"),
		Warehouse: filepath.Join(dir, "warehouse"),
	})
	if err != nil {
		t.Fatalf("open lake: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func ensure(t *testing.T, l *lake.Lake, def lake.TableDef) *lake.Table {
	t.Helper()
	tbl, err := l.Ensure(t.Context(), def)
	if err != nil {
		t.Fatalf("ensure %s: %v", def.FullName(), err)
	}
	return tbl
}

// rows builds a record of n rows with ids prefix-0..prefix-(n-1), spread over
// two kinds and two days.
func rows(t *testing.T, tbl *lake.Table, prefix string, n int) arrow.RecordBatch {
	t.Helper()
	sc, err := tbl.ArrowSchema()
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	day := time.Date(2026, 3, 2, 18, 0, 0, 0, time.UTC)
	for i := range n {
		b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("%s-%d", prefix, i))
		b.Field(1).(*array.StringBuilder).Append([]string{"play", "stop"}[i%2])
		ts := day.Add(time.Duration(i%2) * 24 * time.Hour)
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(ts.UnixMicro()))
		b.Field(3).(*array.Int64Builder).Append(int64(i))
	}
	rec := b.NewRecordBatch()
	t.Cleanup(rec.Release)
	return rec
}

func commit(t *testing.T, tbl *lake.Table, b lake.Batch) lake.Committed {
	t.Helper()
	c, err := tbl.Commit(t.Context(), b)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return c
}

// ids reads every id in the table, sorted.
func ids(t *testing.T, tbl *lake.Table) []string {
	t.Helper()
	if _, err := tbl.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	var out []string
	err := tbl.Scan(t.Context(), lake.ScanOptions{Fields: []string{"id"}}, func(r arrow.RecordBatch) error {
		out = append(out, idsOf(r)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func idsOf(r arrow.RecordBatch) []string {
	col := r.Column(int(r.Schema().FieldIndices("id")[0])).(*array.String)
	out := make([]string, col.Len())
	for i := range out {
		out[i] = col.Value(i)
	}
	return out
}

func expectIDs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func dataFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(dir, "warehouse"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".parquet") {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPartitionedAppendWithCheckpointRoundTrip(t *testing.T) {
	dir := t.TempDir()
	l := openLake(t, dir)
	tbl := ensure(t, l, eventsDef)

	c := commit(t, tbl, lake.Batch{
		Records: []arrow.RecordBatch{rows(t, tbl, "a", 10)},
		Advance: []lake.Position{{Key: "shard-1", To: "100"}, {Key: "shard-2", To: "7"}},
		Summary: map[string]string{"note": "first"},
	})
	if c.Rows != 10 || c.AlreadyLanded {
		t.Fatalf("commit = %+v, want 10 new rows", c)
	}
	commit(t, tbl, lake.Batch{
		Records: []arrow.RecordBatch{rows(t, tbl, "b", 4)},
		Advance: []lake.Position{{Key: "shard-1", From: "100", To: "200"}},
	})

	// A second process opening the same catalog sees the same checkpoint.
	_ = l.Close()
	l2 := openLake(t, dir)
	again := ensure(t, l2, eventsDef)
	cp, err := again.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	want := lake.Checkpoint{"shard-1": "200", "shard-2": "7"}
	if fmt.Sprint(cp) != fmt.Sprint(want) {
		t.Errorf("checkpoint = %v, want %v", cp, want)
	}
	if got, want := ids(t, again), append(expectIDs("a", 10), expectIDs("b", 4)...); !slices.Equal(got, sorted(want)) {
		t.Errorf("ids = %v, want %v", got, want)
	}

	// Data is real Parquet, one folder per partition (day and kind).
	files := dataFiles(t, dir)
	if len(files) < 4 {
		t.Fatalf("want files in 4 partitions, got %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte("PAR1")) || !bytes.HasSuffix(b, []byte("PAR1")) {
			t.Errorf("%s is not a Parquet file", f)
		}
		if !strings.Contains(f, "event_day=2026-03-0") || !strings.Contains(f, "kind=") {
			t.Errorf("%s is not in a day/kind partition folder", f)
		}
	}
	d, err := again.Describe()
	if err != nil {
		t.Fatal(err)
	}
	if d.Rows != 14 || d.Snapshots != 2 || d.Checkpoint["shard-1"] != "200" {
		t.Errorf("describe = %+v", d)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestCommitIsCompareAndSetOnCheckpoint(t *testing.T) {
	l := openLake(t, t.TempDir())
	tbl := ensure(t, l, eventsDef)
	first := lake.Batch{
		ID:      "batch-1",
		Records: []arrow.RecordBatch{rows(t, tbl, "a", 3)},
		Advance: []lake.Position{{Key: "s", To: "10"}},
	}
	commit(t, tbl, first)

	// The same batch again (a retry after an unknown outcome) lands nothing.
	c := commit(t, tbl, first)
	if !c.AlreadyLanded {
		t.Errorf("retried batch: %+v, want AlreadyLanded", c)
	}
	// A batch read from a stale position is refused.
	_, err := tbl.Commit(t.Context(), lake.Batch{
		Records: []arrow.RecordBatch{rows(t, tbl, "x", 3)},
		Advance: []lake.Position{{Key: "s", From: "5", To: "12"}},
	})
	if !errors.Is(err, lake.ErrCheckpointMoved) {
		t.Errorf("stale batch: err = %v, want ErrCheckpointMoved", err)
	}
	// A checkpoint-only batch (say, every record was rejected) still moves.
	commit(t, tbl, lake.Batch{Advance: []lake.Position{{Key: "s", From: "10", To: "20"}}})
	cp, _ := tbl.Checkpoint()
	if cp["s"] != "20" {
		t.Errorf("checkpoint = %v, want s=20", cp)
	}
	if got := ids(t, tbl); !slices.Equal(got, expectIDs("a", 3)) {
		t.Errorf("ids = %v", got)
	}
}

// Four writers, each in its own catalog connection as separate processes
// would be, append to one table at once. Every row lands once and every
// writer's checkpoint survives the others' commits.
func TestConcurrentWritersLoseAndDuplicateNothing(t *testing.T) {
	dir := t.TempDir()
	ensure(t, openLake(t, dir), eventsDef)

	const writers, batches, perBatch = 4, 6, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			l := openLake(t, dir)
			tbl, err := l.Ensure(context.Background(), eventsDef)
			if err != nil {
				errs <- err
				return
			}
			key := fmt.Sprintf("writer-%d", w)
			prev := ""
			for b := range batches {
				to := fmt.Sprint(b + 1)
				_, err := tbl.Commit(context.Background(), lake.Batch{
					Records: []arrow.RecordBatch{rows(t, tbl, fmt.Sprintf("w%d-b%d", w, b), perBatch)},
					Advance: []lake.Position{{Key: key, From: prev, To: to}},
				})
				if err != nil {
					errs <- fmt.Errorf("writer %d batch %d: %w", w, b, err)
					return
				}
				prev = to
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	tbl := ensure(t, openLake(t, dir), eventsDef)
	var want []string
	for w := range writers {
		for b := range batches {
			want = append(want, expectIDs(fmt.Sprintf("w%d-b%d", w, b), perBatch)...)
		}
	}
	if got := ids(t, tbl); !slices.Equal(got, sorted(want)) {
		t.Fatalf("got %d rows, want %d unique rows", len(got), len(want))
	}
	cp, err := tbl.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	for w := range writers {
		if got := cp[fmt.Sprintf("writer-%d", w)]; got != fmt.Sprint(batches) {
			t.Errorf("writer-%d checkpoint = %q, want %d", w, got, batches)
		}
	}
}

func readAppended(t *testing.T, tbl *lake.Table, from lake.SnapshotPos) ([]string, lake.Increment) {
	t.Helper()
	var got []string
	inc, err := tbl.ReadAppended(t.Context(), from, lake.ReadOptions{}, func(r arrow.RecordBatch) error {
		got = append(got, idsOf(r)...)
		return nil
	})
	if err != nil && !errors.Is(err, lake.ErrNoChange) {
		t.Fatal(err)
	}
	slices.Sort(got)
	return got, inc
}

func TestIncrementalReadReturnsExactlyRowsAppendedAfterSnapshot(t *testing.T) {
	l := openLake(t, t.TempDir())
	tbl := ensure(t, l, eventsDef)
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "a", 6)}})
	got, first := readAppended(t, tbl, lake.SnapshotPos{})
	if !slices.Equal(got, sorted(expectIDs("a", 6))) {
		t.Fatalf("first read = %v", got)
	}
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "b", 5)}})
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "c", 2)}})

	got, second := readAppended(t, tbl, first.To)
	want := sorted(append(expectIDs("b", 5), expectIDs("c", 2)...))
	if !slices.Equal(got, want) || second.Replayed {
		t.Fatalf("read after first = %v (replayed %v), want %v", got, second.Replayed, want)
	}

	// Compaction rewrites files but appends nothing: an incremental read
	// after it returns no rows.
	if _, err := tbl.Maintain(t.Context(), lake.MaintainOptions{MinInputFiles: 2, OrphanOlderThan: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, _ = readAppended(t, tbl, second.To)
	if len(got) != 0 {
		t.Errorf("read after compaction = %v, want nothing", got)
	}
	if _, inc := readAppended(t, tbl, second.To); inc.To.SnapshotID == second.To.SnapshotID {
		t.Errorf("position did not move past the compaction snapshot")
	}
}

func TestMaintenanceCompactsSmallFilesKeepingRows(t *testing.T) {
	dir := t.TempDir()
	l := openLake(t, dir)
	tbl := ensure(t, l, eventsDef)
	var want []string
	prev := ""
	for i := range 12 {
		p := fmt.Sprintf("p%d", i)
		to := fmt.Sprint(i + 1)
		commit(t, tbl, lake.Batch{
			Records: []arrow.RecordBatch{rows(t, tbl, p, 8)},
			Advance: []lake.Position{{Key: "k", From: prev, To: to}},
		})
		prev = to
		want = append(want, expectIDs(p, 8)...)
	}
	before, _ := tbl.Describe()

	rep, err := tbl.Maintain(t.Context(), lake.MaintainOptions{
		MinInputFiles:   2,
		ExpireOlderThan: time.Nanosecond,
		RetainLast:      1,
		OrphanOlderThan: time.Nanosecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := tbl.Describe()
	if after.DataFiles >= before.DataFiles || after.DataFiles > 4 {
		t.Errorf("data files %d -> %d, want at most one per partition (4)", before.DataFiles, after.DataFiles)
	}
	if rep.FilesCompacted != int(before.DataFiles) || rep.SnapshotsExpired == 0 || rep.OrphanFilesRemoved == 0 {
		t.Errorf("report = %+v", rep)
	}
	if on := len(dataFiles(t, dir)); int64(on) != after.DataFiles {
		t.Errorf("%d Parquet files on disk, table references %d: orphans left behind", on, after.DataFiles)
	}
	if got := ids(t, tbl); !slices.Equal(got, sorted(want)) {
		t.Errorf("rows changed by maintenance: %d rows, want %d", len(got), len(want))
	}
	if after.Checkpoint["k"] != "12" {
		t.Errorf("maintenance lost the checkpoint: %v", after.Checkpoint)
	}
}

func TestExpiredStartSnapshotFallsBackToSequenceNumbers(t *testing.T) {
	l := openLake(t, t.TempDir())
	tbl := ensure(t, l, eventsDef)
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "a", 4)}})
	_, first := readAppended(t, tbl, lake.SnapshotPos{})
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "b", 3)}})
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "c", 3)}})

	// Expire everything but the current snapshot, with no compaction.
	if _, err := tbl.Maintain(t.Context(), lake.MaintainOptions{
		MinInputFiles: 1000, ExpireOlderThan: time.Nanosecond, RetainLast: 1,
	}); err != nil {
		t.Fatal(err)
	}
	if tbl.Iceberg().SnapshotByID(first.To.SnapshotID) != nil {
		t.Fatal("start snapshot was not expired; the test proves nothing")
	}
	got, inc := readAppended(t, tbl, first.To)
	want := sorted(append(expectIDs("b", 3), expectIDs("c", 3)...))
	if !inc.Replayed || !slices.Equal(got, want) {
		t.Errorf("fallback read = %v (replayed %v), want %v replayed", got, inc.Replayed, want)
	}
}

func TestEnsureAddsNewColumnsToExistingTable(t *testing.T) {
	dir := t.TempDir()
	l := openLake(t, dir)
	tbl := ensure(t, l, eventsDef)
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "old", 2)}})

	v2 := eventsDef
	v2.Columns = append(slices.Clone(eventsDef.Columns), lake.Column{Name: "region", Type: iceberg.PrimitiveTypes.String})
	tbl2 := ensure(t, openLake(t, dir), v2)
	sc, _ := tbl2.ArrowSchema()
	if len(sc.FieldIndices("region")) != 1 {
		t.Fatalf("region not added: %v", sc)
	}
	if got := ids(t, tbl2); !slices.Equal(got, expectIDs("old", 2)) {
		t.Errorf("old rows after evolution = %v", got)
	}
	// Ensuring again is a no-op; a changed type is a clear error.
	ensure(t, openLake(t, dir), v2)
	bad := v2
	bad.Columns = slices.Clone(v2.Columns)
	bad.Columns[3] = lake.Column{Name: "value", Type: iceberg.PrimitiveTypes.String}
	_, err := openLake(t, dir).Ensure(t.Context(), bad)
	if err == nil || !strings.Contains(err.Error(), "value") {
		t.Errorf("type change: err = %v, want an error naming the column", err)
	}
}

type countingObserver struct {
	mu        sync.Mutex
	conflicts int
	rows      int64
}

func (o *countingObserver) Committed(_ string, rows int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rows += rows
}

func (o *countingObserver) Conflict(string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.conflicts++
}

// A writer holding a stale view of the table hits a real catalog conflict,
// reloads, keeps the other writer's checkpoint and lands its own batch once.
func TestStaleWriterConflictsThenRetries(t *testing.T) {
	dir := t.TempDir()
	obs := &countingObserver{}
	open := func() *lake.Table {
		l, err := lake.Open(t.Context(), lake.Options{
			URI: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse"), Observer: obs,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		return ensure(t, l, eventsDef)
	}
	a, b := open(), open()
	commit(t, a, lake.Batch{Records: []arrow.RecordBatch{rows(t, a, "a", 3)}, Advance: []lake.Position{{Key: "a", To: "1"}}})
	c := commit(t, b, lake.Batch{Records: []arrow.RecordBatch{rows(t, b, "b", 3)}, Advance: []lake.Position{{Key: "b", To: "1"}}})
	if obs.conflicts == 0 || c.Attempts < 2 {
		t.Errorf("stale writer: %d conflicts, %d attempts; want a conflict and a retry", obs.conflicts, c.Attempts)
	}
	cp, _ := b.Checkpoint()
	if cp["a"] != "1" || cp["b"] != "1" {
		t.Errorf("checkpoint after retry = %v, want both writers' keys", cp)
	}
	if got := ids(t, b); !slices.Equal(got, sorted(append(expectIDs("a", 3), expectIDs("b", 3)...))) {
		t.Errorf("ids = %v", got)
	}
}

// Expiry keeps the snapshot a consumer last read and everything after it,
// however old, and nothing before it beyond the retention.
func TestExpiryKeepsWhatConsumersStillNeed(t *testing.T) {
	l := openLake(t, t.TempDir())
	tbl := ensure(t, l, eventsDef)
	var positions []lake.SnapshotPos
	for i := range 6 {
		commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, fmt.Sprint("s", i), 2)}})
		_, inc := readAppended(t, tbl, lake.SnapshotPos{})
		positions = append(positions, inc.To)
	}
	consumer := positions[2] // has read the first three snapshots
	if _, err := tbl.Maintain(t.Context(), lake.MaintainOptions{
		MinInputFiles: 1000, ExpireOlderThan: time.Nanosecond, RetainLast: 1, KeepFrom: []lake.SnapshotPos{consumer},
	}); err != nil {
		t.Fatal(err)
	}
	if tbl.Iceberg().SnapshotByID(consumer.SnapshotID) == nil || tbl.Iceberg().SnapshotByID(positions[1].SnapshotID) != nil {
		t.Fatalf("kept %d snapshots; want the consumer's and the three after it", len(tbl.Iceberg().Metadata().Snapshots()))
	}
	got, inc := readAppended(t, tbl, consumer)
	if inc.Replayed || len(got) != 6 {
		t.Errorf("consumer read %d rows (replayed %v), want the 6 of the last three snapshots", len(got), inc.Replayed)
	}
}

// Compaction after a consumer's position gives the rows it already read new
// sequence numbers. When that position is then expired, reading by sequence
// number would hand those rows out again: before this change the fallback
// returned a's rows a second time. Now it refuses, naming the cause.
func TestFallbackRefusesToRereadCompactedRows(t *testing.T) {
	l := openLake(t, t.TempDir())
	tbl := ensure(t, l, eventsDef)
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "a", 4)}})
	_, first := readAppended(t, tbl, lake.SnapshotPos{})
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "b", 3)}})
	// Compact everything (a's files and b's), then expire all but the head.
	if _, err := tbl.Maintain(t.Context(), lake.MaintainOptions{MinInputFiles: 1, TargetFileSize: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "c", 3)}})
	if _, err := tbl.Maintain(t.Context(), lake.MaintainOptions{
		MinInputFiles: 1000, ExpireOlderThan: time.Nanosecond, RetainLast: 1,
	}); err != nil {
		t.Fatal(err)
	}
	if tbl.Iceberg().SnapshotByID(first.To.SnapshotID) != nil {
		t.Fatal("start snapshot was not expired; the test proves nothing")
	}
	var got []string
	_, err := tbl.ReadAppended(t.Context(), first.To, lake.ReadOptions{}, func(r arrow.RecordBatch) error {
		got = append(got, idsOf(r)...)
		return nil
	})
	if !errors.Is(err, lake.ErrReplayUnsafe) {
		t.Fatalf("fallback over compacted files: err = %v, read %d rows (%d of them a's); want ErrReplayUnsafe",
			err, len(got), len(slices.DeleteFunc(slices.Clone(got), func(s string) bool { return !strings.HasPrefix(s, "a-") })))
	}
}

// A first read of a table with many snapshots is bounded by MaxRows like
// any other read: before this change it read the whole table at once.
func TestFirstReadIsBoundedByMaxRows(t *testing.T) {
	l := openLake(t, t.TempDir())
	tbl := ensure(t, l, eventsDef)
	for i := range 6 {
		commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, fmt.Sprint("s", i), 10)}})
	}
	var all []string
	from := lake.SnapshotPos{}
	for step := 0; ; step++ {
		var got []string
		inc, err := tbl.ReadAppended(t.Context(), from, lake.ReadOptions{MaxRows: 25}, func(r arrow.RecordBatch) error {
			got = append(got, idsOf(r)...)
			return nil
		})
		if errors.Is(err, lake.ErrNoChange) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > 25 {
			t.Fatalf("step %d read %d rows, limit 25", step, len(got))
		}
		all = append(all, got...)
		from = inc.To
	}
	var want []string
	for i := range 6 {
		want = append(want, expectIDs(fmt.Sprint("s", i), 10)...)
	}
	if !slices.Equal(sorted(all), sorted(want)) {
		t.Errorf("steps read %d rows, want each of %d once", len(all), len(want))
	}
}

// A guard runs against the state each attempt commits on: when another
// writer commits between a first check and the commit, the conflict makes
// the guard look again, and what it refuses does not land.
func TestGuardSeesWhatOtherWritersCommitted(t *testing.T) {
	dir := t.TempDir()
	a := ensure(t, openLake(t, dir), eventsDef)
	b := ensure(t, openLake(t, dir), eventsDef)
	// b's handle is loaded before a commits: its first attempt conflicts.
	commit(t, a, lake.Batch{Records: []arrow.RecordBatch{rows(t, a, "x", 2)}})
	var seen [][]string
	guard := func(ctx context.Context, s lake.State) error {
		var got []string
		_, err := s.ReadAppended(ctx, lake.SnapshotPos{}, lake.ReadOptions{Fields: []string{"id"}}, func(r arrow.RecordBatch) error {
			got = append(got, idsOf(r)...)
			return nil
		})
		if err != nil && !errors.Is(err, lake.ErrNoChange) {
			return err
		}
		seen = append(seen, got)
		if slices.Contains(got, "x-0") {
			return errors.New("x already there")
		}
		return nil
	}
	_, err := b.Commit(t.Context(), lake.Batch{Records: []arrow.RecordBatch{rows(t, b, "x", 2)}, Guard: guard})
	if !errors.Is(err, lake.ErrGuard) {
		t.Fatalf("err = %v, want ErrGuard; guard saw %v", err, seen)
	}
	if len(seen) != 2 || len(seen[0]) != 0 {
		t.Errorf("guard saw %v; want the stale empty state, then (after the conflict) a's rows", seen)
	}
	if got := ids(t, a); !slices.Equal(got, expectIDs("x", 2)) {
		t.Errorf("rows = %v, want x's once", got)
	}
}
