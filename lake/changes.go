package lake

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
)

// FileChange is one file a snapshot added or removed.
type FileChange struct {
	Path string
	// Content is "data", or "position-deletes"/"equality-deletes" for delete
	// files (merge-on-read tables; qoslake's own tables copy on write).
	Content string
	// Partition is the file's partition as "name=value/..." in the table's
	// folder form, e.g. "event_day=2026-03-02/kind=play"; "" when the
	// table is unpartitioned.
	Partition string
	// Values are the raw partition values by partition field name (days
	// since the epoch for a day transform, the value for identity), for
	// building filters over the changed partitions.
	Values map[string]any
	Rows   int64
}

// Change is what one snapshot did to the table.
type Change struct {
	Snapshot SnapshotPos
	// Operation is Iceberg's: append, overwrite (Replace, a partial
	// delete), delete, replace (compaction).
	Operation string
	// CommitID is the qoslake batch id, "" for snapshots of other tools
	// and of maintenance.
	CommitID       string
	Time           time.Time
	Added, Removed []FileChange
	AddedRows      int64
	RemovedRows    int64
	// Summary holds the Batch.Summary the commit wrote (without the
	// "qoslake." prefix): what the writer said about the change, such as
	// which windows it touched.
	Summary map[string]string
}

// Partitions lists the distinct partitions (in FileChange.Partition form)
// that the changes added to or removed from, sorted.
func Partitions(changes []Change) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range changes {
		for _, f := range slices.Concat(c.Added, c.Removed) {
			if !seen[f.Partition] {
				seen[f.Partition] = true
				out = append(out, f.Partition)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Changes reports, oldest first, every snapshot after from up to the
// table's current one (as last loaded; call Refresh first) with the files it
// added and removed, their partitions and row counts. ReadAppended follows
// appends only; a consumer of a table whose rows are replaced (gold) or
// deleted needs this to know which partitions to look at again. A zero
// from reports every retained snapshot. A from that is no longer in the
// table's history is ErrSnapshotExpired: the changes in between are lost
// and the consumer must read the table whole.
//
// Only the manifests each snapshot wrote are read, not the data files.
func (t *Table) Changes(ctx context.Context, from SnapshotPos) ([]Change, error) {
	ctx = t.lake.ctx(ctx)
	tbl := t.current()
	meta := tbl.Metadata()
	var chain []table.Snapshot
	found := from.IsZero()
	for s := meta.CurrentSnapshot(); s != nil; {
		if s.SnapshotID == from.SnapshotID {
			found = true
			break
		}
		chain = append(chain, *s)
		if s.ParentSnapshotID == nil {
			break
		}
		s = meta.SnapshotByID(*s.ParentSnapshotID)
	}
	if !found {
		return nil, fmt.Errorf("%s changes after snapshot %d: %w", t.Name(), from.SnapshotID, ErrSnapshotExpired)
	}
	if len(chain) == 0 {
		return nil, nil
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Name(), err)
	}
	out := make([]Change, 0, len(chain))
	for i := len(chain) - 1; i >= 0; i-- {
		c, err := changeOf(ctx, tbl, fs, chain[i])
		if err != nil {
			return nil, fmt.Errorf("%s changes of snapshot %d: %w", t.Name(), chain[i].SnapshotID, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func changeOf(ctx context.Context, tbl *table.Table, fs icebergio.IO, s table.Snapshot) (Change, error) {
	c := Change{
		Snapshot: SnapshotPos{SnapshotID: s.SnapshotID, SequenceNumber: s.SequenceNumber},
		Time:     time.UnixMilli(s.TimestampMs).UTC(),
	}
	if s.Summary != nil {
		c.Operation = string(s.Summary.Operation)
		c.CommitID = s.Summary.Properties[SummaryCommitID]
		for k, v := range s.Summary.Properties {
			if strings.HasPrefix(k, summaryPrefix) && !strings.HasPrefix(k, checkpointPrefix) && !internalSummaryKey(k) {
				if c.Summary == nil {
					c.Summary = map[string]string{}
				}
				c.Summary[strings.TrimPrefix(k, summaryPrefix)] = v
			}
		}
	}
	manifests, err := s.Manifests(fs)
	if err != nil {
		return c, err
	}
	for _, m := range manifests {
		if err := ctx.Err(); err != nil {
			return c, err
		}
		// A snapshot's own additions and removals are in the manifests it
		// wrote; older manifests only carry files forward.
		if m.SnapshotID() != s.SnapshotID {
			continue
		}
		spec := tbl.Metadata().PartitionSpecByID(int(m.PartitionSpecID()))
		for e, err := range m.Entries(fs, false) {
			if err != nil {
				return c, err
			}
			if e.SnapshotID() != s.SnapshotID || e.Status() == iceberg.EntryStatusEXISTING {
				continue
			}
			fc := fileChangeOf(tbl.Schema(), spec, e.DataFile())
			if e.Status() == iceberg.EntryStatusADDED {
				c.Added = append(c.Added, fc)
				c.AddedRows += fc.Rows
			} else {
				c.Removed = append(c.Removed, fc)
				c.RemovedRows += fc.Rows
			}
		}
	}
	return c, nil
}

func fileChangeOf(sc *iceberg.Schema, spec *iceberg.PartitionSpec, df iceberg.DataFile) FileChange {
	fc := FileChange{Path: df.FilePath(), Rows: df.Count(), Content: contentName(df.ContentType())}
	if spec == nil || spec.NumFields() == 0 {
		return fc
	}
	vals := df.Partition()
	fc.Values = make(map[string]any, spec.NumFields())
	parts := make([]string, 0, spec.NumFields())
	for _, f := range spec.Fields() {
		v := vals[f.FieldID]
		fc.Values[f.Name] = v
		human := "null"
		if v != nil {
			if src, ok := sc.FindFieldByID(f.SourceID()); ok {
				human = f.Transform.ToHumanStrType(f.Transform.ResultType(src.Type), v)
			} else {
				human = fmt.Sprint(v)
			}
		}
		parts = append(parts, f.Name+"="+human)
	}
	fc.Partition = strings.Join(parts, "/")
	return fc
}

func contentName(c iceberg.ManifestEntryContent) string {
	switch c {
	case iceberg.EntryContentPosDeletes:
		return "position-deletes"
	case iceberg.EntryContentEqDeletes:
		return "equality-deletes"
	default:
		return "data"
	}
}

// internalSummaryKey reports whether a snapshot summary key is the table
// layer's own bookkeeping rather than a writer's Batch.Summary.
func internalSummaryKey(k string) bool {
	return k == SummaryCommitID || k == summaryVersionKey || k == summaryLastRewriteKey
}
