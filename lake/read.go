package lake

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// Position of a consumer in an upstream table: the last snapshot it has
// read, and that snapshot's sequence number. The sequence number is what the
// fallback uses when the snapshot itself has been expired.
type SnapshotPos struct {
	SnapshotID     int64
	SequenceNumber int64
}

// IsZero reports whether the consumer has read nothing yet.
func (p SnapshotPos) IsZero() bool { return p.SnapshotID == 0 }

// String encodes the position for a checkpoint value: "id:seq".
func (p SnapshotPos) String() string {
	if p.IsZero() {
		return ""
	}
	return strconv.FormatInt(p.SnapshotID, 10) + ":" + strconv.FormatInt(p.SequenceNumber, 10)
}

// ParseSnapshotPos reads a position written by SnapshotPos.String; "" is the
// zero position.
func ParseSnapshotPos(s string) (SnapshotPos, error) {
	if s == "" {
		return SnapshotPos{}, nil
	}
	id, seq, ok := strings.Cut(s, ":")
	if !ok {
		return SnapshotPos{}, fmt.Errorf("snapshot position %q: want id:sequence", s)
	}
	var p SnapshotPos
	var err error
	if p.SnapshotID, err = strconv.ParseInt(id, 10, 64); err != nil {
		return SnapshotPos{}, fmt.Errorf("snapshot position %q: %w", s, err)
	}
	if p.SequenceNumber, err = strconv.ParseInt(seq, 10, 64); err != nil {
		return SnapshotPos{}, fmt.Errorf("snapshot position %q: %w", s, err)
	}
	return p, nil
}

// Position is the table's current snapshot as a consumer position (as last
// loaded; zero for an empty table).
func (t *Table) Position() SnapshotPos { return positionOf(t.current()) }

func positionOf(tbl *table.Table) SnapshotPos {
	s := tbl.CurrentSnapshot()
	if s == nil {
		return SnapshotPos{}
	}
	return SnapshotPos{SnapshotID: s.SnapshotID, SequenceNumber: s.SequenceNumber}
}

// ReadOptions narrow ReadAppended.
type ReadOptions struct {
	// MaxRows, when positive, stops the read at the last snapshot that keeps
	// the rows read at or under it (but always reads at least one snapshot),
	// so a consumer catching up commits in bounded steps. It holds for a
	// first read (from the zero position) and for the fallback too.
	MaxRows int64
	// Fields, when set, are the only columns read.
	Fields []string
}

// Increment is what ReadAppended read.
type Increment struct {
	// From and To bound the read: rows appended after From up to and
	// including To. To is the position to record as consumed.
	From, To SnapshotPos
	Rows     int64
	// Replayed is set when From had been expired and the fallback was taken:
	// every data file with a sequence number above From's, up to To's, was
	// read. ReadAppended takes the fallback only when those files were all
	// appended (see ErrReplayUnsafe), so it reads each row once.
	Replayed bool
}

var (
	// ErrNoChange means nothing was appended after the given position.
	ErrNoChange = errors.New("no new snapshots")
	// ErrReplayUnsafe means the consumer's start snapshot was expired and
	// data files were rewritten (compacted, or rewritten by a delete) after
	// it: the rewritten files hold rows the consumer already read, under new
	// sequence numbers, so reading by sequence number would repeat them. The
	// read stops rather than double rows; qoslake's maintenance never
	// expires a snapshot a consumer still needs, so only an outside tool
	// leads here.
	ErrReplayUnsafe = errors.New("start snapshot expired and data rewritten since: cannot resume exactly")
)

// ReadAppended calls fn with the rows appended to the table after from, up to
// the table's current snapshot (as last loaded; call Refresh first). Only
// append snapshots count: compaction, deletes and expiry add no rows to read.
//
// When from is no longer in the table's history (its snapshot was expired),
// ReadAppended falls back to reading every live data file whose data
// sequence number is greater than from's, and sets Increment.Replayed; it
// refuses with ErrReplayUnsafe when files were rewritten since from.
func (t *Table) ReadAppended(ctx context.Context, from SnapshotPos, o ReadOptions, fn func(arrow.RecordBatch) error) (Increment, error) {
	return t.readAppended(ctx, t.current(), from, o, fn)
}

