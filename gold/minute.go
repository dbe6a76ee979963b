package gold

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/qoslake/qoslake/lake"
)

// rollup is what one gold minute table adds to the stage they share: the
// silver columns it reads, how silver rows fold into groups, and how the
// groups become gold rows.
type rollup[K comparable, A any] struct {
	timeColumn string   // the silver event time that picks the window
	fields     []string // silver columns the aggregation reads
	aggregate  func(groups map[K]*A, touched map[int64]bool, r arrow.RecordBatch)
	sortedKeys func(groups map[K]*A) []K
	appendRow  func(out *lake.Rows, k K, a *A)
	// touched finds the windows the upstream changed since from, and the
	// position it got to (nil: appendedWindows, for an append-only
	// upstream).
	touched touchedFunc
	// fold folds each window's long tails into Other (fold.go); nil keeps
	// every value.
	fold func(groups map[K]*A, limits map[string]int) map[K]*A
}

// touchedFunc returns the windows an upstream table's changes since from
// touch (down is the gold table itself), with the increment they make (its end position and rows), reading
// about maxRows rows at most; lake.ErrNoChange when there are none.
type touchedFunc func(ctx context.Context, up, down *lake.Table, timeColumn string, from lake.SnapshotPos, maxRows int64) (map[int64]bool, lake.Increment, error)

// appendedWindows is the touchedFunc of an append-only upstream (silver):
// the windows of the rows appended since from.
func appendedWindows(ctx context.Context, up, _ *lake.Table, timeColumn string, from lake.SnapshotPos, maxRows int64) (map[int64]bool, lake.Increment, error) {
	touched := map[int64]bool{}
	inc, err := up.ReadAppended(ctx, from, lake.ReadOptions{MaxRows: maxRows, Fields: []string{timeColumn}},
		func(r arrow.RecordBatch) error {
			ts := column[*array.Timestamp](r, timeColumn)
			for i := range ts.Len() {
				touched[windowOf(int64(ts.Value(i)))] = true
			}
			return nil
		})
	return touched, inc, err
}

// minuteStage keeps a gold minute table up to date with its silver table:
// each RunOnce reads what silver appended since gold's upstream position,
// recomputes the minutes it touches from all of silver's rows of those
// minutes (late data corrects its window), and replaces those minutes'
// gold rows with the position advance in one commit.
type minuteStage[K comparable, A any] struct {
	silver, gold *lake.Table
	maxRows      int64
	limits       map[string]int // nil: DimensionLimits
	logger       *slog.Logger
	observer     Observer // nil: none
	r            rollup[K, A]
}

// minutePlan is one increment made ready to commit: the windows it touched,
// their recomputed groups, and the upstream position move.
type minutePlan[K comparable, A any] struct {
	// id names the commit; a retry of the same plan is recognised by it.
	id      string
	windows []time.Time
	groups  map[K]*A
	advance lake.Position
	rows    int64 // silver rows in the increment
	scanned int64 // silver rows read to recompute the windows
	started time.Time
}

func (s *minuteStage[K, A]) dimensionLimits() map[string]int {
	if s.limits == nil {
		return DimensionLimits
	}
	return s.limits
}

func (s *minuteStage[K, A]) log() *slog.Logger {
	if s.logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.logger
}

// runOnce brings gold one increment (at most maxRows silver rows) further
// and returns how many silver rows that increment held; lake.ErrNoChange
// when silver has nothing new.
func (s *minuteStage[K, A]) runOnce(ctx context.Context) (int, error) {
	for attempt := 1; ; attempt++ {
		p, err := s.plan(ctx)
		if err != nil {
			return 0, err
		}
		err = s.commit(ctx, p)
		if errors.Is(err, lake.ErrCheckpointMoved) && attempt < maxMovedRetries {
			// Another process committed from the same position: what we
			// computed may be stale, start over from where it got to.
			s.log().Info("gold upstream position moved by another writer; starting over",
				"table", s.gold.Name(), "attempt", attempt)
			continue
		}
		if err != nil {
			return 0, err
		}
		return int(p.rows), nil
	}
}

