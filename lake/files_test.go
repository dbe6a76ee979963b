package lake_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"

	"github.com/qoslake/qoslake/lake"
)

// A reader that keeps per-file results reads each file once, and the
// planned list tells it which results a replace made stale.
func TestScanFilesReadsOnlyFilesNotSkipped(t *testing.T) {
	l := openLake(t, t.TempDir())
	tbl := ensure(t, l, eventsDef)
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "a", 10)}})
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "b", 6)}})

	seen := map[string][]string{} // file -> ids read from it
	scan := func() (files []lake.DataFile, read []string) {
		t.Helper()
		files, err := tbl.ScanFiles(t.Context(), lake.ScanOptions{Fields: []string{"id"}},
			func(f lake.DataFile) bool { _, ok := seen[f.Path]; return ok },
			func(f lake.DataFile, r arrow.RecordBatch) error {
				if !slices.Contains(read, f.Path) {
					read = append(read, f.Path)
				}
				seen[f.Path] = append(seen[f.Path], idsOf(r)...)
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		return files, read
	}
	liveIDs := func(files []lake.DataFile) []string {
		var out []string
		for _, f := range files {
			out = append(out, seen[f.Path]...)
			if int64(len(seen[f.Path])) != f.Rows {
				t.Errorf("file %s: %d rows read, planned %d", f.Path, len(seen[f.Path]), f.Rows)
			}
		}
		return sorted(out)
	}

	files, read := scan()
	if len(files) != 4 || len(read) != 4 {
		t.Fatalf("first scan: %d files planned, %d read; want 4 (2 commits x 2 partitions) read", len(files), len(read))
	}
	if got, want := liveIDs(files), sorted(append(expectIDs("a", 10), expectIDs("b", 6)...)); !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v", got, want)
	}
	if _, read := scan(); len(read) != 0 {
		t.Errorf("second scan read %v, want nothing", read)
	}

	// Replacing the "stop" rows removes two files and adds one.
	replace(t, tbl, lake.ReplaceBatch{
		Batch:  lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "r", 1)}},
		Delete: iceberg.EqualTo(iceberg.Reference("kind"), "stop"),
	})
	files, read = scan()
	if len(read) != 1 || len(files) != 3 {
		t.Errorf("after replace: %d files planned, read %v; want 3 planned, the new one read", len(files), read)
	}
	want := sorted(append(filterIDs(append(expectIDs("a", 10), expectIDs("b", 6)...), isPlay), "r-0"))
	if got := liveIDs(files); !slices.Equal(got, want) {
		t.Errorf("ids after replace = %v, want %v", got, want)
	}
	if len(seen) != 5 {
		t.Errorf("%d files read in all, want 5: %v", len(seen), slices.Collect(maps.Keys(seen)))
	}
}

func TestNewestTimeFromStatistics(t *testing.T) {
	l := openLake(t, t.TempDir())
	tbl := ensure(t, l, eventsDef)
	if _, ok, err := tbl.NewestTime(t.Context(), lake.ScanOptions{}, "event_time"); ok || err != nil {
		t.Errorf("empty table: ok %v, err %v; want nothing", ok, err)
	}
	// rows puts even ids on 2026-03-02 18:00 and odd ids a day later.
	day := time.Date(2026, 3, 2, 18, 0, 0, 0, time.UTC)
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "a", 1)}})
	first := tbl.Snapshot()
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "b", 2)}})

	for _, tc := range []struct {
		name string
		o    lake.ScanOptions
		want time.Time
	}{
		{"current", lake.ScanOptions{}, day.Add(24 * time.Hour)},
		{"pinned before the second commit", lake.ScanOptions{Snapshot: first}, day},
		{"filtered to a partition", lake.ScanOptions{Filter: iceberg.EqualTo(iceberg.Reference("kind"), "play")}, day},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := tbl.NewestTime(t.Context(), tc.o, "event_time")
			if err != nil || !ok || !got.Equal(tc.want) {
				t.Errorf("NewestTime = %v, %v, %v; want %v", got, ok, err, tc.want)
			}
		})
	}
	if _, _, err := tbl.NewestTime(t.Context(), lake.ScanOptions{}, "no_such_column"); err == nil {
		t.Error("NewestTime of a missing column: no error")
	}
}
