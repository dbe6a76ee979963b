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
	"github.com/qoslake/qoslake/silver"
)

var boolType = iceberg.PrimitiveTypes.Bool

// SessionsTable is gold.sessions: one row per playback session, with the
// CTA-2066 session metrics. Sessions are mergeable in the gold sense: every
// ratio is taken over a set of rows after summing (video start failure
// ratio = sum(start_failure) / sum(attempt), rebuffering ratio =
// sum(stall_ms) / 1000 / sum(watch_time_s), average bitrate =
// sum(bits_played) / sum(watch_time_s), ...).
//
// A session is what the player's events say, not the simulator's (see
// SessionsStage for how they are cut): the reference SDK sends no session
// id, so a session is a (user_key, video_id) from PLAY until STOP or ERROR,
// a new PLAY, or an inactivity timeout in event time; a player that sends
// session_id makes that id the session.
var SessionsTable = lake.TableDef{
	Namespace: Namespace,
	Name:      "sessions",
	Doc: "Playback sessions: one row per session with CTA-2066 video start time, video start failure, exit before video start, " +
		"playback failure, stalls, watch time, bits played and bitrate switches, and the CDN edge of the first frame. " +
		"A session is the player's session_id, or (user_key, video_id) from PLAY to STOP, ERROR, a new PLAY or an inactivity timeout. " +
		"Sum rows first, then divide (rebuffering ratio = sum(stall_ms) / 1000 / sum(watch_time_s)).",
	Columns: []lake.Column{
		{Name: "session_key", Type: str, Required: true, Doc: "the player's session_id, or a hash of user_key, video_id and the session's first event_id; unique per row"},
		{Name: "session_id", Type: str, Doc: "the player's session id; null for the reference SDK, which sends none"},
		{Name: "user_key", Type: str, Doc: "pseudonymised user (silver user_key)"},
		{Name: "video_id", Type: str, Doc: "video id (lower-cased)"},
		{Name: "session_start", Type: tstz, Required: true, Doc: "event time of the session's first event (the PLAY when there is one)"},
		{Name: "session_end", Type: tstz, Required: true, Doc: "event time of the session's last event"},
		{Name: "attempt", Type: boolType, Required: true, Doc: "the session had a PLAY: a CTA-2066 video start attempt, the denominator of start failure and exit before start ratios"},
		{Name: "started", Type: boolType, Required: true, Doc: "the session reached FIRSTFRAME (CTA-2066 video start)"},
		{Name: "start_time_ms", Type: f64, Doc: "CTA-2066 video start time: the first FIRSTFRAME's time_to_first_frame_ms (play request to first frame), ms; null without a first frame"},
		{Name: "start_failure", Type: boolType, Required: true, Doc: "CTA-2066 video start failure: an ERROR before the first frame"},
		{Name: "exit_before_start", Type: boolType, Required: true, Doc: "CTA-2066 exit before video start: an attempt that ended before its first frame without an error (STOP, a new PLAY, or silence past the timeout); false while open"},
		{Name: "playback_failure", Type: boolType, Required: true, Doc: "CTA-2066 playback failure: an ERROR after the first frame"},
		{Name: "stall_count", Type: i64, Required: true, Doc: "CTA-2066 rebuffering events: BUFFER with buffer_type screenfreezedbuffer (or the older rebuffer) after the first frame; start-up buffering (firstbuffer) and a seek's buffering (within 250 ms of a SEEK) are not stalls"},
		{Name: "stall_ms", Type: f64, Required: true, Doc: "stall time: sum of those stalls' buffer_duration_ms, ms; rebuffering ratio = sum(stall_ms) / 1000 / sum(watch_time_s)"},
		{Name: "watch_time_s", Type: f64, Required: true, Doc: "content played, seconds: from the first frame to STOP or ERROR, else to the session's last event (a viewer who leaves silently is known to play until then); stalls, pauses and seeks included"},
		{Name: "bits_played", Type: f64, Required: true, Doc: "sum over the intervals of watch_time_s of the bitrate in effect × the interval's seconds, bits; the bitrate in effect is the last the player reported (STEP bitrate_to_bps, else bitrate_bps of FIRSTFRAME, STREAM or STOP); CTA-2066 average bitrate = sum(bits_played) / sum(watch_time_s)"},
		{Name: "switches_up", Type: i64, Required: true, Doc: "CTA-2066 bitrate switches to a higher bitrate: STEP with direction up, except the initial choice (bitrate_from_bps 0)"},
		{Name: "switches_down", Type: i64, Required: true, Doc: "CTA-2066 bitrate switches to a lower bitrate: STEP with direction down, except the initial choice (bitrate_from_bps 0)"},
		{Name: "events", Type: i64, Required: true, Doc: "player events in the session"},
		{Name: "end_reason", Type: str, Required: true, Doc: "stop or error (the player's), new_play (a new PLAY of the same user and video, other than a resume after PAUSE, began the next session), timeout (no event for longer than the timeout), or open (the player watermark has not passed session_end + timeout yet)"},
		{Name: "country", Type: str, Doc: "the player's: first non-null over the session's events (silver geo lookup of the player's client address); for a player that sends no address (the reference SDK), the client country of the CDN requests its events name (network_source)"},
		{Name: "isp", Type: str, Doc: "as country: the player's, else the client ISP of the CDN requests its events name"},
		{Name: "network_source", Type: str, Doc: "player or cdn: which gave country and isp; null when neither"},
		{Name: "connection_type", Type: str, Doc: "the player's: first non-null over the session's events"},
		{Name: "app_type", Type: str, Doc: "the player's: first non-null over the session's events; null for the reference SDK"},
		{Name: "app_version", Type: str, Doc: "the player's: first non-null over the session's events"},
		{Name: "device_type", Type: str, Doc: "the player's when it sent device fields, else from the user agent of a CDN request the session's events name (device_source)"},
		{Name: "os", Type: str, Doc: "as device_type"},
		{Name: "browser", Type: str, Doc: "as device_type"},
		{Name: "device_source", Type: str, Doc: "player (the player sent device_type, os or browser), cdn (parsed from the user agent of the CDN request the FIRSTFRAME names, else of the earliest logged request the session's events name), null when neither"},
		{Name: "edge_location", Type: str, Doc: "x-edge-location of the CDN request the FIRSTFRAME's cdn_tracking_id names (case-insensitive join on x-edge-request-id); null until that CDN log arrives"},
		{Name: "pop", Type: str, Doc: "3-letter airport code of edge_location"},
		{Name: "edge_result_type", Type: str, Doc: "x-edge-result-type of that request (Hit, Miss, ...): time to first frame per edge location and cache result"},
	},
	Partition: []lake.PartitionField{
		{Column: "session_start", Transform: iceberg.DayTransform{}, Name: "session_day"},
	},
	SortOrder: []lake.SortKey{{Column: "session_start"}},
}

