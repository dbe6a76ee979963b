package gold

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"

	"github.com/qoslake/qoslake/lake"
)

// SessionDimensions are the grouping columns of gold.session_minute
// besides window_start: the session's video, network and device (the
// device from the player, else from the user agent of its CDN requests,
// device_source saying which), and the edge location and cache result of
// its first frame's request.
var SessionDimensions = []string{"video_id", "country", "isp", "connection_type", "app_type", "app_version",
	"device_type", "os", "browser", "device_source", "edge_location", "edge_result_type"}

// SessionMinuteTable is gold.session_minute: gold.sessions summed per
// minute of session_end (the session's last event so far) and dimension.
// A session counts once, in the minute of its last event; while it plays
// on, it moves to a later minute. So a session's CTA-2066 values — which
// need the whole session, like the rebuffering ratio's watch time and
// whether the start failed — are mergeable per minute, and a window's
// value is that of the sessions whose last event falls in it:
//
//   - video start failure ratio = start_failures / attempts; exit before
//     video start ratio = exits_before_start / attempts; playback failure
//     ratio = playback_failures / started; failure share = (start_failures
//   - playback_failures) / attempts;
//   - rebuffering ratio = stall_ms_sum / 1000 / watch_time_s_sum;
//     rebuffering frequency = stall_count per watched minute;
//   - average bitrate = bits_played_sum / watch_time_s_sum;
//   - video start time from start_time_ms_sum / start_time_ms_count and the
//     start_time_le_* buckets — by edge_location and edge_result_type, the
//     time to first frame per edge and cache result.
var SessionMinuteTable = lake.TableDef{
	Namespace: Namespace,
	Name:      "session_minute",
	Doc: "Playback sessions (gold.sessions) per minute of their last event and video, network, device and first-frame edge: " +
		"mergeable CTA-2066 session counts and sums (sum rows first, then divide or take quantiles).",
	Columns: slices.Concat([]lake.Column{
		{Name: "window_start", Type: tstz, Required: true, Doc: "start of the one-minute window holding the sessions' session_end (last event time)"},
		{Name: "video_id", Type: str, Doc: "video id"},
		{Name: "country", Type: str, Doc: "ISO 3166-1 alpha-2 country of the client"},
		{Name: "isp", Type: str, Doc: "ISP or AS organisation of the client"},
		{Name: "connection_type", Type: str, Doc: "the player's connection type"},
		{Name: "app_type", Type: str, Doc: "the player's app type; null for the reference SDK"},
		{Name: "app_version", Type: str, Doc: "the player's app version; null for the reference SDK"},
		{Name: "device_type", Type: str, Doc: "device type, from the player or the CDN requests' user agent (device_source)"},
		{Name: "os", Type: str, Doc: "operating system, as device_type"},
		{Name: "browser", Type: str, Doc: "browser or player, as device_type"},
		{Name: "device_source", Type: str, Doc: "player or cdn: which gave device_type, os and browser; null when neither"},
		{Name: "edge_location", Type: str, Doc: "x-edge-location of the first frame's CDN request"},
		{Name: "edge_result_type", Type: str, Doc: "x-edge-result-type (cache result) of the first frame's CDN request"},
		{Name: "sessions", Type: i64, Required: true, Doc: "sessions whose last event is in the window"},
		{Name: "ended_sessions", Type: i64, Required: true, Doc: "of those, sessions that ended (stop, error, new play or timeout); the others may still play and move on"},
		{Name: "attempts", Type: i64, Required: true, Doc: "CTA-2066 video start attempts: sessions with a PLAY"},
		{Name: "started", Type: i64, Required: true, Doc: "sessions that reached the first frame (CTA-2066 video start)"},
		{Name: "start_failures", Type: i64, Required: true, Doc: "CTA-2066 video start failures: an ERROR before the first frame"},
		{Name: "exits_before_start", Type: i64, Required: true, Doc: "CTA-2066 exits before video start: attempts that ended before the first frame without an error"},
		{Name: "playback_failures", Type: i64, Required: true, Doc: "CTA-2066 playback failures: an ERROR after the first frame"},
		{Name: "stall_count", Type: i64, Required: true, Doc: "CTA-2066 rebuffering events (stalls) of the sessions"},
		{Name: "stall_ms_sum", Type: f64, Required: true, Doc: "stall time, ms; rebuffering ratio = stall_ms_sum / 1000 / watch_time_s_sum"},
		{Name: "watch_time_s_sum", Type: f64, Required: true, Doc: "content played, seconds"},
		{Name: "bits_played_sum", Type: f64, Required: true, Doc: "bits played; average bitrate = bits_played_sum / watch_time_s_sum"},
		{Name: "switches_up", Type: i64, Required: true, Doc: "CTA-2066 bitrate switches up"},
		{Name: "switches_down", Type: i64, Required: true, Doc: "CTA-2066 bitrate switches down"},
		{Name: "start_time_ms_sum", Type: f64, Required: true, Doc: "CTA-2066 video start time of the started sessions, summed, ms"},
		{Name: "start_time_ms_count", Type: i64, Required: true, Doc: "started sessions with a start time"},
	}, startTimeBucketDocs()),
	Partition: []lake.PartitionField{
		{Column: "window_start", Transform: iceberg.DayTransform{}, Name: "window_day"},
	},
	SortOrder: []lake.SortKey{{Column: "window_start"}, {Column: "isp"}},
}

