package lake

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"
)

// ReplaceBatch is a Batch whose rows replace the rows matching Delete, in
// one snapshot. Gold uses it to recompute the windows a batch of late data
// touches: Delete selects those windows, Records are their new rows.
type ReplaceBatch struct {
	Batch
	// Delete selects the rows to remove (for example the window starts and
	// keys the batch recomputed). It is required: a nil filter would replace
	// the whole table, which must be asked for with iceberg.AlwaysTrue{}.
	// Rows of Records are added whether or not they match it.
	Delete iceberg.BooleanExpression
}

// ErrNoDeleteFilter means a ReplaceBatch had no Delete filter.
var ErrNoDeleteFilter = errors.New("replace needs a delete filter")

// Replace deletes the rows matching b.Delete and adds b.Records in a single
// snapshot, with the checkpoint compare-and-set, commit id check, guard and
// conflict retries of Commit. Readers never see the windows half replaced
// (deleted but not yet re-added, or both), and a batch lands once.
//
// The delete is planned again on every attempt against the reloaded table,
// so rows another writer committed in between are kept when the filter does
// not select them, and replaced when it does, never doubled. Files that
// hold both matching and other rows are rewritten without the matching
// ones (copy-on-write); such a snapshot records itself as the table's last
// rewrite, like compaction, so a consumer's sequence-number fallback does
// not read the kept rows twice.
//
// The added rows are written anew on each attempt (iceberg-go's Overwrite
// writes its own files); a failed attempt's files are orphans that
// Maintain removes.
func (t *Table) Replace(ctx context.Context, b ReplaceBatch) (Committed, error) {
	ctx = t.lake.ctx(ctx)
	if b.Delete == nil {
		return Committed{}, fmt.Errorf("%s: %w", t.Name(), ErrNoDeleteFilter)
	}
	if b.ID == "" {
		b.ID = uuid.NewString()
	}
	if err := checkAdvance(b.Advance); err != nil {
		return Committed{}, err
	}
	var recs []arrow.RecordBatch
	var rows int64
	for _, r := range b.Records {
		if r.NumRows() > 0 {
			recs = append(recs, r)
			rows += r.NumRows()
		}
	}
	tbl := t.current()
	return t.commitLoop(ctx, tbl, b.Batch, rows, func(ctx context.Context, tbl *table.Table, props iceberg.Properties) (*table.Transaction, error) {
		if tbl.CurrentSnapshot() != nil {
			// Every file Overwrite deletes or rewrites is among those this
			// plan finds (both evaluate the filter inclusively on file
			// metrics), so the mark is never missed; at worst it is set
			// for a candidate that held no matching row.
			touched, err := tbl.Scan(table.WithRowFilter(b.Delete)).PlanFiles(ctx)
			if err != nil {
				return nil, fmt.Errorf("plan delete: %w", err)
			}
			if len(touched) > 0 {
				props[summaryLastRewriteKey] = strconv.FormatInt(tbl.Metadata().LastSequenceNumber()+1, 10)
			}
		}
		sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
		if err != nil {
			return nil, err
		}
		if len(recs) > 0 {
			sc = recs[0].Schema()
		}
		rdr, err := array.NewRecordReader(sc, recs)
		if err != nil {
			return nil, fmt.Errorf("records: %w", err)
		}
		defer rdr.Release()
		tx := tbl.NewTransaction()
		return tx, tx.Overwrite(ctx, rdr, props, table.WithOverwriteFilter(b.Delete))
	})
}

// TimesIn selects the rows whose timestamp column is one of ts, for
// example the window starts a gold batch recomputed. Equality on the
// window start (rather than a time range) keeps a replace from reaching
// into windows it did not recompute.
func TimesIn(column string, ts []time.Time) iceberg.BooleanExpression {
	if len(ts) == 0 {
		return iceberg.AlwaysFalse{}
	}
	vals := make([]iceberg.Timestamp, len(ts))
	for i, v := range ts {
		vals[i] = iceberg.Timestamp(v.UnixMicro())
	}
	return iceberg.IsIn(iceberg.Reference(column), vals...)
}
