package gold

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/qoslake/qoslake/silver"
)

// ev builds a silver player event of user u and video v at sec seconds
// after base; opts set the type's fields.
func ev(u, v, typ string, sec float64, opts ...func(*silver.PlayerRow)) silver.PlayerRow {
	at := base.Add(time.Duration(sec * float64(time.Second)))
	r := silver.PlayerRow{EventID: fmt.Sprintf("%s-%s-%s-%g", u, v, typ, sec), EventType: typ, EventTime: at,
		UserKey: u, VideoID: v, IngestTime: at.Add(time.Second)}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func ttff(ms float64) func(*silver.PlayerRow) {
	return func(r *silver.PlayerRow) { r.TimeToFirstFrame = &ms }
}

func buffer(typ string, ms float64) func(*silver.PlayerRow) {
	return func(r *silver.PlayerRow) { r.BufferType, r.BufferDuration = typ, &ms }
}

func step(from, to int64, dir string) func(*silver.PlayerRow) {
	return func(r *silver.PlayerRow) { r.BitrateFrom, r.BitrateTo, r.Direction = &from, &to, dir }
}

func bitrate(bps int64) func(*silver.PlayerRow) {
	return func(r *silver.PlayerRow) { r.Bitrate = &bps }
}

func tracking(id string) func(*silver.PlayerRow) {
	return func(r *silver.PlayerRow) { r.CDNTrackingID = silver.JoinKey(id) }
}

func sessionIDOf(id string) func(*silver.PlayerRow) {
	return func(r *silver.PlayerRow) { r.SessionID = id }
}

// summariseRows cuts sessions from silver rows as the stage does, without
// a lake.
func summariseRows(rows []silver.PlayerRow, watermark time.Time) []session {
	groups := map[groupKey][]*playerEvent{}
	for _, r := range rows {
		e := &playerEvent{id: r.EventID, typ: r.EventType, t: r.EventTime.UnixMicro(), sessionID: r.SessionID,
			user: r.UserKey, video: r.VideoID, bufType: r.BufferType, direction: r.Direction, tracking: r.CDNTrackingID,
			device: r.Device, os: r.OS, brw: r.Browser}
		if r.TimeToFirstFrame != nil {
			e.ttff, e.hasTTFF = *r.TimeToFirstFrame, true
		}
		if r.BufferDuration != nil {
			e.bufMs, e.hasBufMs = *r.BufferDuration, true
		}
		if r.Bitrate != nil {
			e.bitrate, e.hasBitrate = *r.Bitrate, true
		}
		if r.BitrateFrom != nil {
			e.from, e.hasFrom = *r.BitrateFrom, true
		}
		if r.BitrateTo != nil {
			e.to, e.hasTo = *r.BitrateTo, true
		}
		groups[groupOf(e)] = append(groups[groupOf(e)], e)
	}
	var out []session
	for g, evs := range groups {
		slices.SortFunc(evs, compareEvents)
		out = append(out, sessionsOf(g, evs, noNext, watermark.UnixMicro(), DefaultSessionTimeout.Microseconds())...)
	}
	slices.SortFunc(out, func(a, b session) int { return int(a.start - b.start) })
	return out
}

// TestSessionDefinition checks how sessions are cut and what each
// CTA-2066 metric counts, on hand-made event sequences.
func TestSessionDefinition(t *testing.T) {
	open := base.Add(time.Minute)      // the watermark has not passed any session's end + 2 minutes
	closed := base.Add(24 * time.Hour) // it has passed every one
	type want struct {
		reason                                  string
		attempt, started, failure, exit, failed bool
		startMs                                 float64
		stalls                                  int64
		stallMs, watch, bits                    float64
		up, down, events                        int64
	}
	tests := []struct {
		name string
		rows []silver.PlayerRow
		wm   time.Time
		want []want
	}{
		{"a whole session", []silver.PlayerRow{
			ev("u", "v", "play", 0), ev("u", "v", "firstframe", 1.5, ttff(1500), bitrate(1_000_000)),
			ev("u", "v", "step", 1.505, step(0, 1_000_000, "down")), ev("u", "v", "buffer", 1.52, buffer("firstbuffer", 1520)),
			ev("u", "v", "stream", 6.5), ev("u", "v", "step", 11.5, step(1_000_000, 2_000_000, "up")),
			ev("u", "v", "buffer", 15, buffer("screenfreezedbuffer", 800)), ev("u", "v", "step", 15.001, step(2_000_000, 1_000_000, "down")),
			ev("u", "v", "stop", 21.5, bitrate(1_000_000)),
		}, open, []want{{reason: EndStop, attempt: true, started: true, startMs: 1500, stalls: 1, stallMs: 800, watch: 20,
			bits: 1_000_000*10 + 2_000_000*3.501 + 1_000_000*6.499, up: 1, down: 1, events: 9}}},
		{"stop, then play again: two sessions", []silver.PlayerRow{
			ev("u", "v", "play", 0), ev("u", "v", "firstframe", 1, ttff(1000)), ev("u", "v", "stop", 30),
			ev("u", "v", "play", 40), ev("u", "v", "firstframe", 41, ttff(900)),
		}, open, []want{
			{reason: EndStop, attempt: true, started: true, startMs: 1000, watch: 29, events: 3},
			{reason: EndOpen, attempt: true, started: true, startMs: 900, events: 2},
		}},
		{"a second play starts a new session, the first exits before start", []silver.PlayerRow{
			ev("u", "v", "play", 0), ev("u", "v", "play", 5), ev("u", "v", "firstframe", 6, ttff(1000)), ev("u", "v", "stream", 11),
		}, open, []want{
			{reason: EndNewPlay, attempt: true, exit: true, events: 1},
			{reason: EndOpen, attempt: true, started: true, startMs: 1000, watch: 5, events: 3},
		}},
		{"play after a pause resumes the session", []silver.PlayerRow{
			ev("u", "v", "play", 0), ev("u", "v", "firstframe", 1, ttff(1000)), ev("u", "v", "pause", 10),
			ev("u", "v", "play", 40), ev("u", "v", "stop", 50),
		}, open, []want{
			{reason: EndStop, attempt: true, started: true, startMs: 1000, watch: 49, events: 5},
		}},
		{"a seek while paused, then play: still one session", []silver.PlayerRow{
			ev("u", "v", "play", 0), ev("u", "v", "firstframe", 1, ttff(1000)), ev("u", "v", "pause", 10),
			ev("u", "v", "seek", 20), ev("u", "v", "play", 30), ev("u", "v", "stop", 50),
		}, open, []want{
			{reason: EndStop, attempt: true, started: true, startMs: 1000, watch: 49, events: 6},
		}},
		{"pause and play in one millisecond: the pause came first", []silver.PlayerRow{
			ev("u", "v", "play", 0), ev("u", "v", "firstframe", 1, ttff(1000)), ev("u", "v", "play", 10),
			ev("u", "v", "pause", 10), ev("u", "v", "stop", 50),
		}, open, []want{
			{reason: EndStop, attempt: true, started: true, startMs: 1000, watch: 49, events: 5},
		}},
		{"an error after silence past the timeout is a playback failure", []silver.PlayerRow{
			ev("u", "v", "play", 0), ev("u", "v", "firstframe", 1, ttff(1000)), ev("u", "v", "stream", 6),
			ev("u", "v", "error", 6+150),
		}, closed, []want{
			{reason: EndTimeout, attempt: true, started: true, startMs: 1000, watch: 5, events: 3},
			{reason: EndError, failed: true, events: 1},
		}},
		{"a late duplicate counts once", []silver.PlayerRow{
			ev("u", "v", "play", 0), ev("u", "v", "play", 0), ev("u", "v", "firstframe", 1, ttff(1000)),
			ev("u", "v", "stop", 20),
		}, open, []want{
			{reason: EndStop, attempt: true, started: true, startMs: 1000, watch: 19, events: 3},
		}},
		{"silence past the timeout: two sessions, both timed out", []silver.PlayerRow{
			ev("u", "v", "play", 0), ev("u", "v", "firstframe", 1, ttff(1000)), ev("u", "v", "stream", 6),
			ev("u", "v", "stream", 6+121), ev("u", "v", "stream", 6+126),
		}, closed, []want{
			{reason: EndTimeout, attempt: true, started: true, startMs: 1000, watch: 5, events: 3},
			{reason: EndTimeout, events: 2},
		}},
		{"a play joins a session that had none", []silver.PlayerRow{
			ev("u", "v", "stream", 0), ev("u", "v", "play", 1), ev("u", "v", "firstframe", 2, ttff(700)),
		}, open, []want{{reason: EndOpen, attempt: true, started: true, startMs: 700, events: 3}}},
		{"exit before start: play, then silence", []silver.PlayerRow{ev("u", "v", "play", 0)}, closed,
			[]want{{reason: EndTimeout, attempt: true, exit: true, events: 1}}},
		{"not yet an exit while open", []silver.PlayerRow{ev("u", "v", "play", 0)}, open,
			[]want{{reason: EndOpen, attempt: true, events: 1}}},
		{"exit before start: play, then stop", []silver.PlayerRow{ev("u", "v", "play", 0), ev("u", "v", "stop", 3)}, open,
			[]want{{reason: EndStop, attempt: true, exit: true, events: 2}}},
		{"start failure", []silver.PlayerRow{ev("u", "v", "play", 0), ev("u", "v", "error", 1.5)}, closed,
			[]want{{reason: EndError, attempt: true, failure: true, events: 2}}},
		{"playback failure; events after the error are only counted", []silver.PlayerRow{
			ev("u", "v", "play", 0), ev("u", "v", "firstframe", 1, ttff(1000)),
			ev("u", "v", "buffer", 9, buffer("screenfreezedbuffer", 500)), ev("u", "v", "error", 9),
			ev("u", "v", "buffer", 12, buffer("screenfreezedbuffer", 700)),
		}, open, []want{{reason: EndError, attempt: true, started: true, startMs: 1000, failed: true, stalls: 1, stallMs: 500, watch: 8, events: 5}}},
		{"what is not a stall", []silver.PlayerRow{
			ev("u", "v", "play", 0), ev("u", "v", "buffer", 0.5, buffer("screenfreezedbuffer", 400)), // before the first frame
			ev("u", "v", "firstframe", 1, ttff(1000)), ev("u", "v", "buffer", 1.01, buffer("firstbuffer", 1010)),
			ev("u", "v", "buffer", 20, buffer("screenfreezedbuffer", 600)), ev("u", "v", "seek", 20),
			ev("u", "v", "seek", 30), ev("u", "v", "buffer", 30.2, buffer("screenfreezedbuffer", 150)), // the seek's buffering
			ev("u", "v", "buffer", 40, buffer("rebuffer", 300)), ev("u", "v", "seek", 41), // a stall a second before a seek
		}, open, []want{{reason: EndOpen, attempt: true, started: true, startMs: 1000, stalls: 1, stallMs: 300, watch: 40, events: 10}}},
		{"a session id is one session whatever its events say", []silver.PlayerRow{
			ev("u", "v", "play", 0, sessionIDOf("S1")), ev("u", "v", "firstframe", 1, ttff(1000), sessionIDOf("S1")),
			ev("u", "v", "stop", 10, sessionIDOf("S1")), ev("u", "v", "play", 300, sessionIDOf("S1")),
		}, open, []want{{reason: EndStop, attempt: true, started: true, startMs: 1000, watch: 9, events: 4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summariseRows(tt.rows, tt.wm)
			if len(got) != len(tt.want) {
				t.Fatalf("%d sessions, want %d: %+v", len(got), len(tt.want), got)
			}
			for i, w := range tt.want {
				s := got[i]
				g := want{reason: s.endReason, attempt: s.attempt, started: s.started, failure: s.startFailure, exit: s.exitBeforeStart,
					failed: s.playbackFailure, startMs: s.startTimeMs, stalls: s.stallCount, stallMs: s.stallMs, watch: s.watchS,
					bits: s.bitsPlayed, up: s.switchesUp, down: s.switchesDown, events: s.events}
				if math.Abs(g.bits-w.bits) < 1e-3 {
					g.bits = w.bits
				}
				if math.Abs(g.watch-w.watch) < 1e-9 {
					g.watch = w.watch
				}
				if g != w {
					t.Errorf("session %d:\n got %+v\nwant %+v", i, g, w)
				}
			}
		})
	}
}
