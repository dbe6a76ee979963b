package bronze

import (
	"time"

	"github.com/qoslake/qoslake/lake"
)

// MaxRawBytes bounds the raw bytes a reject keeps.
const MaxRawBytes = 64 << 10

// Reject is a row of bronze.rejects.
type Reject struct {
	At        time.Time
	Source    string // "kinesis", "realtime" or "s3"
	SourceRef string
	Reason    string
	Detail    string
	Raw       []byte
}

func appendReject(rb *lake.Rows, r Reject) {
	rb.Time("rejected_at", r.At)
	rb.String("source", r.Source)
	rb.String("source_ref", r.SourceRef)
	rb.String("reason", r.Reason)
	rb.NullableString("detail", r.Detail)
	raw := r.Raw
	if len(raw) > MaxRawBytes {
		raw = raw[:MaxRawBytes]
	}
	rb.Binary("raw", raw)
	rb.Int64("raw_size", int64(len(r.Raw)))
}

// Observer is told about bronze commits and rejects, for metrics.
type Observer interface {
	Rejected(source, reason string)
	BatchCommitted(table string, rows int, took time.Duration)
	MessagesReceived(queue string, n int)
	ObjectRead(lines, bytes int)
	// ShortLines counts CDN log lines kept with trailing fields missing.
	ShortLines(n int)
}

type nopObserver struct{}

func (nopObserver) Rejected(string, string)                   {}
func (nopObserver) BatchCommitted(string, int, time.Duration) {}
func (nopObserver) MessagesReceived(string, int)              {}
func (nopObserver) ObjectRead(int, int)                       {}
func (nopObserver) ShortLines(int)                            {}

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
