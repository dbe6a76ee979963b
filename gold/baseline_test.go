package gold

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/apache/iceberg-go"

	"github.com/qoslake/qoslake/internal/testlake"
	"github.com/qoslake/qoslake/lake"
)

// seriesTables opens a fresh lake with both gold minute tables.
func seriesTables(t testing.TB) (cdn, player *lake.Table) {
	t.Helper()
	tbl := testlake.Open(t, t.TempDir(), CDNMinuteTable, PlayerMinuteTable)
	return tbl[0], tbl[1]
}

// minuteRow is one gold minute row as a test states it: its window, its
// dimension values (absent ones null) and the columns it sets (absent ones
// 0).
type minuteRow struct {
	at   time.Time
	dims map[string]string
	vals map[string]float64
}

// commitMinutes writes rows to a gold minute table in one commit, through
// the table's declared columns only.
func commitMinutes(t testing.TB, tbl *lake.Table, def lake.TableDef, rows []minuteRow) {
	t.Helper()
	out := make([]testlake.Row, len(rows))
	for i, r := range rows {
		out[i] = testlake.Row{"window_start": r.at}
		for k, v := range r.dims {
			out[i][k] = v
		}
		for k, v := range r.vals {
			out[i][k] = v
		}
	}
	testlake.Commit(t, tbl, def, out)
}

// latency is a gold.cdn_minute row of one edge whose requests all have a
// time-taken: count requests summing to sum ms.
func latency(at time.Time, edge string, count, sum float64) minuteRow {
	return minuteRow{at: at, dims: map[string]string{"edge_location": edge},
		vals: map[string]float64{"requests": count, "time_taken_ms_count": count, "time_taken_ms_sum": sum}}
}

