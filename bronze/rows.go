package bronze

import (
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/qoslake/qoslake/lake"
)

// MaxRawBytes bounds the raw bytes a reject keeps.
const MaxRawBytes = 64 << 10

// Reject is a row of bronze.rejects.
type Reject struct {
	At        time.Time
	Source    string // "kinesis" or "s3"
	SourceRef string
	Reason    string
	Detail    string
	Raw       []byte
}

// rowBuilder appends rows to one table's Arrow schema, addressing columns
// by name so the code does not depend on column order.
type rowBuilder struct {
	b   *array.RecordBuilder
	col map[string]int
}

func newRowBuilder(t *lake.Table) (*rowBuilder, error) {
	sc, err := t.ArrowSchema()
	if err != nil {
		return nil, fmt.Errorf("arrow schema of %s: %w", t.Name(), err)
	}
	rb := &rowBuilder{b: array.NewRecordBuilder(memory.DefaultAllocator, sc), col: map[string]int{}}
	for i, f := range sc.Fields() {
		rb.col[f.Name] = i
	}
	return rb, nil
}

func (rb *rowBuilder) str(name, v string) {
	rb.b.Field(rb.col[name]).(*array.StringBuilder).Append(v)
}

// strBytes appends v without first converting it to a string.
func (rb *rowBuilder) strBytes(name string, v []byte) {
	rb.b.Field(rb.col[name]).(*array.StringBuilder).BinaryBuilder.Append(v)
}

// reserve makes room for n more rows, and dataBytes more bytes in the
// named string column, so large batches do not grow buffers step by step.
func (rb *rowBuilder) reserve(n int, column string, dataBytes int) {
	rb.b.Reserve(n)
	rb.b.Field(rb.col[column]).(*array.StringBuilder).ReserveData(dataBytes)
}

func (rb *rowBuilder) optStr(name, v string) {
	sb := rb.b.Field(rb.col[name]).(*array.StringBuilder)
	if v == "" {
		sb.AppendNull()
	} else {
		sb.Append(v)
	}
}

func (rb *rowBuilder) i32(name string, v int32) {
	rb.b.Field(rb.col[name]).(*array.Int32Builder).Append(v)
}

func (rb *rowBuilder) i64(name string, v int64) {
	rb.b.Field(rb.col[name]).(*array.Int64Builder).Append(v)
}

func (rb *rowBuilder) ts(name string, v time.Time) {
	rb.b.Field(rb.col[name]).(*array.TimestampBuilder).Append(arrow.Timestamp(v.UnixMicro()))
}

func (rb *rowBuilder) bin(name string, v []byte) {
	rb.b.Field(rb.col[name]).(*array.BinaryBuilder).Append(v)
}

// record returns the rows built so far (the builder starts empty again).
func (rb *rowBuilder) record() arrow.RecordBatch { return rb.b.NewRecordBatch() }

func (rb *rowBuilder) release() { rb.b.Release() }

func appendReject(rb *rowBuilder, r Reject) {
	rb.ts("rejected_at", r.At)
	rb.str("source", r.Source)
	rb.str("source_ref", r.SourceRef)
	rb.str("reason", r.Reason)
	rb.optStr("detail", r.Detail)
	raw := r.Raw
	if len(raw) > MaxRawBytes {
		raw = raw[:MaxRawBytes]
	}
	rb.bin("raw", raw)
	rb.i64("raw_size", int64(len(r.Raw)))
}

// Observer is told about bronze commits and rejects, for metrics.
type Observer interface {
	Rejected(source, reason string)
	BatchCommitted(table string, rows int, took time.Duration)
	MessagesReceived(queue string, n int)
	ObjectRead(lines, bytes int)
}

type nopObserver struct{}

func (nopObserver) Rejected(string, string)                   {}
func (nopObserver) BatchCommitted(string, int, time.Duration) {}
func (nopObserver) MessagesReceived(string, int)              {}
func (nopObserver) ObjectRead(int, int)                       {}

// Batching decides when buffered input is committed: at MaxRows rows,
// MaxBytes bytes of input, or MaxAge after the first buffered row, whichever
// comes first. The defaults give about one commit a second under load.
type Batching struct {
	MaxRows  int
	MaxBytes int
	MaxAge   time.Duration
}

// DefaultBatching is about one commit a second under load, bounded to
// 64 MiB of buffered input.
var DefaultBatching = Batching{MaxRows: 200_000, MaxBytes: 64 << 20, MaxAge: time.Second}

func (b Batching) withDefaults() Batching {
	if b.MaxRows <= 0 {
		b.MaxRows = DefaultBatching.MaxRows
	}
	if b.MaxBytes <= 0 {
		b.MaxBytes = DefaultBatching.MaxBytes
	}
	if b.MaxAge <= 0 {
		b.MaxAge = DefaultBatching.MaxAge
	}
	return b
}
