package lake_test

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/qoslake/qoslake/lake"
)

var sortedDef = func() lake.TableDef {
	d := eventsDef
	d.Name = "sorted"
	d.SortOrder = []lake.SortKey{{Column: "event_time"}, {Column: "value", Descending: true}}
	return d
}()

// A new table gets the declared sort order and the base properties, and
// matches its declaration (no drift).
func TestEnsureCreatesSortOrderWithoutDrift(t *testing.T) {
	dir := t.TempDir()
	tbl := ensure(t, openLake(t, dir), sortedDef)
	if d := tbl.Drift(); len(d) != 0 {
		t.Errorf("new table drift = %v", d)
	}
	order := tbl.Iceberg().SortOrder()
	var got []string
	for _, f := range order.Fields() {
		name, _ := tbl.Iceberg().Schema().FindColumnName(f.SourceID())
		got = append(got, name+" "+string(f.Direction)+" "+string(f.NullOrder))
	}
	want := []string{"event_time asc nulls-first", "value desc nulls-last"}
	if !slices.Equal(got, want) {
		t.Errorf("sort order = %v, want %v", got, want)
	}
	if v := tbl.Iceberg().Properties()[table.ParquetPageVersionKey]; v != "1" {
		t.Errorf("%s = %q, want 1", table.ParquetPageVersionKey, v)
	}
	// Writers sort each file by it (value descending within a file here:
	// each file holds one event_time), through Commit and Replace alike.
	commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "a", 12)}})
	replace(t, tbl, lake.ReplaceBatch{
		Batch:  lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "r", 8)}},
		Delete: iceberg.EqualTo(iceberg.Reference("kind"), "play"),
	})
	err := tbl.Scan(t.Context(), lake.ScanOptions{}, func(r arrow.RecordBatch) error {
		vals := r.Column(3).(*array.Int64).Int64Values()
		if !slices.IsSortedFunc(vals, func(a, b int64) int { return int(b - a) }) {
			t.Errorf("file read as %v, want value descending", vals)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Ensuring it again from another process finds no drift either.
	if d := ensure(t, openLake(t, dir), sortedDef).Drift(); len(d) != 0 {
		t.Errorf("re-ensured drift = %v", d)
	}
}

// An existing table whose partition spec, sort order or properties differ
// from the declaration is reported, not changed.
func TestEnsureReportsDriftWithoutRewriting(t *testing.T) {
	dir := t.TempDir()
	tbl := ensure(t, openLake(t, dir), eventsDef)
	// A table from before page-version 1 was a base property.
	tx := tbl.Iceberg().NewTransaction()
	if err := tx.RemoveProperties([]string{table.ParquetPageVersionKey}); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}

	declared := sortedDef
	declared.Name = eventsDef.Name
	declared.Partition = eventsDef.Partition[:1] // day only
	declared.Properties = map[string]string{table.ParquetCompressionKey: "snappy"}
	again := ensure(t, openLake(t, dir), declared)
	drift := strings.Join(again.Drift(), "\n")
	for _, want := range []string{
		"partition spec is [event_day=day(event_time) kind=identity(kind)], declared [event_day=day(event_time)]",
		"sort order is [], declared [identity(event_time) asc nulls-first, identity(value) desc nulls-last]",
		`property write.parquet.page-version is unset, declared "1"`,
		`property write.parquet.compression-codec is "zstd", declared "snappy"`,
	} {
		if !strings.Contains(drift, want) {
			t.Errorf("drift lacks %q; got:\n%s", want, drift)
		}
	}
	ice := again.Iceberg()
	spec := ice.Spec()
	if spec.NumFields() != 2 || !ice.SortOrder().IsUnsorted() || ice.Properties()[table.ParquetPageVersionKey] != "" {
		t.Errorf("Ensure changed the drifted table: spec %v, order %v, properties %v", ice.Spec(), ice.SortOrder(), ice.Properties())
	}
}

// pageKinds reads every data page header of every column of a Parquet file.
func pageKinds(t *testing.T, path string) (v1, v2 int) {
	t.Helper()
	r, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for g := range r.NumRowGroups() {
		rg := r.RowGroup(g)
		for c := range rg.NumColumns() {
			pr, err := rg.GetColumnPageReader(c)
			if err != nil {
				t.Fatal(err)
			}
			for pr.Next() {
				switch pr.Page().(type) {
				case *file.DataPageV1:
					v1++
				case *file.DataPageV2:
					v2++
				}
			}
			if err := pr.Err(); err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
		}
	}
	return v1, v2
}

// qoslake tables write version-1 data pages; the check tells the two apart
// (a table set back to iceberg-go's default writes version 2).
func TestDataFilesHaveVersion1Pages(t *testing.T) {
	for _, tc := range []struct {
		name   string
		props  map[string]string
		wantV1 bool
	}{
		{name: "base properties", wantV1: true},
		{name: "page version 2", props: map[string]string{table.ParquetPageVersionKey: "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			def := eventsDef
			def.Properties = tc.props
			tbl := ensure(t, openLake(t, dir), def)
			commit(t, tbl, lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "a", 50)}})
			replace(t, tbl, lake.ReplaceBatch{
				Batch:  lake.Batch{Records: []arrow.RecordBatch{rows(t, tbl, "r", 10)}},
				Delete: iceberg.GreaterThanEqual(iceberg.Reference("value"), int64(40)),
			})
			files := dataFiles(t, dir)
			if len(files) == 0 {
				t.Fatal("no data files")
			}
			for _, f := range files {
				v1, v2 := pageKinds(t, f)
				if tc.wantV1 && (v1 == 0 || v2 != 0) || !tc.wantV1 && (v2 == 0 || v1 != 0) {
					t.Errorf("%s: %d v1 and %d v2 data pages", f, v1, v2)
				}
			}
		})
	}
}
