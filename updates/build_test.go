package updates

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/qoslake/qoslake/gold"
	"github.com/qoslake/qoslake/internal/testlake"
	"github.com/qoslake/qoslake/lake"
)

var base = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

// cumulative turns bucket counts into Prometheus-style cumulative buckets.
func cumulative(counts []int64) []int64 {
	out := make([]int64, len(counts))
	var sum int64
	for i, n := range counts {
		sum += n
		out[i] = sum
	}
	return out
}

// playerRows are gold.player_minute rows for the given minutes after base,
// per video (one without an id) and connection type.
func playerRows(r *rand.Rand, videos []string, minutes ...int) []row {
	var out []row
	for _, m := range minutes {
		for _, v := range videos {
			for _, conn := range []string{"wifi", "4g"} {
				counts := make([]int64, len(gold.StartTimeBucketColumns))
				for i := range counts {
					counts[i] = r.Int64N(4)
				}
				buckets := cumulative(counts)
				rw := row{
					"window_start": base.Add(time.Duration(m) * time.Minute), "video_id": v, "connection_type": conn,
					"events": r.Int64N(100), "play_attempts": r.Int64N(6), "errors": r.Int64N(3),
					"stall_count": r.Int64N(4), "bitrate_bps_sum": r.Int64N(50_000_000), "bitrate_bps_count": r.Int64N(10),
					"time_to_first_frame_ms_count": buckets[len(buckets)-1],
				}
				for i, c := range gold.StartTimeBucketColumns {
					rw[c] = buckets[i]
				}
				out = append(out, rw)
			}
		}
	}
	return out
}

func cdnRows(r *rand.Rand, minutes ...int) []row {
	var out []row
	cols := gold.BucketColumns("time_taken")
	for _, m := range minutes {
		for _, edge := range []string{"FRA56-P3", "LHR61-C1"} {
			counts := make([]int64, len(cols))
			for i := range counts {
				counts[i] = r.Int64N(20)
			}
			buckets := cumulative(counts)
			req := buckets[len(buckets)-1]
			rw := row{
				"window_start": base.Add(time.Duration(m) * time.Minute), "edge_location": edge, "pop": edge[:3],
				"requests": req, "cache_hits": r.Int64N(req + 1), "status_4xx": r.Int64N(req/4 + 1), "status_5xx": r.Int64N(req/8 + 1),
				"time_taken_ms_count": req,
			}
			for i, c := range cols {
				rw[c] = buckets[i]
			}
			out = append(out, rw)
		}
	}
	return out
}

func minute(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }

// sessionRows: with N = 10 minutes and the newest event at 12:19:30, the
// sessions active since 12:09:30 (inclusive) or still open are s1, s3, s4,
// s5 and s7 (ended on the boundary), of users u1 to u5; s3 and s4 are
// open. s2 and s6 ended before.
var sessionRows = []row{
	{"session_key": "s1", "user_key": "u1", "video_id": "v1", "session_start": minute(15), "session_end": minute(19).Add(30 * time.Second), "end_reason": "stop", "started": true},
	{"session_key": "s2", "user_key": "u1", "video_id": "v2", "session_start": minute(1), "session_end": minute(3), "end_reason": "stop", "started": true},
	{"session_key": "s3", "user_key": "u2", "video_id": "v1", "session_start": minute(10), "session_end": minute(15), "end_reason": "open", "started": true},
	{"session_key": "s4", "user_key": "u3", "video_id": "v3", "session_start": minute(0), "session_end": minute(2), "end_reason": "open"},
	{"session_key": "s5", "user_key": "u4", "video_id": "v1", "session_start": minute(5), "session_end": minute(12), "end_reason": "timeout", "started": true},
	{"session_key": "s6", "user_key": "u5", "video_id": "v2", "session_start": minute(4), "session_end": minute(9), "end_reason": "error"},
	{"session_key": "s7", "user_key": "u5", "video_id": "v2", "session_start": minute(9), "session_end": minute(9).Add(30 * time.Second), "end_reason": "error", "attempt": int64(2)},
}

