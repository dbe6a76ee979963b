package updates

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
	"github.com/google/uuid"

	"github.com/qoslake/qoslake/gold"
	"github.com/qoslake/qoslake/lake"
)

// Gold are the gold tables the updates read. Sessions may be nil while
// gold.sessions does not exist: active_users is then not published.
type Gold struct {
	PlayerMinute *lake.Table
	CDNMinute    *lake.Table
	Sessions     *lake.Table
}

// tablesOf are the gold tables an update type reads, nil when one is
// missing.
func (g Gold) tablesOf(t UpdateType) []*lake.Table {
	var ts []*lake.Table
	switch t {
	case ActiveUsers:
		ts = []*lake.Table{g.Sessions}
	case RecentViews, TotalViews:
		ts = []*lake.Table{g.PlayerMinute}
	case KPISummary:
		ts = []*lake.Table{g.PlayerMinute, g.CDNMinute}
	}
	if slices.Contains(ts, nil) {
		return nil
	}
	return ts
}

// update is one computed update, ready to publish.
type update struct {
	typ  UpdateType
	id   string
	pins lake.Pins // the snapshots it was computed from
	msgs []message
}

// builder computes updates from gold. It is used by one goroutine at a
// time: it keeps the per-file view counts between builds.
type builder struct {
	gold   Gold
	recent time.Duration
	now    func() time.Time
	limit  int // bytes per message
	totals fileTotals
}

// build computes the updates of types from one pinned state of the gold
// tables they read, leaving out those whose tables have not moved since the
// pins of the last update of that type that was published (last). A type
// whose update fails is returned in failed, with the error; the others are
// built all the same, so one unreadable table holds back only the updates
// that read it.
func (b *builder) build(ctx context.Context, types []UpdateType, last map[UpdateType]lake.Pins) (out []*update, failed []UpdateType, err error) {
	var tables []*lake.Table
	for _, t := range types {
		for _, tbl := range b.gold.tablesOf(t) {
			if !slices.Contains(tables, tbl) {
				tables = append(tables, tbl)
			}
		}
	}
	if len(tables) == 0 {
		return nil, nil, nil
	}
	pins, err := lake.Pin(ctx, tables...)
	if err != nil {
		return nil, types, fmt.Errorf("pin gold: %w", err)
	}
	r := &round{builder: b, pins: pins, generated: b.now().UTC()}
	var errs []error
	for _, t := range types {
		ts := b.gold.tablesOf(t)
		if ts == nil {
			continue
		}
		mine := lake.Pins{}
		for _, tbl := range ts {
			mine[tbl.Name()] = pins[tbl.Name()]
		}
		if prev, ok := last[t]; ok && maps.Equal(prev, mine) {
			continue // gold has not moved: the last update still says it all
		}
		u, err := r.build(ctx, t, mine)
		if err != nil {
			failed = append(failed, t)
			errs = append(errs, fmt.Errorf("%s: %w", t, err))
			continue
		}
		out = append(out, u)
	}
	return out, failed, errors.Join(errs...)
}

// round is one build: what several update types share is read once.
type round struct {
	*builder
	pins      lake.Pins
	generated time.Time

	newest map[string]time.Time // per minute table: the start of its newest window
	player *recentPlayer
	cdn    *recentCDN
}

// newestWindow is the start of the newest window of a gold minute table at
// its pin, from the file statistics; zero when the table is empty.
func (r *round) newestWindow(ctx context.Context, t *lake.Table) (time.Time, error) {
	if w, ok := r.newest[t.Name()]; ok {
		return w, nil
	}
	w, ok, err := t.NewestTime(ctx, lake.ScanOptions{Snapshot: r.pins[t.Name()]}, "window_start")
	if err != nil {
		return time.Time{}, err
	}
	if !ok {
		w = time.Time{}
	}
	if r.newest == nil {
		r.newest = map[string]time.Time{}
	}
	r.newest[t.Name()] = w
	return w, nil
}

