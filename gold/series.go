package gold

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"

	"github.com/qoslake/qoslake/lake"
)

// Metric is one number derived from a gold minute table's mergeable
// columns. Over any window and any set of rows it is computed the same way:
// sum each of Columns over the rows, then derive the value from the sums
// (a ratio of two sums, or a quantile of summed histogram buckets). It is
// never an average of per-minute or per-row values, so a five-minute value
// weighs each minute by its traffic.
//
// Every value comes with its volume: the sum of the Volume column, the
// denominator of the metric (requests, play attempts, first frames). A
// value with volume 0 is undefined (NaN); rules apply their minimum volume
// to it.
type Metric struct {
	// Name is the registry name, "<table>.<what>_<unit>", e.g.
	// "cdn.time_taken_mean_ms".
	Name string
	// Doc defines the metric: what it measures (with its standard, where
	// there is one), how it derives from the columns, and what its volume
	// counts.
	Doc string
	// Unit of the value: "ms", "ratio", "bps" or "per attempt".
	Unit string
	// Table is the gold minute table the metric reads.
	Table lake.TableDef
	// Dimensions are the table's grouping columns a series may restrict to
	// or group by.
	Dimensions []string
	// Columns are the mergeable columns the metric sums; Volume is one of
	// them.
	Columns []string
	Volume  string

	volume int                          // index of Volume in Columns
	value  func(sums []float64) float64 // from the sums, in Columns order
}

// ratioMetric is num / den, with den as the volume.
func ratioMetric(name, unit, doc string, def lake.TableDef, dims []string, num, den string) Metric {
	return Metric{Name: name, Doc: doc, Unit: unit, Table: def, Dimensions: dims,
		Columns: []string{den, num}, Volume: den, volume: 0,
		value: func(s []float64) float64 { return s[1] / s[0] }}
}

// quantileMetric is the q-quantile of a cumulative histogram (its bucket
// columns in bound order, the +inf bucket last), with the +inf bucket (every
// observation) as the volume.
func quantileMetric(name, doc string, def lake.TableDef, dims, buckets []string, q float64,
	quantile func([]int64, float64) float64) Metric {
	return Metric{Name: name, Doc: doc, Unit: "ms", Table: def, Dimensions: dims,
		Columns: buckets, Volume: buckets[len(buckets)-1], volume: len(buckets) - 1,
		value: func(s []float64) float64 {
			counts := make([]int64, len(s))
			for i, v := range s {
				counts[i] = int64(v)
			}
			return quantile(counts, q)
		}}
}

