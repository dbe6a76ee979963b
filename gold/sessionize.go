package gold

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"slices"
	"time"
)

// End reasons of a gold.sessions row.
const (
	EndStop    = "stop"     // the player sent STOP
	EndError   = "error"    // the player sent ERROR
	EndTimeout = "timeout"  // no event for longer than the timeout, as the watermark shows
	EndNewPlay = "new_play" // a new PLAY of the same user and video (not a resume after PAUSE) began the next session
	EndOpen    = "open"     // none of these yet: the watermark has not passed session_end + timeout
)

// DefaultSessionTimeout is the inactivity timeout sessions are cut with
// by default: a player that sends nothing for longer has gone.
const DefaultSessionTimeout = 2 * time.Minute

// Device sources of a gold.sessions row.
const (
	DeviceFromPlayer = "player" // the player sent device_type, os or browser
	DeviceFromCDN    = "cdn"    // parsed from the user agent of a CDN request the session's events name
)

// seekBufferWindow is how close to a SEEK a stall-type BUFFER must be to
// count as the seek's buffering rather than a stall. The reference SDK
// sends both from one handler when playback resumes after a seek (BUFFER
// with buffer_type ScreenFreezedBuffer, then SEEK), so they are
// milliseconds apart; other versions send the BUFFER just after the SEEK.
const seekBufferWindow = 250 * time.Millisecond

// playerEvent is one silver.player_events row as sessions read it. Absent
// numbers are NaN or the has* flags; absent strings are "".
type playerEvent struct {
	id, typ     string
	t           int64 // event_time, Unix microseconds
	sessionID   string
	user, video string

	ttff, bufMs                      float64
	hasTTFF, hasBufMs                bool
	bufType, direction, tracking     string
	bitrate, from, to                int64
	hasBitrate, hasFrom, hasTo       bool
	conn, country, isp               string
	app, appVersion, device, os, brw string
}

// groupKey is what sessions are cut from: the events of one player
// session_id, or when the player sends none, of one (user_key, video_id).
type groupKey struct {
	sessionID, user, video string
}

func groupOf(e *playerEvent) groupKey {
	if e.sessionID != "" {
		return groupKey{sessionID: e.sessionID}
	}
	return groupKey{user: e.user, video: e.video}
}

// byID reports whether the group is a player's session id, which is one
// session whatever its events say.
func (g groupKey) byID() bool { return g.sessionID != "" }

// eventRank orders the events of one instant: a PLAY opens before the
// events it leads to, and ERROR and STOP close after the events of the
// same instant (a stall and the error it ended in, reported together).
func eventRank(typ string) int {
	switch typ {
	case "pause":
		// A PAUSE and the PLAY that resumes it in one millisecond: the
		// pause came first.
		return 0
	case "play":
		return 1
	case "firstframe":
		return 2
	case "error", "stop":
		return 4
	}
	return 3
}

// compareEvents is the order sessions are cut in: event time, then
// eventRank, then event_id, so the cut never depends on arrival order.
func compareEvents(a, b *playerEvent) int {
	return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(eventRank(a.typ), eventRank(b.typ)), cmp.Compare(a.id, b.id))
}

// cutSessions splits the sorted events of one group into sessions
// (CTA-2066 playback sessions of players that send no session id): a new
// session starts at the group's first event, at a PLAY once the current
// session has had its PLAY or has ended (STOP or ERROR), and at an event
// more than timeout after the previous one. A group that is a player's
// session id is one session. It returns the index each session starts at.
func cutSessions(g groupKey, evs []*playerEvent, timeout int64) []int {
	if len(evs) == 0 {
		return nil
	}
	starts := []int{0}
	if g.byID() {
		return starts
	}
	hadPlay, ended, paused := false, false, false
	for i, e := range evs {
		// A PLAY while paused resumes the session (players send PLAY on
		// the video element's play event, resume included), whatever came
		// between (a seek while paused); only a PLAY after another PLAY,
		// a STOP or an ERROR begins a new one.
		if i > 0 && e.id == evs[i-1].id {
			continue // a late duplicate (see summarise)
		}
		resume := paused && !ended
		if i > 0 && (e.t-evs[i-1].t > timeout || (e.typ == "play" && !resume && (hadPlay || ended))) {
			starts = append(starts, i)
			hadPlay, ended, paused = false, false, false
		}
		switch e.typ {
		case "play":
			hadPlay, paused = true, false
		case "pause":
			paused = true
		case "error", "stop":
			ended = true
		}
	}
	return starts
}

