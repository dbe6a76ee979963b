package lake

import (
	"fmt"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
)

// Equal builds the filter column = value, parsing value as the column's
// type, for command-line filters such as --where event_type=play.
func (t *Table) Equal(column, value string) (iceberg.BooleanExpression, error) {
	f, ok := t.current().Schema().FindFieldByName(column)
	if !ok {
		return nil, fmt.Errorf("%s has no column %q", t.Name(), column)
	}
	ref := iceberg.Reference(column)
	bad := func(err error) error {
		return fmt.Errorf("column %s is %s: %q: %w", column, f.Type, value, err)
	}
	switch f.Type.(type) {
	case iceberg.StringType:
		return iceberg.EqualTo(ref, value), nil
	case iceberg.Int32Type:
		n, err := strconv.ParseInt(value, 10, 32)
		if err != nil {
			return nil, bad(err)
		}
		return iceberg.EqualTo(ref, int32(n)), nil
	case iceberg.Int64Type:
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return nil, bad(err)
		}
		return iceberg.EqualTo(ref, n), nil
	case iceberg.Float64Type:
		x, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, bad(err)
		}
		return iceberg.EqualTo(ref, x), nil
	case iceberg.BooleanType:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return nil, bad(err)
		}
		return iceberg.EqualTo(ref, b), nil
	case iceberg.TimestampTzType, iceberg.TimestampType:
		ts, err := time.Parse(time.RFC3339Nano, value)
		if err != nil {
			return nil, bad(err)
		}
		return iceberg.EqualTo(ref, iceberg.Timestamp(ts.UnixMicro())), nil
	default:
		return nil, fmt.Errorf("column %s is %s: filtering on it is not supported", column, f.Type)
	}
}

// TimeColumn is the column the table is partitioned by time on (the source
// of its first day or hour partition field), or "" when it has none.
func (t *Table) TimeColumn() string {
	tbl := t.current()
	sc := tbl.Schema()
	spec := tbl.Spec()
	for _, f := range spec.Fields() {
		switch f.Transform.(type) {
		case iceberg.DayTransform, iceberg.HourTransform, iceberg.MonthTransform, iceberg.YearTransform:
			if col, ok := sc.FindColumnName(f.SourceID()); ok {
				return col
			}
		}
	}
	return ""
}

// Since builds the filter TimeColumn >= now - d.
func (t *Table) Since(d time.Duration, now time.Time) (iceberg.BooleanExpression, error) {
	col := t.TimeColumn()
	if col == "" {
		return nil, fmt.Errorf("%s has no time partition column to filter on", t.Name())
	}
	return iceberg.GreaterThanEqual(iceberg.Reference(col), iceberg.Timestamp(now.Add(-d).UnixMicro())), nil
}

// And joins filters; nil when there are none.
func And(exprs ...iceberg.BooleanExpression) iceberg.BooleanExpression {
	var out iceberg.BooleanExpression
	for _, e := range exprs {
		if out == nil {
			out = e
		} else {
			out = iceberg.NewAnd(out, e)
		}
	}
	return out
}

// Where is a command-line filter column = value, ready to scan with: the
// Filter to push into the scan, and a Match to apply to each row read.
type Where struct {
	Filter iceberg.BooleanExpression             // nil: nothing to push down
	Match  func(r arrow.RecordBatch, i int) bool // nil: every row read matches
}

// Where builds the filter column = value (see Equal). On a required column
// it is pushed into the scan. On a nullable column it is matched row by
// row instead: iceberg-go v0.7.0 prunes row groups wrongly on a nullable
// column (it takes the non-null count for the row count, so a row group
// with as many nulls as values looks all null) and would drop rows.
func (t *Table) Where(column, value string) (Where, error) {
	expr, err := t.Equal(column, value)
	if err != nil {
		return Where{}, err
	}
	f, _ := t.current().Schema().FindFieldByName(column)
	if f.Required {
		return Where{Filter: expr}, nil
	}
	// Equal accepted the value for the column's type: parse it the same
	// way for the comparison.
	eq := func(a arrow.Array, i int) bool { return false }
	switch f.Type.(type) {
	case iceberg.StringType:
		eq = func(a arrow.Array, i int) bool { s, ok := a.(*array.String); return ok && s.Value(i) == value }
	case iceberg.Int32Type:
		n, _ := strconv.ParseInt(value, 10, 32)
		eq = func(a arrow.Array, i int) bool { x, ok := a.(*array.Int32); return ok && int64(x.Value(i)) == n }
	case iceberg.Int64Type:
		n, _ := strconv.ParseInt(value, 10, 64)
		eq = func(a arrow.Array, i int) bool { x, ok := a.(*array.Int64); return ok && x.Value(i) == n }
	case iceberg.Float64Type:
		v, _ := strconv.ParseFloat(value, 64)
		eq = func(a arrow.Array, i int) bool { x, ok := a.(*array.Float64); return ok && x.Value(i) == v }
	case iceberg.BooleanType:
		v, _ := strconv.ParseBool(value)
		eq = func(a arrow.Array, i int) bool { x, ok := a.(*array.Boolean); return ok && x.Value(i) == v }
	default:
		// Timestamps: pushed down, as nullable timestamps are rare and the
		// comparison is exact there.
		return Where{Filter: expr}, nil
	}
	return Where{Match: func(r arrow.RecordBatch, i int) bool {
		idx := r.Schema().FieldIndices(column)
		if len(idx) == 0 {
			return false
		}
		col := r.Column(idx[0])
		return col.IsValid(i) && eq(col, i)
	}}, nil
}
