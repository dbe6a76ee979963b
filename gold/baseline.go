package gold

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/qoslake/qoslake/lake"
)

// The baseline of a series, for one group and a window [from, to) of at
// most a day, is what the group's value usually is at that time:
//
//  1. Same-time median. For each of the previous BaselineDays (7) days d,
//     the group's value over [from - d×24h, to - d×24h), summed first like
//     any window. A day "has volume" when its volume is at least MinVolume
//     (default 1). When at least MinDays (K, default 3) of the 7 days have
//     volume, the baseline is the median of those days' values (the mean
//     of the two middle ones for an even count), and its volume is the sum
//     of their volumes. A median, not a mean: one unusual day (an incident,
//     a match day) does not move it. Three days is the fewest whose median
//     ignores one outlier day.
//  2. Trailing. Otherwise (a new edge, a new app, an hour that is usually
//     quiet), when the group's volume over the Trailing (T, default 60
//     minutes) before the window, [from - T, from), is at least MinVolume,
//     and it had volume in at least MinMinutes (default 30) of its minutes,
//     the baseline is the group's value over that range: summed first, so
//     weighted by volume. It follows the current level of the day, and so
//     also a degradation already under way before the window (all of it,
//     once it has lasted T).
//  3. None, when neither has volume: the value is NaN and a rule cannot
//     compare.
//
// Days are 24-hour steps in UTC, so the same time of day is the same UTC
// time. Every range is read from one snapshot, in one scan of at most 8
// time ranges (9 with the current window, for Compare), restricted to the
// columns the metric needs.
const (
	// BaselineDays are the previous days the same-time median looks at.
	BaselineDays = 7
	// DefaultBaselineMinDays is K: the days with volume, of the previous
	// BaselineDays, the same-time median needs.
	DefaultBaselineMinDays = 3
	// DefaultBaselineTrailing is T: the range before the window the
	// trailing baseline reads.
	DefaultBaselineTrailing = 60 * time.Minute
	// DefaultBaselineMinMinutes are the minutes of the trailing range that
	// need volume for a trailing baseline: half of it.
	DefaultBaselineMinMinutes = 30
)

// BaselineKind says which definition a baseline took.
type BaselineKind string

const (
	// SameTimeMedian is the median of the same time of day on the previous
	// days that had volume.
	SameTimeMedian BaselineKind = "same_time_median"
	// Trailing is the volume-weighted value over the range before the
	// window.
	Trailing BaselineKind = "trailing"
	// NoBaseline means no previous day and no trailing range had volume.
	NoBaseline BaselineKind = "none"
)

// BaselineOptions tune the baseline; the zero value is the documented
// default.
type BaselineOptions struct {
	// MinDays is K, the previous days with volume the same-time median
	// needs (1 to BaselineDays; default DefaultBaselineMinDays).
	MinDays int
	// Trailing is T, the range before the window the trailing baseline
	// reads (default DefaultBaselineTrailing).
	Trailing time.Duration
	// MinMinutes is how many minutes of the trailing range must have
	// volume for the trailing baseline (default DefaultBaselineMinMinutes,
	// at most the range): a baseline from a few minutes of history is
	// noise, and a rule judging against it fires on noise.
	MinMinutes int
	// MinVolume is the volume a day or the trailing range needs to count
	// as having volume (default 1: any).
	MinVolume int64
}

func (o BaselineOptions) withDefaults() (BaselineOptions, error) {
	if o.MinDays == 0 {
		o.MinDays = DefaultBaselineMinDays
	}
	if o.Trailing == 0 {
		o.Trailing = DefaultBaselineTrailing
	}
	if o.MinVolume <= 0 {
		o.MinVolume = 1
	}
	if o.MinMinutes <= 0 {
		o.MinMinutes = DefaultBaselineMinMinutes
	}
	o.MinMinutes = min(o.MinMinutes, int(o.Trailing/time.Minute))
	if o.MinDays < 1 || o.MinDays > BaselineDays {
		return o, fmt.Errorf("baseline needs 1 to %d days with volume, not %d", BaselineDays, o.MinDays)
	}
	if o.Trailing < 0 {
		return o, fmt.Errorf("negative trailing range %s", o.Trailing)
	}
	return o, nil
}

// Baseline is a series' baseline for one group and window.
type Baseline struct {
	Kind BaselineKind
	// Value is the baseline, in the metric's unit; NaN for NoBaseline.
	Value float64
	// Volume is what the baseline drew on: the summed volume of the days
	// the median took, or the trailing range's volume; 0 for NoBaseline.
	Volume int64
	// Days are the previous days (of BaselineDays) with volume at the
	// window's time of day, whatever the kind: the median took them when
	// there were at least MinDays.
	Days int
	// Minutes are the minutes of the trailing range in which the group had
	// volume, whatever the kind.
	Minutes int
	// Trailing is the trailing range's length (T).
	Trailing time.Duration
}

// Valid reports whether there is a baseline to compare with; the zero
// Baseline (a group absent from Baselines' result) has none.
func (b Baseline) Valid() bool { return b.Kind == SameTimeMedian || b.Kind == Trailing }

