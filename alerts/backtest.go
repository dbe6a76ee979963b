package alerts

import (
	"context"
	"fmt"
	"time"

	"github.com/qoslake/qoslake/lake"
)

// Backtest judges the rules over gold's history from from to to, each rule
// up to the last step its sources have closed, exactly as the live runner
// would have (the same Evaluator.Step, from a clean state), and returns
// every state change it would have sent. Nothing is written or published:
// a team tunes a rule with it before the rule pages anyone.
func Backtest(ctx context.Context, ev *Evaluator, rules []Rule, from, to time.Time) ([]Alert, error) {
	tables := make([]*lake.Table, 0, len(ev.Tables))
	for _, t := range ev.Tables {
		if _, err := t.Refresh(ctx); err != nil {
			return nil, err
		}
		tables = append(tables, t)
	}
	pins, err := lake.Pin(ctx, tables...)
	if err != nil {
		return nil, err
	}
	var out []Alert
	for _, r := range rules {
		closed, ok, err := ev.Closed(ctx, pins, r)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		end := to
		if closed.Before(end) {
			end = closed
		}
		states := map[string]*State{}
		for t := from.Truncate(time.Minute).Add(time.Minute); !t.After(end); t = t.Add(time.Minute) {
			alerts, err := ev.Step(ctx, pins, r, states, t)
			if err != nil {
				return nil, err
			}
			out = append(out, alerts...)
		}
	}
	return out, nil
}

// Active returns the incidents of the recorded changes that fired and have
// not resolved, in the order they fired.
func Active(recorded []Recorded) []Alert {
	resolved := map[string]bool{}
	for _, r := range recorded {
		if r.Alert.State == Resolved {
			resolved[r.Alert.AlertID] = true
		}
	}
	var out []Alert
	for _, r := range recorded {
		if r.Alert.State == Fired && !resolved[r.Alert.AlertID] {
			out = append(out, r.Alert)
		}
	}
	return out
}

// Line is an alert state change on one line, for a terminal.
func (a Alert) Line() string {
	return fmt.Sprintf("%s  %-8s %-8s %-16s %-10s %s  %s (%s)", a.WindowEnd.UTC().Format("2006-01-02 15:04"), a.State,
		a.Severity, a.Rule, a.Team, a.Where(), formatValue(a.Value, a.Unit), a.Delta())
}
