package gold

import (
	"context"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/qoslake/qoslake/lake"
	"github.com/qoslake/qoslake/silver"
)

// sessionMinuteTotals reads gold.session_minute: sessions and stall
// counts per window.
func sessionMinuteTotals(t *testing.T, tbl *lake.Table) map[int64][2]int64 {
	t.Helper()
	if _, err := tbl.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := map[int64][2]int64{}
	err := tbl.Scan(context.Background(), lake.ScanOptions{}, func(r arrow.RecordBatch) error {
		ws := column[*array.Timestamp](r, "window_start")
		n, stalls := column[*array.Int64](r, "sessions"), column[*array.Int64](r, "stall_count")
		for i := range int(r.NumRows()) {
			v := out[int64(ws.Value(i))]
			out[int64(ws.Value(i))] = [2]int64{v[0] + n.Value(i), v[1] + stalls.Value(i)}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sessionsByEnd counts gold.sessions per minute of session_end, with their
// stalls: what gold.session_minute must hold.
func sessionsByEnd(t *testing.T, e sessionsEnv) map[int64][2]int64 {
	t.Helper()
	out := map[int64][2]int64{}
	for _, s := range readGoldSessions(t, e) {
		w := windowOf(s.end)
		v := out[w]
		out[w] = [2]int64{v[0] + 1, v[1] + s.stallCount}
	}
	return out
}

// TestSessionMinuteFollowsSessions: a session that plays on moves from the
// minute of its last event to a later one; gold.session_minute follows
// gold.sessions' change feed and counts each session once, in the minute
// it ends in now, the minute it left emptied.
func TestSessionMinuteFollowsSessions(t *testing.T) {
	dir := t.TempDir()
	e := openSessions(t, dir)
	sm, err := func() (*lake.Table, error) {
		l, err := lake.Open(context.Background(), lake.Options{URI: dir + "/c.db", Warehouse: dir + "/w"})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { l.Close() })
		return l.Ensure(context.Background(), SessionMinuteTable)
	}()
	if err != nil {
		t.Fatal(err)
	}
	stage := &SessionMinuteStage{Sessions: e.gold, Gold: sm}
	step := func(rows []silver.PlayerRow) {
		t.Helper()
		commitPlayerEvents(t, e, rows)
		drainSessions(t, e)
		if err := stage.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		want, got := sessionsByEnd(t, e), sessionMinuteTotals(t, sm)
		for w, v := range want {
			if got[w] != v {
				t.Errorf("minute %s: session_minute %v, sessions %v", time.UnixMicro(w).UTC().Format("15:04"), got[w], v)
			}
		}
		for w, v := range got {
			if _, ok := want[w]; !ok && v != [2]int64{} {
				t.Errorf("minute %s: session_minute holds %v, no session ends there", time.UnixMicro(w).UTC().Format("15:04"), v)
			}
		}
	}
	// Two sessions end in minute 0; then one plays on into minute 2 with
	// a stall, and a third begins.
	step([]silver.PlayerRow{
		ev("a", "v", "play", 0), ev("a", "v", "firstframe", 1, ttff(900)), ev("a", "v", "stream", 30),
		ev("b", "v", "play", 10), ev("b", "v", "firstframe", 12, ttff(2000)), ev("b", "v", "stop", 50),
	})
	step([]silver.PlayerRow{
		ev("a", "v", "stream", 60), ev("a", "v", "buffer", 100, buffer("screenfreezedbuffer", 700)), ev("a", "v", "stream", 130),
		ev("c", "w", "play", 125),
	})
	if got := sessionMinuteTotals(t, sm)[base.UnixMicro()]; got[0] != 1 {
		t.Errorf("minute 0 after a moved on: %v sessions, want 1 (b)", got)
	}

	// A change feed that cannot say (its snapshot expired) recomputes
	// every window of both tables: the stale ones too.
	touched, _, err := changedWindows(context.Background(), e.gold, sm, "session_end", lake.SnapshotPos{SnapshotID: 42, SequenceNumber: 1}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for w := range sessionMinuteTotals(t, sm) {
		if !touched[w] {
			t.Errorf("whole recompute after expiry misses window %s", time.UnixMicro(w).UTC().Format("15:04"))
		}
	}
}
