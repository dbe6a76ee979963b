package gold

import (
	"cmp"
	"context"
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
	// Limits bound each dimension's values per minute (default
	// DimensionLimits); the rest fold into Other.
	Limits map[string]int
	Logger *slog.Logger
	// Observer, if set, is told of each commit.
	Observer Observer
}

// cdnFields are the silver.cdn_logs columns the aggregation reads.
var cdnFields = []string{"log_time", "edge_location", "pop", "edge_result_type", "country", "isp",
	"sc_bytes", "status", "time_taken_ms", "ttfb_ms", "cache_hit", "error"}

// stage is the shared minute stage over this table's rollup.
func (s *CDNStage) stage() *minuteStage[cdnKey, cdnAgg] {
	return &minuteStage[cdnKey, cdnAgg]{silver: s.Silver, gold: s.Gold, maxRows: s.MaxRows, limits: s.Limits, logger: s.Logger, observer: s.Observer, r: rollup[cdnKey, cdnAgg]{
		timeColumn: "log_time", fields: cdnFields,
		aggregate: aggregate, sortedKeys: sortedKeys, appendRow: appendCDNMinute, fold: foldCDN,
	}}
}

// RunOnce brings gold one increment (at most MaxRows silver rows) further
// and returns how many silver rows that increment held; lake.ErrNoChange
// when silver has nothing new.
func (s *CDNStage) RunOnce(ctx context.Context) (int, error) { return s.stage().runOnce(ctx) }

// Drain runs until silver has nothing new for gold.
func (s *CDNStage) Drain(ctx context.Context) error { return s.stage().drain(ctx) }

func (s *CDNStage) plan(ctx context.Context) (minutePlan[cdnKey, cdnAgg], error) {
	return s.stage().plan(ctx)
}

func (s *CDNStage) commit(ctx context.Context, p minutePlan[cdnKey, cdnAgg]) error {
	return s.stage().commit(ctx, p)
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

// add adds b's counts and sums to a.
func (a *cdnAgg) add(b *cdnAgg) {
	a.requests += b.requests
	a.bytes += b.bytes
	a.hits += b.hits
	a.errors += b.errors
	a.status4xx += b.status4xx
	a.status5xx += b.status5xx
	a.status000 += b.status000
	a.timeTakenSum += b.timeTakenSum
	a.ttfbSum += b.ttfbSum
	a.timeTakenCount += b.timeTakenCount
	a.ttfbCount += b.ttfbCount
	for i := range a.timeTakenBuckets {
		a.timeTakenBuckets[i] += b.timeTakenBuckets[i]
		a.ttfbBuckets[i] += b.ttfbBuckets[i]
	}
}

// cdnFoldDims are the dimensions of gold.cdn_minute whose long tail folds
// into Other; edge_result_type is a short fixed list.
var cdnFoldDims = []foldDim[cdnKey]{
	{"edge_location", func(k *cdnKey) *string { return &k.edge }},
	{"pop", func(k *cdnKey) *string { return &k.pop }},
	{"country", func(k *cdnKey) *string { return &k.country }},
	{"isp", func(k *cdnKey) *string { return &k.isp }},
}

// foldCDN folds each window's long tails by requests.
func foldCDN(groups map[cdnKey]*cdnAgg, limits map[string]int) map[cdnKey]*cdnAgg {
	return foldTails(groups, cdnFoldDims, limits, func(k cdnKey) int64 { return k.window },
		func(a *cdnAgg) int64 { return a.requests }, (*cdnAgg).add)
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