// SummaryWindows is the snapshot summary key (lake.Batch.Summary) under
// which a gold.sessions commit lists the minutes of session_end its rows
// had before (deleted rows) and have after (added rows), as Unix
// microseconds separated by commas: the windows of gold.session_minute the
// commit changes.
const SummaryWindows = "windows"

// SessionMinuteStage keeps gold.session_minute up to date with
// gold.sessions. gold.sessions replaces rows, so the stage follows its
// change feed (lake.Table.Changes) rather than its appends: each sessions
// commit says which minutes it changed (SummaryWindows), and the stage
// recomputes those minutes from gold.sessions as of that snapshot and
// replaces them, with the upstream position, in one commit.
type SessionMinuteStage struct {
	Sessions, Gold *lake.Table
	// MaxRows bounds the sessions rows one increment's snapshots added
	// (default 100,000).
	MaxRows  int64
	Limits   map[string]int
	Logger   *slog.Logger
	Observer Observer
}

// sessionMinuteFields are the gold.sessions columns the aggregation reads.
var sessionMinuteFields = slices.Concat([]string{"session_end", "end_reason", "attempt", "started", "start_time_ms",
	"start_failure", "exit_before_start", "playback_failure", "stall_count", "stall_ms", "watch_time_s",
	"bits_played", "switches_up", "switches_down"}, SessionDimensions)

func (s *SessionMinuteStage) stage() *minuteStage[sessionMinuteKey, sessionMinuteAgg] {
	return &minuteStage[sessionMinuteKey, sessionMinuteAgg]{silver: s.Sessions, gold: s.Gold, maxRows: s.MaxRows, limits: s.Limits,
		logger: s.Logger, observer: s.Observer, r: rollup[sessionMinuteKey, sessionMinuteAgg]{
			timeColumn: "session_end", fields: sessionMinuteFields, touched: changedWindows,
			aggregate: aggregateSessions, sortedKeys: sortedSessionKeys, appendRow: appendSessionMinute, fold: foldSessions,
		}}
}

// RunOnce brings gold.session_minute one increment further; lake.ErrNoChange
// when gold.sessions has not changed.
func (s *SessionMinuteStage) RunOnce(ctx context.Context) (int, error) { return s.stage().runOnce(ctx) }

// Drain runs until gold.sessions has nothing new.
func (s *SessionMinuteStage) Drain(ctx context.Context) error { return s.stage().drain(ctx) }

