package lake

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/apache/iceberg-go/table/compaction"
)

// MaintainOptions tune one maintenance pass over a table.
type MaintainOptions struct {
	// TargetFileSize is the compaction output size; files under 3/4 of it
	// are candidates. Zero means 128 MiB.
	TargetFileSize int64
	// MinInputFiles is how many small files a partition needs before it is
	// compacted. Zero means 5.
	MinInputFiles uint
	// ExpireOlderThan is how old a snapshot must be to expire. Zero means
	// one hour.
	ExpireOlderThan time.Duration
	// RetainLast snapshots are kept whatever their age. Zero means 10.
	RetainLast int
	// KeepFrom, when set, is the oldest snapshot a downstream consumer still
	// has to read after: it and everything newer is kept.
	KeepFrom []SnapshotPos
	// OrphanOlderThan protects files younger than this from orphan removal,
	// so a commit in flight never loses its data files. Zero means one hour.
	OrphanOlderThan time.Duration
	// DeleteBefore, when set, deletes rows whose RetentionColumn is older
	// than it, and the files that held them once expiry and orphan removal
	// have run.
	DeleteBefore    time.Time
	RetentionColumn string
}

func (o MaintainOptions) withDefaults() MaintainOptions {
	if o.TargetFileSize == 0 {
		o.TargetFileSize = 128 << 20
	}
	if o.MinInputFiles == 0 {
		o.MinInputFiles = compaction.DefaultMinInputFiles
	}
	if o.ExpireOlderThan == 0 {
		o.ExpireOlderThan = time.Hour
	}
	if o.RetainLast == 0 {
		o.RetainLast = 10
	}
	if o.OrphanOlderThan == 0 {
		o.OrphanOlderThan = time.Hour
	}
	return o
}

// MaintainReport says what one pass did.
type MaintainReport struct {
	Table              string
	DeletedRowsBefore  time.Time `json:",omitzero"`
	FilesCompacted     int
	FilesWritten       int
	SnapshotsExpired   int
	OrphanFilesRemoved int
	// Error is why the pass failed part way (MaintainAll); "" when it did
	// not.
	Error string `json:",omitempty"`
}

// Maintain runs, in order: the retention delete, compaction, snapshot
// expiry and orphan removal. Each step that commits carries the table's
// checkpoint forward and retries on conflict with writers.
func (t *Table) Maintain(ctx context.Context, o MaintainOptions) (MaintainReport, error) {
	ctx = t.lake.ctx(ctx)
	o = o.withDefaults()
	rep := MaintainReport{Table: t.Name()}
	if _, err := t.Refresh(ctx); err != nil {
		return rep, err
	}
	if !o.DeleteBefore.IsZero() {
		if o.RetentionColumn == "" {
			return rep, fmt.Errorf("%s: retention needs a column", t.Name())
		}
		if err := t.deleteBefore(ctx, o.RetentionColumn, o.DeleteBefore); err != nil {
			return rep, err
		}
		rep.DeletedRowsBefore = o.DeleteBefore
	}
	in, out, err := t.compact(ctx, o)
	if err != nil {
		return rep, err
	}
	rep.FilesCompacted, rep.FilesWritten = in, out
	if rep.SnapshotsExpired, err = t.expire(ctx, o); err != nil {
		return rep, err
	}
	if rep.OrphanFilesRemoved, err = t.removeOrphans(ctx, o.OrphanOlderThan); err != nil {
		return rep, err
	}
	t.lake.log.Info("table maintained", "table", rep.Table, "files_compacted", rep.FilesCompacted,
		"files_written", rep.FilesWritten, "snapshots_expired", rep.SnapshotsExpired,
		"orphans_removed", rep.OrphanFilesRemoved)
	return rep, nil
}

// retryCommit runs stage (which builds a transaction on a fresh table) and
// commits it, reloading and rebuilding on conflicts with other writers and
// on transient failures (a maintenance step is rebuilt from the reloaded
// table, so an unknown outcome needs no special care).
func (t *Table) retryCommit(ctx context.Context, what string, stage func(*table.Table, *table.Transaction) (bool, error)) error {
	tbl := t.current()
	transient := 0
	for attempt := 1; ; attempt++ {
		tx := tbl.NewTransaction()
		ok, err := stage(tbl, tx)
		if err != nil {
			return fmt.Errorf("%s %s: %w", what, t.Name(), err)
		}
		if !ok {
			return nil
		}
		next, err := tx.Commit(ctx)
		if err == nil {
			t.set(next)
			return nil
		}
		kind := classifyCommitError(err)
		if kind == commitTransient {
			transient++
		}
		if kind == commitFailed || transient >= maxTransientAttempts || attempt >= maxCommitAttempts {
			return fmt.Errorf("%s %s: %w", what, t.Name(), err)
		}
		if kind == commitConflict {
			t.lake.obs.Conflict(t.Name())
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return err
		}
		if tbl, err = t.Refresh(ctx); err != nil {
			return err
		}
	}
}

