package gold

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"

	"github.com/qoslake/qoslake/lake"
)

// Window is the width of a gold.cdn_minute window.
const Window = time.Minute

// maxMovedRetries bounds how often RunOnce starts over when another
// process moved gold's upstream position first.
const maxMovedRetries = 10

// CDNStage keeps gold.cdn_minute up to date with silver.cdn_logs. Each
// RunOnce reads what silver appended since gold's upstream position,
// recomputes the minutes it touches from all of silver's rows of those
// minutes (so late rows correct their window, and the result is the one an
// on-time computation gives), and replaces those minutes' gold rows with the
// position advance in one commit. There is no fixed look-back and no full
// recompute; a second process running the same stage finds the position
// moved (compare-and-set) and starts over from it.
//
// Only appends to silver are followed: rows silver deletes (retention) or
// rewrites in place are not taken out of gold, whose windows keep what
// they counted.
type CDNStage struct {
	Silver, Gold *lake.Table
	// MaxRows bounds the silver rows of one increment (default 100,000);
	// the recomputation reads every row of the minutes those rows touch.
	MaxRows int64
	Logger  *slog.Logger
}

// cdnFields are the silver.cdn_logs columns the aggregation reads.
var cdnFields = []string{"log_time", "edge_location", "pop", "edge_result_type", "country", "isp",
	"sc_bytes", "status", "time_taken_ms", "ttfb_ms", "cache_hit", "error"}

// cdnPlan is one increment made ready to commit: the windows it touched,
// their recomputed rows, and the upstream position move.
type cdnPlan struct {
	// id names the commit; a retry of the same plan is recognised by it.
	id      string
	windows []time.Time
	groups  map[cdnKey]*cdnAgg
	advance lake.Position
	rows    int64 // silver rows in the increment
}

// RunOnce brings gold one increment (at most MaxRows silver rows) further
// and returns how many silver rows that increment held; lake.ErrNoChange
// when silver has nothing new.
func (s *CDNStage) RunOnce(ctx context.Context) (int, error) {
	for attempt := 1; ; attempt++ {
		p, err := s.plan(ctx)
		if err != nil {
			return 0, err
		}
		err = s.commit(ctx, p)
		if errors.Is(err, lake.ErrCheckpointMoved) && attempt < maxMovedRetries {
			// Another process committed from the same position: what we
			// computed may be stale, start over from where it got to.
			s.logger().Info("gold upstream position moved by another writer; starting over",
				"table", s.Gold.Name(), "attempt", attempt)
			continue
		}
		if err != nil {
			return 0, err
		}
		return int(p.rows), nil
	}
}

