package lake

import (
	"fmt"
	"strconv"
	"time"

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