// decoded is a message body as a consumer reads it, every field named as
// the package documentation says.
type decoded struct {
	SchemaVersion      int               `json:"schema_version"`
	UpdateType         string            `json:"update_type"`
	UpdateID           string            `json:"update_id"`
	Part               int               `json:"part"`
	Parts              int               `json:"parts"`
	GeneratedAt        time.Time         `json:"generated_at"`
	AsOfEventTime      *time.Time        `json:"as_of_event_time"`
	GoldSnapshots      map[string]string `json:"gold_snapshots"`
	WindowMinutes      int               `json:"window_minutes"`
	WindowStart        *time.Time        `json:"window_start"`
	WindowEnd          *time.Time        `json:"window_end"`
	ActiveUsers        int               `json:"active_users"`
	ActiveSessions     int               `json:"active_sessions"`
	ConcurrentSessions int               `json:"concurrent_sessions"`
	VideoCount         int               `json:"video_count"`
	Views              int64             `json:"views"`
	Videos             []VideoViews      `json:"videos"`
	LastMinute         map[string]any    `json:"last_minute"`
	Last5Minutes       map[string]any    `json:"last_5_minutes"`
}

// decodeAll decodes the bodies and joins the parts of each update (whose
// videos then hold every part's).
func decodeAll(t *testing.T, bodies [][]byte) map[UpdateType]decoded {
	t.Helper()
	out := map[UpdateType]decoded{}
	for _, b := range bodies {
		var d decoded
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		if d.SchemaVersion != SchemaVersion {
			t.Errorf("schema_version %d", d.SchemaVersion)
		}
		typ := UpdateType(d.UpdateType)
		if prev, ok := out[typ]; ok {
			if prev.UpdateID != d.UpdateID {
				t.Fatalf("two %s updates: %s and %s", typ, prev.UpdateID, d.UpdateID)
			}
			prev.Videos = append(prev.Videos, d.Videos...)
			prev.Part = max(prev.Part, d.Part)
			out[typ] = prev
			continue
		}
		out[typ] = d
	}
	return out
}

func bodiesOf(ups []*update) [][]byte {
	var out [][]byte
	for _, u := range ups {
		for _, m := range u.msgs {
			out = append(out, m.body)
		}
	}
	return out
}

// expected computes what the updates should say from the rows written,
// independently of the package's scans.
type expected struct {
	player, cdn []row
}

func (e expected) views(from time.Time) []VideoViews {
	sums := map[string]int64{}
	for _, r := range e.player {
		if !r["window_start"].(time.Time).Before(from) && r["play_attempts"].(int64) > 0 {
			sums[r["video_id"].(string)] += r["play_attempts"].(int64)
		}
	}
	var out []VideoViews
	for v, n := range sums {
		out = append(out, VideoViews{v, n})
	}
	slices.SortFunc(out, func(a, b VideoViews) int {
		return cmp.Or(cmp.Compare(b.Views, a.Views), cmp.Compare(a.VideoID, b.VideoID))
	})
	return out
}

func sum(rows []row, from, to time.Time, col string) int64 {
	var n int64
	for _, r := range rows {
		if ws := r["window_start"].(time.Time); !ws.Before(from) && ws.Before(to) {
			v, _ := r[col].(int64) // left out: zero
			n += v
		}
	}
	return n
}

func sums(rows []row, from, to time.Time, cols []string) []int64 {
	out := make([]int64, len(cols))
	for i, c := range cols {
		out[i] = sum(rows, from, to, c)
	}
	return out
}