// withHistogram sets a row's cumulative bucket columns from observed values.
func withHistogram(r minuteRow, cols []string, bounds []float64, values ...float64) minuteRow {
	for _, v := range values {
		for i, b := range bounds {
			if v <= b {
				r.vals[cols[i]]++
			}
		}
		r.vals[cols[len(bounds)]]++
	}
	return r
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// day is d days before t.
func day(t time.Time, d int) time.Time { return t.Add(-time.Duration(d) * 24 * time.Hour) }

func evaluate(t testing.TB, s Series, tbl *lake.Table, at lake.SnapshotPos, from, to time.Time) map[Group]Point {
	t.Helper()
	got, err := s.Evaluate(context.Background(), tbl, at, from, to)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func baselines(t testing.TB, s Series, tbl *lake.Table, at lake.SnapshotPos, from, to time.Time, o BaselineOptions) map[Group]Baseline {
	t.Helper()
	got, err := s.Baselines(context.Background(), tbl, at, from, to, o)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func compare(t testing.TB, s Series, tbl *lake.Table, at lake.SnapshotPos, from, to time.Time, o BaselineOptions) map[Group]Comparison {
	t.Helper()
	got, err := s.Compare(context.Background(), tbl, at, from, to, o)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func sameFloat(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

func checkBaseline(t testing.TB, got map[Group]Baseline, g Group, want Baseline) {
	t.Helper()
	b, ok := got[g]
	if !ok {
		t.Errorf("group %s: no baseline", g)
		return
	}
	if b.Kind != want.Kind || !sameFloat(b.Value, want.Value) || b.Volume != want.Volume ||
		b.Days != want.Days || b.Minutes != want.Minutes || b.Trailing != want.Trailing {
		t.Errorf("group %s baseline:\n got %+v\nwant %+v", g, b, want)
	}
}

func checkPoint(t testing.TB, got map[Group]Point, g Group, want Point) {
	t.Helper()
	p, ok := got[g]
	if !ok {
		t.Errorf("group %s: no value", g)
		return
	}
	if !sameFloat(p.Value, want.Value) || p.Volume != want.Volume || p.Minutes != want.Minutes {
		t.Errorf("group %s:\n got %+v\nwant %+v", g, p, want)
	}
}

var byEdge = Series{Metric: "cdn.time_taken_mean_ms", By: []string{"edge_location"}}

// TestBaselineTrailingWhenHistoryShort: with fewer than K days of history
// at the window's time, the baseline is the volume-weighted value of the
// hour before the window; the bounds of every range are [from, to).
func TestBaselineTrailingWhenHistoryShort(t *testing.T) {
	cdn, _ := seriesTables(t)
	from, to := base, base.Add(5*time.Minute)
	fra := func(at time.Time, count, sum float64) minuteRow { return latency(at, "FRA56-P3", count, sum) }
	commitMinutes(t, cdn, CDNMinuteTable, []minuteRow{
		// Two previous days with volume: fewer than K = 3.
		fra(day(from, 1).Add(time.Minute), 10, 1000),
		fra(day(from, 2).Add(2*time.Minute), 10, 2000),
		// Just outside the third day's window at both ends.
		fra(day(to, 3), 10, 90_000),
		fra(day(from, 3).Add(-time.Minute), 10, 90_000),
		// The trailing hour [from-60m, from): two minutes with volume,
		// (1000 + 1500 + 500) / (10 + 5 + 5) = 150 ms; one row with
		// requests but no time-taken adds no volume.
		fra(from.Add(-60*time.Minute), 10, 1000),
		fra(from.Add(-5*time.Minute), 5, 1500),
		{at: from.Add(-5 * time.Minute), dims: map[string]string{"edge_location": "FRA56-P3", "country": "DE"},
			vals: map[string]float64{"requests": 5, "time_taken_ms_count": 5, "time_taken_ms_sum": 500}},
		{at: from.Add(-30 * time.Minute), dims: map[string]string{"edge_location": "FRA56-P3"},
			vals: map[string]float64{"requests": 7}},
		// Before the trailing hour, and the window itself: not baseline.
		fra(from.Add(-61*time.Minute), 100, 1_000_000),
		fra(from.Add(time.Minute), 10, 5000),
		// A new edge: only the trailing hour.
		latency(from.Add(-20*time.Minute), "NEW1-C1", 4, 100),
	})

	// By default the trailing hour needs traffic in 30 of its minutes:
	// two minutes of history make no baseline.
	got := baselines(t, byEdge, cdn, lake.SnapshotPos{}, from, to, BaselineOptions{})
	checkBaseline(t, got, "FRA56-P3", Baseline{Kind: NoBaseline, Value: math.NaN(), Days: 2, Minutes: 2, Trailing: time.Hour})

	got = baselines(t, byEdge, cdn, lake.SnapshotPos{}, from, to, BaselineOptions{MinMinutes: 1})
	if len(got) != 2 {
		t.Errorf("baselines of %d groups, want 2: %v", len(got), got)
	}
	checkBaseline(t, got, "FRA56-P3", Baseline{Kind: Trailing, Value: 150, Volume: 20, Days: 2, Minutes: 2, Trailing: time.Hour})
	checkBaseline(t, got, "NEW1-C1", Baseline{Kind: Trailing, Value: 25, Volume: 4, Days: 0, Minutes: 1, Trailing: time.Hour})
	if s := got["FRA56-P3"].String(); s != "volume-weighted over the 60 minutes before (traffic in 2 minutes; 2 of the previous 7 days had traffic at this time)" {
		t.Errorf("description %q", s)
	}

	// K = 2 takes the two days: median (100 + 200) / 2.
	got = baselines(t, byEdge, cdn, lake.SnapshotPos{}, from, to, BaselineOptions{MinDays: 2})
	checkBaseline(t, got, "FRA56-P3", Baseline{Kind: SameTimeMedian, Value: 150, Volume: 20, Days: 2, Minutes: 2, Trailing: time.Hour})

	// A 10-minute trailing range holds only the minute 5 minutes back; a
	// MinVolume of 11 makes it, and each day, too small.
	got = baselines(t, byEdge, cdn, lake.SnapshotPos{}, from, to, BaselineOptions{Trailing: 10 * time.Minute, MinMinutes: 1})
	checkBaseline(t, got, "FRA56-P3", Baseline{Kind: Trailing, Value: 200, Volume: 10, Days: 2, Minutes: 1, Trailing: 10 * time.Minute})
	got = baselines(t, byEdge, cdn, lake.SnapshotPos{}, from, to, BaselineOptions{Trailing: 10 * time.Minute, MinVolume: 11, MinMinutes: 1})
	checkBaseline(t, got, "FRA56-P3", Baseline{Kind: NoBaseline, Value: math.NaN(), Days: 0, Minutes: 1, Trailing: 10 * time.Minute})

	// Compare reads the window and the same baseline in one scan.
	cmp := compare(t, byEdge, cdn, lake.SnapshotPos{}, from, to, BaselineOptions{MinMinutes: 1})
	c := cmp["FRA56-P3"]
	if c.Current != (Point{Value: 500, Volume: 10, Minutes: 1}) || c.Baseline.Value != 150 || c.Baseline.Kind != Trailing {
		t.Errorf("compare FRA56-P3: %+v", c)
	}
	if got, want := c.Change(), 500.0/150-1; got != want {
		t.Errorf("change %v, want %v", got, want)
	}
	if c := cmp["NEW1-C1"]; c.Current.Volume != 0 || !math.IsNaN(c.Change()) {
		t.Errorf("compare NEW1-C1 without current volume: %+v, change %v", c, c.Change())
	}
}

// TestBaselineSameTimeMedian: with 7 days of history the baseline is the
// median of the days' values, each day's value summed first (weighted by
// volume), so one outlier day does not move it.
func TestBaselineSameTimeMedian(t *testing.T) {
	cdn, _ := seriesTables(t)
	from, to := base, base.Add(5*time.Minute)
	fra := func(at time.Time, count, sum float64) minuteRow { return latency(at, "FRA56-P3", count, sum) }
	rows := []minuteRow{
		// Day 1: (500 + 4500) / (10 + 30) = 125 ms; the mean of the two
		// minutes' means would be 100, and make the median 110.
		fra(day(from, 1), 10, 500),
		fra(day(from, 1).Add(4*time.Minute), 30, 4500),
		fra(day(from, 2).Add(time.Minute), 20, 2200),    // 110
		fra(day(from, 3).Add(2*time.Minute), 20, 40000), // 2000: the outlier
		fra(day(from, 4), 10, 1200),                     // 120
		fra(day(from, 5), 10, 1050),                     // 105
		fra(day(from, 6), 10, 1150),                     // 115
		fra(day(from, 7), 10, 1000),                     // 100
		// Outside the days' windows, and the eighth day back.
		fra(day(to, 1), 1000, 10_000_000),
		fra(day(from, 1).Add(-time.Minute), 1000, 10_000_000),
		fra(day(from, 8), 1000, 10_000_000),
		// The trailing hour is not used when the median is.
		fra(from.Add(-time.Minute), 100, 99_900),
		// The window itself: 10% above the baseline.
		fra(from.Add(2*time.Minute), 10, 1265),
	}
	// K = 3 days exactly: days 1, 3 and 7 → median of 100, 300, 200.
	for d, v := range map[int]float64{1: 100, 3: 300, 7: 200} {
		rows = append(rows, latency(day(from, d), "LHR61-C2", 10, 10*v))
	}
	// An even count: days 2, 4, 5, 6 → (200 + 400) / 2.
	for d, v := range map[int]float64{2: 100, 4: 1000, 5: 200, 6: 400} {
		rows = append(rows, latency(day(from, d).Add(3*time.Minute), "AMS1-C1", 5, 5*v))
	}
	commitMinutes(t, cdn, CDNMinuteTable, rows)

	got := baselines(t, byEdge, cdn, lake.SnapshotPos{}, from, to, BaselineOptions{})
	// Sorted 100 105 110 115 120 125 2000: the median is 115, the mean 382.1.
	checkBaseline(t, got, "FRA56-P3", Baseline{Kind: SameTimeMedian, Value: 115, Volume: 120, Days: 7, Minutes: 1, Trailing: time.Hour})
	checkBaseline(t, got, "LHR61-C2", Baseline{Kind: SameTimeMedian, Value: 200, Volume: 30, Days: 3, Trailing: time.Hour})
	checkBaseline(t, got, "AMS1-C1", Baseline{Kind: SameTimeMedian, Value: 300, Volume: 20, Days: 4, Trailing: time.Hour})
	if s := got["FRA56-P3"].String(); s != "median of the same time of day on 7 of the previous 7 days" {
		t.Errorf("description %q", s)
	}

	cmp := compare(t, byEdge, cdn, lake.SnapshotPos{}, from, to, BaselineOptions{MinMinutes: 1})
	c := cmp["FRA56-P3"]
	if c.Current != (Point{Value: 126.5, Volume: 10, Minutes: 1}) || c.Baseline != got["FRA56-P3"] {
		t.Errorf("compare FRA56-P3: %+v", c)
	}
	if ch := c.Change(); math.Abs(ch-0.1) > 1e-12 {
		t.Errorf("change %v, want 0.1", ch)
	}
	// Evaluate reads the same current value as Compare.
	now := evaluate(t, byEdge, cdn, lake.SnapshotPos{}, from, to)
	if len(now) != 1 || now["FRA56-P3"] != c.Current {
		t.Errorf("evaluate %v, compare's current %+v", now, c.Current)
	}
}

// TestSeriesVolumeWeightedAcrossGroups: a group's ratio or quantile is
// taken after summing its rows (never an average of the rows' ratios), per
// group, restricted by Where; a group without volume has no value.
func TestSeriesVolumeWeightedAcrossGroups(t *testing.T) {
	cdn, player := seriesTables(t)
	from, to := base, base.Add(5*time.Minute)
	app := func(at time.Time, dims map[string]string, vals map[string]float64) minuteRow {
		return minuteRow{at: at, dims: dims, vals: vals}
	}
	iosPhone := func(video string) map[string]string {
		return map[string]string{"app_type": "ios", "device_type": "phone", "video_id": video}
	}
	start := func(r minuteRow, values ...float64) minuteRow {
		return withHistogram(r, StartTimeBucketColumns, StartTimeBounds[:], values...)
	}
	commitMinutes(t, player, PlayerMinuteTable, []minuteRow{
		// ios/phone: 6 errors / 110 attempts; the rows' ratios 0.01 and
		// 0.5 average to 0.255.
		start(app(from, iosPhone("a"), map[string]float64{"play_attempts": 100, "errors": 1, "stall_count": 3,
			"bitrate_bps_sum": 10_000_000, "bitrate_bps_count": 5}), repeat(80, 4)...),
		start(app(from.Add(2*time.Minute), iosPhone("b"), map[string]float64{"play_attempts": 10, "errors": 5, "stall_count": 8,
			"bitrate_bps_sum": 4_000_000, "bitrate_bps_count": 1}), repeat(400, 4)...),
		// android/tv: 10 / 200 over two countries.
		app(from.Add(time.Minute), map[string]string{"app_type": "android", "device_type": "tv", "country": "DE"},
			map[string]float64{"play_attempts": 50, "errors": 5}),
		app(from.Add(time.Minute), map[string]string{"app_type": "android", "device_type": "tv", "country": "FR"},
			map[string]float64{"play_attempts": 150, "errors": 5}),
		// The reference SDK sends no app or device: null dimensions.
		app(from.Add(3*time.Minute), nil, map[string]float64{"play_attempts": 40, "errors": 2}),
		// ios/tv has events but no attempt: no volume, no value.
		app(from.Add(4*time.Minute), map[string]string{"app_type": "ios", "device_type": "tv"},
			map[string]float64{"events": 30, "errors": 3}),
		// Outside the window.
		app(to, iosPhone("a"), map[string]float64{"play_attempts": 1000, "errors": 1000}),
		app(from.Add(-time.Minute), iosPhone("a"), map[string]float64{"play_attempts": 1000, "errors": 1000}),
	})

	byApp := Series{Metric: "player.error_ratio", By: []string{"app_type", "device_type"}}
	got := evaluate(t, byApp, player, lake.SnapshotPos{}, from, to)
	if len(got) != 4 {
		t.Errorf("%d groups, want 4: %v", len(got), got)
	}
	checkPoint(t, got, GroupOf("ios", "phone"), Point{Value: 6.0 / 110, Volume: 110, Minutes: 2})
	checkPoint(t, got, GroupOf("android", "tv"), Point{Value: 10.0 / 200, Volume: 200, Minutes: 1})
	checkPoint(t, got, GroupOf("", ""), Point{Value: 2.0 / 40, Volume: 40, Minutes: 1})
	checkPoint(t, got, GroupOf("ios", "tv"), Point{Value: math.NaN(), Volume: 0, Minutes: 0})
	if d := byApp.Dims(GroupOf("android", "tv")); len(d) != 2 || d["app_type"] != "android" || d["device_type"] != "tv" {
		t.Errorf("dims %v", d)
	}
	if s := GroupOf("", "tv").String(); s != "- / tv" {
		t.Errorf("group shown as %q", s)
	}

	// Where restricts the rows; "" is null.
	tv := Series{Metric: "player.error_ratio", Where: map[string]string{"device_type": "tv"}, By: []string{"app_type"}}
	got = evaluate(t, tv, player, lake.SnapshotPos{}, from, to)
	if len(got) != 2 {
		t.Errorf("tv: %d groups, want 2: %v", len(got), got)
	}
	checkPoint(t, got, "android", Point{Value: 0.05, Volume: 200, Minutes: 1})
	checkPoint(t, got, "ios", Point{Value: math.NaN()})
	if d := tv.Dims("android"); len(d) != 2 || d["device_type"] != "tv" || d["app_type"] != "android" {
		t.Errorf("dims %v", d)
	}
	sdk := Series{Metric: "player.error_ratio", Where: map[string]string{"app_type": ""}}
	got = evaluate(t, sdk, player, lake.SnapshotPos{}, from, to)
	if len(got) != 1 {
		t.Errorf("null app: %d groups, want 1: %v", len(got), got)
	}
	checkPoint(t, got, "", Point{Value: 2.0 / 40, Volume: 40, Minutes: 1})
	// No By: every row of the window, one group.
	got = evaluate(t, Series{Metric: "player.error_ratio"}, player, lake.SnapshotPos{}, from, to)
	checkPoint(t, got, "", Point{Value: 21.0 / 350, Volume: 350, Minutes: 4})

	iosPhoneOnly := map[string]string{"app_type": "ios", "device_type": "phone"}
	for _, c := range []struct {
		metric string
		want   Point
	}{
		{"player.stalls_per_attempt", Point{Value: 11.0 / 110, Volume: 110, Minutes: 2}},
		{"player.avg_bitrate_bps", Point{Value: 14e6 / 6, Volume: 6, Minutes: 2}},
		// Summed buckets: 4 starts <= 100 ms and 4 in (250, 500]. The
		// median is 100; the p95 rank 7.6 lies in the 500 bucket:
		// 250 + 250 × 3.6/4 = 475 (the rows' p95s, 95 and 487.5, average
		// to 291.25).
		{"player.start_time_p50_ms", Point{Value: 100, Volume: 8, Minutes: 2}},
		{"player.start_time_p95_ms", Point{Value: 475, Volume: 8, Minutes: 2}},
	} {
		t.Run(c.metric, func(t *testing.T) {
			got := evaluate(t, Series{Metric: c.metric, Where: iosPhoneOnly}, player, lake.SnapshotPos{}, from, to)
			p := got[""]
			if len(got) != 1 || math.Abs(p.Value-c.want.Value) > 1e-9 || p.Volume != c.want.Volume || p.Minutes != c.want.Minutes {
				t.Errorf("got %v, want %+v", got, c.want)
			}
		})
	}

	// CDN: cache hit ratio and p95 after summing an edge's rows.
	lat := func(r minuteRow, values ...float64) minuteRow {
		return withHistogram(r, timeTakenBuckets, LatencyBounds[:], values...)
	}
	commitMinutes(t, cdn, CDNMinuteTable, []minuteRow{
		lat(minuteRow{at: from, dims: map[string]string{"edge_location": "FRA56-P3", "edge_result_type": "Hit"},
			vals: map[string]float64{"requests": 100, "cache_hits": 90, "errors": 1, "status_5xx": 1}}, repeat(4, 100)...),
		lat(minuteRow{at: from.Add(time.Minute), dims: map[string]string{"edge_location": "FRA56-P3", "edge_result_type": "Miss"},
			vals: map[string]float64{"requests": 300, "cache_hits": 150, "errors": 9, "status_5xx": 3}}, repeat(400, 300)...),
		lat(minuteRow{at: from, dims: map[string]string{"edge_location": "LHR61-C2"},
			vals: map[string]float64{"requests": 10, "cache_hits": 10}}, repeat(20, 10)...),
	})
	for _, c := range []struct {
		metric    string
		fra, lhr  float64
		fraVolume int64
	}{
		{"cdn.cache_hit_ratio", 240.0 / 400, 1, 400},
		{"cdn.error_share", 10.0 / 400, 0, 400},
		{"cdn.5xx_share", 4.0 / 400, 0, 400},
		// 100 requests <= 5 ms and 300 in (250, 500]: the rank 380 lies
		// in the 500 bucket, 250 + 250 × 280/300; LHR61-C2's 10 requests
		// of 20 ms put its rank 9.5 in the 25 bucket, 10 + 15 × 9.5/10.
		{"cdn.time_taken_p95_ms", 250 + 250*280.0/300, 10 + 15*9.5/10, 400},
	} {
		t.Run(c.metric, func(t *testing.T) {
			got := evaluate(t, Series{Metric: c.metric, By: []string{"edge_location"}}, cdn, lake.SnapshotPos{}, from, to)
			fra, lhr := got["FRA56-P3"], got["LHR61-C2"]
			if len(got) != 2 || math.Abs(fra.Value-c.fra) > 1e-9 || fra.Volume != c.fraVolume || math.Abs(lhr.Value-c.lhr) > 1e-9 {
				t.Errorf("got %v, want FRA56-P3 %v (volume %d), LHR61-C2 %v", got, c.fra, c.fraVolume, c.lhr)
			}
		})
	}
}

// TestBaselineZeroVolume: a group whose rows carry no volume has no value
// and no baseline, as has a group with volume only in the window; an empty
// table has no groups.
func TestBaselineZeroVolume(t *testing.T) {
	cdn, player := seriesTables(t)
	from, to := base, base.Add(5*time.Minute)

	// Nothing committed yet: no snapshot, no groups.
	empty := compare(t, byEdge, cdn, lake.SnapshotPos{}, from, to, BaselineOptions{})
	if len(empty) != 0 {
		t.Errorf("empty table: %v", empty)
	}

	quiet := func(at time.Time) minuteRow {
		// Requests, but none with a time-taken (all aborted before one).
		return minuteRow{at: at, dims: map[string]string{"edge_location": "QUIET1"}, vals: map[string]float64{"requests": 3, "status_000": 3}}
	}
	var rows []minuteRow
	for d := 1; d <= BaselineDays; d++ {
		rows = append(rows, quiet(day(from, d)))
	}
	rows = append(rows, quiet(from.Add(-time.Minute)), quiet(from),
		latency(from, "FRESH1", 10, 300)) // volume only in the window
	commitMinutes(t, cdn, CDNMinuteTable, rows)

	got := compare(t, byEdge, cdn, lake.SnapshotPos{}, from, to, BaselineOptions{})
	if len(got) != 2 {
		t.Errorf("%d groups, want 2: %v", len(got), got)
	}
	for g, want := range map[Group]Point{"QUIET1": {Value: math.NaN()}, "FRESH1": {Value: 30, Volume: 10, Minutes: 1}} {
		c := got[g]
		if !sameFloat(c.Current.Value, want.Value) || c.Current.Volume != want.Volume || c.Current.Minutes != want.Minutes {
			t.Errorf("%s current %+v, want %+v", g, c.Current, want)
		}
		none := Baseline{Kind: NoBaseline, Value: math.NaN(), Trailing: time.Hour}
		checkBaseline(t, map[Group]Baseline{g: c.Baseline}, g, none)
		if c.Baseline.Valid() || !math.IsNaN(c.Change()) {
			t.Errorf("%s: baseline %+v valid, change %v", g, c.Baseline, c.Change())
		}
	}
	if s := got["QUIET1"].Baseline.String(); s != "no baseline: no traffic at this time on the previous 7 days nor in the 60 minutes before" {
		t.Errorf("description %q", s)
	}
	// A group absent from the result has no baseline either.
	if (Baseline{}).Valid() {
		t.Error("the zero Baseline is valid")
	}

	// The player table is empty too, but has a snapshot once something
	// (here: nothing in the window) is committed.
	commitMinutes(t, player, PlayerMinuteTable, []minuteRow{{at: day(from, 9), vals: map[string]float64{"play_attempts": 1}}})
	b := baselines(t, Series{Metric: "player.error_ratio"}, player, lake.SnapshotPos{}, from, to, BaselineOptions{})
	if len(b) != 0 {
		t.Errorf("player baselines %v, want none", b)
	}
}

// TestBaselinePinnedSnapshot: reads at a pinned snapshot ignore what is
// committed after it; reads at the latest snapshot see it.
func TestBaselinePinnedSnapshot(t *testing.T) {
	cdn, _ := seriesTables(t)
	ctx := context.Background()
	from, to := base, base.Add(5*time.Minute)
	var rows []minuteRow
	for d, v := range map[int]float64{1: 100, 2: 110, 3: 120} {
		rows = append(rows, latency(day(from, d), "FRA56-P3", 10, 10*v))
	}
	rows = append(rows, latency(from, "FRA56-P3", 10, 2000))
	commitMinutes(t, cdn, CDNMinuteTable, rows)
	pins, err := lake.Pin(ctx, cdn)
	if err != nil {
		t.Fatal(err)
	}
	at := pins[cdn.Name()]
	before := Comparison{Current: Point{Value: 200, Volume: 10, Minutes: 1},
		Baseline: Baseline{Kind: SameTimeMedian, Value: 110, Volume: 30, Days: 3, Trailing: time.Hour}}

	// A later commit: two more days (the median moves to 120), more in the
	// window, and another edge.
	commitMinutes(t, cdn, CDNMinuteTable, []minuteRow{
		latency(day(from, 4), "FRA56-P3", 10, 1300),
		latency(day(from, 5), "FRA56-P3", 10, 1400),
		latency(from.Add(time.Minute), "FRA56-P3", 30, 1000),
		latency(from, "LHR61-C2", 1, 1),
	})
	if cdn.Snapshot() == at {
		t.Fatal("the second commit made no snapshot")
	}

	pinned := compare(t, byEdge, cdn, at, from, to, BaselineOptions{})
	if len(pinned) != 1 || pinned["FRA56-P3"] != before {
		t.Errorf("at the pin:\n got %+v\nwant map[FRA56-P3:%+v]", pinned, before)
	}
	now := evaluate(t, byEdge, cdn, at, from, to)
	if len(now) != 1 || now["FRA56-P3"] != before.Current {
		t.Errorf("evaluate at the pin: %+v", now)
	}
	b := baselines(t, byEdge, cdn, at, from, to, BaselineOptions{})
	if len(b) != 1 || b["FRA56-P3"] != before.Baseline {
		t.Errorf("baselines at the pin: %+v", b)
	}

	latest := compare(t, byEdge, cdn, lake.SnapshotPos{}, from, to, BaselineOptions{})
	after := Comparison{Current: Point{Value: 3000.0 / 40, Volume: 40, Minutes: 2},
		Baseline: Baseline{Kind: SameTimeMedian, Value: 120, Volume: 50, Days: 5, Trailing: time.Hour}}
	if len(latest) != 2 || latest["FRA56-P3"] != after {
		t.Errorf("latest:\n got %+v\nwant FRA56-P3:%+v", latest, after)
	}
}

// TestMetricsRegistry: every metric reads columns its table has, sums only
// numbers, and has a volume column that counts.
func TestMetricsRegistry(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range Metrics() {
		if seen[m.Name] {
			t.Errorf("metric %s registered twice", m.Name)
		}
		seen[m.Name] = true
		if m.Doc == "" || m.Unit == "" {
			t.Errorf("metric %s lacks a doc or unit", m.Name)
		}
		cols := map[string]lake.Column{}
		for _, c := range m.Table.Columns {
			cols[c.Name] = c
		}
		for _, c := range m.Columns {
			col, ok := cols[c]
			if !ok {
				t.Errorf("metric %s: %s has no column %s", m.Name, m.Table.FullName(), c)
				continue
			}
			switch col.Type.(type) {
			case iceberg.Int64Type, iceberg.Float64Type:
			default:
				t.Errorf("metric %s: column %s is %s", m.Name, c, col.Type)
			}
		}
		if m.Columns[m.volume] != m.Volume {
			t.Errorf("metric %s: volume %s at %d of %v", m.Name, m.Volume, m.volume, m.Columns)
		}
		if _, ok := cols[m.Volume].Type.(iceberg.Int64Type); !ok {
			t.Errorf("metric %s: volume %s is not a count", m.Name, m.Volume)
		}
		for _, d := range m.Dimensions {
			if _, ok := cols[d]; !ok {
				t.Errorf("metric %s: no dimension column %s", m.Name, d)
			}
		}
	}
	for _, name := range []string{"cdn.time_taken_mean_ms", "cdn.time_taken_p95_ms", "cdn.ttfb_p95_ms", "cdn.cache_hit_ratio",
		"cdn.5xx_share", "cdn.error_share", "player.error_ratio", "player.start_time_p50_ms", "player.start_time_p95_ms",
		"player.stalls_per_attempt", "player.avg_bitrate_bps"} {
		if !seen[name] {
			t.Errorf("metric %s is not registered", name)
		}
	}
}

// TestSeriesRejects: mistakes in a series or a window are errors, not
// empty results.
func TestSeriesRejects(t *testing.T) {
	cdn, player := seriesTables(t)
	ctx := context.Background()
	from, to := base, base.Add(5*time.Minute)
	for _, c := range []struct {
		name string
		run  func() error
	}{
		{"unknown metric", func() error {
			_, err := Series{Metric: "cdn.latency"}.Evaluate(ctx, cdn, lake.SnapshotPos{}, from, to)
			if err != nil && !errors.Is(err, ErrUnknownMetric) {
				t.Errorf("unknown metric: %v, want ErrUnknownMetric", err)
			}
			return err
		}},
		{"another table", func() error {
			_, err := byEdge.Evaluate(ctx, player, lake.SnapshotPos{}, from, to)
			return err
		}},
		{"not a dimension", func() error {
			_, err := Series{Metric: "cdn.time_taken_mean_ms", By: []string{"requests"}}.Evaluate(ctx, cdn, lake.SnapshotPos{}, from, to)
			return err
		}},
		{"where not a dimension", func() error {
			_, err := Series{Metric: "player.error_ratio", Where: map[string]string{"edge_location": "x"}}.Evaluate(ctx, player, lake.SnapshotPos{}, from, to)
			return err
		}},
		{"grouped twice", func() error {
			_, err := Series{Metric: "cdn.time_taken_mean_ms", By: []string{"pop", "pop"}}.Evaluate(ctx, cdn, lake.SnapshotPos{}, from, to)
			return err
		}},
		{"empty window", func() error {
			_, err := byEdge.Evaluate(ctx, cdn, lake.SnapshotPos{}, to, from)
			return err
		}},
		{"window over a day", func() error {
			_, err := byEdge.Baselines(ctx, cdn, lake.SnapshotPos{}, from, from.Add(25*time.Hour), BaselineOptions{})
			return err
		}},
		{"K over 7", func() error {
			_, err := byEdge.Baselines(ctx, cdn, lake.SnapshotPos{}, from, to, BaselineOptions{MinDays: 8})
			return err
		}},
	} {
		if err := c.run(); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

// BenchmarkBaseline reads the baselines and the current value of a
// 5-minute window (Compare: 9 ranges, one scan) for every edge of a
// gold.cdn_minute holding 8 days of one-minute rows for 20 edges (230,400
// rows, one commit per day, written once before timing). Each range lies in
// a different day partition, so the scan reads all 8 day files.
func BenchmarkBaseline(b *testing.B) {
	cdn, _ := seriesTables(b)
	const edges = 20
	end := base
	start := day(end, 8)
	for d := range 8 {
		rows := make([]minuteRow, 0, 24*60*edges)
		for m := range 24 * 60 {
			at := start.Add(time.Duration(d*24*60+m) * time.Minute)
			for e := range edges {
				n := float64(100 + (m+e)%50)
				r := minuteRow{at: at, dims: map[string]string{"edge_location": fmt.Sprintf("EDGE%02d-C1", e), "pop": "EDG"},
					vals: map[string]float64{"requests": n, "cache_hits": n * 0.9, "time_taken_ms_count": n, "time_taken_ms_sum": n * float64(20+e)}}
				for i, c := range timeTakenBuckets {
					r.vals[c] = n * float64(i+1) / float64(len(timeTakenBuckets))
				}
				rows = append(rows, r)
			}
		}
		commitMinutes(b, cdn, CDNMinuteTable, rows)
	}
	ctx := context.Background()
	pins, err := lake.Pin(ctx, cdn)
	if err != nil {
		b.Fatal(err)
	}
	at := pins[cdn.Name()]
	from, to := end.Add(-5*time.Minute), end
	// The window alone, for scale: what the baseline's 8 more ranges cost.
	b.Run("evaluate_only", func(b *testing.B) {
		for b.Loop() {
			got, err := byEdge.Evaluate(ctx, cdn, at, from, to)
			if err != nil {
				b.Fatal(err)
			}
			if len(got) != edges {
				b.Fatalf("%d groups", len(got))
			}
		}
	})
	for _, metric := range []string{"cdn.time_taken_mean_ms", "cdn.time_taken_p95_ms"} {
		s := Series{Metric: metric, By: []string{"edge_location"}}
		b.Run(metric, func(b *testing.B) {
			for b.Loop() {
				got, err := s.Compare(ctx, cdn, at, from, to, BaselineOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != edges || got["EDGE07-C1"].Baseline.Kind != SameTimeMedian || got["EDGE07-C1"].Baseline.Days != 7 {
					b.Fatalf("%d groups, EDGE07-C1 %+v", len(got), got["EDGE07-C1"])
				}
			}
		})
	}
}

// TestWhereOnHalfNullColumn: a series restricted to a dimension value
// finds its rows in a file whose column holds as many nulls as values —
// the case in which iceberg-go v0.7.0's row-group pruning on a nullable
// column drops the file (so Where is matched row by row).
func TestWhereOnHalfNullColumn(t *testing.T) {
	cdn, _ := seriesTables(t)
	commitMinutes(t, cdn, CDNMinuteTable, []minuteRow{
		latency(base, "FRA56-P3", 10, 500),
		latency(base, "", 4, 400),
	})
	for where, want := range map[string]Point{"FRA56-P3": {Value: 50, Volume: 10, Minutes: 1}, "": {Value: 100, Volume: 4, Minutes: 1}} {
		got, err := Series{Metric: "cdn.time_taken_mean_ms", Where: map[string]string{"edge_location": where}}.
			Evaluate(context.Background(), cdn, lake.SnapshotPos{}, base, base.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if got[GroupOf()] != want {
			t.Errorf("where edge_location = %q: %+v, want %+v", where, got, want)
		}
	}
}
