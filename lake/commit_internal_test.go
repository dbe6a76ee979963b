package lake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/aws/smithy-go"
)

var internalDef = TableDef{
	Namespace: "test",
	Name:      "internal",
	Columns:   []Column{{Name: "id", Type: iceberg.PrimitiveTypes.String, Required: true}},
}

func openInternal(t *testing.T) *Table {
	t.Helper()
	dir := t.TempDir()
	l, err := Open(t.Context(), Options{URI: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	tbl, err := l.Ensure(t.Context(), internalDef)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func idRecord(t *testing.T, tbl *Table, ids ...string) arrow.RecordBatch {
	t.Helper()
	sc, err := tbl.ArrowSchema()
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for _, id := range ids {
		b.Field(0).(*array.StringBuilder).Append(id)
	}
	rec := b.NewRecordBatch()
	t.Cleanup(rec.Release)
	return rec
}

// failingCatalog answers the first commits with errors of its choosing,
// then commits through the real catalog.
type failingCatalog struct {
	real  table.CatalogIO
	errs  []error
	calls atomic.Int32
}

func (c *failingCatalog) LoadTable(ctx context.Context, id table.Identifier) (*table.Table, error) {
	return c.real.LoadTable(ctx, id)
}

func (c *failingCatalog) CommitTable(ctx context.Context, id table.Identifier, reqs []table.Requirement, ups []table.Update) (table.Metadata, string, error) {
	n := int(c.calls.Add(1))
	if n <= len(c.errs) {
		return nil, "", c.errs[n-1]
	}
	return c.real.CommitTable(ctx, id, reqs, ups)
}

// withCatalog points the handle's loaded state at cat for its commits.
func withCatalog(t *Table, cat table.CatalogIO) {
	cur := t.current()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tbl = table.New(cur.Identifier(), cur.Metadata(), cur.MetadataLocation(),
		func(ctx context.Context) (icebergio.IO, error) { return cur.FS(ctx) }, cat)
}

type apiError struct{ code string }

func (e apiError) Error() string                 { return e.code + ": not allowed" }
func (e apiError) ErrorCode() string             { return e.code }
func (e apiError) ErrorMessage() string          { return "not allowed" }
func (e apiError) ErrorFault() smithy.ErrorFault { return smithy.FaultClient }

// Before this change any failure was retried up to 25 times, and any
// message containing "requirement failed" counted as a conflict.
func TestCommitRetriesOnlyWhatIsRetryable(t *testing.T) {
	cases := []struct {
		name      string
		errs      []error
		wantErr   bool
		wantCalls int
	}{
		{"access denied is returned at once", []error{apiError{"AccessDeniedException"}}, true, 1},
		{"a requirement message while nobody else committed is no conflict",
			[]error{errors.New("requirement failed: branch \"main\" has changed: expected id 1, found 2")}, true, 1},
		{"a connection reset is retried and the batch lands once",
			[]error{fmt.Errorf("commit: %w", syscall.ECONNRESET)}, false, 2},
		{"a commit-failed conflict is retried", []error{fmt.Errorf("%w: moved", table.ErrCommitFailed)}, false, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tbl := openInternal(t)
			fc := &failingCatalog{real: tbl.lake.cat, errs: tc.errs}
			withCatalog(tbl, fc)
			c, err := tbl.Commit(t.Context(), Batch{Records: []arrow.RecordBatch{idRecord(t, tbl, "a")}})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			// Later attempts commit through the reloaded (real) catalog.
			if calls := int(fc.calls.Load()) + max(c.Attempts-1, 0); calls != tc.wantCalls {
				t.Errorf("%d commit calls, want %d", calls, tc.wantCalls)
			}
			if !tc.wantErr {
				if _, err := tbl.Refresh(t.Context()); err != nil {
					t.Fatal(err)
				}
				if n := summaryInt(tbl.current().CurrentSnapshot(), "total-records"); n != 1 {
					t.Errorf("table holds %d rows, want 1", n)
				}
			}
		})
	}
}

// A handle keeps the state with the higher sequence number even when the
// older state was written by a host whose clock runs ahead. Before this
// change the wall-clock time decided, and the fresher state was refused.
func TestHandleOrdersStatesBySequenceNotClock(t *testing.T) {
	tbl := openInternal(t)
	if _, err := tbl.Commit(t.Context(), Batch{Records: []arrow.RecordBatch{idRecord(t, tbl, "a")}}); err != nil {
		t.Fatal(err)
	}
	older := tbl.current()
	if _, err := tbl.Commit(t.Context(), Batch{Records: []arrow.RecordBatch{idRecord(t, tbl, "b")}}); err != nil {
		t.Fatal(err)
	}
	newer := tbl.current()

	// The older state as a host an hour ahead would have written it.
	raw, err := json.Marshal(older.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["last-updated-ms"] = time.Now().Add(time.Hour).UnixMilli()
	raw, _ = json.Marshal(m)
	meta, err := table.ParseMetadataBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	skewed := table.New(older.Identifier(), meta, older.MetadataLocation(),
		func(ctx context.Context) (icebergio.IO, error) { return older.FS(ctx) }, tbl.lake.cat)

	tbl.mu.Lock()
	tbl.tbl = skewed
	tbl.mu.Unlock()
	tbl.set(newer)
	if got := tbl.current().Metadata().LastSequenceNumber(); got != newer.Metadata().LastSequenceNumber() {
		t.Fatalf("handle kept sequence %d, want the newer %d", got, newer.Metadata().LastSequenceNumber())
	}
	tbl.set(skewed)
	if got := tbl.current().Metadata().LastSequenceNumber(); got != newer.Metadata().LastSequenceNumber() {
		t.Errorf("a stale state with a fast clock rolled the handle back to sequence %d", got)
	}
}

func TestClassifyCommitError(t *testing.T) {
	cases := map[string]struct {
		err  error
		want commitErrorKind
	}{
		"commit failed":         {fmt.Errorf("x: %w", table.ErrCommitFailed), commitConflict},
		"ref changed":           {errors.New("requirement failed: branch \"main\" has changed: expected id 1, found 2"), commitConflict},
		"access denied":         {apiError{"AccessDenied"}, commitFailed},
		"throttled":             {apiError{"ThrottlingException"}, commitTransient},
		"sqlite busy":           {errors.New("database is locked (5) (SQLITE_BUSY)"), commitTransient},
		"other requirement":     {errors.New("requirement failed: ref \"x\" is a tag; tags cannot be transaction targets"), commitFailed},
		"plain invalid":         {errors.New("invalid metadata"), commitFailed},
		"unexpected eof":        {fmt.Errorf("read: %w", syscall.ECONNREFUSED), commitTransient},
		"requirement substring": {errors.New("a requirement failed somewhere"), commitFailed},
	}
	for name, tc := range cases {
		if got := classifyCommitError(tc.err); got != tc.want {
			t.Errorf("%s: %v classified %d, want %d", name, tc.err, got, tc.want)
		}
	}
}
