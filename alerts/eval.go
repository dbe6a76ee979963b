package alerts

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"

	"github.com/qoslake/qoslake/gold"
	"github.com/qoslake/qoslake/lake"
)

// DefaultGrace is how far a source's newest event time must have passed a
// window's end before the window is judged: long enough for the events
// still in flight (batching, the refine tick), short next to the hours
// that CDN standard logs may be late, which update gold and the dashboard
// but do not re-fire old alerts.
const DefaultGrace = 2 * time.Minute

// maxWorst is how many values of each drill-down dimension an alert lists.
const maxWorst = 3

// Evaluator judges rules against gold. Live evaluation (Runner) and the
// backtest call the same Step, so a backtest shows what the live pipeline
// would have sent.
type Evaluator struct {
	// Tables are the gold minute tables by full name.
	Tables map[string]*lake.Table
	// Grace per gold table name (DefaultGrace when absent).
	Grace map[string]time.Duration
	// Baseline tunes the baselines of compare: baseline rules.
	Baseline gold.BaselineOptions
	// DashboardURL is the dashboard's base URL for the links in alerts;
	// empty for none.
	DashboardURL string
	// Now is the wall clock (default time.Now): a window in the future is
	// never closed, whatever a device's clock put in gold.
	Now func() time.Time
}

func (e *Evaluator) now() time.Time {
	if e.Now == nil {
		return time.Now()
	}
	return e.Now()
}

// table returns the gold table a rule reads.
func (e *Evaluator) table(r Rule) (*lake.Table, error) {
	name := r.metric.Table.FullName()
	t := e.Tables[name]
	if t == nil {
		return nil, fmt.Errorf("rule %s reads %s, which is not open", r.Name, name)
	}
	return t, nil
}

// Closed returns the end of the last one-minute step of the rule that its
// source has closed as of the pinned snapshot: the newest window in the
// table, plus its minute, minus the grace, truncated to the minute. ok is
// false when the table has no rows.
func (e *Evaluator) Closed(ctx context.Context, pins lake.Pins, r Rule) (time.Time, bool, error) {
	t, err := e.table(r)
	if err != nil {
		return time.Time{}, false, err
	}
	at := pins[t.Name()]
	newest, ok, err := t.NewestTime(ctx, lake.ScanOptions{Snapshot: at}, "window_start")
	if err != nil || !ok {
		return time.Time{}, false, err
	}
	if now := e.now(); newest.After(now) {
		// A device clock ahead put rows in the future (silver caps only
		// the watermark, not event times). Those must not close the
		// windows up to them: take the newest window up to now instead.
		if newest, ok, err = newestUpTo(ctx, t, at, now); err != nil || !ok {
			return time.Time{}, false, err
		}
	}
	grace, found := e.Grace[t.Name()]
	if !found {
		grace = DefaultGrace
	}
	return newest.Add(gold.Window).Add(-grace).Truncate(time.Minute), true, nil
}

// newestUpTo is the newest window_start at or before now, from the rows of
// the last day before it.
func newestUpTo(ctx context.Context, t *lake.Table, at lake.SnapshotPos, now time.Time) (time.Time, bool, error) {
	ref := iceberg.Reference("window_start")
	filter := iceberg.NewAnd(iceberg.GreaterThanEqual(ref, now.Add(-24*time.Hour).UnixMicro()),
		iceberg.LessThanEqual(ref, now.UnixMicro()))
	var newest int64
	ok := false
	err := t.Scan(ctx, lake.ScanOptions{Snapshot: at, Filter: filter, Fields: []string{"window_start"}}, func(r arrow.RecordBatch) error {
		ws := r.Column(0).(*array.Timestamp)
		for i := range ws.Len() {
			if v := int64(ws.Value(i)); v <= now.UnixMicro() && (!ok || v > newest) {
				newest, ok = v, true
			}
		}
		return nil
	})
	return time.UnixMicro(newest).UTC(), ok, err
}

