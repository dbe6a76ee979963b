package lake

import (
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go/table"
)

// Rows builds Arrow record batches in a table's schema, addressing columns
// by name so writers do not depend on column order. Appending to a column
// the table does not have panics: the code and the table definition
// disagree, which no input can cause.
type Rows struct {
	b   *array.RecordBuilder
	col map[string]int
}

// NewRows starts an empty batch in the table's current schema.
func (t *Table) NewRows() (*Rows, error) {
	sc, err := t.ArrowSchema()
	if err != nil {
		return nil, fmt.Errorf("arrow schema of %s: %w", t.Name(), err)
	}
	return newRows(sc), nil
}

// NewRowsFor starts an empty batch in a declared table's schema, with no
// catalog: for tools that show rows as the table would hold them.
func NewRowsFor(def TableDef) (*Rows, error) {
	sc, err := table.SchemaToArrowSchema(def.schema(), nil, true, false)
	if err != nil {
		return nil, fmt.Errorf("arrow schema of %s: %w", def.FullName(), err)
	}
	return newRows(sc), nil
}

func newRows(sc *arrow.Schema) *Rows {
	r := &Rows{b: array.NewRecordBuilder(memory.DefaultAllocator, sc), col: make(map[string]int, sc.NumFields())}
	for i, f := range sc.Fields() {
		r.col[f.Name] = i
	}
	return r
}

func (r *Rows) field(name string) array.Builder {
	i, ok := r.col[name]
	if !ok {
		panic("lake: the table has no column " + name)
	}
	return r.b.Field(i)
}

// String appends v.
func (r *Rows) String(name, v string) { r.field(name).(*array.StringBuilder).Append(v) }

// StringBytes appends v without converting it to a string first.
func (r *Rows) StringBytes(name string, v []byte) {
	r.field(name).(*array.StringBuilder).BinaryBuilder.Append(v)
}

// NullableString appends v, or null for "".
func (r *Rows) NullableString(name, v string) {
	b := r.field(name).(*array.StringBuilder)
	if v == "" {
		b.AppendNull()
	} else {
		b.Append(v)
	}
}

// Int32 appends v.
func (r *Rows) Int32(name string, v int32) { r.field(name).(*array.Int32Builder).Append(v) }

// Int64 appends v.
func (r *Rows) Int64(name string, v int64) { r.field(name).(*array.Int64Builder).Append(v) }

// OptInt32 appends *v, or null.
func (r *Rows) OptInt32(name string, v *int32) {
	b := r.field(name).(*array.Int32Builder)
	if v == nil {
		b.AppendNull()
	} else {
		b.Append(*v)
	}
}

// OptInt64 appends *v, or null.
func (r *Rows) OptInt64(name string, v *int64) {
	b := r.field(name).(*array.Int64Builder)
	if v == nil {
		b.AppendNull()
	} else {
		b.Append(*v)
	}
}

// OptFloat64 appends *v, or null.
func (r *Rows) OptFloat64(name string, v *float64) {
	b := r.field(name).(*array.Float64Builder)
	if v == nil {
		b.AppendNull()
	} else {
		b.Append(*v)
	}
}

// Bool appends v.
func (r *Rows) Bool(name string, v bool) { r.field(name).(*array.BooleanBuilder).Append(v) }

// OptBool appends *v, or null.
func (r *Rows) OptBool(name string, v *bool) {
	b := r.field(name).(*array.BooleanBuilder)
	if v == nil {
		b.AppendNull()
	} else {
		b.Append(*v)
	}
}

// Time appends v to a timestamp column (microseconds).
func (r *Rows) Time(name string, v time.Time) {
	r.field(name).(*array.TimestampBuilder).Append(arrow.Timestamp(v.UnixMicro()))
}

// Binary appends v.
func (r *Rows) Binary(name string, v []byte) { r.field(name).(*array.BinaryBuilder).Append(v) }

// Reserve makes room for n more rows, and dataBytes more bytes in the named
// string column, so large batches do not grow buffers step by step.
func (r *Rows) Reserve(n int, column string, dataBytes int) {
	r.b.Reserve(n)
	r.field(column).(*array.StringBuilder).ReserveData(dataBytes)
}

// Batch returns the rows appended so far and starts an empty batch.
func (r *Rows) Batch() arrow.RecordBatch { return r.b.NewRecordBatch() }

// Release frees the builder's buffers.
func (r *Rows) Release() { r.b.Release() }