func (r *round) build(ctx context.Context, t UpdateType, pins lake.Pins) (*update, error) {
	id := uuid.NewString()
	env := envelope{SchemaVersion: SchemaVersion, UpdateType: t, UpdateID: id, GeneratedAt: r.generated,
		GoldSnapshots: make(map[string]string, len(pins))}
	for name, p := range pins {
		env.GoldSnapshots[name] = strconv.FormatInt(p.SnapshotID, 10)
	}
	var msgs []message
	var err error
	switch t {
	case ActiveUsers:
		msgs, err = r.activeUsers(ctx, &env)
	case RecentViews:
		msgs, err = r.recentViews(ctx, &env)
	case TotalViews:
		msgs, err = r.totalViews(ctx, &env)
	case KPISummary:
		msgs, err = r.kpiSummary(ctx, &env)
	default:
		err = fmt.Errorf("unknown update type %q", t)
	}
	if err != nil {
		return nil, err
	}
	return &update{typ: t, id: id, pins: pins, msgs: msgs}, nil
}

// minutes is d in whole minutes, for window_minutes.
func minutes(d time.Duration) int { return int(d / time.Minute) }

// activeUsers reads the sessions active in the last N minutes of
// gold.sessions' event time. The scan is bounded by the filter: only the
// files holding sessions that ended in the window or are still open are
// read (their session_end statistics prune the rest).
func (r *round) activeUsers(ctx context.Context, env *envelope) ([]message, error) {
	t := r.gold.Sessions
	pin := r.pins[t.Name()]
	asOf, ok, err := t.NewestTime(ctx, lake.ScanOptions{Snapshot: pin}, "session_end", "session_start")
	if err != nil {
		return nil, err
	}
	body := activeUsersBody{window: window{Minutes: minutes(r.recent)}}
	if ok {
		start := asOf.Add(-r.recent)
		env.AsOfEventTime = &asOf
		body.Start, body.End = &start, &asOf
		from := start.UnixMicro()
		users, sessions, open := map[string]struct{}{}, map[string]struct{}{}, map[string]struct{}{}
		filter := iceberg.NewOr(
			iceberg.GreaterThanEqual(iceberg.Reference("session_end"), iceberg.Timestamp(from)),
			iceberg.EqualTo(iceberg.Reference("end_reason"), "open"))
		err := t.Scan(ctx, lake.ScanOptions{Snapshot: pin, Filter: filter,
			Fields: []string{"session_key", "user_key", "session_end", "end_reason"}},
			func(rec arrow.RecordBatch) error {
				key, err := column[*array.String](rec, "session_key")
				if err != nil {
					return err
				}
				user, err := column[*array.String](rec, "user_key")
				if err != nil {
					return err
				}
				end, err := column[*array.Timestamp](rec, "session_end")
				if err != nil {
					return err
				}
				reason, err := column[*array.String](rec, "end_reason")
				if err != nil {
					return err
				}
				for i := range int(rec.NumRows()) {
					isOpen := reason.IsValid(i) && reason.Value(i) == "open"
					if !isOpen && (!end.IsValid(i) || int64(end.Value(i)) < from) {
						continue
					}
					// Arrow's strings point into buffers released after
					// this call: the sets keep copies.
					k := strings.Clone(key.Value(i))
					sessions[k] = struct{}{}
					if isOpen {
						open[k] = struct{}{}
					}
					if user.IsValid(i) {
						users[strings.Clone(user.Value(i))] = struct{}{}
					}
				}
				return nil
			})
		if err != nil {
			return nil, err
		}
		body.ActiveUsers, body.ActiveSessions, body.ConcurrentSessions = len(users), len(sessions), len(open)
	}
	body.envelope = *env
	return single(&body.envelope, &body)
}

// recentPlayer is what the recent minutes of gold.player_minute say: views
// per video over the last N minutes, and the player KPIs of the last
// complete minute and the five before the newest.
type recentPlayer struct {
	newest      time.Time // start of the newest window; zero when the table is empty
	views       map[string]int64
	last, last5 playerAgg
}

type playerAgg struct {
	plays, errors, stalls, bitrateSum, bitrateCount int64
	startTime                                       []int64 // summed start_time_le_* buckets
}

var playerFields = slices.Concat([]string{"window_start", "video_id", "play_attempts", "errors", "stall_count",
	"bitrate_bps_sum", "bitrate_bps_count"}, gold.StartTimeBucketColumns)

// kpiMinutes is how many complete minutes the longer KPI window spans.
const kpiMinutes = 5

