package alerts

import (
	"fmt"
	"time"
)

// The states an alert's group is in between steps; a group in none of them
// (the usual case) has no State at all.
const (
	// Pending: the condition holds, not yet for the rule's For.
	Pending = "pending"
	// Firing: the alert fired and has not resolved.
	Firing = "firing"
	// Cooldown: the alert resolved; it may not fire again until Until.
	Cooldown = "cooldown"
)

// The state changes an alert publishes.
const (
	Fired    = "fired"
	Resolved = "resolved"
)

// State is one rule group's life cycle between steps. It is what survives a
// restart (with the step it was computed at), so a restart in the middle of
// an incident neither fires it again nor forgets how long a condition has
// held.
type State struct {
	Status string `json:"status"`
	// Since is the end of the first step of the current run of breaching
	// steps (pending, firing) or of clear steps (ClearSince, while firing).
	Since      time.Time `json:"since"`
	ClearSince time.Time `json:"clear_since,omitzero"`
	// AlertID names the incident from firing to resolving.
	AlertID string    `json:"alert_id,omitempty"`
	FiredAt time.Time `json:"fired_at,omitzero"`
	// Until ends a cooldown.
	Until time.Time `json:"until,omitzero"`
	// Team, Severity and Dims are the firing alert's, kept so it can be
	// closed even after its rule is removed from the configuration.
	Team     string            `json:"team,omitempty"`
	Severity string            `json:"severity,omitempty"`
	Dims     map[string]string `json:"dims,omitempty"`
}

// Observation is what a step found for one group.
type Observation struct {
	Value, Reference float64
	// Fire and Clear are the limits the condition derived (Limits).
	Fire, Clear float64
	Volume      int64
	Breach      bool // past Fire, with enough volume
	Clears      bool // within Clear, or too little volume to judge
}

// Transition is a state change of one group at one step.
type Transition struct {
	State   string // Fired or Resolved
	AlertID string
	Since   time.Time // when the condition started to hold
	FiredAt time.Time
}

// advance moves a group's state over the step ending at t. st is nil for a
// group in no state; the returned state is nil when the group leaves every
// state. At most one transition happens per step.
func (r Rule) advance(st *State, t time.Time, o Observation, group string) (*State, *Transition) {
	if st != nil && st.Status == Cooldown {
		if t.Before(st.Until) {
			return st, nil
		}
		st = nil // the cooldown is over: judge this step afresh
	}
	if st == nil {
		if !o.Breach {
			return nil, nil
		}
		st = &State{Status: Pending, Since: t}
	} else if st.Status == Pending && !o.Breach {
		return nil, nil
	}
	switch st.Status {
	case Pending:
		if held(st.Since, t) < r.For.D() {
			return st, nil
		}
		id := fmt.Sprintf("%s/%s/%s", r.Name, group, st.Since.UTC().Format(time.RFC3339))
		next := &State{Status: Firing, Since: st.Since, AlertID: id, FiredAt: t}
		return next, &Transition{State: Fired, AlertID: id, Since: st.Since, FiredAt: t}
	case Firing:
		if !o.Clears {
			st.ClearSince = time.Time{}
			return st, nil
		}
		if st.ClearSince.IsZero() {
			st.ClearSince = t
		}
		if held(st.ClearSince, t) < r.resolveFor() {
			return st, nil
		}
		tr := &Transition{State: Resolved, AlertID: st.AlertID, Since: st.Since, FiredAt: st.FiredAt}
		if r.Cooldown <= 0 {
			return nil, tr
		}
		return &State{Status: Cooldown, Since: st.Since, AlertID: st.AlertID, Until: t.Add(r.Cooldown.D())}, tr
	}
	return st, nil
}

// resolveFor is ResolveFor, For by default.
func (r Rule) resolveFor() time.Duration {
	if r.ResolveFor > 0 {
		return r.ResolveFor.D()
	}
	return r.For.D()
}

// held is how long a condition true at every step from the one ending at
// since to the one ending at t has held: each step stands for its minute,
// so two steps in a row are two minutes.
func held(since, t time.Time) time.Duration { return t.Sub(since) + time.Minute }
