package lake_test

import (
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"

	"github.com/qoslake/qoslake/internal/testlake"
	"github.com/qoslake/qoslake/lake"
)

// TestWhereOnNullableColumnFindsEveryRow: a command-line filter on a
// nullable column finds its rows in a file whose column holds as many
// nulls as values — the file iceberg-go v0.7.0's row-group pruning drops
// when the filter is pushed into the scan.
func TestWhereOnNullableColumnFindsEveryRow(t *testing.T) {
	def := lake.TableDef{Namespace: "test", Name: "where", Columns: []lake.Column{
		{Name: "id", Type: iceberg.PrimitiveTypes.Int64, Required: true},
		{Name: "isp", Type: iceberg.PrimitiveTypes.String},
		{Name: "n", Type: iceberg.PrimitiveTypes.Int64},
	}}
	tbl := testlake.Open(t, t.TempDir(), def)[0]
	testlake.Commit(t, tbl, def, []testlake.Row{{"id": 1, "isp": "BT", "n": 7}, {"id": 2}})
	for _, tc := range []struct{ col, val string }{{"isp", "BT"}, {"n", "7"}, {"id", "1"}} {
		w, err := tbl.Where(tc.col, tc.val)
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		err = tbl.Scan(context.Background(), lake.ScanOptions{Filter: w.Filter}, func(r arrow.RecordBatch) error {
			for i := range int(r.NumRows()) {
				if w.Match == nil || w.Match(r, i) {
					found++
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if found != 1 {
			t.Errorf("where %s = %s: %d rows, want 1", tc.col, tc.val, found)
		}
	}
}