// Drain runs until silver has nothing new for gold.
func (s *CDNStage) Drain(ctx context.Context) error {
	for {
		_, err := s.RunOnce(ctx)
		if errors.Is(err, lake.ErrNoChange) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *CDNStage) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// plan reads the next silver increment and recomputes the windows it
// touches, as of the silver snapshot the increment ends at. It writes
// nothing: a crash after it loses only work.
func (s *CDNStage) plan(ctx context.Context) (cdnPlan, error) {
	if _, err := s.Gold.Refresh(ctx); err != nil {
		return cdnPlan{}, err
	}
	if _, err := s.Silver.Refresh(ctx); err != nil {
		return cdnPlan{}, err
	}
	cp, err := s.Gold.Checkpoint()
	if err != nil {
		return cdnPlan{}, err
	}
	key := lake.UpstreamKey(s.Silver.Name())
	from, err := lake.ParseSnapshotPos(cp[key])
	if err != nil {
		return cdnPlan{}, err
	}
	maxRows := s.MaxRows
	if maxRows <= 0 {
		maxRows = 100_000
	}
	touched := map[int64]bool{}
	inc, err := s.Silver.ReadAppended(ctx, from, lake.ReadOptions{MaxRows: maxRows, Fields: []string{"log_time"}},
		func(r arrow.RecordBatch) error {
			ts := column[*array.Timestamp](r, "log_time")
			for i := range ts.Len() {
				touched[windowOf(int64(ts.Value(i)))] = true
			}
			return nil
		})
	if errors.Is(err, lake.ErrNoChange) {
		return cdnPlan{}, err
	}
	if err != nil {
		return cdnPlan{}, fmt.Errorf("%s from %s: %w", s.Gold.Name(), s.Silver.Name(), err)
	}
	p := cdnPlan{
		// The id is the position move itself: the same increment planned
		// twice (a retry, another process) is one batch.
		id:      fmt.Sprintf("%s:%s->%s", key, from, inc.To),
		advance: lake.Position{Key: key, From: cp[key], To: inc.To.String()},
		groups:  map[cdnKey]*cdnAgg{},
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
	err = s.Silver.Scan(ctx, lake.ScanOptions{Filter: windowsFilter("log_time", p.windows), Fields: cdnFields, Snapshot: inc.To},
		func(r arrow.RecordBatch) error {
			aggregate(p.groups, touched, r)
			return nil
		})
	if err != nil {
		return cdnPlan{}, fmt.Errorf("recompute %d windows of %s: %w", len(p.windows), s.Gold.Name(), err)
	}
	return p, nil
}

// commit replaces the plan's windows in gold and advances the upstream
// position, in one snapshot.
func (s *CDNStage) commit(ctx context.Context, p cdnPlan) error {
	b := lake.Batch{ID: p.id, Advance: []lake.Position{p.advance}}
	if len(p.windows) == 0 {
		// Silver's snapshots added no rows (maintenance): only move on.
		if _, err := s.Gold.Commit(ctx, b); err != nil {
			return fmt.Errorf("commit %s: %w", s.Gold.Name(), err)
		}
		return nil
	}
	out, err := s.Gold.NewRows()
	if err != nil {
		return err
	}
	defer out.Release()
	for _, k := range sortedKeys(p.groups) {
		appendCDNMinute(out, k, p.groups[k])
	}
	rec := out.Batch()
	defer rec.Release()
	b.Records = []arrow.RecordBatch{rec}
	c, err := s.Gold.Replace(ctx, lake.ReplaceBatch{Batch: b, Delete: lake.TimesIn("window_start", p.windows)})
	if err != nil {
		return fmt.Errorf("commit %s: %w", s.Gold.Name(), err)
	}
	s.logger().Debug("gold committed", "table", s.Gold.Name(), "windows", len(p.windows),
		"rows", rec.NumRows(), "silver_rows", p.rows, "already_landed", c.AlreadyLanded)
	return nil
}

// windowOf is the start of the window holding t (Unix microseconds).
func windowOf(t int64) int64 {
	w := Window.Microseconds()
	return t - ((t%w)+w)%w
}

// windowsFilter selects the rows of col inside the windows (sorted), one
// range per run of consecutive windows. The ranges are joined as a balanced
// tree, so late rows scattered over many minutes do not make a deep one.
func windowsFilter(col string, windows []time.Time) iceberg.BooleanExpression {
	ref := iceberg.Reference(col)
	var ranges []iceberg.BooleanExpression
	for i := 0; i < len(windows); {
		j := i
		for j+1 < len(windows) && windows[j+1].Equal(windows[j].Add(Window)) {
			j++
		}
		ranges = append(ranges, iceberg.NewAnd(
			iceberg.GreaterThanEqual(ref, iceberg.Timestamp(windows[i].UnixMicro())),
			iceberg.LessThan(ref, iceberg.Timestamp(windows[j].Add(Window).UnixMicro()))))
		i = j + 1
	}
	return anyOf(ranges)
}

func anyOf(exprs []iceberg.BooleanExpression) iceberg.BooleanExpression {
	switch len(exprs) {
	case 0:
		return iceberg.AlwaysFalse{}
	case 1:
		return exprs[0]
	}
	return iceberg.NewOr(anyOf(exprs[:len(exprs)/2]), anyOf(exprs[len(exprs)/2:]))
}

// cdnKey is one gold.cdn_minute row's window and dimensions.
type cdnKey struct {
	window                          int64 // Unix microseconds
	edge, pop, result, country, isp string
}

// cdnAgg are one gold.cdn_minute row's values.
type cdnAgg struct {
	requests, bytes, hits, errors   int64
	status4xx, status5xx, status000 int64
	timeTakenSum, ttfbSum           float64
	timeTakenCount, ttfbCount       int64
	timeTakenBuckets, ttfbBuckets   histogram
}

// histogram is a cumulative latency histogram: one count per LatencyBounds
// entry, then the +inf bucket.
type histogram [len(LatencyBounds) + 1]int64

// observe adds v to a cumulative histogram: every bucket whose bound is at
// least v, and the +inf bucket.
func observe(b *histogram, v float64) {
	for i := len(LatencyBounds) - 1; i >= 0 && v <= LatencyBounds[i]; i-- {
		b[i]++
	}
	b[len(LatencyBounds)]++
}

// aggregate adds the silver rows of r that fall in the touched windows to
// groups. The scan filter already selects those windows; the check here
// keeps a coarser filter from adding a neighbouring minute.
func aggregate(groups map[cdnKey]*cdnAgg, touched map[int64]bool, r arrow.RecordBatch) {
	ts := column[*array.Timestamp](r, "log_time")
	edge := column[*array.String](r, "edge_location")
	pop := column[*array.String](r, "pop")
	result := column[*array.String](r, "edge_result_type")
	country := column[*array.String](r, "country")
	isp := column[*array.String](r, "isp")
	bytes := column[*array.Int64](r, "sc_bytes")
	status := column[*array.Int32](r, "status")
	taken := column[*array.Float64](r, "time_taken_ms")
	ttfb := column[*array.Float64](r, "ttfb_ms")
	hit := column[*array.Boolean](r, "cache_hit")
	failed := column[*array.Boolean](r, "error")
	for i := range int(r.NumRows()) {
		w := windowOf(int64(ts.Value(i)))
		if !touched[w] {
			continue
		}
		k := cdnKey{window: w, edge: valueOf(edge, i), pop: valueOf(pop, i), result: valueOf(result, i),
			country: valueOf(country, i), isp: valueOf(isp, i)}
		a := groups[k]
		if a == nil {
			// Arrow's strings point into the record's buffers, which are
			// released after this call: the map keeps copies.
			k.edge, k.pop, k.result = strings.Clone(k.edge), strings.Clone(k.pop), strings.Clone(k.result)
			k.country, k.isp = strings.Clone(k.country), strings.Clone(k.isp)
			a = &cdnAgg{}
			groups[k] = a
		}
		a.requests++
		if bytes.IsValid(i) {
			a.bytes += bytes.Value(i)
		}
		if hit.IsValid(i) && hit.Value(i) {
			a.hits++
		}
		if failed.IsValid(i) && failed.Value(i) {
			a.errors++
		}
		if status.IsValid(i) {
			switch c := status.Value(i); {
			case c == 0:
				a.status000++
			case c >= 400 && c < 500:
				a.status4xx++
			case c >= 500 && c < 600:
				a.status5xx++
			}
		}
		if taken.IsValid(i) {
			v := taken.Value(i)
			a.timeTakenSum += v
			a.timeTakenCount++
			observe(&a.timeTakenBuckets, v)
		}
		if ttfb.IsValid(i) {
			v := ttfb.Value(i)
			a.ttfbSum += v
			a.ttfbCount++
			observe(&a.ttfbBuckets, v)
		}
	}
}

func valueOf(a *array.String, i int) string {
	if a.IsNull(i) {
		return ""
	}
	return a.Value(i)
}

func sortedKeys(groups map[cdnKey]*cdnAgg) []cdnKey {
	return slices.SortedFunc(maps.Keys(groups), func(a, b cdnKey) int {
		return cmp.Or(cmp.Compare(a.window, b.window), cmp.Compare(a.edge, b.edge), cmp.Compare(a.pop, b.pop),
			cmp.Compare(a.result, b.result), cmp.Compare(a.country, b.country), cmp.Compare(a.isp, b.isp))
	})
}

func appendCDNMinute(out *lake.Rows, k cdnKey, a *cdnAgg) {
	out.Time("window_start", time.UnixMicro(k.window).UTC())
	out.NullableString("edge_location", k.edge)
	out.NullableString("pop", k.pop)
	out.NullableString("edge_result_type", k.result)
	out.NullableString("country", k.country)
	out.NullableString("isp", k.isp)
	out.Int64("requests", a.requests)
	out.Int64("bytes", a.bytes)
	out.Int64("cache_hits", a.hits)
	out.Int64("errors", a.errors)
	out.Int64("status_4xx", a.status4xx)
	out.Int64("status_5xx", a.status5xx)
	out.Int64("status_000", a.status000)
	out.OptFloat64("time_taken_ms_sum", &a.timeTakenSum)
	out.Int64("time_taken_ms_count", a.timeTakenCount)
	out.OptFloat64("ttfb_ms_sum", &a.ttfbSum)
	out.Int64("ttfb_ms_count", a.ttfbCount)
	for i, c := range timeTakenBuckets {
		out.Int64(c, a.timeTakenBuckets[i])
	}
	for i, c := range ttfbBuckets {
		out.Int64(c, a.ttfbBuckets[i])
	}
}

func column[T arrow.Array](r arrow.RecordBatch, name string) T {
	return r.Column(r.Schema().FieldIndices(name)[0]).(T)
}
