package alerts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"

	"github.com/qoslake/qoslake/gold"
	"github.com/qoslake/qoslake/lake"
)

var (
	str  = iceberg.PrimitiveTypes.String
	i64  = iceberg.PrimitiveTypes.Int64
	f64  = iceberg.PrimitiveTypes.Float64
	tstz = iceberg.PrimitiveTypes.TimestampTz
)

// AlertsTable is gold.alerts: every state change of every alert, in the
// order it happened (seq), with the document that is published for it. It
// is the outbox: a change is committed here first, and published after;
// the checkpoint says how far publishing got.
var AlertsTable = lake.TableDef{
	Namespace: gold.Namespace,
	Name:      "alerts",
	Doc:       "Alert state changes (fired, resolved) in order, each with the document published to SNS; the outbox of the alerts topic.",
	Columns: []lake.Column{
		{Name: "seq", Type: i64, Required: true, Doc: "order of the state change, from 1, without gaps"},
		{Name: "event_id", Type: str, Required: true, Doc: "alert_id/state: names the state change; consumers drop repeats by it"},
		{Name: "alert_id", Type: str, Required: true, Doc: "rule/group/since: the incident, the same in its fired and resolved rows"},
		{Name: "state", Type: str, Required: true, Doc: "fired or resolved"},
		{Name: "rule", Type: str, Required: true, Doc: "rule name"},
		{Name: "team", Type: str, Required: true, Doc: "team the rule pages"},
		{Name: "severity", Type: str, Required: true, Doc: "critical, high, warning or info"},
		{Name: "metric", Type: str, Required: true, Doc: "gold metric the rule judges"},
		{Name: "dimensions", Type: str, Required: true, Doc: "the group's dimension values, a JSON object"},
		{Name: "window_start", Type: tstz, Required: true, Doc: "start of the window judged at the step that changed the state"},
		{Name: "window_end", Type: tstz, Required: true, Doc: "end of that window: the step"},
		{Name: "value", Type: f64, Doc: "the metric over the window"},
		{Name: "reference", Type: f64, Doc: "the baseline, the peers' value or the threshold"},
		{Name: "fire_limit", Type: f64, Doc: "the value the condition fires past"},
		{Name: "volume", Type: i64, Doc: "the metric's volume over the window"},
		{Name: "since", Type: tstz, Required: true, Doc: "when the condition started to hold"},
		{Name: "document", Type: str, Required: true, Doc: "the JSON document published (Alert)"},
	},
	Partition: []lake.PartitionField{{Column: "window_end", Transform: iceberg.DayTransform{}, Name: "window_day"}},
	SortOrder: []lake.SortKey{{Column: "seq"}},
}

// Checkpoint keys of gold.alerts.
const (
	keySeq       = "alerts.seq"       // last seq committed
	keyPublished = "alerts.published" // last seq SNS accepted
	keyLease     = "alerts.publisher" // "owner until" of the process that publishes
)

func keyStep(rule string) string  { return "alerts.step." + rule }
func keyState(rule string) string { return "alerts.state." + rule }

// Runner evaluates the rules live: each Evaluate judges, for every rule,
// the steps its sources closed since the rule's last step, and commits the
// state changes together with the new states and steps (compare-and-set,
// so two processes never judge a step twice). Publish sends what was
// committed and not yet published.
type Runner struct {
	Rules     []Rule
	Evaluator *Evaluator
	Alerts    *lake.Table
	// CatchUp bounds how far back a rule without a step starts (default
	// 3 hours): at most the oldest gold window that recent.
	CatchUp time.Duration
	// MaxSteps bounds the steps of one rule one Evaluate judges (default
	// 60); the next call goes on.
	MaxSteps int
	Logger   *slog.Logger
	// Observer, if set, is told the rules' states after each commit.
	Observer Observer

	idle sync.Map // rule names already reported idle
}

func (r *Runner) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// maxMoved bounds how often Evaluate starts over when another process
// moved the alert checkpoint first.
const maxMoved = 10