// changedWindows is the touchedFunc of gold.sessions: the windows its
// commits since from list in their summary. When the feed cannot say — a
// first run, snapshots expired, a commit by another tool — every window of
// the table is recomputed: slower, never wrong.
func changedWindows(ctx context.Context, up, down *lake.Table, timeColumn string, from lake.SnapshotPos, maxRows int64) (map[int64]bool, lake.Increment, error) {
	inc := lake.Increment{From: from}
	cur := up.Position()
	if cur.IsZero() || cur == from {
		return nil, inc, lake.ErrNoChange
	}
	touched := map[int64]bool{}
	whole := from.IsZero()
	if !whole {
		changes, err := up.Changes(ctx, from)
		switch {
		case errors.Is(err, lake.ErrSnapshotExpired):
			whole = true
		case err != nil:
			return nil, inc, err
		case len(changes) == 0:
			return nil, inc, lake.ErrNoChange
		}
		for _, c := range changes {
			ws, known := windowsOf(c)
			if !known {
				whole = true
				break
			}
			for _, w := range ws {
				touched[w] = true
			}
			inc.To, inc.Rows = c.Snapshot, inc.Rows+c.AddedRows
			if inc.Rows >= maxRows {
				break
			}
		}
	}
	if whole {
		// Every window either table holds: gold.sessions' as of its
		// current snapshot, and this table's own, so a window whose
		// sessions all moved on is emptied rather than left stale.
		inc.To, inc.Rows = cur, 0
		collect := func(t *lake.Table, at lake.SnapshotPos, col string, count bool) error {
			return t.Scan(ctx, lake.ScanOptions{Fields: []string{col}, Snapshot: at}, func(r arrow.RecordBatch) error {
				ts := column[*array.Timestamp](r, col)
				for i := range ts.Len() {
					touched[windowOf(int64(ts.Value(i)))] = true
				}
				if count {
					inc.Rows += r.NumRows()
				}
				return nil
			})
		}
		if err := collect(up, cur, timeColumn, true); err != nil {
			return nil, inc, err
		}
		if err := collect(down, down.Position(), "window_start", false); err != nil {
			return nil, inc, err
		}
	}
	return touched, inc, nil
}

// windowsOf reads the windows a gold.sessions commit listed; known is false
// for a commit that changed rows without saying which windows.
func windowsOf(c lake.Change) (ws []int64, known bool) {
	v, listed := c.Summary[SummaryWindows]
	if !listed {
		// Compaction rewrites rows without changing them; a commit that
		// only moves positions changes no rows.
		return nil, c.Operation == "replace" || (c.AddedRows == 0 && c.RemovedRows == 0)
	}
	for _, f := range strings.Split(v, ",") {
		if f == "" {
			continue
		}
		w, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, false
		}
		ws = append(ws, w)
	}
	return ws, true
}

// FormatWindows is the SummaryWindows value of a set of windows.
func FormatWindows(ws map[int64]bool) string {
	parts := make([]string, 0, len(ws))
	for _, w := range slices.Sorted(maps.Keys(ws)) {
		parts = append(parts, strconv.FormatInt(w, 10))
	}
	return strings.Join(parts, ",")
}

// sessionMinuteKey is one gold.session_minute row's window and dimensions, in
// SessionDimensions order.
type sessionMinuteKey struct {
	window int64
	dims   [12]string
}

type sessionMinuteAgg struct {
	sessions, ended, attempts, started, startFailures, exits, playbackFailures int64
	stalls, up, down, startCount                                               int64
	stallMs, watchS, bits, startSum                                            float64
	startTime                                                                  startTimeHistogram
}

func (a *sessionMinuteAgg) add(b *sessionMinuteAgg) {
	a.sessions += b.sessions
	a.ended += b.ended
	a.attempts += b.attempts
	a.started += b.started
	a.startFailures += b.startFailures
	a.exits += b.exits
	a.playbackFailures += b.playbackFailures
	a.stalls += b.stalls
	a.up += b.up
	a.down += b.down
	a.startCount += b.startCount
	a.stallMs += b.stallMs
	a.watchS += b.watchS
	a.bits += b.bits
	a.startSum += b.startSum
	for i := range a.startTime {
		a.startTime[i] += b.startTime[i]
	}
}