// metrics is the registry: the series the default alert rules and the NOC
// dashboard read. Add a metric here, with its definition, rather than
// computing one elsewhere: the dashboard and the alerts must read the same
// number.
var metrics = []Metric{
	ratioMetric("cdn.time_taken_mean_ms", "ms",
		"CDN request latency: mean CloudFront time-taken (request received to last byte sent), ms = "+
			"sum(time_taken_ms_sum) / sum(time_taken_ms_count). Volume: requests with a time-taken.",
		CDNMinuteTable, CDNDimensions, "time_taken_ms_sum", "time_taken_ms_count"),
	quantileMetric("cdn.time_taken_p95_ms",
		"CDN request latency: 95th percentile of CloudFront time-taken, ms, from the summed time_taken_le_* buckets "+
			"(Quantile: linear inside the bucket; 5000 means at least 5000). Volume: requests with a time-taken.",
		CDNMinuteTable, CDNDimensions, timeTakenBuckets, 0.95, Quantile),
	ratioMetric("cdn.ttfb_mean_ms", "ms",
		"CDN time to first byte: mean CloudFront time-to-first-byte, ms = sum(ttfb_ms_sum) / sum(ttfb_ms_count). "+
			"Volume: requests with a time-to-first-byte.",
		CDNMinuteTable, CDNDimensions, "ttfb_ms_sum", "ttfb_ms_count"),
	quantileMetric("cdn.ttfb_p95_ms",
		"CDN time to first byte: 95th percentile of CloudFront time-to-first-byte, ms, from the summed ttfb_le_* buckets "+
			"(Quantile: linear inside the bucket; 5000 means at least 5000). Volume: requests with a time-to-first-byte.",
		CDNMinuteTable, CDNDimensions, ttfbBuckets, 0.95, Quantile),
	ratioMetric("cdn.cache_hit_ratio", "ratio",
		"CDN cache hit ratio = sum(cache_hits) / sum(requests): requests whose x-edge-result-type is Hit or RefreshHit. "+
			"Volume: requests.",
		CDNMinuteTable, CDNDimensions, "cache_hits", "requests"),
	ratioMetric("cdn.5xx_share", "ratio",
		"CDN 5xx share = sum(status_5xx) / sum(requests): requests answered with sc-status 500-599. Volume: requests.",
		CDNMinuteTable, CDNDimensions, "status_5xx", "requests"),
	ratioMetric("cdn.error_share", "ratio",
		"CDN error ratio = sum(errors) / sum(requests): requests whose x-edge-result-type is Error or whose sc-status "+
			"is 5xx or 000. Volume: requests.",
		CDNMinuteTable, CDNDimensions, "errors", "requests"),
	ratioMetric("player.error_ratio", "ratio",
		"Player error ratio = sum(errors) / sum(play_attempts): ERROR events per PLAY event (video start attempt, "+
			"CTA-2066) in the same rows. Errors of plays that started before the window count too, so a short "+
			"window can exceed 1. Volume: play attempts.",
		PlayerMinuteTable, PlayerDimensions, "errors", "play_attempts"),
	ratioMetric("player.start_time_mean_ms", "ms",
		"Video start time (CTA-2066: play request to first frame), mean, ms = sum(time_to_first_frame_ms_sum) / "+
			"sum(time_to_first_frame_ms_count). Volume: first frames with a start time.",
		PlayerMinuteTable, PlayerDimensions, "time_to_first_frame_ms_sum", "time_to_first_frame_ms_count"),
	quantileMetric("player.start_time_p50_ms",
		"Video start time (CTA-2066: play request to first frame), median, ms, from the summed start_time_le_* buckets "+
			"(StartTimeQuantile: linear inside the bucket; 10000 means at least 10000). Volume: first frames with a start time.",
		PlayerMinuteTable, PlayerDimensions, StartTimeBucketColumns, 0.5, StartTimeQuantile),
	quantileMetric("player.start_time_p95_ms",
		"Video start time (CTA-2066: play request to first frame), 95th percentile, ms, from the summed start_time_le_* "+
			"buckets (StartTimeQuantile: linear inside the bucket; 10000 means at least 10000). Volume: first frames with a start time.",
		PlayerMinuteTable, PlayerDimensions, StartTimeBucketColumns, 0.95, StartTimeQuantile),
	ratioMetric("player.stalls_per_attempt", "per attempt",
		"Rebuffering frequency (CTA-2066 rebuffering events) per play attempt = sum(stall_count) / sum(play_attempts): "+
			"stalls (screenfreezedbuffer, not start-up buffering) per PLAY event in the same rows; stalls of plays "+
			"that started before the window count too. Volume: play attempts.",
		PlayerMinuteTable, PlayerDimensions, "stall_count", "play_attempts"),
	{
		Name: "player.rebuffering_ratio", Unit: "ratio", Table: PlayerMinuteTable, Dimensions: PlayerDimensions,
		Doc: "Rebuffering ratio (CTA-2066: stall time / watch time), per-minute estimate = sum(stall_ms_sum) / " +
			"(sum(stream_events) × HeartbeatInterval): the reference SDK sends a STREAM heartbeat every 5 s of playback, " +
			"so heartbeats stand for watch time where a minute cannot see whole sessions (gold.sessions has each " +
			"session's exact ratio). Volume: STREAM heartbeats.",
		Columns: []string{"stream_events", "stall_ms_sum"}, Volume: "stream_events", volume: 0,
		value: func(s []float64) float64 { return s[1] / (s[0] * float64(HeartbeatInterval.Milliseconds())) },
	},
	ratioMetric("player.avg_bitrate_bps", "bps",
		"Average bitrate (CTA-2066), bits per second = sum(bitrate_bps_sum) / sum(bitrate_bps_count): the mean of the "+
			"bitrates players report, weighted by event. Volume: events with a bitrate.",
		PlayerMinuteTable, PlayerDimensions, "bitrate_bps_sum", "bitrate_bps_count"),
	{
		Name: "session.failure_share", Unit: "ratio", Table: SessionMinuteTable, Dimensions: SessionDimensions,
		Doc: "Playback error share = (start_failures + playback_failures) / attempts over the sessions whose last event is " +
			"in the window: CTA-2066 video start failures and playback failures per video start attempt. Volume: attempts.",
		Columns: []string{"attempts", "start_failures", "playback_failures"}, Volume: "attempts", volume: 0,
		value: func(s []float64) float64 { return (s[1] + s[2]) / s[0] },
	},
	ratioMetric("session.start_failure_ratio", "ratio",
		"CTA-2066 video start failure ratio = start_failures / attempts (an ERROR before the first frame), over the sessions "+
			"whose last event is in the window. Volume: attempts.",
		SessionMinuteTable, SessionDimensions, "start_failures", "attempts"),
	ratioMetric("session.exit_before_start_ratio", "ratio",
		"CTA-2066 exit before video start ratio = exits_before_start / attempts (left before the first frame without an "+
			"error), over the sessions whose last event is in the window. Volume: attempts.",
		SessionMinuteTable, SessionDimensions, "exits_before_start", "attempts"),
	ratioMetric("session.playback_failure_ratio", "ratio",
		"CTA-2066 playback failure ratio = playback_failures / started (an ERROR after the first frame), over the sessions "+
			"whose last event is in the window. Volume: started sessions.",
		SessionMinuteTable, SessionDimensions, "playback_failures", "started"),
	{
		Name: "session.rebuffering_ratio", Unit: "ratio", Table: SessionMinuteTable, Dimensions: SessionDimensions,
		Doc: "CTA-2066 rebuffering ratio = stall time / watch time = sum(stall_ms_sum) / 1000 / sum(watch_time_s_sum), over " +
			"the sessions whose last event is in the window. Volume: sessions.",
		Columns: []string{"sessions", "stall_ms_sum", "watch_time_s_sum"}, Volume: "sessions", volume: 0,
		value: func(s []float64) float64 { return s[1] / 1000 / s[2] },
	},
	{
		Name: "session.avg_bitrate_bps", Unit: "bps", Table: SessionMinuteTable, Dimensions: SessionDimensions,
		Doc: "CTA-2066 average bitrate, weighted by play time = sum(bits_played_sum) / sum(watch_time_s_sum), bits per " +
			"second. Volume: sessions.",
		Columns: []string{"sessions", "bits_played_sum", "watch_time_s_sum"}, Volume: "sessions", volume: 0,
		value: func(s []float64) float64 { return s[1] / s[2] },
	},
	quantileMetric("session.start_time_p50_ms",
		"CTA-2066 video start time, median over sessions, ms, from the summed start_time_le_* buckets; by edge_location "+
			"and edge_result_type the time to first frame per edge and cache result. Volume: started sessions with a start time.",
		SessionMinuteTable, SessionDimensions, StartTimeBucketColumns, 0.5, StartTimeQuantile),
	quantileMetric("session.start_time_p95_ms",
		"CTA-2066 video start time, 95th percentile over sessions, ms (see session.start_time_p50_ms). Volume: started "+
			"sessions with a start time.",
		SessionMinuteTable, SessionDimensions, StartTimeBucketColumns, 0.95, StartTimeQuantile),
}