// Step judges rule r at the step ending at t (the window [t − Window, t))
// on the tables as pinned, moves each group's state (states is updated in
// place) and returns the alerts of the groups whose state changed.
func (e *Evaluator) Step(ctx context.Context, pins lake.Pins, r Rule, states map[string]*State, t time.Time) ([]Alert, error) {
	tbl, err := e.table(r)
	if err != nil {
		return nil, err
	}
	at := pins[tbl.Name()]
	from := t.Add(-r.Window.D())
	s := gold.Series{Metric: r.Metric, Where: r.Where, By: r.GroupBy}
	obs, err := e.observe(ctx, tbl, at, s, r, from, t)
	if err != nil {
		return nil, fmt.Errorf("rule %s at %s: %w", r.Name, t.Format(time.RFC3339), err)
	}
	// Groups in a state but without a row in the window are judged too:
	// an alert whose traffic stopped resolves.
	keys := slices.Collect(maps.Keys(obs))
	for k := range states {
		if _, ok := obs[gold.Group(k)]; !ok {
			keys = append(keys, gold.Group(k))
		}
	}
	slices.Sort(keys)
	var out []Alert
	for _, g := range keys {
		o, seen := obs[g]
		if !seen {
			o = observation{Observation: Observation{Value: math.NaN(), Reference: math.NaN(), Fire: math.NaN(), Clear: math.NaN(), Clears: true},
				referenceText: "group had no traffic in the window"}
		}
		next, tr := r.advance(states[string(g)], t, o.Observation, g.String())
		if next == nil {
			delete(states, string(g))
		} else {
			states[string(g)] = next
		}
		if tr == nil {
			continue
		}
		a := e.alert(r, s, g, o, tr, from, t)
		if next != nil && next.Status == Firing {
			next.Team, next.Severity, next.Dims = r.Team, r.Severity, a.Dimensions
		}
		if tr.State == Fired {
			if a.Worst, err = e.worst(ctx, tbl, at, r, s.Dims(g), from, t); err != nil {
				return nil, fmt.Errorf("rule %s: drill-down of %s: %w", r.Name, g, err)
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// observation is an Observation with the words for its reference.
type observation struct {
	Observation
	referenceText string
}

// observe judges every group of the series over [from, to).
func (e *Evaluator) observe(ctx context.Context, tbl *lake.Table, at lake.SnapshotPos, s gold.Series, r Rule,
	from, to time.Time) (map[gold.Group]observation, error) {
	out := map[gold.Group]observation{}
	judge := func(g gold.Group, p gold.Point, ref float64, text string) {
		fire, clear := r.Condition.Limits(ref)
		enough := p.Volume > 0 && p.Volume >= r.MinVolume
		o := Observation{Value: p.Value, Reference: ref, Fire: fire, Clear: clear, Volume: p.Volume,
			Breach: enough && r.Condition.Breaches(p.Value, fire),
			Clears: !enough || r.Condition.Clears(p.Value, clear)}
		if r.Condition.Compare == CompareThreshold {
			o.Reference = fire
		}
		out[g] = observation{o, text}
	}
	switch r.Condition.Compare {
	case CompareBaseline:
		cmps, err := s.Compare(ctx, tbl, at, from, to, e.Baseline)
		if err != nil {
			return nil, err
		}
		for g, c := range cmps {
			if c.Current.Volume == 0 {
				continue // a group seen only in the baseline's ranges
			}
			ref := math.NaN()
			if c.Baseline.Valid() {
				ref = c.Baseline.Value
			}
			judge(g, c.Current, ref, "baseline: "+c.Baseline.String())
		}
	case ComparePeers:
		points, err := s.Evaluate(ctx, tbl, at, from, to)
		if err != nil {
			return nil, err
		}
		// Each group's peers are the others with enough volume to count,
		// weighted by volume: one small ISP's bad minute does not move
		// the mean much, and the group is not compared with itself.
		var sum, weight float64
		for _, p := range points {
			if p.Volume >= r.MinVolume && !math.IsNaN(p.Value) {
				sum += p.Value * float64(p.Volume)
				weight += float64(p.Volume)
			}
		}
		for g, p := range points {
			s, w := sum, weight
			if p.Volume >= r.MinVolume && !math.IsNaN(p.Value) {
				s -= p.Value * float64(p.Volume)
				w -= float64(p.Volume)
			}
			ref := math.NaN()
			if w > 0 {
				ref = s / w
			}
			judge(g, p, ref, fmt.Sprintf("volume-weighted mean of the other %s values", groupNoun(r)))
		}
	default:
		points, err := s.Evaluate(ctx, tbl, at, from, to)
		if err != nil {
			return nil, err
		}
		for g, p := range points {
			judge(g, p, math.NaN(), "threshold")
		}
	}
	return out, nil
}

func groupNoun(r Rule) string {
	if len(r.GroupBy) == 0 {
		return "group"
	}
	return r.GroupBy[len(r.GroupBy)-1]
}

// alert builds the message of a transition.
func (e *Evaluator) alert(r Rule, s gold.Series, g gold.Group, o observation, tr *Transition, from, to time.Time) Alert {
	dims := s.Dims(g)
	a := Alert{
		EventID: tr.AlertID + "/" + tr.State, AlertID: tr.AlertID, State: tr.State,
		Rule: r.Name, Description: r.Description, Team: r.Team, Severity: r.Severity,
		Metric: r.Metric, Unit: r.metric.Unit, Dimensions: dims,
		WindowStart: from, WindowEnd: to, Value: o.Value, Volume: o.Volume,
		Compare: r.Condition.Compare, Reference: o.Reference, ReferenceText: o.referenceText, Limit: o.Fire,
		Direction: r.Condition.direction(),
		Since:     tr.Since, FiredAt: tr.FiredAt,
		Action: r.ActionFor(dims), Runbook: r.Runbook,
		Dashboard: DashboardLink(e.DashboardURL, r, dims, tr.Since.Add(-r.Window.D()), to),
	}
	if tr.State == Resolved {
		a.ResolvedAt = to
	}
	return a
}

// worst lists, for each drill-down dimension, the values inside the group
// that fare worst over the window, among those with at least a tenth of
// the rule's minimum volume.
func (e *Evaluator) worst(ctx context.Context, tbl *lake.Table, at lake.SnapshotPos, r Rule, dims map[string]string,
	from, to time.Time) ([]Worst, error) {
	var out []Worst
	floor := max(1, r.MinVolume/10)
	for _, d := range r.DrillDown {
		if _, fixed := dims[d]; fixed {
			continue
		}
		points, err := gold.Series{Metric: r.Metric, Where: dims, By: []string{d}}.Evaluate(ctx, tbl, at, from, to)
		if err != nil {
			return nil, err
		}
		var ws []Worst
		for g, p := range points {
			// A null value (unknown ISP, no country) says nothing.
			if g != "" && p.Volume >= floor && !math.IsNaN(p.Value) {
				ws = append(ws, Worst{Dimension: d, Of: string(g), Value: p.Value, Volume: p.Volume})
			}
		}
		up := r.Condition.upward()
		slices.SortFunc(ws, func(a, b Worst) int {
			c := cmp.Compare(b.Value, a.Value)
			if !up {
				c = -c
			}
			return cmp.Or(c, cmp.Compare(a.Of, b.Of))
		})
		out = append(out, ws[:min(len(ws), maxWorst)]...)
	}
	return out, nil
}