// jsonOf is v as a consumer decodes it.
func jsonOf(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func ratioOf(n, d int64) any {
	if d == 0 {
		return nil
	}
	return float64(n) / float64(d)
}

func finiteOrNil(v float64) any {
	if math.IsNaN(v) {
		return nil
	}
	return v
}

func (e expected) kpis(t *testing.T, newestPlayer, newestCDN time.Time) map[string]any {
	block := func(newest time.Time, minutes int) map[string]any {
		from, to := newest.Add(-time.Duration(minutes)*time.Minute), newest
		p := e.player
		st := sums(p, from, to, gold.StartTimeBucketColumns)
		return map[string]any{
			"player": map[string]any{
				"window_start": from, "window_end": to,
				"play_attempts":           sum(p, from, to, "play_attempts"),
				"video_start_time_p50_ms": finiteOrNil(gold.StartTimeQuantile(st, 0.5)),
				"video_start_time_p95_ms": finiteOrNil(gold.StartTimeQuantile(st, 0.95)),
				"error_ratio":             ratioOf(sum(p, from, to, "errors"), sum(p, from, to, "play_attempts")),
				"stall_count":             sum(p, from, to, "stall_count"),
				"average_bitrate_bps":     ratioOf(sum(p, from, to, "bitrate_bps_sum"), sum(p, from, to, "bitrate_bps_count")),
			},
			"cdn": nil,
		}
	}
	cdnBlock := func(newest time.Time, minutes int) map[string]any {
		from, to := newest.Add(-time.Duration(minutes)*time.Minute), newest
		c := e.cdn
		req := sum(c, from, to, "requests")
		return map[string]any{
			"window_start": from, "window_end": to, "requests": req,
			"cache_hit_ratio":   ratioOf(sum(c, from, to, "cache_hits"), req),
			"time_taken_p95_ms": finiteOrNil(gold.Quantile(sums(c, from, to, gold.BucketColumns("time_taken")), 0.95)),
			"status_4xx_share":  ratioOf(sum(c, from, to, "status_4xx"), req),
			"status_5xx_share":  ratioOf(sum(c, from, to, "status_5xx"), req),
		}
	}
	last, last5 := block(newestPlayer, 1), block(newestPlayer, 5)
	last["cdn"], last5["cdn"] = cdnBlock(newestCDN, 1), cdnBlock(newestCDN, 5)
	return map[string]any{"last_minute": jsonOf(t, last), "last_5_minutes": jsonOf(t, last5)}
}

func newBuilder(g Gold) *builder {
	return &builder{gold: g, recent: 10 * time.Minute, limit: MaxMessageBytes,
		now: func() time.Time { return time.Date(2026, 3, 2, 12, 30, 0, 0, time.UTC) }}
}

func buildAll(t *testing.T, b *builder, last map[UpdateType]lake.Pins) (map[UpdateType]decoded, []*update) {
	t.Helper()
	ups, _, err := b.build(context.Background(), UpdateTypes, last)
	if err != nil {
		t.Fatal(err)
	}
	return decodeAll(t, bodiesOf(ups)), ups
}

// Every update type against the same numbers computed from the rows
// written; then again after gold replaced some windows and added a minute,
// from the kept per-file totals and from scratch.
func TestBuildFromGold(t *testing.T) {
	g := openGold(t, t.TempDir())
	r := rand.New(rand.NewPCG(1, 2))
	videos := []string{"v1", "v2", "v3", ""}
	e := expected{player: playerRows(r, videos, seq(0, 10)...), cdn: cdnRows(r, seq(0, 18)...)}
	appendRows(t, g.gold.PlayerMinute, gold.PlayerMinuteTable, e.player)
	more := playerRows(r, videos, seq(10, 20)...)
	appendRows(t, g.gold.PlayerMinute, gold.PlayerMinuteTable, more)
	e.player = append(e.player, more...)
	appendRows(t, g.gold.CDNMinute, gold.CDNMinuteTable, e.cdn)
	appendRows(t, g.gold.Sessions, sessionsDef, sessionRows[:3])
	appendRows(t, g.gold.Sessions, sessionsDef, sessionRows[3:])

	b := newBuilder(g.gold)
	got, ups := buildAll(t, b, nil)
	if len(got) != len(UpdateTypes) {
		t.Fatalf("updates %v, want all four", slices.Collect(maps.Keys(got)))
	}
	check := func(t *testing.T, got map[UpdateType]decoded, newestPlayer, newestCDN time.Time) {
		t.Helper()
		playerEnd := newestPlayer.Add(time.Minute)

		au := got[ActiveUsers]
		asOf := minute(19).Add(30 * time.Second)
		if au.AsOfEventTime == nil || !au.AsOfEventTime.Equal(asOf) || au.WindowMinutes != 10 || au.WindowStart == nil ||
			!au.WindowStart.Equal(asOf.Add(-10*time.Minute)) || !au.WindowEnd.Equal(asOf) {
			t.Errorf("active_users window: as of %v, %d min [%v, %v]", au.AsOfEventTime, au.WindowMinutes, au.WindowStart, au.WindowEnd)
		}
		if au.ActiveUsers != 5 || au.ActiveSessions != 5 || au.ConcurrentSessions != 2 {
			t.Errorf("active_users: %d users, %d sessions, %d concurrent; want 5, 5, 2", au.ActiveUsers, au.ActiveSessions, au.ConcurrentSessions)
		}

		rv := got[RecentViews]
		want := e.views(playerEnd.Add(-10 * time.Minute))
		if !slices.Equal(rv.Videos, want) || rv.VideoCount != len(want) || rv.Views != sumViews(want) {
			t.Errorf("recent_views: %v (%d videos, %d views), want %v", rv.Videos, rv.VideoCount, rv.Views, want)
		}
		if rv.AsOfEventTime == nil || !rv.AsOfEventTime.Equal(playerEnd) || rv.WindowStart == nil ||
			!rv.WindowStart.Equal(playerEnd.Add(-10*time.Minute)) || !rv.WindowEnd.Equal(playerEnd) {
			t.Errorf("recent_views: as of %v from %v, want %v from 10 minutes before", rv.AsOfEventTime, rv.WindowStart, playerEnd)
		}

		tv := got[TotalViews]
		want = e.views(time.Time{})
		if !slices.Equal(tv.Videos, want) || tv.VideoCount != len(want) || tv.Views != sumViews(want) {
			t.Errorf("total_views: %v, want %v", tv.Videos, want)
		}

		kpi := got[KPISummary]
		wantKPI := e.kpis(t, newestPlayer, newestCDN)
		if !reflect.DeepEqual(kpi.LastMinute, wantKPI["last_minute"]) {
			t.Errorf("last_minute:\n got %v\nwant %v", kpi.LastMinute, wantKPI["last_minute"])
		}
		if !reflect.DeepEqual(kpi.Last5Minutes, wantKPI["last_5_minutes"]) {
			t.Errorf("last_5_minutes:\n got %v\nwant %v", kpi.Last5Minutes, wantKPI["last_5_minutes"])
		}
		if kpi.AsOfEventTime == nil || !kpi.AsOfEventTime.Equal(playerEnd) {
			t.Errorf("kpi_summary as of %v, want %v (the player table's, newer than the CDN's)", kpi.AsOfEventTime, playerEnd)
		}
		for typ, d := range got {
			if !d.GeneratedAt.Equal(time.Date(2026, 3, 2, 12, 30, 0, 0, time.UTC)) || d.Parts != 1 || d.Part != 1 {
				t.Errorf("%s: generated %v, part %d of %d", typ, d.GeneratedAt, d.Part, d.Parts)
			}
		}
	}
	check(t, got, minute(19), minute(17))
	pins := lake.Pins{}
	for _, u := range ups {
		maps.Copy(pins, u.pins)
	}
	for name, tbl := range map[string]*lake.Table{"gold.player_minute": g.gold.PlayerMinute, "gold.cdn_minute": g.gold.CDNMinute, "gold.sessions": g.gold.Sessions} {
		if got[KPISummary].GoldSnapshots[name] == "" && name != "gold.sessions" {
			t.Errorf("kpi_summary names no snapshot of %s", name)
		}
		if want := strconv.FormatInt(tbl.Snapshot().SnapshotID, 10); pins[name].SnapshotID != tbl.Snapshot().SnapshotID {
			t.Errorf("%s pinned at %d, want the current %s", name, pins[name].SnapshotID, want)
		}
	}

	// Gold where it was: nothing to publish.
	last := map[UpdateType]lake.Pins{}
	for _, u := range ups {
		last[u.typ] = u.pins
	}
	if again, _ := buildAll(t, b, last); len(again) != 0 {
		t.Errorf("unchanged gold built %v", slices.Collect(maps.Keys(again)))
	}

	// Late data rewrites minutes 3 and 12, and minute 20 arrives; the
	// CDN table does not move, so only the player updates are built.
	late := playerRows(r, videos, 3, 12)
	replaceMinutes(t, g.gold.PlayerMinute, gold.PlayerMinuteTable, []time.Time{minute(3), minute(12)}, late)
	e.player = slices.DeleteFunc(e.player, func(rw row) bool {
		ws := rw["window_start"].(time.Time)
		return ws.Equal(minute(3)) || ws.Equal(minute(12))
	})
	e.player = append(e.player, late...)
	newMinute := playerRows(r, videos, 20)
	appendRows(t, g.gold.PlayerMinute, gold.PlayerMinuteTable, newMinute)
	e.player = append(e.player, newMinute...)

	warm, _ := buildAll(t, b, last)
	if _, ok := warm[ActiveUsers]; ok || len(warm) != 3 {
		t.Errorf("after a player commit built %v, want the three player updates", slices.Collect(maps.Keys(warm)))
	}
	warm[ActiveUsers] = got[ActiveUsers]
	check(t, warm, minute(20), minute(17))
	cold, _ := buildAll(t, newBuilder(g.gold), nil)
	check(t, cold, minute(20), minute(17))
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func sumViews(v []VideoViews) int64 {
	var n int64
	for _, x := range v {
		n += x.Views
	}
	return n
}

// Empty tables give updates with zero counts and no event time.
func TestBuildFromEmptyGold(t *testing.T) {
	g := openGold(t, t.TempDir())
	got, _ := buildAll(t, newBuilder(g.gold), nil)
	if len(got) != len(UpdateTypes) {
		t.Fatalf("updates %v, want all four", slices.Collect(maps.Keys(got)))
	}
	for typ, d := range got {
		if d.AsOfEventTime != nil || d.WindowStart != nil || d.WindowEnd != nil || d.Views != 0 || d.ActiveUsers != 0 || len(d.Videos) != 0 {
			t.Errorf("%s: %+v", typ, d)
		}
	}
	if k := got[KPISummary]; k.LastMinute["player"] != nil || k.LastMinute["cdn"] != nil {
		t.Errorf("kpi_summary of empty tables: %v", k.LastMinute)
	}
}

// Without gold.sessions, active_users is not built.
func TestBuildWithoutSessions(t *testing.T) {
	g := openGold(t, t.TempDir())
	g.gold.Sessions = nil
	got, _ := buildAll(t, newBuilder(g.gold), nil)
	if _, ok := got[ActiveUsers]; ok || len(got) != 3 {
		t.Errorf("updates %v, want all but active_users", slices.Collect(maps.Keys(got)))
	}
}

// A table an update cannot read fails that update only.
func TestBuildIsolatesAFailingType(t *testing.T) {
	dir := t.TempDir()
	g := openGold(t, dir)
	noReason := sessionsDef
	noReason.Name = "sessions_without_end_reason"
	noReason.Columns = slices.DeleteFunc(slices.Clone(sessionsDef.Columns), func(c lake.Column) bool { return c.Name == "end_reason" })
	tbl := testlake.Open(t, dir, noReason)[0]
	var rows []row
	for _, r := range sessionRows {
		rows = append(rows, maps.Clone(r))
		delete(rows[len(rows)-1], "end_reason")
	}
	appendRows(t, tbl, noReason, rows)
	g.gold.Sessions = tbl
	ups, failed, err := newBuilder(g.gold).build(t.Context(), UpdateTypes, nil)
	if err == nil || !slices.Equal(failed, []UpdateType{ActiveUsers}) || len(ups) != 3 {
		t.Errorf("built %d updates, failed %v, err %v; want 3 built and active_users failed", len(ups), failed, err)
	}
}