// String says what the baseline is, for the dashboard and an alert email.
func (b Baseline) String() string {
	switch b.Kind {
	case SameTimeMedian:
		return fmt.Sprintf("median of the same time of day on %d of the previous %d days", b.Days, BaselineDays)
	case Trailing:
		return fmt.Sprintf("volume-weighted over the %s before (traffic in %d minutes; %d of the previous %d days had traffic at this time)",
			minutesText(b.Trailing), b.Minutes, b.Days, BaselineDays)
	default:
		return fmt.Sprintf("no baseline: no traffic at this time on the previous %d days nor in the %s before",
			BaselineDays, minutesText(b.Trailing))
	}
}

func minutesText(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%d minutes", d/time.Minute)
	}
	return d.String()
}

// Comparison is a series' value over a window with its baseline, read from
// one snapshot: the number an alert rule tests and the dashboard shows.
type Comparison struct {
	Current  Point
	Baseline Baseline
}

// Change is the current value relative to the baseline: 0.1 is 10% above
// it, -0.5 half of it. NaN when either is undefined; ±Inf when the
// baseline is 0 and the current value is not.
func (c Comparison) Change() float64 {
	if !c.Baseline.Valid() || c.Current.Volume == 0 {
		return math.NaN()
	}
	return (c.Current.Value - c.Baseline.Value) / c.Baseline.Value
}

// Baselines returns the series' baseline over [from, to) for every group
// with a row in any range the baseline reads (see the definition above),
// from one scan of t as of snapshot at (from lake.Pin; zero reads the
// latest snapshot, pinned once). A group with no row in those ranges is
// absent: its zero Baseline is not Valid.
func (s Series) Baselines(ctx context.Context, t *lake.Table, at lake.SnapshotPos, from, to time.Time, o BaselineOptions) (map[Group]Baseline, error) {
	m, spans, o, err := s.baselinePlan(t, from, to, o)
	if err != nil {
		return nil, err
	}
	tallies, err := s.scan(ctx, t, at, m, spans)
	if err != nil {
		return nil, err
	}
	out := make(map[Group]Baseline, len(tallies))
	for g, tl := range tallies {
		out[g] = baselineOf(m, tl, o)
	}
	return out, nil
}

// Compare returns, for every group with a row in the window or in a range
// its baseline reads, the series over [from, to) and its baseline, from
// one scan of t as of snapshot at: Evaluate and Baselines in one read.
func (s Series) Compare(ctx context.Context, t *lake.Table, at lake.SnapshotPos, from, to time.Time, o BaselineOptions) (map[Group]Comparison, error) {
	m, spans, o, err := s.baselinePlan(t, from, to, o)
	if err != nil {
		return nil, err
	}
	current := len(spans)
	tallies, err := s.scan(ctx, t, at, m, append(spans, spanOf(from, to)))
	if err != nil {
		return nil, err
	}
	out := make(map[Group]Comparison, len(tallies))
	for g, tl := range tallies {
		out[g] = Comparison{Current: tl.point(m, current), Baseline: baselineOf(m, tl, o)}
	}
	return out, nil
}

// baselinePlan checks the request and returns the ranges a baseline reads:
// the window on each previous day (day d at index d-1), then the trailing
// range (index BaselineDays).
func (s Series) baselinePlan(t *lake.Table, from, to time.Time, o BaselineOptions) (Metric, []span, BaselineOptions, error) {
	var m Metric
	if !from.Before(to) {
		return m, nil, o, fmt.Errorf("series %s: empty window [%s, %s)", s.Metric, from, to)
	}
	if to.Sub(from) > 24*time.Hour {
		return m, nil, o, fmt.Errorf("series %s: window [%s, %s) is longer than the day a same-time baseline steps by", s.Metric, from, to)
	}
	o, err := o.withDefaults()
	if err != nil {
		return m, nil, o, err
	}
	if m, err = s.metric(t); err != nil {
		return m, nil, o, err
	}
	spans := make([]span, 0, BaselineDays+2)
	for d := 1; d <= BaselineDays; d++ {
		back := time.Duration(d) * 24 * time.Hour
		spans = append(spans, spanOf(from.Add(-back), to.Add(-back)))
	}
	spans = append(spans, spanOf(from.Add(-o.Trailing), from))
	return m, spans, o, nil
}

// baselineOf applies the baseline definition to one group's tally.
func baselineOf(m Metric, tl *tally, o BaselineOptions) Baseline {
	b := Baseline{Kind: NoBaseline, Value: math.NaN(), Trailing: o.Trailing}
	var days []float64
	var dayVolume int64
	for d := range BaselineDays {
		if p := tl.point(m, d); p.Volume >= o.MinVolume {
			days = append(days, p.Value)
			dayVolume += p.Volume
		}
	}
	trailing := tl.point(m, BaselineDays)
	b.Days, b.Minutes = len(days), trailing.Minutes
	switch {
	case len(days) >= o.MinDays:
		b.Kind, b.Value, b.Volume = SameTimeMedian, median(days), dayVolume
	case trailing.Volume >= o.MinVolume && trailing.Minutes >= o.MinMinutes:
		b.Kind, b.Value, b.Volume = Trailing, trailing.Value, trailing.Volume
	}
	return b
}

// median of at least one value; the mean of the two middle ones for an
// even count.
func median(values []float64) float64 {
	v := slices.Clone(values)
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}