// Evaluate judges every step its sources closed since the last (MaxSteps
// per rule and commit, as many commits as it takes) and returns the alerts
// it committed.
func (r *Runner) Evaluate(ctx context.Context) ([]Alert, error) {
	var all []Alert
	for attempt := 1; ; {
		alerts, more, err := r.evaluateOnce(ctx)
		if errors.Is(err, lake.ErrCheckpointMoved) && attempt < maxMoved {
			attempt++
			r.log().Info("alert checkpoint moved by another process; starting over", "attempt", attempt)
			continue
		}
		all = append(all, alerts...)
		if err != nil || !more {
			return all, err
		}
	}
}

// evaluateOnce judges up to MaxSteps steps of each rule and commits them;
// more is true when it committed something (there may be more to do).
func (r *Runner) evaluateOnce(ctx context.Context) (alerts []Alert, more bool, err error) {
	if _, err := r.Alerts.Refresh(ctx); err != nil {
		return nil, false, err
	}
	cp, err := r.Alerts.Checkpoint()
	if err != nil {
		return nil, false, err
	}
	tables := make([]*lake.Table, 0, len(r.Evaluator.Tables))
	for _, t := range r.Evaluator.Tables {
		if _, err := t.Refresh(ctx); err != nil {
			return nil, false, err
		}
		tables = append(tables, t)
	}
	pins, err := lake.Pin(ctx, tables...)
	if err != nil {
		return nil, false, err
	}
	var all []Alert
	var advance []lake.Position
	committed := map[string]map[string]int{} // rule -> state -> groups
	// A rule that fails (a bad table, a read error) is reported and
	// retried at the next pass; the others go on.
	var errs []error
	for _, rule := range r.Rules {
		alerts, moves, states, err := r.evaluateRule(ctx, pins, cp, rule)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		all = append(all, alerts...)
		advance = append(advance, moves...)
		if len(moves) > 0 {
			count := map[string]int{Pending: 0, Firing: 0, Cooldown: 0}
			for _, st := range states {
				count[st.Status]++
			}
			committed[rule.Name] = count
		}
	}
	removed, moves, err := r.removedRules(cp)
	if err != nil {
		return nil, false, err
	}
	all, advance = append(all, removed...), append(advance, moves...)
	if len(advance) == 0 {
		return nil, false, errors.Join(errs...)
	}
	seq, _ := strconv.ParseInt(cp[keySeq], 10, 64)
	if len(all) > 0 {
		advance = append(advance, lake.Position{Key: keySeq, From: cp[keySeq], To: strconv.FormatInt(seq+int64(len(all)), 10)})
	}
	b := lake.Batch{ID: batchID(advance), Advance: advance, Strict: true}
	if len(all) > 0 {
		rec, err := alertRows(r.Alerts, seq, all)
		if err != nil {
			return nil, false, err
		}
		defer rec.Release()
		b.Records = []arrow.RecordBatch{rec}
	}
	if _, err := r.Alerts.Commit(ctx, b); err != nil {
		return nil, false, fmt.Errorf("commit alerts: %w", err)
	}
	if r.Observer != nil {
		for rule, st := range committed {
			r.Observer.AlertStates(rule, st)
		}
	}
	for _, a := range all {
		r.log().Info("alert "+a.State, "rule", a.Rule, "where", a.Where(), "value", a.Value, "reference", a.Reference,
			"team", a.Team, "alert_id", a.AlertID)
	}
	return all, true, errors.Join(errs...)
}