// carried returns the current checkpoint as summary properties, for a
// maintenance snapshot to carry forward. A step that rewrites data files
// (rewrites) marks its own sequence number as the table's last rewrite: the
// rows of rewritten files get new sequence numbers, so a consumer's
// sequence-number fallback must not read them again (see ReadAppended).
func carried(tbl *table.Table, rewrites bool) (iceberg.Properties, error) {
	cp, err := checkpointOf(tbl)
	if err != nil {
		return nil, err
	}
	props := checkpointProps(cp)
	last := lastRewriteOf(tbl)
	if rewrites {
		last = tbl.Metadata().LastSequenceNumber() + 1
	}
	if last > 0 {
		props[summaryLastRewriteKey] = strconv.FormatInt(last, 10)
	}
	return props, nil
}

func (t *Table) deleteBefore(ctx context.Context, column string, before time.Time) error {
	return t.retryCommit(ctx, "retention delete", func(tbl *table.Table, tx *table.Transaction) (bool, error) {
		if tbl.CurrentSnapshot() == nil {
			return false, nil
		}
		props, err := carried(tbl, true)
		if err != nil {
			return false, err
		}
		filter := iceberg.LessThan(iceberg.Reference(column), iceberg.Timestamp(before.UnixMicro()))
		// Skip the commit when no file can hold such rows (the usual case
		// between passes), rather than adding an empty snapshot each time.
		tasks, err := tbl.Scan(table.WithRowFilter(filter)).PlanFiles(ctx)
		if err != nil {
			return false, err
		}
		if len(tasks) == 0 {
			return false, nil
		}
		if err := tx.Delete(ctx, filter, props); err != nil {
			return false, err
		}
		return true, nil
	})
}

func (t *Table) compact(ctx context.Context, o MaintainOptions) (in, out int, err error) {
	cfg := compaction.DefaultConfig()
	cfg.TargetFileSizeBytes = o.TargetFileSize
	cfg.MinFileSizeBytes = o.TargetFileSize * 3 / 4
	cfg.MaxFileSizeBytes = o.TargetFileSize * 9 / 5
	cfg.MinInputFiles = o.MinInputFiles
	err = t.retryCommit(ctx, "compact", func(tbl *table.Table, tx *table.Transaction) (bool, error) {
		if tbl.CurrentSnapshot() == nil {
			return false, nil
		}
		plan, err := compaction.Analyze(ctx, tbl, cfg)
		if err != nil {
			return false, err
		}
		if len(plan.Groups) == 0 {
			return false, nil
		}
		props, err := carried(tbl, true)
		if err != nil {
			return false, err
		}
		groups := make([]table.CompactionTaskGroup, len(plan.Groups))
		for i, g := range plan.Groups {
			groups[i] = table.CompactionTaskGroup{PartitionKey: g.PartitionKey, Tasks: g.Tasks, TotalSizeBytes: g.TotalSizeBytes}
		}
		res, err := tx.RewriteDataFiles(ctx, groups, table.RewriteDataFilesOptions{
			SnapshotProps: props,
			GroupOptions:  []table.CompactionGroupOption{table.WithCompactionTargetFileSize(o.TargetFileSize)},
		})
		if err != nil {
			return false, err
		}
		in, out = res.RemovedDataFiles, res.AddedDataFiles
		return true, nil
	})
	return in, out, err
}

func (t *Table) expire(ctx context.Context, o MaintainOptions) (int, error) {
	before := len(t.current().Metadata().Snapshots())
	err := t.retryCommit(ctx, "expire snapshots", func(tbl *table.Table, tx *table.Transaction) (bool, error) {
		// Counted on the state this attempt commits on: a writer that
		// committed meanwhile moved the head, and the consumers' snapshots
		// are that much further from it.
		retain := o.RetainLast
		for _, k := range o.KeepFrom {
			// Keep what a consumer has yet to read: its snapshot and every
			// one after it. Expiry keeps the newest N snapshots of the
			// branch, so N is the consumer's distance from the head,
			// counted exactly rather than by timestamps.
			if n := ancestryCount(tbl, k.SnapshotID); n > retain {
				retain = n
			}
		}
		if len(tbl.Metadata().Snapshots()) <= retain {
			return false, nil
		}
		// Files are removed by the orphan pass, after the commit, so a reader
		// mid-scan is not cut off by this transaction.
		return true, tx.ExpireSnapshots(table.WithOlderThan(o.ExpireOlderThan), table.WithRetainLast(retain), table.WithPostCommit(false))
	})
	if err != nil {
		return 0, err
	}
	return before - len(t.current().Metadata().Snapshots()), nil
}

// ancestryCount is how many snapshots there are from the head back to id,
// both included, or 0 when id is not an ancestor of the head.
func ancestryCount(tbl *table.Table, id int64) int {
	meta := tbl.Metadata()
	n := 0
	for s := meta.CurrentSnapshot(); s != nil; {
		n++
		if s.SnapshotID == id {
			return n
		}
		if s.ParentSnapshotID == nil {
			return 0
		}
		s = meta.SnapshotByID(*s.ParentSnapshotID)
	}
	return 0
}

func (t *Table) removeOrphans(ctx context.Context, olderThan time.Duration) (int, error) {
	tbl := t.current()
	res, err := tbl.DeleteOrphanFiles(ctx, table.WithFilesOlderThan(olderThan))
	if err != nil {
		return 0, fmt.Errorf("remove orphan files of %s: %w", t.Name(), err)
	}
	return len(res.DeletedFiles), nil
}