func aggregateSessions(groups map[sessionMinuteKey]*sessionMinuteAgg, touched map[int64]bool, r arrow.RecordBatch) {
	end := column[*array.Timestamp](r, "session_end")
	reason := column[*array.String](r, "end_reason")
	flag := func(name string) *array.Boolean { return column[*array.Boolean](r, name) }
	attempt, started, startFailure, exit, playbackFailure := flag("attempt"), flag("started"), flag("start_failure"),
		flag("exit_before_start"), flag("playback_failure")
	startMs := column[*array.Float64](r, "start_time_ms")
	stalls, up, down := column[*array.Int64](r, "stall_count"), column[*array.Int64](r, "switches_up"), column[*array.Int64](r, "switches_down")
	stallMs, watch, bits := column[*array.Float64](r, "stall_ms"), column[*array.Float64](r, "watch_time_s"), column[*array.Float64](r, "bits_played")
	var dims [12]*array.String
	for i, d := range SessionDimensions {
		dims[i] = column[*array.String](r, d)
	}
	b2i := func(a *array.Boolean, i int) int64 {
		if a.IsValid(i) && a.Value(i) {
			return 1
		}
		return 0
	}
	for i := range int(r.NumRows()) {
		w := windowOf(int64(end.Value(i)))
		if !touched[w] {
			continue
		}
		k := sessionMinuteKey{window: w}
		for d := range dims {
			k.dims[d] = valueOf(dims[d], i)
		}
		a := groups[k]
		if a == nil {
			for d := range k.dims {
				k.dims[d] = strings.Clone(k.dims[d])
			}
			a = &sessionMinuteAgg{}
			groups[k] = a
		}
		a.sessions++
		if valueOf(reason, i) != "open" {
			a.ended++
		}
		a.attempts += b2i(attempt, i)
		a.started += b2i(started, i)
		a.startFailures += b2i(startFailure, i)
		a.exits += b2i(exit, i)
		a.playbackFailures += b2i(playbackFailure, i)
		a.stalls += stalls.Value(i)
		a.up += up.Value(i)
		a.down += down.Value(i)
		a.stallMs += stallMs.Value(i)
		a.watchS += watch.Value(i)
		a.bits += bits.Value(i)
		if startMs.IsValid(i) {
			v := startMs.Value(i)
			a.startSum += v
			a.startCount++
			a.startTime.observe(v)
		}
	}
}

func sortedSessionKeys(groups map[sessionMinuteKey]*sessionMinuteAgg) []sessionMinuteKey {
	return slices.SortedFunc(maps.Keys(groups), func(a, b sessionMinuteKey) int {
		if c := cmp.Compare(a.window, b.window); c != 0 {
			return c
		}
		return slices.Compare(a.dims[:], b.dims[:])
	})
}

func appendSessionMinute(out *lake.Rows, k sessionMinuteKey, a *sessionMinuteAgg) {
	out.Time("window_start", time.UnixMicro(k.window).UTC())
	for i, d := range SessionDimensions {
		out.NullableString(d, k.dims[i])
	}
	out.Int64("sessions", a.sessions)
	out.Int64("ended_sessions", a.ended)
	out.Int64("attempts", a.attempts)
	out.Int64("started", a.started)
	out.Int64("start_failures", a.startFailures)
	out.Int64("exits_before_start", a.exits)
	out.Int64("playback_failures", a.playbackFailures)
	out.Int64("stall_count", a.stalls)
	out.OptFloat64("stall_ms_sum", &a.stallMs)
	out.OptFloat64("watch_time_s_sum", &a.watchS)
	out.OptFloat64("bits_played_sum", &a.bits)
	out.Int64("switches_up", a.up)
	out.Int64("switches_down", a.down)
	out.OptFloat64("start_time_ms_sum", &a.startSum)
	out.Int64("start_time_ms_count", a.startCount)
	for i, c := range StartTimeBucketColumns {
		out.Int64(c, a.startTime[i])
	}
}

// sessionFoldDims folds every dimension but device_source and the cache
// result, short fixed lists.
var sessionFoldDims = func() []foldDim[sessionMinuteKey] {
	var out []foldDim[sessionMinuteKey]
	for i, d := range SessionDimensions {
		if d == "device_source" || d == "edge_result_type" {
			continue
		}
		out = append(out, foldDim[sessionMinuteKey]{d, func(k *sessionMinuteKey) *string { return &k.dims[i] }})
	}
	return out
}()

func foldSessions(groups map[sessionMinuteKey]*sessionMinuteAgg, limits map[string]int) map[sessionMinuteKey]*sessionMinuteAgg {
	return foldTails(groups, sessionFoldDims, limits, func(k sessionMinuteKey) int64 { return k.window },
		func(a *sessionMinuteAgg) int64 { return a.sessions }, (*sessionMinuteAgg).add)
}

// check that the dimension array matches the list.
var _ = func() int {
	if len(SessionDimensions) != len(sessionMinuteKey{}.dims) {
		panic(fmt.Sprintf("gold: %d session dimensions, key holds %d", len(SessionDimensions), len(sessionMinuteKey{}.dims)))
	}
	return 0
}()