// sessionClockSkew is how far past its ingest time an event's own time
// may move the player watermark, as silver caps its own (a device whose
// clock runs a day ahead must not time out every open session).
const sessionClockSkew = 5 * time.Minute

// SessionsStage keeps gold.sessions up to date with silver.player_events
// and silver.cdn_logs. It follows both silver tables: gold's checkpoint
// holds an upstream position for each (lake.UpstreamKey) and the player
// watermark, and every commit moves them together with the session rows.
//
// Sessions (CTA-2066 playback sessions): events are grouped by the
// player's session_id when it sends one (that id is one session), else by
// (user_key, video_id), and taken in event time order (events of the same
// instant: PLAY, FIRSTFRAME, others, then ERROR and STOP, then by
// event_id). Without a session id a new session starts at the group's
// first event, at a PLAY once the current session has had its PLAY or has
// ended (STOP or ERROR), and at an event more than Timeout after the
// previous one. A session that neither ended nor was followed is open
// until the player watermark (the newest event time gold has read, each
// capped at its ingest time plus 5 minutes) passes session_end + Timeout;
// then its end reason is timeout.
//
// Each RunOnce reads what each silver table appended since gold's
// position (at most MaxRows rows each). New player events touch their
// group around their event time; new CDN rows touch the sessions whose
// events name them (player rows whose cdn_tracking_id is the request id,
// at event times the join window allows), because CDN standard logs arrive
// minutes to hours after the events. Only the touched sessions are
// recomputed, from all of silver's events of their groups in their time
// range as of the increment's snapshots, and replaced with the positions
// in one commit; sessions the watermark passed are closed in the same
// commit. There is no fixed look-back and no full recompute. Another
// process that moved gold first makes the plan stale, and RunOnce starts
// over from where it got to.
//
// Why recomputing only the touched range is exact, for a group without a
// session id and a new event at time t: a cut more than Timeout after the
// previous event does not depend on anything before it, so the group's
// events fall into runs separated by such gaps, each cut on its own. An
// event at t only joins or bridges the runs within Timeout of it; inside a
// run, a cut at a PLAY depends only on whether the current session has had
// a PLAY or has ended, and adding an event never takes a PLAY or an end
// away from a session, so every cut at a PLAY outside the session holding
// t stays (a STOP at t may add cuts, at later PLAYs of that same session).
// Hence the sessions that change are among those overlapping
// [t − Timeout, t + Timeout]: their whole extents, with the new events, are
// cut again, from a first event that is a cut in the new history too (a
// session's first event, or one more than Timeout after the previous).
// Sessions outside keep their events and their cuts, so their rows stay.
// Only the end reason of the last session cut depends on what follows it
// (a PLAY within Timeout makes it new_play), so the re-read reaches
// Timeout past the range for the first event after it. A CDN row changes
// no cut, only the sessions whose events name it. A session id's row is
// found by its key wherever it is. Changing Timeout applies to the
// sessions recomputed from then on.
//
// Only appends to silver are followed, as for the minute stages.
type SessionsStage struct {
	Silver    *lake.Table // silver.player_events
	SilverCDN *lake.Table // silver.cdn_logs
	Gold      *lake.Table // gold.sessions
	// MaxRows bounds the rows read from each silver table in one increment
	// (default 100,000); the recomputation reads every event of the
	// sessions those rows touch.
	MaxRows int64
	// Timeout is the inactivity timeout in event time (default
	// DefaultSessionTimeout).
	Timeout time.Duration
	Logger  *slog.Logger
}

func (s *SessionsStage) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *SessionsStage) timeout() int64 {
	if s.Timeout <= 0 {
		return DefaultSessionTimeout.Microseconds()
	}
	return s.Timeout.Microseconds()
}

func (s *SessionsStage) maxRows() int64 {
	if s.MaxRows <= 0 {
		return 100_000
	}
	return s.MaxRows
}

// watermarkKey is gold's checkpoint key for the player watermark (Unix
// microseconds).
func (s *SessionsStage) watermarkKey() string { return "watermark:" + s.Silver.Name() }

// errStalePlan means another process committed to gold after the plan
// read it: start over.
var errStalePlan = errors.New("gold moved since the plan read it")