// HeartbeatInterval is how often the reference player SDK sends a STREAM
// event while the video plays; player.rebuffering_ratio takes a heartbeat
// for that much watch time.
const HeartbeatInterval = 5 * time.Second

// Metrics lists the registered metrics, in registry order.
func Metrics() []Metric { return slices.Clone(metrics) }

// ErrUnknownMetric means a series names no registered metric.
var ErrUnknownMetric = errors.New("unknown metric")

// LookupMetric returns the registered metric of that name.
func LookupMetric(name string) (Metric, error) {
	for _, m := range metrics {
		if m.Name == name {
			return m, nil
		}
	}
	return Metric{}, fmt.Errorf("%w %q", ErrUnknownMetric, name)
}

// Series is a metric over its gold minute table, optionally restricted to
// some dimension values and split into groups by others, as an alert rule
// or a dashboard panel states it:
//
//	Series{Metric: "cdn.time_taken_mean_ms", By: []string{"edge_location"}}
//	Series{Metric: "player.error_ratio", Where: map[string]string{"device_type": "tv"}, By: []string{"app_type"}}
//
// Over a window [from, to) a group's value is the metric of the group's
// rows whose window_start lies in [from, to), summed first (see Metric).
type Series struct {
	// Metric is a registry name (LookupMetric).
	Metric string
	// Where keeps only the rows whose dimension equals the value; "" is
	// the null (missing) value, as gold stores it.
	Where map[string]string
	// By are the dimensions that split the series into groups; none gives
	// one group (the whole table, after Where).
	By []string
}

// Group is one group of a series: the values of its By dimensions, in By
// order ("" for null). It is comparable, so what Evaluate and Baselines
// return joins on it; Series.Dims names its values.
type Group string