func (t *Table) readAppended(ctx context.Context, tbl *table.Table, from SnapshotPos, o ReadOptions, fn func(arrow.RecordBatch) error) (Increment, error) {
	ctx = t.lake.ctx(ctx)
	cur := tbl.CurrentSnapshot()
	inc := Increment{From: from}
	if cur == nil || cur.SnapshotID == from.SnapshotID {
		return inc, ErrNoChange
	}
	incremental := !from.IsZero() && tbl.SnapshotByID(from.SnapshotID) != nil && isAncestor(tbl, from.SnapshotID, cur)
	replay := !from.IsZero() && !incremental
	if replay {
		if err := checkReplay(tbl, from, cur); err != nil {
			return inc, fmt.Errorf("%s after snapshot %d (sequence %d): %w", t.Name(), from.SnapshotID, from.SequenceNumber, err)
		}
	}
	if o.MaxRows > 0 {
		cur = limitSnapshots(tbl, from, cur, o.MaxRows)
	}
	inc.To = SnapshotPos{SnapshotID: cur.SnapshotID, SequenceNumber: cur.SequenceNumber}

	var tasks []table.FileScanTask
	var err error
	scanOpts := []table.ScanOption{table.WithSnapshotID(cur.SnapshotID)}
	if len(o.Fields) > 0 {
		scanOpts = append(scanOpts, table.WithSelectedFields(o.Fields...))
	}
	scan := tbl.Scan(scanOpts...)
	switch {
	case from.IsZero():
		tasks, err = scan.PlanFiles(ctx)
	case incremental:
		tasks, err = tbl.NewIncrementalAppendScan().
			FromSnapshotExclusive(from.SnapshotID).ToSnapshot(cur.SnapshotID).PlanFiles(ctx)
	default:
		inc.Replayed = true
		t.lake.log.Warn("start snapshot expired, reading by sequence number",
			"table", t.Name(), "from_snapshot", from.SnapshotID, "from_sequence", from.SequenceNumber)
		var all []table.FileScanTask
		all, err = scan.PlanFiles(ctx)
		for _, task := range all {
			if task.DataSequenceNumber == nil || *task.DataSequenceNumber > from.SequenceNumber {
				tasks = append(tasks, task)
			}
		}
	}
	if err != nil {
		return inc, fmt.Errorf("plan read of %s after snapshot %d: %w", t.Name(), from.SnapshotID, err)
	}
	if len(tasks) == 0 {
		return inc, nil
	}
	_, recs, err := scan.ReadTasks(ctx, tasks)
	if err != nil {
		return inc, fmt.Errorf("read %s: %w", t.Name(), err)
	}
	for rec, err := range recs {
		if err != nil {
			return inc, fmt.Errorf("read %s: %w", t.Name(), err)
		}
		inc.Rows += rec.NumRows()
		err = fn(rec)
		rec.Release()
		if err != nil {
			return inc, err
		}
	}
	return inc, nil
}

// checkReplay decides whether the sequence-number fallback after from is
// exact: no snapshot after from may have rewritten data files. qoslake's
// own rewrites are recorded in every later snapshot (even once the
// rewriting snapshot is expired); snapshots written by other tools are
// checked by their operation while they are retained.
func checkReplay(tbl *table.Table, from SnapshotPos, cur *table.Snapshot) error {
	if last := lastRewriteOf(tbl); last > from.SequenceNumber {
		return fmt.Errorf("%w (data files rewritten at sequence %d)", ErrReplayUnsafe, last)
	}
	meta := tbl.Metadata()
	for s := cur; s != nil && s.SequenceNumber > from.SequenceNumber; {
		if s.Summary != nil && s.Summary.Operation != table.OpAppend && s.Summary.Properties["added-data-files"] != "" &&
			s.Summary.Properties["added-data-files"] != "0" {
			return fmt.Errorf("%w (snapshot %d, %s, added data files)", ErrReplayUnsafe, s.SnapshotID, s.Summary.Operation)
		}
		if s.ParentSnapshotID == nil {
			break
		}
		s = meta.SnapshotByID(*s.ParentSnapshotID)
	}
	return nil
}

