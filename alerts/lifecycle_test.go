package alerts

import (
	"strings"
	"testing"
	"time"
)

// TestLifeCycle drives one group through the life cycle minute by minute:
// a breach shorter than For fires nothing; one that holds fires once, stays
// quiet while it lasts (a dip shorter than ResolveFor does not resolve it),
// resolves once, and the cooldown keeps a new breach from firing until it
// ends.
func TestLifeCycle(t *testing.T) {
	r := Rule{Name: "edge_latency", For: Duration(2 * time.Minute), ResolveFor: Duration(3 * time.Minute),
		Cooldown: Duration(5 * time.Minute)}
	// One letter per minute: B breach, c clear, - neither (between the
	// limits: still breaching for firing purposes, not clear).
	steps := "BcBB-ccBcccBBBBBB"
	var got []string
	var st *State
	t0 := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	for i, c := range steps {
		at := t0.Add(time.Duration(i+1) * time.Minute)
		o := Observation{Breach: c == 'B', Clears: c == 'c'}
		var tr *Transition
		st, tr = r.advance(st, at, o, "FRA56-P3")
		if tr != nil {
			got = append(got, at.Format("15:04")+" "+tr.State+" "+tr.AlertID)
		}
	}
	want := []string{
		// 12:01 breaches once only; 12:03 and 12:04 hold two minutes.
		"12:04 fired edge_latency/FRA56-P3/2026-03-02T12:03:00Z",
		// Two clear minutes (12:06, 12:07) are not three; 12:09-12:11 are.
		"12:11 resolved edge_latency/FRA56-P3/2026-03-02T12:03:00Z",
		// Breaches 12:12-12:15 fall in the cooldown, which ends at 12:16.
		"12:17 fired edge_latency/FRA56-P3/2026-03-02T12:16:00Z",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("transitions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestFireAtOnceWithoutFor: For 0 fires on the first breaching step and
// ResolveFor 0 resolves on the first clear one.
func TestFireAtOnceWithoutFor(t *testing.T) {
	r := Rule{Name: "x"}
	at := time.Date(2026, 3, 2, 12, 1, 0, 0, time.UTC)
	st, tr := r.advance(nil, at, Observation{Breach: true}, "g")
	if tr == nil || tr.State != Fired || st.Status != Firing {
		t.Fatalf("first breach: %+v %+v", st, tr)
	}
	st, tr = r.advance(st, at.Add(time.Minute), Observation{Clears: true}, "g")
	if tr == nil || tr.State != Resolved || st != nil {
		t.Fatalf("first clear: %+v %+v", st, tr)
	}
}