// groupSep separates the values of a Group (ASCII unit separator, which no
// dimension value holds).
const groupSep = "\x1f"

// GroupOf is the group of these By values, in By order.
func GroupOf(values ...string) Group { return Group(strings.Join(values, groupSep)) }

// String shows the group's values separated by " / ", a null as "-".
func (g Group) String() string {
	vals := strings.Split(string(g), groupSep)
	for i, v := range vals {
		if v == "" {
			vals[i] = "-"
		}
	}
	return strings.Join(vals, " / ")
}

// Dims names a group's values by dimension, the Where values included:
// the dimensions an alert or a dashboard row shows.
func (s Series) Dims(g Group) map[string]string {
	out := make(map[string]string, len(s.Where)+len(s.By))
	maps.Copy(out, s.Where)
	if len(s.By) > 0 {
		for i, v := range strings.SplitN(string(g), groupSep, len(s.By)) {
			out[s.By[i]] = v
		}
	}
	return out
}

// Point is a series' value for one group over one window.
type Point struct {
	// Value is the metric over the group's rows, NaN when Volume is 0.
	Value float64
	// Volume is the sum of the metric's volume column over those rows.
	Volume int64
	// Minutes counts the minutes of the window in which the group had
	// volume.
	Minutes int
}

// metric resolves and checks the series against the table it is read from.
func (s Series) metric(t *lake.Table) (Metric, error) {
	m, err := LookupMetric(s.Metric)
	if err != nil {
		return m, err
	}
	if t.Name() != m.Table.FullName() {
		return m, fmt.Errorf("metric %s reads %s, not %s", m.Name, m.Table.FullName(), t.Name())
	}
	for d := range s.Where {
		if !slices.Contains(m.Dimensions, d) {
			return m, fmt.Errorf("series %s: %s is not a dimension of %s (%s)", m.Name, d, t.Name(), strings.Join(m.Dimensions, ", "))
		}
	}
	for i, d := range s.By {
		if !slices.Contains(m.Dimensions, d) {
			return m, fmt.Errorf("series %s: %s is not a dimension of %s (%s)", m.Name, d, t.Name(), strings.Join(m.Dimensions, ", "))
		}
		if slices.Contains(s.By[:i], d) {
			return m, fmt.Errorf("series %s: grouped by %s twice", m.Name, d)
		}
	}
	return m, nil
}

// Evaluate returns the series over [from, to) for every group with a row
// in it, from one scan of t as of snapshot at (from lake.Pin, so that
// several reads agree; zero reads the latest snapshot). The scan reads only
// the window's rows (window_start in [from, to), and the Where values) and
// only the columns the metric and the grouping need.
func (s Series) Evaluate(ctx context.Context, t *lake.Table, at lake.SnapshotPos, from, to time.Time) (map[Group]Point, error) {
	if !from.Before(to) {
		return nil, fmt.Errorf("series %s: empty window [%s, %s)", s.Metric, from, to)
	}
	m, err := s.metric(t)
	if err != nil {
		return nil, err
	}
	tallies, err := s.scan(ctx, t, at, m, []span{spanOf(from, to)})
	if err != nil {
		return nil, err
	}
	out := make(map[Group]Point, len(tallies))
	for g, tl := range tallies {
		out[g] = tl.point(m, 0)
	}
	return out, nil
}

// span is a time range [from, to) of window_start, Unix microseconds.
type span struct{ from, to int64 }

func spanOf(from, to time.Time) span { return span{from.UnixMicro(), to.UnixMicro()} }

func (sp span) minutes() int {
	w := Window.Microseconds()
	return int((sp.to - sp.from + w - 1) / w)
}

// tally is one group's sums of a metric's columns in each span of a scan,
// and the minutes of each span in which the group had volume.
type tally struct {
	sums    []float64  // span-major: sums[span*len(Columns)+column]
	minutes [][]uint64 // per span, a bit per minute from the span's start
}

// point is the metric of the group's sums in span i. Sums of integer
// columns are exact in float64 while they stay under 2^53.
func (tl *tally) point(m Metric, i int) Point {
	n := len(m.Columns)
	sums := tl.sums[i*n : (i+1)*n]
	p := Point{Volume: int64(sums[m.volume]), Value: math.NaN()}
	if p.Volume > 0 {
		p.Value = m.value(sums)
	}
	for _, w := range tl.minutes[i] {
		p.Minutes += bits.OnesCount64(w)
	}
	return p
}