// evaluateRule judges one rule's closed steps and returns its alerts, its
// checkpoint moves (none when no step is due) and its groups' states.
func (r *Runner) evaluateRule(ctx context.Context, pins lake.Pins, cp lake.Checkpoint, rule Rule) ([]Alert, []lake.Position, map[string]*State, error) {
	closed, ok, err := r.Evaluator.Closed(ctx, pins, rule)
	if err != nil {
		return nil, nil, nil, err
	}
	if !ok {
		// Said once per process: a rule over a table nothing fills yet
		// (no sessions, say) is idle, not broken.
		if _, said := r.idle.LoadOrStore(rule.Name, true); !said {
			r.log().Info("alert rule idle: its gold table has no rows yet", "rule", rule.Name, "table", rule.metric.Table.FullName())
		}
		return nil, nil, nil, nil
	}
	last, err := r.lastStep(ctx, pins, cp, rule, closed)
	if err != nil || !last.Before(closed) {
		return nil, nil, nil, err
	}
	states := map[string]*State{}
	if s := cp[keyState(rule.Name)]; s != "" {
		if err := json.Unmarshal([]byte(s), &states); err != nil {
			return nil, nil, nil, fmt.Errorf("state of rule %s: %w", rule.Name, err)
		}
	}
	maxSteps := r.MaxSteps
	if maxSteps <= 0 {
		maxSteps = 60
	}
	var alerts []Alert
	t := last
	for n := 0; n < maxSteps && t.Before(closed); n++ {
		t = t.Add(time.Minute)
		as, err := r.Evaluator.Step(ctx, pins, rule, states, t)
		if err != nil {
			return nil, nil, nil, err
		}
		alerts = append(alerts, as...)
	}
	state := ""
	if len(states) > 0 {
		b, err := json.Marshal(states)
		if err != nil {
			return nil, nil, nil, err
		}
		state = string(b)
	}
	moves := []lake.Position{{Key: keyStep(rule.Name), From: cp[keyStep(rule.Name)], To: t.UTC().Format(time.RFC3339)}}
	if state != cp[keyState(rule.Name)] {
		moves = append(moves, lake.Position{Key: keyState(rule.Name), From: cp[keyState(rule.Name)], To: state})
	}
	return alerts, moves, states, nil
}

// lastStep is the end of the rule's last judged step, at most CatchUp
// before closed; for a rule never judged, the start of the oldest gold
// window within CatchUp of closed.
func (r *Runner) lastStep(ctx context.Context, pins lake.Pins, cp lake.Checkpoint, rule Rule, closed time.Time) (time.Time, error) {
	catchUp := r.CatchUp
	if catchUp <= 0 {
		catchUp = 3 * time.Hour
	}
	if s := cp[keyStep(rule.Name)]; s != "" {
		last, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return last, err
		}
		// After a long stop, judge only the last CatchUp: what happened
		// before is history for the backtest, not news to page anyone with.
		if from := closed.Add(-catchUp); last.Before(from) {
			r.log().Warn("alert rule behind by more than its catch-up; skipping the steps before", "rule", rule.Name,
				"last_step", last, "resume_at", from)
			return from, nil
		}
		return last, nil
	}
	tbl, err := r.Evaluator.table(rule)
	if err != nil {
		return time.Time{}, err
	}
	since := closed.Add(-catchUp)
	oldest := closed
	filter := iceberg.GreaterThanEqual(iceberg.Reference("window_start"), since.UnixMicro())
	err = tbl.Scan(ctx, lake.ScanOptions{Snapshot: pins[tbl.Name()], Filter: filter, Fields: []string{"window_start"}},
		func(rec arrow.RecordBatch) error {
			ws := rec.Column(0).(*array.Timestamp)
			for i := range ws.Len() {
				if t := time.UnixMicro(int64(ws.Value(i))); t.Before(oldest) {
					oldest = t
				}
			}
			return nil
		})
	if err != nil {
		return time.Time{}, err
	}
	// The first step ends a minute after the oldest window starts.
	return oldest.UTC(), nil
}