// session is one gold.sessions row and what computing it needs besides.
type session struct {
	sessionRow
	// What the CDN join needs, not stored: the FIRSTFRAME's request and
	// every request the session's events name, with the event times.
	ff       int64
	ffTrack  string
	requests []namedRequest
	ended    bool // by STOP or ERROR
	errored  bool
}

// sessionRow is the stored columns of a gold.sessions row.
type sessionRow struct {
	key, sessionID, user, video string
	start, end                  int64 // Unix microseconds

	attempt, started                               bool
	startTimeMs                                    float64
	hasStartTime                                   bool
	startFailure, exitBeforeStart, playbackFailure bool
	stallCount                                     int64
	stallMs, watchS, bitsPlayed                    float64
	switchesUp, switchesDown, events               int64
	endReason                                      string
	country, isp, conn, app, appVersion            string
	device, os, browser, deviceSource              string
	networkSource                                  string
	edgeLocation, pop, edgeResult                  string
}

// namedRequest is a CDN request id (lower-case, as silver keeps the
// player's cdn_tracking_id) named by an event at time t.
type namedRequest struct {
	id string
	t  int64
}

// sessionKey is the player's session id, or a stable hash of the user,
// the video and the session's first event, which no other session holds.
func sessionKey(g groupKey, first *playerEvent) string {
	if g.byID() {
		return g.sessionID
	}
	h := sha256.New()
	for _, s := range []string{first.user, first.video, first.id} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// summarise computes one session from its sorted events (CTA-2066
// definitions, see SessionsTable). cut is how the group's next session
// began (EndNewPlay or EndTimeout), "" when none follows; then watermark
// and timeout decide whether a session that did not end has timed out.
func summarise(g groupKey, evs []*playerEvent, cut string, watermark, timeout int64) session {
	first := evs[0]
	s := session{sessionRow: sessionRow{
		key: sessionKey(g, first), sessionID: g.sessionID,
		start: first.t, end: evs[len(evs)-1].t, events: int64(len(evs)),
	}}
	var (
		playEnd  int64   // end of play: the ending event, else the last one
		rate     float64 // bitrate in effect, bits per second
		rateFrom int64   // since when it applies (once started)
		seeks    []int64
		stalls   []struct {
			t  int64
			ms float64
		}
	)
	setRate := func(bps float64, t int64) {
		if s.started {
			s.bitsPlayed += rate * float64(t-rateFrom) / 1e6
			rateFrom = t
		}
		rate = bps
	}
	for i, e := range evs {
		// A duplicate later than silver's lateness window reached silver
		// twice; sorted by id within an instant, it sits next to its twin.
		if i > 0 && e.id == evs[i-1].id {
			s.events--
			continue
		}
		s.user = firstNonEmpty(s.user, e.user)
		s.video = firstNonEmpty(s.video, e.video)
		s.conn = firstNonEmpty(s.conn, e.conn)
		s.country = firstNonEmpty(s.country, e.country)
		s.isp = firstNonEmpty(s.isp, e.isp)
		s.app = firstNonEmpty(s.app, e.app)
		s.appVersion = firstNonEmpty(s.appVersion, e.appVersion)
		s.device = firstNonEmpty(s.device, e.device)
		s.os = firstNonEmpty(s.os, e.os)
		s.browser = firstNonEmpty(s.browser, e.brw)
		if e.tracking != "" {
			s.requests = append(s.requests, namedRequest{e.tracking, e.t})
		}
		if s.ended {
			// Events after STOP or ERROR are counted, and nothing else.
			continue
		}
		playEnd = e.t
		switch e.typ {
		case "play":
			s.attempt = true
		case "firstframe":
			if s.started {
				break
			}
			s.started, s.ff, s.ffTrack = true, e.t, e.tracking
			s.startTimeMs, s.hasStartTime = e.ttff, e.hasTTFF
			rateFrom = e.t
		case "error":
			// A start failure needs an attempt: a session cut from its
			// PLAY by silence (a player quiet through a long stall) was
			// playing, and its error is a playback failure.
			s.ended, s.errored, s.endReason = true, true, EndError
			s.startFailure = s.attempt && !s.started
			s.playbackFailure = !s.startFailure
		case "stop":
			s.ended, s.endReason = true, EndStop
		case "buffer":
			if s.started && (e.bufType == "screenfreezedbuffer" || e.bufType == "rebuffer") {
				ms := 0.0
				if e.hasBufMs {
					ms = e.bufMs
				}
				stalls = append(stalls, struct {
					t  int64
					ms float64
				}{e.t, ms})
			}
		case "seek":
			seeks = append(seeks, e.t)
		case "step":
			// A step from 0 is the player's first choice of rendition.
			if !(e.hasFrom && e.from == 0) {
				switch e.direction {
				case "up":
					s.switchesUp++
				case "down":
					s.switchesDown++
				}
			}
			if e.hasTo {
				setRate(float64(e.to), e.t)
			}
			continue
		}
		if e.hasBitrate && e.bitrate > 0 {
			setRate(float64(e.bitrate), e.t)
		}
	}
	if s.started {
		s.bitsPlayed += rate * float64(playEnd-rateFrom) / 1e6
		s.watchS = float64(playEnd-s.ff) / 1e6
	}
	window := seekBufferWindow.Microseconds()
	for _, st := range stalls {
		i, _ := slices.BinarySearch(seeks, st.t-window)
		if i < len(seeks) && seeks[i] <= st.t+window {
			continue // the seek's buffering
		}
		s.stallCount++
		s.stallMs += st.ms
	}
	switch {
	case s.ended:
	case cut != "":
		s.endReason = cut
	case watermark > s.end+timeout:
		s.endReason = EndTimeout
	default:
		s.endReason = EndOpen
	}
	s.exitBeforeStart = exitsBeforeStart(&s)
	return s
}

// exitsBeforeStart is CTA-2066 exit before video start: an attempt that
// ended before its first frame without an error (STOP, a new PLAY, or
// silence past the timeout).
func exitsBeforeStart(s *session) bool {
	return s.attempt && !s.started && !s.errored && s.endReason != EndOpen
}

// noNext says that no event of the group follows the events given to
// sessionsOf.
const noNext = math.MinInt64

// sessionsOf cuts and summarises the sorted events of one group. next is
// the time of the group's first event after them, which begins a session
// (noNext when there is none): it says how the last one ended.
func sessionsOf(g groupKey, evs []*playerEvent, next, watermark, timeout int64) []session {
	starts := cutSessions(g, evs, timeout)
	out := make([]session, len(starts))
	for i, from := range starts {
		to, cut := len(evs), ""
		nextT := next
		if i+1 < len(starts) {
			to, nextT = starts[i+1], evs[starts[i+1]].t
		}
		if nextT != noNext && !g.byID() {
			cut = EndNewPlay
			if nextT-evs[to-1].t > timeout {
				cut = EndTimeout
			}
		}
		out[i] = summarise(g, evs[from:to], cut, watermark, timeout)
	}
	return out
}

func firstNonEmpty(have, v string) string {
	if have != "" {
		return have
	}
	return v
}