// scan sums the metric's columns per group over each span, in one scan of
// t as of at that reads the spans' rows only, and only the columns needed.
func (s Series) scan(ctx context.Context, t *lake.Table, at lake.SnapshotPos, m Metric, spans []span) (map[Group]*tally, error) {
	if at.IsZero() {
		pins, err := lake.Pin(ctx, t)
		if err != nil {
			return nil, err
		}
		if at = pins[t.Name()]; at.IsZero() {
			return map[Group]*tally{}, nil // no snapshot yet: an empty table
		}
	}
	ranges := make([]iceberg.BooleanExpression, len(spans))
	ws := iceberg.Reference("window_start")
	for i, sp := range spans {
		ranges[i] = iceberg.NewAnd(iceberg.GreaterThanEqual(ws, iceberg.Timestamp(sp.from)),
			iceberg.LessThan(ws, iceberg.Timestamp(sp.to)))
	}
	filters := []iceberg.BooleanExpression{anyOf(ranges)}
	// The Where values are matched here, row by row, not pushed into the
	// scan: iceberg-go v0.7.0 prunes row groups wrongly on a filter over a
	// nullable column (it takes the non-null count for the row count, so
	// a row group with as many nulls as values looks all null) and would
	// silently drop rows. The time ranges, on a required column, prune.
	whereDims := slices.Sorted(maps.Keys(s.Where))
	fields := slices.Concat([]string{"window_start"}, s.By, m.Columns)
	for _, d := range whereDims {
		if !slices.Contains(fields, d) {
			fields = append(fields, d)
		}
	}
	where := make([]*array.String, len(whereDims))

	nc := len(m.Columns)
	minuteWords := make([]int, len(spans))
	for i, sp := range spans {
		minuteWords[i] = (sp.minutes() + 63) / 64
	}
	out := map[Group]*tally{}
	var key []byte
	dims := make([]*array.String, len(s.By))
	cols := make([]numbers, nc)
	err := t.Scan(ctx, lake.ScanOptions{Filter: lake.And(filters...), Fields: fields, Snapshot: at}, func(r arrow.RecordBatch) error {
		ts := column[*array.Timestamp](r, "window_start")
		for i, d := range s.By {
			dims[i] = column[*array.String](r, d)
		}
		for i, c := range m.Columns {
			var err error
			if cols[i], err = numbersOf(r, c); err != nil {
				return err
			}
		}
		for i, d := range whereDims {
			where[i] = column[*array.String](r, d)
		}
	rows:
		for i := range int(r.NumRows()) {
			for j, d := range whereDims {
				if valueOf(where[j], i) != s.Where[d] {
					continue rows
				}
			}
			key = key[:0]
			for j, d := range dims {
				if j > 0 {
					key = append(key, groupSep...)
				}
				key = append(key, valueOf(d, i)...)
			}
			tl := out[Group(key)] // no allocation: only a new group copies the key
			w := int64(ts.Value(i))
			for si, sp := range spans {
				if w < sp.from || w >= sp.to {
					continue
				}
				if tl == nil {
					tl = &tally{sums: make([]float64, len(spans)*nc), minutes: make([][]uint64, len(spans))}
					for k := range spans {
						tl.minutes[k] = make([]uint64, minuteWords[k])
					}
					out[Group(key)] = tl
				}
				sums := tl.sums[si*nc : (si+1)*nc]
				for c := range cols {
					sums[c] += cols[c].at(i)
				}
				if cols[m.volume].at(i) > 0 {
					minute := (w - sp.from) / Window.Microseconds()
					tl.minutes[si][minute/64] |= 1 << (minute % 64)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("series %s: %w", m.Name, err)
	}
	return out, nil
}

// numbers reads an integer or a floating-point column as float64; a null
// (which the required gold columns never hold) reads as 0.
type numbers struct {
	ints   *array.Int64
	floats *array.Float64
}

func numbersOf(r arrow.RecordBatch, name string) (numbers, error) {
	switch a := r.Column(r.Schema().FieldIndices(name)[0]).(type) {
	case *array.Int64:
		return numbers{ints: a}, nil
	case *array.Float64:
		return numbers{floats: a}, nil
	default:
		return numbers{}, fmt.Errorf("column %s is %s, not a number the series can sum", name, a.DataType())
	}
}

func (n numbers) at(i int) float64 {
	if n.ints != nil {
		if n.ints.IsNull(i) {
			return 0
		}
		return float64(n.ints.Value(i))
	}
	if n.floats.IsNull(i) {
		return 0
	}
	return n.floats.Value(i)
}