// drain runs until silver has nothing new for gold.
func (s *minuteStage[K, A]) drain(ctx context.Context) error {
	for {
		_, err := s.runOnce(ctx)
		if errors.Is(err, lake.ErrNoChange) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// plan reads the next silver increment and recomputes the windows it
// touches, as of the silver snapshot the increment ends at. It writes
// nothing: a crash after it loses only work.
func (s *minuteStage[K, A]) plan(ctx context.Context) (minutePlan[K, A], error) {
	var none minutePlan[K, A]
	if _, err := s.gold.Refresh(ctx); err != nil {
		return none, err
	}
	if _, err := s.silver.Refresh(ctx); err != nil {
		return none, err
	}
	cp, err := s.gold.Checkpoint()
	if err != nil {
		return none, err
	}
	key := lake.UpstreamKey(s.silver.Name())
	from, err := lake.ParseSnapshotPos(cp[key])
	if err != nil {
		return none, err
	}
	maxRows := s.maxRows
	if maxRows <= 0 {
		maxRows = 100_000
	}
	start := time.Now()
	touch := s.r.touched
	if touch == nil {
		touch = appendedWindows
	}
	touched, inc, err := touch(ctx, s.silver, s.gold, s.r.timeColumn, from, maxRows)
	if errors.Is(err, lake.ErrNoChange) {
		return none, err
	}
	if err != nil {
		return none, fmt.Errorf("%s from %s: %w", s.gold.Name(), s.silver.Name(), err)
	}
	p := minutePlan[K, A]{
		started: start,
		// The id is the position move itself: the same increment planned
		// twice (a retry, another process) is one batch.
		id:      fmt.Sprintf("%s:%s->%s", key, from, inc.To),
		advance: lake.Position{Key: key, From: cp[key], To: inc.To.String()},
		groups:  map[K]*A{},
		rows:    inc.Rows,
	}
	for _, w := range slices.Sorted(maps.Keys(touched)) {
		p.windows = append(p.windows, time.UnixMicro(w).UTC())
	}
	if len(p.windows) == 0 {
		return p, nil
	}
	// Every row of the touched windows, as of the snapshot the increment
	// ended at: the recomputation and the position recorded with it agree.
	err = s.silver.Scan(ctx, lake.ScanOptions{Filter: windowsFilter(s.r.timeColumn, p.windows), Fields: s.r.fields, Snapshot: inc.To},
		func(r arrow.RecordBatch) error {
			p.scanned += r.NumRows()
			s.r.aggregate(p.groups, touched, r)
			return nil
		})
	if err != nil {
		return none, fmt.Errorf("recompute %d windows of %s: %w", len(p.windows), s.gold.Name(), err)
	}
	if s.r.fold != nil {
		p.groups = s.r.fold(p.groups, s.dimensionLimits())
	}
	return p, nil
}

// commit replaces the plan's windows in gold and advances the upstream
// position, in one snapshot.
func (s *minuteStage[K, A]) commit(ctx context.Context, p minutePlan[K, A]) error {
	b := lake.Batch{ID: p.id, Advance: []lake.Position{p.advance}}
	if len(p.windows) == 0 {
		// Silver's snapshots added no rows (maintenance): only move on.
		if _, err := s.gold.Commit(ctx, b); err != nil {
			return fmt.Errorf("commit %s: %w", s.gold.Name(), err)
		}
		return nil
	}
	out, err := s.gold.NewRows()
	if err != nil {
		return err
	}
	defer out.Release()
	for _, k := range s.r.sortedKeys(p.groups) {
		s.r.appendRow(out, k, p.groups[k])
	}
	rec := out.Batch()
	defer rec.Release()
	b.Records = []arrow.RecordBatch{rec}
	c, err := s.gold.Replace(ctx, lake.ReplaceBatch{Batch: b, Delete: lake.TimesIn("window_start", p.windows)})
	if err != nil {
		return fmt.Errorf("commit %s: %w", s.gold.Name(), err)
	}
	s.log().Debug("gold committed", "table", s.gold.Name(), "windows", len(p.windows),
		"rows", rec.NumRows(), "silver_rows", p.rows, "scanned", p.scanned, "already_landed", c.AlreadyLanded)
	if s.observer != nil {
		s.observer.GoldCommitted(Update{Table: s.gold.Name(), Windows: p.windows, Rows: rec.NumRows(),
			Increment: p.rows, Scanned: p.scanned, Took: time.Since(p.started)})
	}
	return nil
}
