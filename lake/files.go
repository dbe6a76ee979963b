package lake

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// DataFile is one live data file of a snapshot, as scan planning (the
// manifests, not the file itself) describes it.
type DataFile struct {
	Path string
	Rows int64
	// Deleted is set when delete files apply to the file (merge-on-read, as
	// other engines may write): its rows are then not the file alone, so
	// what a reader learnt from it may go stale. qoslake's own tables copy
	// on write and never set it.
	Deleted bool
}

// ScanFiles is Scan file by file: it plans the live data files of the
// snapshot (o.Snapshot, or the current one as last loaded) that may hold rows
// matching o.Filter, asks skip about each, and reads the others one after
// the other, calling fn with each batch and the file it came from. It
// returns every planned file, skipped or not.
//
// An Iceberg data file never changes once written, so a reader can keep
// what it derived from a file by path and skip the file from then on: the
// cost of a read is then the files written since the last one, and the
// planned list tells which kept results still count. A Deleted file must not
// be skipped. o.Limit is ignored.
func (t *Table) ScanFiles(ctx context.Context, o ScanOptions, skip func(DataFile) bool, fn func(DataFile, arrow.RecordBatch) error) ([]DataFile, error) {
	ctx = t.lake.ctx(ctx)
	scan, tasks, err := t.plan(ctx, o)
	if err != nil || scan == nil {
		return nil, err
	}
	files := make([]DataFile, len(tasks))
	for i, task := range tasks {
		f := dataFileOf(task)
		files[i] = f
		if skip != nil && !f.Deleted && skip(f) {
			continue
		}
		_, recs, err := scan.ReadTasks(ctx, tasks[i:i+1])
		if err != nil {
			return nil, fmt.Errorf("read %s file %s: %w", t.Name(), f.Path, err)
		}
		for rec, err := range recs {
			if err != nil {
				return nil, fmt.Errorf("read %s file %s: %w", t.Name(), f.Path, err)
			}
			err = fn(f, rec)
			rec.Release()
			if err != nil {
				return nil, err
			}
		}
	}
	return files, nil
}

// plan plans the live data files of o's snapshot (or the current one)
// matching o.Filter; a nil scan means the table has no snapshot.
func (t *Table) plan(ctx context.Context, o ScanOptions) (*table.Scan, []table.FileScanTask, error) {
	tbl := t.current()
	var opts []table.ScanOption
	switch {
	case !o.Snapshot.IsZero():
		var err error
		if tbl, err = t.at(ctx, o.Snapshot); err != nil {
			return nil, nil, err
		}
		opts = append(opts, table.WithSnapshotID(o.Snapshot.SnapshotID))
	case tbl.CurrentSnapshot() == nil:
		return nil, nil, nil
	}
	if o.Filter != nil {
		opts = append(opts, table.WithRowFilter(o.Filter))
	}
	if len(o.Fields) > 0 {
		opts = append(opts, table.WithSelectedFields(o.Fields...))
	}
	scan := tbl.Scan(opts...)
	tasks, err := scan.PlanFiles(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("plan scan of %s: %w", t.Name(), err)
	}
	return scan, tasks, nil
}

func dataFileOf(task table.FileScanTask) DataFile {
	return DataFile{
		Path:    task.File.FilePath(),
		Rows:    task.File.Count(),
		Deleted: len(task.DeleteFiles)+len(task.EqualityDeleteFiles)+len(task.DeletionVectorFiles) > 0,
	}
}

// NewestTime is the latest value of the timestamp columns over the rows of
// the snapshot (o.Snapshot, or the current one) that o.Filter may select;
// ok is false when there is none. It reads the files' column statistics from
// the manifests, and reads a file itself only when its statistics lack an
// upper bound (a writer that keeps none) or it has delete files; qoslake's
// writers keep exact bounds for timestamps, so the answer costs no data
// read. With a filter the statistics of a file that holds both matching and
// other rows count whole: the answer is then at least the true one.
func (t *Table) NewestTime(ctx context.Context, o ScanOptions, columns ...string) (newest time.Time, ok bool, err error) {
	ctx = t.lake.ctx(ctx)
	scan, tasks, err := t.plan(ctx, ScanOptions{Snapshot: o.Snapshot, Filter: o.Filter, Fields: columns})
	if err != nil || scan == nil {
		return time.Time{}, false, err
	}
	schema, err := scan.Projection()
	if err != nil {
		return time.Time{}, false, fmt.Errorf("columns %v of %s: %w", columns, t.Name(), err)
	}
	ids := make([]int, len(columns))
	for i, c := range columns {
		f, found := schema.FindFieldByName(c)
		if !found {
			return time.Time{}, false, fmt.Errorf("%s has no column %s", t.Name(), c)
		}
		ids[i] = f.ID
	}
	var best int64
	var unread []table.FileScanTask
	for _, task := range tasks {
		if dataFileOf(task).Deleted {
			unread = append(unread, task)
			continue
		}
		upper := task.File.UpperBoundValues()
		for _, id := range ids {
			lit, err := iceberg.LiteralFromBytes(iceberg.PrimitiveTypes.TimestampTz, upper[id])
			ts, isTS := lit.(iceberg.TimestampLiteral)
			if err != nil || !isTS {
				// No statistic for this column: read the file. A column
				// that is null throughout has no bound either; reading
				// finds that out.
				unread = append(unread, task)
				break
			}
			if !ok || int64(ts) > best {
				best, ok = int64(ts), true
			}
		}
	}
	if len(unread) == 0 {
		return time.UnixMicro(best).UTC(), ok, nil
	}
	_, recs, err := scan.ReadTasks(ctx, unread)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read %s: %w", t.Name(), err)
	}
	for rec, err := range recs {
		if err != nil {
			return time.Time{}, false, fmt.Errorf("read %s: %w", t.Name(), err)
		}
		for _, c := range columns {
			idx := rec.Schema().FieldIndices(c)
			if len(idx) == 0 {
				continue
			}
			col, isTS := rec.Column(idx[0]).(*array.Timestamp)
			if !isTS {
				rec.Release()
				return time.Time{}, false, fmt.Errorf("%s column %s is not a timestamp", t.Name(), c)
			}
			for i := range col.Len() {
				if col.IsValid(i) && (!ok || int64(col.Value(i)) > best) {
					best, ok = int64(col.Value(i)), true
				}
			}
		}
		rec.Release()
	}
	return time.UnixMicro(best).UTC(), ok, nil
}
