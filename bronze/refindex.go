package bronze

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/qoslake/qoslake/ingest/s3sqs"
	"github.com/qoslake/qoslake/lake"
)

// refIndex knows which sources a table holds rows of, and for each the
// highest line number, so that checking a delivery costs a map lookup: a
// filtered table scan plans over every manifest, which grows with each
// commit (132 ms an object at 300 commits, measured). It is built from the
// table once, then follows what any process appends (reading only the
// columns it needs). Entries older than SQS's longest retention are
// dropped: no redelivery comes after that.
type refIndex struct {
	fields []string
	// refOf returns row i's source and line (wholeSource for a row about
	// the whole source).
	refOf func(cols []arrow.Array, i int) (string, int64)
	refs  map[string]indexed
	at    lake.SnapshotPos
}

type indexed struct {
	line  int64 // highest line held
	added time.Time
}

// wholeSource is the line of a reject about a whole object or message: it
// comes after every line.
const wholeSource = math.MaxInt64

const maxRedeliveryAge = 15 * 24 * time.Hour

// objectRefs indexes bronze.cdn_logs by object (bucket, key, ETag).
func objectRefs() *refIndex {
	return &refIndex{fields: []string{"bucket", "object_key", "etag", "line_number"}, refOf: func(c []arrow.Array, i int) (string, int64) {
		s := func(j int) string { return c[j].(*array.String).Value(i) }
		return s3sqs.Object{Bucket: s(0), Key: s(1), ETag: s(2)}.Ref(), c[3].(*array.Int64).Value(i)
	}}
}

// rejectRefs indexes bronze.rejects by the object (or message) a reject
// came from and its line. A reject about a whole source is indexed apart,
// under wholeKey, by its reason: an object_unreadable reject (committed
// without the object read) must not hide the line rejects a later read
// finds, and line rejects are committed in line order, so the highest
// line tells which are in.
func rejectRefs() *refIndex {
	return &refIndex{fields: []string{"source_ref", "reason"}, refOf: func(c []arrow.Array, i int) (string, int64) {
		ref, line := splitRef(c[0].(*array.String).Value(i))
		if line == wholeSource {
			return wholeKey(ref, c[1].(*array.String).Value(i)), wholeSource
		}
		return ref, line
	}}
}

// wholeKey is the rejects index key of a reject about a whole source.
func wholeKey(ref, reason string) string { return ref + "\x00" + reason }

// splitRef turns "s3://b/k@etag:17" into ("s3://b/k@etag", 17); a ref
// without a line (a whole object, a message) has line wholeSource.
func splitRef(ref string) (string, int64) {
	at := strings.LastIndexByte(ref, '@')
	if !strings.HasPrefix(ref, "s3://") || at < 0 {
		return ref, wholeSource
	}
	if colon := strings.IndexByte(ref[at:], ':'); colon >= 0 {
		if n, err := strconv.ParseInt(ref[at+colon+1:], 10, 64); err == nil {
			return ref[:at+colon], n
		}
	}
	return ref, wholeSource
}

// sourceOf turns "s3://b/k@etag:17" into "s3://b/k@etag"; other refs stay.
func sourceOf(ref string) string {
	src, _ := splitRef(ref)
	return src
}

func (x *refIndex) has(ref string) bool {
	_, ok := x.refs[ref]
	return ok
}

// line is the highest line held of ref, 0 when none.
func (x *refIndex) line(ref string) int64 { return x.refs[ref].line }

func (x *refIndex) add(ref string, line int64, t time.Time) {
	if x.refs == nil {
		x.refs = map[string]indexed{}
	}
	if e, ok := x.refs[ref]; !ok || line > e.line {
		x.refs[ref] = indexed{line: line, added: t}
	}
}

// reader is where an index reads appended rows: the table as last
// loaded, or the state a commit attempt is based on.
type reader interface {
	Position() lake.SnapshotPos
	ReadAppended(ctx context.Context, from lake.SnapshotPos, o lake.ReadOptions, fn func(arrow.RecordBatch) error) (lake.Increment, error)
}

// update reads what was appended since the index last looked. Our own
// commits are read again too: harmless, and it keeps the rule simple when
// another process committed in between.
func (x *refIndex) update(ctx context.Context, name string, t reader, now time.Time) error {
	if t.Position() == x.at {
		return nil
	}
	cols := make([]arrow.Array, len(x.fields))
	inc, err := t.ReadAppended(ctx, x.at, lake.ReadOptions{Fields: x.fields}, func(r arrow.RecordBatch) error {
		for i, f := range x.fields {
			cols[i] = r.Column(r.Schema().FieldIndices(f)[0])
		}
		for i := range int(r.NumRows()) {
			ref, line := x.refOf(cols, i)
			x.add(ref, line, now)
		}
		return nil
	})
	switch {
	case errors.Is(err, lake.ErrNoChange):
		x.at = t.Position()
	case err != nil:
		return fmt.Errorf("index %s: %w", name, err)
	default:
		x.at = inc.To
	}
	for ref, e := range x.refs {
		if now.Sub(e.added) > maxRedeliveryAge {
			delete(x.refs, ref)
		}
	}
	return nil
}
