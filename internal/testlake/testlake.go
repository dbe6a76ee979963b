// Package testlake gives tests a real lake — a SQLite catalog and Parquet
// files in a temporary folder — and rows stated by column name, so a test
// says what it writes and not how Arrow builds it.
package testlake

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"

	"github.com/qoslake/qoslake/lake"
)

// Open opens the lake in dir (catalog c.db, warehouse w; another Open of
// the same dir is another process's view) and ensures the tables, returned
// in the order of defs. The lake closes when the test ends.
func Open(t testing.TB, dir string, defs ...lake.TableDef) []*lake.Table {
	t.Helper()
	ctx := context.Background()
	l, err := lake.Open(ctx, lake.Options{URI: filepath.Join(dir, "c.db"), Warehouse: filepath.Join(dir, "w")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	out := make([]*lake.Table, len(defs))
	for i, def := range defs {
		if out[i], err = l.Ensure(ctx, def); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// Row is one row by column name. A column left out is null, or zero when
// it is a required number, or the zero time for a timestamp (lake.Rows
// writes no null timestamp). Numbers may be int, int64 or float64.
type Row map[string]any

// Batch builds the rows as a record batch of tbl, through def's columns;
// the caller releases it.
func Batch(t testing.TB, tbl *lake.Table, def lake.TableDef, rows []Row) arrow.RecordBatch {
	t.Helper()
	out, err := tbl.NewRows()
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	for _, r := range rows {
		for name := range r {
			if !slices.ContainsFunc(def.Columns, func(c lake.Column) bool { return c.Name == name }) {
				t.Fatalf("%s has no column %s", def.FullName(), name)
			}
		}
		for _, c := range def.Columns {
			v, set := r[c.Name]
			switch c.Type {
			case iceberg.PrimitiveTypes.String:
				s, _ := v.(string)
				out.NullableString(c.Name, s)
			case iceberg.PrimitiveTypes.Int64:
				n := int64(number(v))
				if !set && !c.Required {
					out.OptInt64(c.Name, nil)
				} else {
					out.OptInt64(c.Name, &n)
				}
			case iceberg.PrimitiveTypes.Float64:
				f := number(v)
				if !set && !c.Required {
					out.OptFloat64(c.Name, nil)
				} else {
					out.OptFloat64(c.Name, &f)
				}
			case iceberg.PrimitiveTypes.Bool:
				b, _ := v.(bool)
				out.Bool(c.Name, b)
			case iceberg.PrimitiveTypes.TimestampTz:
				ts, _ := v.(time.Time) // left out: the zero time (no null timestamps)
				out.Time(c.Name, ts)
			default:
				t.Fatalf("column %s: type %s", c.Name, c.Type)
			}
		}
	}
	return out.Batch()
}

// Commit appends the rows to tbl in one commit.
func Commit(t testing.TB, tbl *lake.Table, def lake.TableDef, rows []Row) {
	t.Helper()
	rec := Batch(t, tbl, def, rows)
	defer rec.Release()
	if _, err := tbl.Commit(context.Background(), lake.Batch{Records: []arrow.RecordBatch{rec}}); err != nil {
		t.Fatal(err)
	}
}

func number(v any) float64 {
	switch n := v.(type) {
	case int:
		return float64(n)
	case int64:
		return float64(n)
	case float64:
		return n
	}
	return 0
}