// removedRules closes the alerts of rules no longer configured: each of
// their firing incidents resolves (its notice says why), and their steps
// and states leave the checkpoint. A renamed rule is a removed one and a
// new one: its incidents resolve under the old name and fire again, if the
// condition still holds, under the new.
func (r *Runner) removedRules(cp lake.Checkpoint) ([]Alert, []lake.Position, error) {
	configured := map[string]bool{}
	for _, rule := range r.Rules {
		configured[rule.Name] = true
	}
	var alerts []Alert
	var moves []lake.Position
	for _, k := range slices.Sorted(maps.Keys(cp)) {
		var name string
		switch {
		case strings.HasPrefix(k, keyState("")):
			name = strings.TrimPrefix(k, keyState(""))
		case strings.HasPrefix(k, keyStep("")):
			name = strings.TrimPrefix(k, keyStep(""))
		default:
			continue
		}
		if configured[name] {
			continue
		}
		moves = append(moves, lake.Position{Key: k, From: cp[k], To: ""})
		if !strings.HasPrefix(k, keyState("")) {
			continue
		}
		states := map[string]*State{}
		if err := json.Unmarshal([]byte(cp[k]), &states); err != nil {
			return nil, nil, fmt.Errorf("state of removed rule %s: %w", name, err)
		}
		at, _ := time.Parse(time.RFC3339, cp[keyStep(name)])
		for _, g := range slices.Sorted(maps.Keys(states)) {
			st := states[g]
			if st.Status != Firing {
				continue
			}
			alerts = append(alerts, Alert{
				EventID: st.AlertID + "/" + Resolved, AlertID: st.AlertID, State: Resolved, Rule: name,
				Description: "The rule was removed from the configuration: its alert is closed without judging the condition again.",
				Team:        st.Team, Severity: st.Severity, Dimensions: st.Dims,
				WindowStart: at, WindowEnd: at, Value: math.NaN(), Reference: math.NaN(), Limit: math.NaN(),
				Since: st.Since, FiredAt: st.FiredAt, ResolvedAt: at,
			})
			r.log().Info("alert resolved: its rule was removed", "rule", name, "alert_id", st.AlertID)
		}
	}
	return alerts, moves, nil
}

// batchID names a commit by the checkpoint moves it makes: the same
// evaluation retried is the same batch.
func batchID(moves []lake.Position) string {
	h := sha256.New()
	for _, m := range moves {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00", m.Key, m.From, m.To)
	}
	return "alerts:" + hex.EncodeToString(h.Sum(nil))[:32]
}

// alertRows are the alerts as gold.alerts rows, numbered from seq+1.
func alertRows(t *lake.Table, seq int64, alerts []Alert) (arrow.RecordBatch, error) {
	out, err := t.NewRows()
	if err != nil {
		return nil, err
	}
	defer out.Release()
	for i, a := range alerts {
		dims, err := json.Marshal(a.Dimensions)
		if err != nil {
			return nil, err
		}
		out.Int64("seq", seq+int64(i)+1)
		out.String("event_id", a.EventID)
		out.String("alert_id", a.AlertID)
		out.String("state", a.State)
		out.String("rule", a.Rule)
		out.String("team", a.Team)
		out.String("severity", a.Severity)
		out.String("metric", a.Metric)
		out.String("dimensions", string(dims))
		out.Time("window_start", a.WindowStart)
		out.Time("window_end", a.WindowEnd)
		out.OptFloat64("value", defined(a.Value))
		out.OptFloat64("reference", defined(a.Reference))
		out.OptFloat64("fire_limit", defined(a.Limit))
		out.OptInt64("volume", &a.Volume)
		out.Time("since", a.Since)
		out.String("document", string(a.JSON()))
	}
	return out.Batch(), nil
}

// Recorded is a state change as gold.alerts holds it.
type Recorded struct {
	Seq   int64
	Alert Alert
}

// ReadAlerts returns gold.alerts' state changes with seq in (after, upto]
// (upto 0: no bound), in seq order, as of the table's current snapshot.
func ReadAlerts(ctx context.Context, t *lake.Table, after, upto int64) ([]Recorded, error) {
	var filter iceberg.BooleanExpression = iceberg.GreaterThan(iceberg.Reference("seq"), after)
	if upto > 0 {
		filter = iceberg.NewAnd(filter, iceberg.LessThanEqual(iceberg.Reference("seq"), upto))
	}
	var out []Recorded
	err := t.Scan(ctx, lake.ScanOptions{Filter: filter, Fields: []string{"seq", "document"}}, func(rec arrow.RecordBatch) error {
		seqs := rec.Column(0).(*array.Int64)
		docs := rec.Column(1).(*array.String)
		for i := range int(rec.NumRows()) {
			var a Alert
			if err := json.Unmarshal([]byte(docs.Value(i)), &a); err != nil {
				return fmt.Errorf("gold.alerts seq %d: %w", seqs.Value(i), err)
			}
			out = append(out, Recorded{Seq: seqs.Value(i), Alert: a})
		}
		return nil
	})
	slices.SortFunc(out, func(a, b Recorded) int { return int(a.Seq - b.Seq) })
	return out, err
}