// RunOnce brings gold one increment further (at most MaxRows rows of each
// silver table) and returns how many silver rows that increment held;
// lake.ErrNoChange when neither silver table has anything new.
func (s *SessionsStage) RunOnce(ctx context.Context) (int, error) {
	for attempt := 1; ; attempt++ {
		p, err := s.plan(ctx)
		if err != nil {
			return 0, err
		}
		err = s.commit(ctx, p)
		if (errors.Is(err, lake.ErrCheckpointMoved) || errors.Is(err, errStalePlan)) && attempt < maxMovedRetries {
			s.log().Info("gold moved by another writer; starting over", "table", s.Gold.Name(), "attempt", attempt)
			continue
		}
		if err != nil {
			return 0, err
		}
		return int(p.silverRows), nil
	}
}

// Drain runs until neither silver table has anything new for gold.
func (s *SessionsStage) Drain(ctx context.Context) error {
	for {
		_, err := s.RunOnce(ctx)
		if errors.Is(err, lake.ErrNoChange) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// sessionsPlan is one increment made ready to commit.
type sessionsPlan struct {
	// id names the commit: the position moves, so a retry or another
	// process planning the same increment is one batch.
	id string
	// from is gold's checkpoint the plan read; advance its moves.
	from    lake.Checkpoint
	advance []lake.Position
	// rows replace the gold rows named by replaced.
	rows       []session
	replaced   []oldSession
	silverRows int64
	recomputed int // groups
	closed     int
}

// oldSession is a gold.sessions row as the plan finds it.
type oldSession struct {
	key        string
	group      groupKey
	start, end int64
}

// incrementFields are the silver.player_events columns an increment is
// read with: what says which sessions it touches, and the watermark.
var incrementFields = []string{"event_time", "ingest_time", "session_id", "user_key", "video_id"}

// plan reads the next increment of both silver tables and recomputes the
// sessions it touches, as of the silver snapshots the increment ends at.
// It writes nothing: a crash after it loses only work.
func (s *SessionsStage) plan(ctx context.Context) (sessionsPlan, error) {
	var none sessionsPlan
	for _, t := range []*lake.Table{s.Gold, s.Silver, s.SilverCDN} {
		if _, err := t.Refresh(ctx); err != nil {
			return none, err
		}
	}
	cp, err := s.Gold.Checkpoint()
	if err != nil {
		return none, err
	}
	keyP, keyC, keyW := lake.UpstreamKey(s.Silver.Name()), lake.UpstreamKey(s.SilverCDN.Name()), s.watermarkKey()
	fromP, err := lake.ParseSnapshotPos(cp[keyP])
	if err != nil {
		return none, err
	}
	fromC, err := lake.ParseSnapshotPos(cp[keyC])
	if err != nil {
		return none, err
	}
	var oldWM int64
	if v := cp[keyW]; v != "" {
		if oldWM, err = strconv.ParseInt(v, 10, 64); err != nil {
			return none, fmt.Errorf("%s checkpoint %s=%q: %w", s.Gold.Name(), keyW, v, err)
		}
	}
	timeout := s.timeout()

	// New player events touch their group around their time.
	touched := touches{}
	wm := oldWM
	skew := sessionClockSkew.Microseconds()
	incP, err := s.Silver.ReadAppended(ctx, fromP, lake.ReadOptions{MaxRows: s.maxRows(), Fields: incrementFields},
		func(r arrow.RecordBatch) error {
			ts := column[*array.Timestamp](r, "event_time")
			ingest := column[*array.Timestamp](r, "ingest_time")
			sid, user, video := column[*array.String](r, "session_id"), column[*array.String](r, "user_key"), column[*array.String](r, "video_id")
			for i := range int(r.NumRows()) {
				t := int64(ts.Value(i))
				wm = max(wm, min(t, int64(ingest.Value(i))+skew))
				g := groupKey{sessionID: valueOf(sid, i)}
				if g.sessionID == "" {
					g = groupKey{user: valueOf(user, i), video: valueOf(video, i)}
					touched.add(g, eventSpan{t - timeout, t + timeout})
				} else {
					touched.add(g, eventSpan{t, t})
				}
			}
			return nil
		})
	newP := err == nil
	if err != nil && !errors.Is(err, lake.ErrNoChange) {
		return none, fmt.Errorf("%s from %s: %w", s.Gold.Name(), s.Silver.Name(), err)
	}
	// New CDN requests, by lower-cased id: the join key.
	requests := map[string][]int64{}
	incC, err := s.SilverCDN.ReadAppended(ctx, fromC, lake.ReadOptions{MaxRows: s.maxRows(), Fields: []string{"log_time", "edge_request_id"}},
		func(r arrow.RecordBatch) error {
			ts := column[*array.Timestamp](r, "log_time")
			ids := column[*array.String](r, "edge_request_id")
			for i := range int(r.NumRows()) {
				if id := joinKey(valueOf(ids, i)); id != "" {
					requests[id] = append(requests[id], int64(ts.Value(i)))
				}
			}
			return nil
		})
	newC := err == nil
	if err != nil && !errors.Is(err, lake.ErrNoChange) {
		return none, fmt.Errorf("%s from %s: %w", s.Gold.Name(), s.SilverCDN.Name(), err)
	}
	if !newP && !newC {
		return none, lake.ErrNoChange
	}

	p := sessionsPlan{from: lake.Checkpoint{keyP: cp[keyP], keyC: cp[keyC], keyW: cp[keyW]}}
	toP, toC := fromP, fromC
	if newP {
		toP = incP.To
		p.silverRows += incP.Rows
		p.advance = append(p.advance, lake.Position{Key: keyP, From: cp[keyP], To: toP.String()})
	}
	if newC {
		toC = incC.To
		p.silverRows += incC.Rows
		p.advance = append(p.advance, lake.Position{Key: keyC, From: cp[keyC], To: toC.String()})
	}
	if wm > oldWM {
		p.advance = append(p.advance, lake.Position{Key: keyW, From: cp[keyW], To: strconv.FormatInt(wm, 10)})
	}
	p.id = fmt.Sprintf("%s:%s->%s;%s:%s->%s", keyP, fromP, toP, keyC, fromC, toC)

	if len(requests) > 0 && !toP.IsZero() {
		if err := s.touchNamed(ctx, toP, requests, touched); err != nil {
			return none, err
		}
	}
	work, old, err := s.affected(ctx, touched)
	if err != nil {
		return none, err
	}
	rows, err := s.recompute(ctx, work, toP, toC, wm)
	if err != nil {
		return none, err
	}
	p.rows, p.replaced, p.recomputed = rows, slices.Collect(maps.Values(old)), len(work)
	if wm > oldWM {
		closed, err := s.closing(ctx, oldWM, wm, old)
		if err != nil {
			return none, err
		}
		p.closed = len(closed)
		for _, c := range closed {
			p.rows = append(p.rows, c)
			p.replaced = append(p.replaced, oldSession{key: c.key, start: c.start, end: c.end})
		}
	}
	return p, nil
}

// touchNamed touches the sessions whose events name the new CDN requests:
// player rows, as of toP, whose cdn_tracking_id is one of the ids, at an
// event time the join window allows for one of the request's log times.
// Only those sessions change (their events do not), so each event touches
// its own instant.
func (s *SessionsStage) touchNamed(ctx context.Context, toP lake.SnapshotPos, requests map[string][]int64, touched touches) error {
	var times []eventSpan
	for _, lts := range requests {
		for _, lt := range lts {
			// joins(t, lt) ⇔ t ∈ [lt − requestAfterEvent, lt + requestBeforeEvent]
			times = append(times, eventSpan{lt - requestAfterEvent.Microseconds(), lt + requestBeforeEvent.Microseconds()})
		}
	}
	// By time only: see the note on nullable columns. The ids are matched here.
	err := s.Silver.Scan(ctx, lake.ScanOptions{Snapshot: toP, Filter: spansFilter("event_time", mergeSpans(times)),
		Fields: []string{"event_time", "cdn_tracking_id", "session_id", "user_key", "video_id"}},
		func(r arrow.RecordBatch) error {
			ts := column[*array.Timestamp](r, "event_time")
			track := column[*array.String](r, "cdn_tracking_id")
			sid, user, video := column[*array.String](r, "session_id"), column[*array.String](r, "user_key"), column[*array.String](r, "video_id")
			for i := range int(r.NumRows()) {
				t := int64(ts.Value(i))
				if !slices.ContainsFunc(requests[valueOf(track, i)], func(lt int64) bool { return joins(t, lt) }) {
					continue
				}
				g := groupKey{sessionID: valueOf(sid, i)}
				if g.sessionID == "" {
					g = groupKey{user: valueOf(user, i), video: valueOf(video, i)}
				}
				touched.add(g, eventSpan{t, t})
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("player events naming %d new CDN requests: %w", len(requests), err)
	}
	return nil
}

// goldKeyFields are the gold.sessions columns that place a row.
var goldKeyFields = []string{"session_key", "session_id", "user_key", "video_id", "session_start", "session_end"}

// affected widens the touched time ranges of each group to the gold
// sessions they overlap, until no other session overlaps them, and returns
// each group's ranges (merged) and the sessions found, by key.
func (s *SessionsStage) affected(ctx context.Context, touched touches) (map[groupKey][]eventSpan, map[string]oldSession, error) {
	work := make(map[groupKey][]eventSpan, len(touched))
	found := map[string]oldSession{}
	var ids []string
	var all []eventSpan
	for g, tc := range touched {
		work[g] = mergeSpans(tc.spans)
		if g.byID() {
			ids = append(ids, g.sessionID)
		} else {
			all = append(all, work[g]...)
		}
	}
	// A session id is one row wherever its events fall: look it up by id,
	// which is its session_key.
	if len(ids) > 0 {
		slices.Sort(ids)
		err := s.goldRows(ctx, iceberg.IsIn(iceberg.Reference("session_key"), ids...), func(o oldSession) {
			if _, ok := work[o.group]; ok && o.group.byID() {
				found[o.key] = o
			}
		})
		if err != nil {
			return nil, nil, err
		}
		for g, sp := range work {
			if g.byID() {
				work[g] = []eventSpan{hull(sp)}
			}
		}
		for _, o := range found {
			work[o.group] = []eventSpan{hull(append(work[o.group], eventSpan{o.start, o.end}))}
		}
	}
	if len(all) == 0 {
		return work, found, nil
	}
	// First the sessions overlapping the touched ranges, then, as long as
	// widening finds more, those that meet a found one at its first or
	// last instant (sessions of a group never overlap otherwise). Groups
	// are matched here, not in the filter: see the note on nullable columns.
	filter := overlapFilter(mergeSpans(all))
	for filter != nil {
		var fresh []oldSession
		err := s.goldRows(ctx, filter, func(o oldSession) {
			sp, ok := work[o.group]
			if _, seen := found[o.key]; ok && !seen && !o.group.byID() && overlaps(sp, o.start, o.end) {
				found[o.key] = o
				fresh = append(fresh, o)
			}
		})
		if err != nil {
			return nil, nil, err
		}
		filter = nil
		if len(fresh) > 0 {
			var starts, ends []time.Time
			for _, o := range fresh {
				work[o.group] = mergeSpans(append(work[o.group], eventSpan{o.start, o.end}))
				starts = append(starts, time.UnixMicro(o.start))
				ends = append(ends, time.UnixMicro(o.end))
			}
			filter = iceberg.NewOr(lake.TimesIn("session_start", ends), lake.TimesIn("session_end", starts))
		}
	}
	return work, found, nil
}

// Note on nullable columns: iceberg-go v0.7.0 prunes a Parquet row group
// for an equality, IN or not-null predicate on a nullable column when the
// group holds as many nulls as values (its row-group statistics take
// arrow's non-null value count for Iceberg's value count, which includes
// nulls, and so find "only nulls"), and the scan silently misses rows. So
// no scan here filters on a nullable column (user_key, video_id,
// session_id, cdn_tracking_id): scans select by required columns (times,
// session_key, end_reason), and rows are matched in memory.

// goldRows calls fn with the gold rows matching filter.
func (s *SessionsStage) goldRows(ctx context.Context, filter iceberg.BooleanExpression, fn func(oldSession)) error {
	err := s.Gold.Scan(ctx, lake.ScanOptions{Filter: filter, Fields: goldKeyFields}, func(r arrow.RecordBatch) error {
		key := column[*array.String](r, "session_key")
		sid, user, video := column[*array.String](r, "session_id"), column[*array.String](r, "user_key"), column[*array.String](r, "video_id")
		start, end := column[*array.Timestamp](r, "session_start"), column[*array.Timestamp](r, "session_end")
		for i := range int(r.NumRows()) {
			g := groupKey{sessionID: strings.Clone(valueOf(sid, i))}
			if g.sessionID == "" {
				g = groupKey{user: strings.Clone(valueOf(user, i)), video: strings.Clone(valueOf(video, i))}
			}
			fn(oldSession{key: strings.Clone(key.Value(i)), group: g, start: int64(start.Value(i)), end: int64(end.Value(i))})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sessions of the touched groups in %s: %w", s.Gold.Name(), err)
	}
	return nil
}

// sessionFields are the silver.player_events columns sessions are cut
// and summarised from.
var sessionFields = []string{"event_id", "event_type", "event_time", "session_id", "user_key", "video_id",
	"time_to_first_frame_ms", "buffer_type", "buffer_duration_ms", "bitrate_bps", "bitrate_from_bps", "bitrate_to_bps",
	"direction", "cdn_tracking_id", "connection_type", "country", "isp", "app_type", "app_version", "device_type", "os", "browser"}

// recompute cuts the sessions of each group's ranges from every silver
// event in them as of toP, and joins them to the CDN requests as of toC.
//
// Each range starts and ends at a cut, so it is cut on its own, except
// that its last session's end reason depends on what follows: a PLAY
// within the timeout (new_play) or a gap (timeout). The read therefore
// reaches Timeout past each range of a group without a session id, for
// the first event after it.
func (s *SessionsStage) recompute(ctx context.Context, work map[groupKey][]eventSpan, toP, toC lake.SnapshotPos, wm int64) ([]session, error) {
	if len(work) == 0 || toP.IsZero() {
		return nil, nil
	}
	timeout := s.timeout()
	reach := make(map[groupKey][]eventSpan, len(work)) // the ranges and what follows them
	var all []eventSpan
	for g, sp := range work {
		if g.byID() {
			reach[g] = sp
		} else {
			r := make([]eventSpan, len(sp))
			for i, x := range sp {
				r[i] = eventSpan{x.lo, x.hi + timeout}
			}
			reach[g] = mergeSpans(r)
		}
		all = append(all, reach[g]...)
	}
	// By time only (see the note on nullable columns); the groups are matched here.
	events := map[groupKey][]*playerEvent{}
	in := interner{}
	err := s.Silver.Scan(ctx, lake.ScanOptions{Snapshot: toP, Filter: spansFilter("event_time", mergeSpans(all)), Fields: sessionFields},
		func(r arrow.RecordBatch) error {
			readEvents(r, &in, func(g groupKey, t int64) bool {
				sp, ok := reach[g]
				return ok && contains(sp, t)
			}, events)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("recompute sessions of %d groups: %w", len(work), err)
	}

	var out []session
	for g, evs := range events {
		slices.SortFunc(evs, compareEvents)
		for _, r := range work[g] {
			i, _ := slices.BinarySearchFunc(evs, r.lo, func(e *playerEvent, t int64) int { return cmp.Compare(e.t, t) })
			j, _ := slices.BinarySearchFunc(evs, r.hi+1, func(e *playerEvent, t int64) int { return cmp.Compare(e.t, t) })
			if i == j {
				continue
			}
			next := int64(noNext)
			if j < len(evs) && !g.byID() && evs[j].t <= r.hi+timeout {
				next = evs[j].t
			}
			out = append(out, sessionsOf(g, evs[i:j], next, wm, timeout)...)
		}
	}
	if err := s.join(ctx, out, toC); err != nil {
		return nil, err
	}
	return out, nil
}

// join fills the CDN columns of sessions from silver.cdn_logs as of toC.
// silver keeps CloudFront's request ids in their case, so the scan selects
// by log time only and the ids are matched lower-cased.
func (s *SessionsStage) join(ctx context.Context, sessions []session, toC lake.SnapshotPos) error {
	idx := cdnIndex{}
	wanted := map[string]bool{}
	var times []eventSpan
	for i := range sessions {
		for _, n := range sessions[i].requests {
			wanted[n.id] = true
			times = append(times, eventSpan{n.t - requestBeforeEvent.Microseconds(), n.t + requestAfterEvent.Microseconds()})
		}
	}
	if len(wanted) > 0 && !toC.IsZero() {
		in := interner{}
		err := s.SilverCDN.Scan(ctx, lake.ScanOptions{Snapshot: toC, Filter: spansFilter("log_time", mergeSpans(times)), Fields: cdnJoinFields},
			func(r arrow.RecordBatch) error {
				idx.add(r, wanted, &in)
				return nil
			})
		if err != nil {
			return fmt.Errorf("CDN requests of %d sessions: %w", len(sessions), err)
		}
	}
	for i := range sessions {
		joinCDN(&sessions[i], idx)
	}
	return nil
}

// closing finds the open sessions the watermark's move from oldWM to wm
// passed (session_end + timeout < wm) and returns them closed by timeout.
// Every open session ends after oldWM − timeout, or an earlier commit
// would have closed it, so the search is bounded on both sides. Sessions
// the plan recomputes are left to the recomputation.
func (s *SessionsStage) closing(ctx context.Context, oldWM, wm int64, recomputed map[string]oldSession) ([]session, error) {
	timeout := s.timeout()
	ref := iceberg.Reference("session_end")
	filter := lake.And(
		iceberg.EqualTo(iceberg.Reference("end_reason"), EndOpen),
		iceberg.GreaterThanEqual(ref, iceberg.Timestamp(oldWM-timeout)),
		iceberg.LessThan(ref, iceberg.Timestamp(wm-timeout)))
	var out []session
	err := s.Gold.Scan(ctx, lake.ScanOptions{Filter: filter}, func(r arrow.RecordBatch) error {
		for _, c := range readSessions(r) {
			if _, ok := recomputed[c.key]; ok {
				continue
			}
			c.endReason = EndTimeout
			c.exitBeforeStart = exitsBeforeStart(&c)
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open sessions of %s the watermark passed: %w", s.Gold.Name(), err)
	}
	return out, nil
}

// commit replaces the plan's sessions in gold and moves the positions, in
// one snapshot, provided gold is still as the plan read it.
func (s *SessionsStage) commit(ctx context.Context, p sessionsPlan) error {
	// gold.session_minute follows this table's change feed: say which
	// minutes of session_end the commit empties (replaced rows) and fills
	// (new rows).
	windows := map[int64]bool{}
	for _, o := range p.replaced {
		windows[windowOf(o.end)] = true
	}
	for i := range p.rows {
		windows[windowOf(p.rows[i].end)] = true
	}
	b := lake.Batch{ID: p.id, Advance: p.advance, Summary: map[string]string{SummaryWindows: FormatWindows(windows)},
		Guard: func(_ context.Context, st lake.State) error {
			// The batch's own moves are compared-and-set; the positions it
			// does not move must not have moved either: gold's rows would no
			// longer be those the plan read.
			cp, err := st.Checkpoint()
			if err != nil {
				return err
			}
			for k, v := range p.from {
				if cp[k] != v {
					return fmt.Errorf("%w (%s is %q, the plan read %q)", errStalePlan, k, cp[k], v)
				}
			}
			return nil
		}}
	var rec arrow.RecordBatch
	if len(p.rows) > 0 {
		out, err := s.Gold.NewRows()
		if err != nil {
			return err
		}
		defer out.Release()
		slices.SortFunc(p.rows, func(a, b session) int { return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.key, b.key)) })
		for i := range p.rows {
			appendSession(out, &p.rows[i])
		}
		rec = out.Batch()
		defer rec.Release()
		b.Records = []arrow.RecordBatch{rec}
	}
	var c lake.Committed
	var err error
	if len(p.replaced) == 0 {
		c, err = s.Gold.Commit(ctx, b)
	} else {
		keys := make([]string, len(p.replaced))
		starts := make([]time.Time, len(p.replaced))
		for i, o := range p.replaced {
			keys[i], starts[i] = o.key, time.UnixMicro(o.start)
		}
		// Keys are unique; the start times let the delete skip the files
		// (and days) that cannot hold them.
		c, err = s.Gold.Replace(ctx, lake.ReplaceBatch{Batch: b, Delete: iceberg.NewAnd(
			iceberg.IsIn(iceberg.Reference("session_key"), keys...), lake.TimesIn("session_start", starts))})
	}
	if err != nil {
		return fmt.Errorf("commit %s: %w", s.Gold.Name(), err)
	}
	s.log().Debug("gold committed", "table", s.Gold.Name(), "sessions", len(p.rows), "replaced", len(p.replaced),
		"groups", p.recomputed, "closed", p.closed, "silver_rows", p.silverRows, "already_landed", c.AlreadyLanded)
	return nil
}

// readEvents adds the player events of r whose group and time keep
// accepts to events, copying what it keeps out of the record's buffers.
func readEvents(r arrow.RecordBatch, in *interner, keep func(groupKey, int64) bool, events map[groupKey][]*playerEvent) {
	id := column[*array.String](r, "event_id")
	typ := column[*array.String](r, "event_type")
	ts := column[*array.Timestamp](r, "event_time")
	sid := column[*array.String](r, "session_id")
	user := column[*array.String](r, "user_key")
	video := column[*array.String](r, "video_id")
	ttff := column[*array.Float64](r, "time_to_first_frame_ms")
	bufType := column[*array.String](r, "buffer_type")
	bufMs := column[*array.Float64](r, "buffer_duration_ms")
	bitrate := column[*array.Int64](r, "bitrate_bps")
	from := column[*array.Int64](r, "bitrate_from_bps")
	to := column[*array.Int64](r, "bitrate_to_bps")
	direction := column[*array.String](r, "direction")
	track := column[*array.String](r, "cdn_tracking_id")
	conn := column[*array.String](r, "connection_type")
	country := column[*array.String](r, "country")
	isp := column[*array.String](r, "isp")
	app := column[*array.String](r, "app_type")
	appVersion := column[*array.String](r, "app_version")
	device := column[*array.String](r, "device_type")
	os := column[*array.String](r, "os")
	browser := column[*array.String](r, "browser")
	for i := range int(r.NumRows()) {
		t := int64(ts.Value(i))
		g := groupKey{sessionID: valueOf(sid, i)}
		if g.sessionID == "" {
			g = groupKey{user: valueOf(user, i), video: valueOf(video, i)}
		}
		if !keep(g, t) {
			continue
		}
		e := &playerEvent{
			id: strings.Clone(id.Value(i)), typ: in.str(typ, i), t: t,
			sessionID: in.str(sid, i), user: in.str(user, i), video: in.str(video, i),
			bufType: in.str(bufType, i), direction: in.str(direction, i), tracking: strings.Clone(valueOf(track, i)),
			conn: in.str(conn, i), country: in.str(country, i), isp: in.str(isp, i),
			app: in.str(app, i), appVersion: in.str(appVersion, i), device: in.str(device, i), os: in.str(os, i), brw: in.str(browser, i),
		}
		if e.hasTTFF = ttff.IsValid(i); e.hasTTFF {
			e.ttff = ttff.Value(i)
		}
		if e.hasBufMs = bufMs.IsValid(i); e.hasBufMs {
			e.bufMs = bufMs.Value(i)
		}
		if e.hasBitrate = bitrate.IsValid(i); e.hasBitrate {
			e.bitrate = bitrate.Value(i)
		}
		if e.hasFrom = from.IsValid(i); e.hasFrom {
			e.from = from.Value(i)
		}
		if e.hasTo = to.IsValid(i); e.hasTo {
			e.to = to.Value(i)
		}
		g = groupOf(e) // the interned copies
		events[g] = append(events[g], e)
	}
}

// appendSession adds one gold.sessions row.
func appendSession(out *lake.Rows, s *session) {
	out.String("session_key", s.key)
	out.NullableString("session_id", s.sessionID)
	out.NullableString("user_key", s.user)
	out.NullableString("video_id", s.video)
	out.Time("session_start", time.UnixMicro(s.start))
	out.Time("session_end", time.UnixMicro(s.end))
	out.Bool("attempt", s.attempt)
	out.Bool("started", s.started)
	if s.hasStartTime {
		out.OptFloat64("start_time_ms", &s.startTimeMs)
	} else {
		out.OptFloat64("start_time_ms", nil)
	}
	out.Bool("start_failure", s.startFailure)
	out.Bool("exit_before_start", s.exitBeforeStart)
	out.Bool("playback_failure", s.playbackFailure)
	out.Int64("stall_count", s.stallCount)
	out.OptFloat64("stall_ms", &s.stallMs)
	out.OptFloat64("watch_time_s", &s.watchS)
	out.OptFloat64("bits_played", &s.bitsPlayed)
	out.Int64("switches_up", s.switchesUp)
	out.Int64("switches_down", s.switchesDown)
	out.Int64("events", s.events)
	out.String("end_reason", s.endReason)
	out.NullableString("country", s.country)
	out.NullableString("isp", s.isp)
	out.NullableString("connection_type", s.conn)
	out.NullableString("app_type", s.app)
	out.NullableString("app_version", s.appVersion)
	out.NullableString("device_type", s.device)
	out.NullableString("os", s.os)
	out.NullableString("browser", s.browser)
	out.NullableString("device_source", s.deviceSource)
	out.NullableString("network_source", s.networkSource)
	out.NullableString("edge_location", s.edgeLocation)
	out.NullableString("pop", s.pop)
	out.NullableString("edge_result_type", s.edgeResult)
}

// readSessions reads gold.sessions rows (all columns) back.
func readSessions(r arrow.RecordBatch) []session {
	strCol := func(name string) func(int) string {
		a := column[*array.String](r, name)
		return func(i int) string { return strings.Clone(valueOf(a, i)) }
	}
	boolCol := func(name string) func(int) bool {
		a := column[*array.Boolean](r, name)
		return func(i int) bool { return a.Value(i) }
	}
	intCol := func(name string) func(int) int64 {
		a := column[*array.Int64](r, name)
		return func(i int) int64 { return a.Value(i) }
	}
	floatCol := func(name string) func(int) float64 {
		a := column[*array.Float64](r, name)
		return func(i int) float64 { return a.Value(i) }
	}
	timeCol := func(name string) func(int) int64 {
		a := column[*array.Timestamp](r, name)
		return func(i int) int64 { return int64(a.Value(i)) }
	}
	key, sid, user, video := strCol("session_key"), strCol("session_id"), strCol("user_key"), strCol("video_id")
	start, end := timeCol("session_start"), timeCol("session_end")
	attempt, started, failure := boolCol("attempt"), boolCol("started"), boolCol("start_failure")
	exit, playback := boolCol("exit_before_start"), boolCol("playback_failure")
	startTime := column[*array.Float64](r, "start_time_ms")
	stalls, stallMs, watch, bits := intCol("stall_count"), floatCol("stall_ms"), floatCol("watch_time_s"), floatCol("bits_played")
	up, down, events, reason := intCol("switches_up"), intCol("switches_down"), intCol("events"), strCol("end_reason")
	country, isp, conn, app, appVersion := strCol("country"), strCol("isp"), strCol("connection_type"), strCol("app_type"), strCol("app_version")
	device, os, browser, source := strCol("device_type"), strCol("os"), strCol("browser"), strCol("device_source")
	netSource := strCol("network_source")
	edge, pop, result := strCol("edge_location"), strCol("pop"), strCol("edge_result_type")
	out := make([]session, r.NumRows())
	for i := range out {
		out[i] = session{sessionRow: sessionRow{
			key: key(i), sessionID: sid(i), user: user(i), video: video(i), start: start(i), end: end(i),
			attempt: attempt(i), started: started(i), startFailure: failure(i), exitBeforeStart: exit(i), playbackFailure: playback(i),
			stallCount: stalls(i), stallMs: stallMs(i), watchS: watch(i), bitsPlayed: bits(i),
			switchesUp: up(i), switchesDown: down(i), events: events(i), endReason: reason(i),
			country: country(i), isp: isp(i), conn: conn(i), app: app(i), appVersion: appVersion(i),
			device: device(i), os: os(i), browser: browser(i), deviceSource: source(i), networkSource: netSource(i),
			edgeLocation: edge(i), pop: pop(i), edgeResult: result(i),
		}, errored: failure(i) || playback(i)}
		if startTime.IsValid(i) {
			out[i].startTimeMs, out[i].hasStartTime = startTime.Value(i), true
		}
	}
	return out
}

// eventSpan is a closed range of event times, Unix microseconds.
type eventSpan struct{ lo, hi int64 }

// touches are the time ranges an increment touches, by group.
type touches map[groupKey]*touch

type touch struct{ spans []eventSpan }

// add records a range touched in g, whose strings may point into an
// Arrow buffer: a new key is copied (a map assignment would store g).
func (t touches) add(g groupKey, s eventSpan) {
	if x, ok := t[g]; ok {
		x.spans = append(x.spans, s)
		return
	}
	t[groupKey{strings.Clone(g.sessionID), strings.Clone(g.user), strings.Clone(g.video)}] = &touch{spans: []eventSpan{s}}
}

// joinKey is silver.JoinKey of a string read from an Arrow buffer, as a
// copy that may be kept.
func joinKey(id string) string {
	k := silver.JoinKey(id)
	if k == id {
		return strings.Clone(id)
	}
	return k
}

// mergeSpans sorts spans and merges those that overlap or meet.
func mergeSpans(spans []eventSpan) []eventSpan {
	if len(spans) == 0 {
		return nil
	}
	slices.SortFunc(spans, func(a, b eventSpan) int { return cmp.Compare(a.lo, b.lo) })
	out := spans[:1]
	for _, s := range spans[1:] {
		last := &out[len(out)-1]
		if s.lo <= last.hi {
			last.hi = max(last.hi, s.hi)
		} else {
			out = append(out, s)
		}
	}
	return out
}

func hull(spans []eventSpan) eventSpan {
	h := spans[0]
	for _, s := range spans[1:] {
		h.lo, h.hi = min(h.lo, s.lo), max(h.hi, s.hi)
	}
	return h
}

// spanIndex is the index of the first merged span ending at or after t.
func spanIndex(spans []eventSpan, t int64) int {
	i, _ := slices.BinarySearchFunc(spans, t, func(s eventSpan, t int64) int { return cmp.Compare(s.hi, t) })
	return i
}

// contains reports whether merged spans hold t.
func contains(spans []eventSpan, t int64) bool {
	i := spanIndex(spans, t)
	return i < len(spans) && spans[i].lo <= t
}

// overlaps reports whether merged spans meet [lo, hi].
func overlaps(spans []eventSpan, lo, hi int64) bool {
	i := spanIndex(spans, lo)
	return i < len(spans) && spans[i].lo <= hi
}

// spansFilter selects the rows whose col lies in one of the merged spans.
func spansFilter(col string, spans []eventSpan) iceberg.BooleanExpression {
	ref := iceberg.Reference(col)
	out := make([]iceberg.BooleanExpression, len(spans))
	for i, s := range spans {
		out[i] = iceberg.NewAnd(iceberg.GreaterThanEqual(ref, iceberg.Timestamp(s.lo)), iceberg.LessThanEqual(ref, iceberg.Timestamp(s.hi)))
	}
	return anyOf(out)
}

// overlapFilter selects the sessions whose [session_start, session_end]
// meets one of the merged spans.
func overlapFilter(spans []eventSpan) iceberg.BooleanExpression {
	out := make([]iceberg.BooleanExpression, len(spans))
	for i, s := range spans {
		out[i] = iceberg.NewAnd(iceberg.LessThanEqual(iceberg.Reference("session_start"), iceberg.Timestamp(s.hi)),
			iceberg.GreaterThanEqual(iceberg.Reference("session_end"), iceberg.Timestamp(s.lo)))
	}
	return anyOf(out)
}