// limitSnapshots walks back from cur towards from and returns the newest
// snapshot whose appended rows since from stay within maxRows (at least the
// first snapshot after from). For a first read (from zero) the walk goes
// back to the oldest retained snapshot, whose whole content counts; for the
// fallback (from expired) it goes back to the oldest retained snapshot after
// from's sequence number.
func limitSnapshots(tbl *table.Table, from SnapshotPos, cur *table.Snapshot, maxRows int64) *table.Snapshot {
	meta := tbl.Metadata()
	var chain []*table.Snapshot
	for s := cur; s != nil && s.SnapshotID != from.SnapshotID && s.SequenceNumber > from.SequenceNumber; {
		chain = append(chain, s)
		if s.ParentSnapshotID == nil {
			break
		}
		s = meta.SnapshotByID(*s.ParentSnapshotID)
	}
	if len(chain) == 0 {
		return cur
	}
	var rows int64
	pick := cur
	for i := len(chain) - 1; i >= 0; i-- {
		s := chain[i]
		switch {
		case i == len(chain)-1 && from.IsZero():
			// A first read reads the whole table as of this snapshot.
			rows += summaryInt(s, "total-records")
		case s.Summary != nil && s.Summary.Operation == table.OpAppend:
			rows += summaryInt(s, "added-records")
		}
		if rows > maxRows && i != len(chain)-1 {
			return pick
		}
		pick = s
	}
	return pick
}

// summaryInt reads a counter of a snapshot summary; one that is missing
// counts as zero, which only makes a step larger, never skips rows.
func summaryInt(s *table.Snapshot, key string) int64 {
	if s.Summary == nil {
		return 0
	}
	n, _ := strconv.ParseInt(s.Summary.Properties[key], 10, 64)
	return n
}

func isAncestor(tbl *table.Table, id int64, s *table.Snapshot) bool {
	meta := tbl.Metadata()
	for s != nil {
		if s.SnapshotID == id {
			return true
		}
		if s.ParentSnapshotID == nil {
			return false
		}
		s = meta.SnapshotByID(*s.ParentSnapshotID)
	}
	return false
}

// ScanOptions select rows for Scan.
type ScanOptions struct {
	Filter iceberg.BooleanExpression
	Fields []string
	Limit  int64
	// Snapshot, when set, pins the read to that snapshot instead of the
	// current one (see Pin): several reads then see one state of the table
	// whatever commits in between.
	Snapshot SnapshotPos
}

// Scan reads the current snapshot's rows matching the options, or those of
// o.Snapshot when it is set.
func (t *Table) Scan(ctx context.Context, o ScanOptions, fn func(arrow.RecordBatch) error) error {
	ctx = t.lake.ctx(ctx)
	if !o.Snapshot.IsZero() {
		return t.scanAt(ctx, o, fn)
	}
	tbl := t.current()
	if tbl.CurrentSnapshot() == nil {
		return nil
	}
	return t.scan(ctx, tbl, o, nil, fn)
}

// scan reads tbl's rows matching o, at the current snapshot or at the
// given scan options' snapshot.
func (t *Table) scan(ctx context.Context, tbl *table.Table, o ScanOptions, opts []table.ScanOption, fn func(arrow.RecordBatch) error) error {
	if o.Filter != nil {
		opts = append(opts, table.WithRowFilter(o.Filter))
	}
	if len(o.Fields) > 0 {
		opts = append(opts, table.WithSelectedFields(o.Fields...))
	}
	if o.Limit > 0 {
		opts = append(opts, table.WithLimit(o.Limit))
	}
	_, recs, err := tbl.Scan(opts...).ToArrowRecords(ctx)
	if err != nil {
		return fmt.Errorf("scan %s: %w", t.Name(), err)
	}
	for rec, err := range recs {
		if err != nil {
			return fmt.Errorf("scan %s: %w", t.Name(), err)
		}
		err = fn(rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// UpstreamKey is the checkpoint key under which a derived table records the
// position it has consumed in upstream table: maintenance of the upstream
// keeps every snapshot from that position on.
func UpstreamKey(upstream string) string { return "upstream:" + upstream }