// recentPlayer reads gold.player_minute's newest minutes once per round:
// the newest window comes from the file statistics, and only the windows
// the updates need (N, or the newest and five before) are scanned, so the
// cost does not grow with the table's history.
func (r *round) recentPlayer(ctx context.Context) (*recentPlayer, error) {
	if r.player != nil {
		return r.player, nil
	}
	t := r.gold.PlayerMinute
	pin := r.pins[t.Name()]
	rp := &recentPlayer{views: map[string]int64{}}
	rp.last.startTime = make([]int64, len(gold.StartTimeBucketColumns))
	rp.last5.startTime = make([]int64, len(gold.StartTimeBucketColumns))
	newest, err := r.newestWindow(ctx, t)
	if err != nil {
		return nil, err
	}
	if newest.IsZero() {
		r.player = rp
		return rp, nil
	}
	rp.newest = newest
	end := newest.Add(gold.Window)
	viewsFrom := end.Add(-r.recent).UnixMicro()
	lastFrom, lastTo := newest.Add(-gold.Window).UnixMicro(), newest.UnixMicro()
	last5From := newest.Add(-kpiMinutes * gold.Window).UnixMicro()
	from := min(viewsFrom, last5From)
	err = t.Scan(ctx, lake.ScanOptions{Snapshot: pin, Fields: playerFields,
		Filter: iceberg.GreaterThanEqual(iceberg.Reference("window_start"), iceberg.Timestamp(from))},
		func(rec arrow.RecordBatch) error {
			ws, err := column[*array.Timestamp](rec, "window_start")
			if err != nil {
				return err
			}
			video, err := column[*array.String](rec, "video_id")
			if err != nil {
				return err
			}
			ints := map[string]*array.Int64{}
			for _, c := range playerFields[2:] {
				if ints[c], err = column[*array.Int64](rec, c); err != nil {
					return err
				}
			}
			plays := ints["play_attempts"]
			for i := range int(rec.NumRows()) {
				w := int64(ws.Value(i))
				if w >= viewsFrom && plays.Value(i) > 0 {
					v := ""
					if video.IsValid(i) {
						v = video.Value(i)
					}
					if _, seen := rp.views[v]; !seen {
						v = strings.Clone(v)
					}
					rp.views[v] += plays.Value(i)
				}
				if w >= last5From && w < lastTo {
					rp.last5.add(ints, i)
					if w >= lastFrom {
						rp.last.add(ints, i)
					}
				}
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	r.player = rp
	return rp, nil
}

func (a *playerAgg) add(c map[string]*array.Int64, i int) {
	a.plays += c["play_attempts"].Value(i)
	a.errors += c["errors"].Value(i)
	a.stalls += c["stall_count"].Value(i)
	a.bitrateSum += c["bitrate_bps_sum"].Value(i)
	a.bitrateCount += c["bitrate_bps_count"].Value(i)
	for j, col := range gold.StartTimeBucketColumns {
		a.startTime[j] += c[col].Value(i)
	}
}

func (a *playerAgg) kpis(start, end time.Time) *playerKPIs {
	return &playerKPIs{
		WindowStart: start, WindowEnd: end,
		PlayAttempts:        a.plays,
		VideoStartTimeP50Ms: finite(gold.StartTimeQuantile(a.startTime, 0.5)),
		VideoStartTimeP95Ms: finite(gold.StartTimeQuantile(a.startTime, 0.95)),
		ErrorRatio:          ratio(a.errors, a.plays),
		StallCount:          a.stalls,
		AverageBitrateBps:   ratio(a.bitrateSum, a.bitrateCount),
	}
}

// sortedViews lists the videos by views, descending, then by id.
func sortedViews(views map[string]int64) (list []VideoViews, total int64) {
	list = make([]VideoViews, 0, len(views))
	for v, n := range views {
		list = append(list, VideoViews{VideoID: v, Views: n})
		total += n
	}
	slices.SortFunc(list, func(a, b VideoViews) int {
		return cmp.Or(cmp.Compare(b.Views, a.Views), cmp.Compare(a.VideoID, b.VideoID))
	})
	return list, total
}

func (r *round) recentViews(ctx context.Context, env *envelope) ([]message, error) {
	rp, err := r.recentPlayer(ctx)
	if err != nil {
		return nil, err
	}
	w := window{Minutes: minutes(r.recent)}
	if !rp.newest.IsZero() {
		end := rp.newest.Add(gold.Window)
		start := end.Add(-r.recent)
		env.AsOfEventTime = &end
		w.Start, w.End = &start, &end
	}
	list, total := sortedViews(rp.views)
	return listed(env, list, r.limit, func(videos json.RawMessage) any {
		return recentViewsBody{envelope: *env, window: w, VideoCount: len(list), Views: total, Videos: videos}
	})
}

// totalViews sums play_attempts per video over the whole of
// gold.player_minute. Rather than read every row each time (a cost that
// grows with gold's history), it keeps the per-video sums of each data file
// it has read: Iceberg data files never change, so a build reads only the
// files written since the last one (the windows gold rewrote) and adds up
// the kept sums of the files still live. The sums are recomputed from the
// live files every time, so a replaced window can never be counted twice or
// drift, as running totals patched with deltas could. Memory is the
// distinct videos of each live file, which compaction keeps near the
// distinct videos of each day.
func (r *round) totalViews(ctx context.Context, env *envelope) ([]message, error) {
	t := r.gold.PlayerMinute
	newest, err := r.newestWindow(ctx, t)
	if err != nil {
		return nil, err
	}
	if !newest.IsZero() {
		end := newest.Add(gold.Window)
		env.AsOfEventTime = &end
	}
	views, err := r.totals.read(ctx, t, r.pins[t.Name()])
	if err != nil {
		return nil, err
	}
	list, total := sortedViews(views)
	return listed(env, list, r.limit, func(videos json.RawMessage) any {
		return totalViewsBody{envelope: *env, VideoCount: len(list), Views: total, Videos: videos}
	})
}

// fileTotals are the play attempts per video of each data file of
// gold.player_minute read so far, by file path.
type fileTotals struct {
	files map[string]map[string]int64
}

func (ft *fileTotals) read(ctx context.Context, t *lake.Table, pin lake.SnapshotPos) (map[string]int64, error) {
	fresh := map[string]map[string]int64{}
	files, err := t.ScanFiles(ctx, lake.ScanOptions{Snapshot: pin, Fields: []string{"video_id", "play_attempts"}},
		func(f lake.DataFile) bool { _, ok := ft.files[f.Path]; return ok },
		func(f lake.DataFile, rec arrow.RecordBatch) error {
			video, err := column[*array.String](rec, "video_id")
			if err != nil {
				return err
			}
			plays, err := column[*array.Int64](rec, "play_attempts")
			if err != nil {
				return err
			}
			m := fresh[f.Path]
			if m == nil {
				m = map[string]int64{}
				fresh[f.Path] = m
			}
			for i := range int(rec.NumRows()) {
				n := plays.Value(i)
				if n == 0 {
					continue
				}
				v := ""
				if video.IsValid(i) {
					v = video.Value(i)
				}
				if _, seen := m[v]; !seen {
					v = strings.Clone(v)
				}
				m[v] += n
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	totals := map[string]int64{}
	keep := make(map[string]map[string]int64, len(files))
	for _, f := range files {
		m, ok := fresh[f.Path]
		if !ok {
			m = ft.files[f.Path] // skipped: read before (nil for a file without plays)
		}
		if !f.Deleted {
			if m == nil {
				m = map[string]int64{}
			}
			keep[f.Path] = m
		}
		for v, n := range m {
			totals[v] += n
		}
	}
	ft.files = keep // files no longer live are forgotten
	return totals, nil
}

// recentCDN is the CDN KPIs of gold.cdn_minute's last complete minute and
// the five before its newest.
type recentCDN struct {
	newest      time.Time
	last, last5 cdnAgg
}

type cdnAgg struct {
	requests, hits, status4xx, status5xx int64
	timeTaken                            []int64
}

var timeTakenColumns = gold.BucketColumns("time_taken")

var cdnFields = slices.Concat([]string{"window_start", "requests", "cache_hits", "status_4xx", "status_5xx"}, timeTakenColumns)

func (r *round) recentCDN(ctx context.Context) (*recentCDN, error) {
	if r.cdn != nil {
		return r.cdn, nil
	}
	t := r.gold.CDNMinute
	pin := r.pins[t.Name()]
	rc := &recentCDN{}
	rc.last.timeTaken = make([]int64, len(timeTakenColumns))
	rc.last5.timeTaken = make([]int64, len(timeTakenColumns))
	newest, err := r.newestWindow(ctx, t)
	if err != nil {
		return nil, err
	}
	if newest.IsZero() {
		r.cdn = rc
		return rc, nil
	}
	rc.newest = newest
	lastFrom, lastTo := newest.Add(-gold.Window).UnixMicro(), newest.UnixMicro()
	last5From := newest.Add(-kpiMinutes * gold.Window).UnixMicro()
	err = t.Scan(ctx, lake.ScanOptions{Snapshot: pin, Fields: cdnFields,
		Filter: iceberg.NewAnd(
			iceberg.GreaterThanEqual(iceberg.Reference("window_start"), iceberg.Timestamp(last5From)),
			iceberg.LessThan(iceberg.Reference("window_start"), iceberg.Timestamp(lastTo)))},
		func(rec arrow.RecordBatch) error {
			ws, err := column[*array.Timestamp](rec, "window_start")
			if err != nil {
				return err
			}
			ints := map[string]*array.Int64{}
			for _, c := range cdnFields[1:] {
				if ints[c], err = column[*array.Int64](rec, c); err != nil {
					return err
				}
			}
			for i := range int(rec.NumRows()) {
				w := int64(ws.Value(i))
				if w < last5From || w >= lastTo {
					continue
				}
				rc.last5.add(ints, i)
				if w >= lastFrom {
					rc.last.add(ints, i)
				}
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	r.cdn = rc
	return rc, nil
}

func (a *cdnAgg) add(c map[string]*array.Int64, i int) {
	a.requests += c["requests"].Value(i)
	a.hits += c["cache_hits"].Value(i)
	a.status4xx += c["status_4xx"].Value(i)
	a.status5xx += c["status_5xx"].Value(i)
	for j, col := range timeTakenColumns {
		a.timeTaken[j] += c[col].Value(i)
	}
}

func (a *cdnAgg) kpis(start, end time.Time) *cdnKPIs {
	return &cdnKPIs{
		WindowStart: start, WindowEnd: end,
		Requests:       a.requests,
		CacheHitRatio:  ratio(a.hits, a.requests),
		TimeTakenP95Ms: finite(gold.Quantile(a.timeTaken, 0.95)),
		Status4xxShare: ratio(a.status4xx, a.requests),
		Status5xxShare: ratio(a.status5xx, a.requests),
	}
}

// kpiSummary reads the newest minutes of both minute tables. Each table's
// windows end at its own newest minute: CDN standard logs arrive minutes to
// hours after the player events, and a shared clock would report their
// not-yet-arrived minutes as zero traffic.
func (r *round) kpiSummary(ctx context.Context, env *envelope) ([]message, error) {
	rp, err := r.recentPlayer(ctx)
	if err != nil {
		return nil, err
	}
	rc, err := r.recentCDN(ctx)
	if err != nil {
		return nil, err
	}
	var body kpiBody
	var asOf time.Time
	if n := rp.newest; !n.IsZero() {
		body.LastMinute.Player = rp.last.kpis(n.Add(-gold.Window), n)
		body.Last5Minutes.Player = rp.last5.kpis(n.Add(-kpiMinutes*gold.Window), n)
		asOf = n.Add(gold.Window)
	}
	if n := rc.newest; !n.IsZero() {
		body.LastMinute.CDN = rc.last.kpis(n.Add(-gold.Window), n)
		body.Last5Minutes.CDN = rc.last5.kpis(n.Add(-kpiMinutes*gold.Window), n)
		if end := n.Add(gold.Window); end.After(asOf) {
			asOf = end
		}
	}
	if !asOf.IsZero() {
		env.AsOfEventTime = &asOf
	}
	body.envelope = *env
	return single(&body.envelope, &body)
}

// column returns the named column of rec as T.
func column[T arrow.Array](rec arrow.RecordBatch, name string) (T, error) {
	var zero T
	idx := rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return zero, fmt.Errorf("no column %s", name)
	}
	c, ok := rec.Column(idx[0]).(T)
	if !ok {
		return zero, fmt.Errorf("column %s is %s, not %T", name, rec.Column(idx[0]).DataType(), zero)
	}
	return c, nil
}
