package gold

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"

	"github.com/qoslake/qoslake/lake"
)

// StartTimeBounds are the upper bounds, in milliseconds, of the video start
// time histogram of gold.player_minute. Buckets are cumulative, as
// LatencyBounds' are: the bucket of bound b counts the first frames whose
// start time is <= b, and the last bucket (+inf, suffix "inf") counts every
// first frame with a start time. The bounds cover a cached start (100 ms)
// up to the 10 s after which most viewers have left.
var StartTimeBounds = [...]float64{100, 250, 500, 1000, 2000, 3000, 5000, 10000}

// startTimePrefix is the histogram column prefix of gold.player_minute.
const startTimePrefix = "start_time"

// StartTimeBucketColumns are the video start time histogram columns, in
// bound order, ending with the +inf bucket: start_time_le_100 ...
// start_time_le_inf.
var StartTimeBucketColumns = func() []string {
	out := make([]string, 0, len(StartTimeBounds)+1)
	for _, b := range StartTimeBounds {
		out = append(out, fmt.Sprintf("%s_le_%g", startTimePrefix, b))
	}
	return append(out, startTimePrefix+"_le_inf")
}()

func startTimeBucketDocs() []lake.Column {
	out := make([]lake.Column, len(StartTimeBucketColumns))
	for i, c := range StartTimeBucketColumns {
		bound := "+inf (every first frame with a start time; equals time_to_first_frame_ms_count)"
		if i < len(StartTimeBounds) {
			bound = fmt.Sprintf("%g ms", StartTimeBounds[i])
		}
		out[i] = lake.Column{Name: c, Type: i64, Required: true,
			Doc: fmt.Sprintf("cumulative histogram bucket: first frames whose video start time (CTA-2066) is <= %s", bound)}
	}
	return out
}

// PlayerDimensions are the grouping columns of gold.player_minute besides
// window_start. The reference SDK sends no app or device fields, so the
// app and device columns are null for its events (gold.sessions takes them
// from the CDN requests' user agent instead). Each minute keeps at most
// DimensionLimits values of a dimension and folds the rest into Other; a
// null and an empty value are the same group and are stored as null.
var PlayerDimensions = []string{"video_id", "connection_type", "country", "isp", "app_type", "app_version", "device_type", "os", "browser"}

// PlayerMinuteTable is gold.player_minute: player events aggregated per
// minute of event time and per (video_id, connection_type, country, isp,
// app_type, app_version, device_type, os, browser). Only mergeable values are stored; the CTA-2066
// metrics derive from them at any grain by summing first:
//
//   - video start time (CTA-2066: from the play request to the first frame;
//     the player's FIRSTFRAME time_millisecond): mean =
//     time_to_first_frame_ms_sum / time_to_first_frame_ms_count,
//     percentiles from the start_time_le_* buckets (StartTimeQuantile);
//   - rebuffering frequency (CTA-2066) = stall_count per play_attempts or
//     per stream_events (heartbeats) of the same rows;
//   - average bitrate (CTA-2066) = bitrate_bps_sum / bitrate_bps_count: an
//     event-weighted mean of the bitrate players report;
//   - bitrate switches (CTA-2066) = switches_up + switches_down;
//   - error ratio = errors / play_attempts.
//
// Rebuffering ratio (CTA-2066: stall time / watch time), video start
// failure, exit before video start and playback failure are session
// metrics: they need a session's whole sequence of events (and watch time,
// which events do not carry), so they are derived later from sessions, not
// from these per-minute rows. Watch time is not stored: stream_events
// counts STREAM heartbeats only as a proxy for it.
var PlayerMinuteTable = lake.TableDef{
	Namespace: Namespace,
	Name:      "player_minute",
	Doc: "Player events per minute of event time and video, connection type, country, ISP, app type and version, device type, OS and browser: " +
		"mergeable counts, sums and a cumulative video start time histogram (CTA-2066; sum rows first, then divide or take quantiles). " +
		"Rebuffering ratio (stall time / watch time), video start failure, exit before video start and playback failure " +
		"are session metrics derived later from sessions, not from these rows; watch time is not stored (stream_events is a heartbeat proxy).",
	Columns: slices.Concat([]lake.Column{
		{Name: "window_start", Type: tstz, Required: true, Doc: "start of the one-minute window: silver event_time (player clock) truncated to the minute; the window is [window_start, window_start + 1 minute)"},
		{Name: "video_id", Type: str, Doc: "video id (lower-cased)"},
		{Name: "connection_type", Type: str, Doc: "wifi, 4g, 3g, ethernet, not available, ... (lower-cased)"},
		{Name: "country", Type: str, Doc: "ISO 3166-1 alpha-2 country of the client (silver geo lookup of the client address)"},
		{Name: "isp", Type: str, Doc: "ISP or AS organisation of the client (silver lookup of the client address)"},
		{Name: "app_type", Type: str, Doc: "app or platform; null for the reference SDK, which sends none"},
		{Name: "app_version", Type: str, Doc: "app version; null for the reference SDK, which sends none"},
		{Name: "device_type", Type: str, Doc: "device type; null for the reference SDK, which sends none"},
		{Name: "os", Type: str, Doc: "operating system the player reports; null for the reference SDK, which sends none"},
		{Name: "browser", Type: str, Doc: "browser the player reports; null for the reference SDK, which sends none"},
		{Name: "events", Type: i64, Required: true, Doc: "player events of every type in the group"},
		{Name: "play_attempts", Type: i64, Required: true, Doc: "PLAY events: play requests, the denominator of start and error ratios (CTA-2066 video start attempts)"},
		{Name: "first_frames", Type: i64, Required: true, Doc: "FIRSTFRAME events: starts that reached the first frame"},
		{Name: "errors", Type: i64, Required: true, Doc: "ERROR events"},
		{Name: "stops", Type: i64, Required: true, Doc: "STOP events"},
		{Name: "stream_events", Type: i64, Required: true, Doc: "STREAM events: periodic heartbeats while playing; a proxy for watch time (heartbeats × the player's interval), not watch time itself"},
		{Name: "time_to_first_frame_ms_sum", Type: f64, Required: true, Doc: "video start time (CTA-2066: play request to first frame): sum of FIRSTFRAME time_to_first_frame_ms, ms; mean = time_to_first_frame_ms_sum / time_to_first_frame_ms_count"},
		{Name: "time_to_first_frame_ms_count", Type: i64, Required: true, Doc: "FIRSTFRAME events with a time_to_first_frame_ms value"},
		{Name: "stall_count", Type: i64, Required: true, Doc: "stalls (CTA-2066 rebuffering events): BUFFER events with buffer_type screenfreezedbuffer (or the older rebuffer); start-up buffering is not a stall"},
		{Name: "stall_ms_sum", Type: f64, Required: true, Doc: "stall time: sum of those stalls' buffer_duration_ms, ms; the numerator of the CTA-2066 rebuffering ratio, whose watch time comes from sessions"},
		{Name: "startup_buffers", Type: i64, Required: true, Doc: "BUFFER events with buffer_type firstbuffer: buffering before the first frame"},
		{Name: "startup_buffer_ms_sum", Type: f64, Required: true, Doc: "sum of the firstbuffer events' buffer_duration_ms, ms"},
		{Name: "bitrate_bps_sum", Type: i64, Required: true, Doc: "sum of bitrate_bps (the player's average bitrate, bits per second) over the events that carry one; CTA-2066 average bitrate = bitrate_bps_sum / bitrate_bps_count (event-weighted)"},
		{Name: "bitrate_bps_count", Type: i64, Required: true, Doc: "events with a bitrate_bps value"},
		{Name: "switches_up", Type: i64, Required: true, Doc: "CTA-2066 bitrate switches to a higher bitrate: STEP events with direction up, except the initial choice (bitrate_from_bps 0)"},
		{Name: "switches_down", Type: i64, Required: true, Doc: "CTA-2066 bitrate switches to a lower bitrate: STEP events with direction down, except the initial choice (bitrate_from_bps 0)"},
	}, startTimeBucketDocs()),
	Partition: []lake.PartitionField{
		{Column: "window_start", Transform: iceberg.DayTransform{}, Name: "window_day"},
	},
	SortOrder: []lake.SortKey{{Column: "window_start"}, {Column: "video_id"}},
}

// PlayerStage keeps gold.player_minute up to date with
// silver.player_events, exactly as CDNStage keeps gold.cdn_minute: each
// RunOnce reads what silver appended since gold's upstream position,
// recomputes the minutes it touches from all of silver's rows of those
// minutes (late events correct their window), and replaces those minutes'
// gold rows with the position advance in one commit. A second process
// running the same stage finds the position moved and starts over.
//
// Only appends to silver are followed, as for CDNStage.
type PlayerStage struct {
	Silver, Gold *lake.Table
	// MaxRows bounds the silver rows of one increment (default 100,000);
	// the recomputation reads every row of the minutes those rows touch.
	MaxRows int64
	// Limits bound each dimension's values per minute (default
	// DimensionLimits); the rest fold into Other.
	Limits map[string]int
	Logger *slog.Logger
	// Observer, if set, is told of each commit.
	Observer Observer
}

// playerFields are the silver.player_events columns the aggregation reads.
var playerFields = []string{"event_type", "event_time", "video_id", "connection_type", "country", "isp",
	"app_type", "app_version", "device_type", "os", "browser", "time_to_first_frame_ms", "buffer_type", "buffer_duration_ms",
	"bitrate_bps", "bitrate_from_bps", "direction"}

// stage is the shared minute stage over this table's rollup.
func (s *PlayerStage) stage() *minuteStage[playerKey, playerAgg] {
	return &minuteStage[playerKey, playerAgg]{silver: s.Silver, gold: s.Gold, maxRows: s.MaxRows, limits: s.Limits, logger: s.Logger, observer: s.Observer, r: rollup[playerKey, playerAgg]{
		timeColumn: "event_time", fields: playerFields,
		aggregate: aggregatePlayer, sortedKeys: sortedPlayerKeys, appendRow: appendPlayerMinute, fold: foldPlayer,
	}}
}

// RunOnce brings gold one increment (at most MaxRows silver rows) further
// and returns how many silver rows that increment held; lake.ErrNoChange
// when silver has nothing new.
func (s *PlayerStage) RunOnce(ctx context.Context) (int, error) { return s.stage().runOnce(ctx) }

// Drain runs until silver has nothing new for gold.
func (s *PlayerStage) Drain(ctx context.Context) error { return s.stage().drain(ctx) }

func (s *PlayerStage) plan(ctx context.Context) (minutePlan[playerKey, playerAgg], error) {
	return s.stage().plan(ctx)
}

func (s *PlayerStage) commit(ctx context.Context, p minutePlan[playerKey, playerAgg]) error {
	return s.stage().commit(ctx, p)
}

// playerKey is one gold.player_minute row's window and dimensions.
type playerKey struct {
	window                    int64 // Unix microseconds
	video, conn, country, isp string
	app, version, device, os  string
	browser                   string
}

// playerAgg are one gold.player_minute row's values.
type playerAgg struct {
	events, plays, firstFrames, errors, stops, streams int64
	ttffSum                                            float64
	ttffCount                                          int64
	stalls                                             int64
	stallMs                                            float64
	startupBuffers                                     int64
	startupBufferMs                                    float64
	bitrateSum, bitrateCount                           int64
	switchesUp, switchesDown                           int64
	startTime                                          startTimeHistogram
}

// add adds b's counts and sums to a.
func (a *playerAgg) add(b *playerAgg) {
	a.events += b.events
	a.plays += b.plays
	a.firstFrames += b.firstFrames
	a.errors += b.errors
	a.stops += b.stops
	a.streams += b.streams
	a.ttffSum += b.ttffSum
	a.ttffCount += b.ttffCount
	a.stalls += b.stalls
	a.stallMs += b.stallMs
	a.startupBuffers += b.startupBuffers
	a.startupBufferMs += b.startupBufferMs
	a.bitrateSum += b.bitrateSum
	a.bitrateCount += b.bitrateCount
	a.switchesUp += b.switchesUp
	a.switchesDown += b.switchesDown
	for i := range a.startTime {
		a.startTime[i] += b.startTime[i]
	}
}

// playerFoldDims are the dimensions of gold.player_minute whose long tail
// folds into Other.
var playerFoldDims = []foldDim[playerKey]{
	{"video_id", func(k *playerKey) *string { return &k.video }},
	{"connection_type", func(k *playerKey) *string { return &k.conn }},
	{"country", func(k *playerKey) *string { return &k.country }},
	{"isp", func(k *playerKey) *string { return &k.isp }},
	{"app_type", func(k *playerKey) *string { return &k.app }},
	{"app_version", func(k *playerKey) *string { return &k.version }},
	{"device_type", func(k *playerKey) *string { return &k.device }},
	{"os", func(k *playerKey) *string { return &k.os }},
	{"browser", func(k *playerKey) *string { return &k.browser }},
}

// foldPlayer folds each window's long tails by events.
func foldPlayer(groups map[playerKey]*playerAgg, limits map[string]int) map[playerKey]*playerAgg {
	return foldTails(groups, playerFoldDims, limits, func(k playerKey) int64 { return k.window },
		func(a *playerAgg) int64 { return a.events }, (*playerAgg).add)
}

// startTimeHistogram is a cumulative video start time histogram: one count
// per StartTimeBounds entry, then the +inf bucket.
type startTimeHistogram [len(StartTimeBounds) + 1]int64

func (h *startTimeHistogram) observe(v float64) {
	for i := len(StartTimeBounds) - 1; i >= 0 && v <= StartTimeBounds[i]; i-- {
		h[i]++
	}
	h[len(StartTimeBounds)]++
}

// aggregatePlayer adds the silver rows of r that fall in the touched
// windows to groups.
func aggregatePlayer(groups map[playerKey]*playerAgg, touched map[int64]bool, r arrow.RecordBatch) {
	typ := column[*array.String](r, "event_type")
	ts := column[*array.Timestamp](r, "event_time")
	video := column[*array.String](r, "video_id")
	conn := column[*array.String](r, "connection_type")
	country := column[*array.String](r, "country")
	isp := column[*array.String](r, "isp")
	app := column[*array.String](r, "app_type")
	version := column[*array.String](r, "app_version")
	device := column[*array.String](r, "device_type")
	osName := column[*array.String](r, "os")
	browser := column[*array.String](r, "browser")
	ttff := column[*array.Float64](r, "time_to_first_frame_ms")
	bufType := column[*array.String](r, "buffer_type")
	bufMs := column[*array.Float64](r, "buffer_duration_ms")
	bitrate := column[*array.Int64](r, "bitrate_bps")
	bitrateFrom := column[*array.Int64](r, "bitrate_from_bps")
	direction := column[*array.String](r, "direction")
	for i := range int(r.NumRows()) {
		w := windowOf(int64(ts.Value(i)))
		if !touched[w] {
			continue
		}
		k := playerKey{window: w, video: valueOf(video, i), conn: valueOf(conn, i), country: valueOf(country, i),
			isp: valueOf(isp, i), app: valueOf(app, i), version: valueOf(version, i), device: valueOf(device, i),
			os: valueOf(osName, i), browser: valueOf(browser, i)}
		a := groups[k]
		if a == nil {
			// Arrow's strings point into the record's buffers, which are
			// released after this call: the map keeps copies.
			k.video, k.conn, k.country = strings.Clone(k.video), strings.Clone(k.conn), strings.Clone(k.country)
			k.isp, k.app, k.version = strings.Clone(k.isp), strings.Clone(k.app), strings.Clone(k.version)
			k.device, k.os, k.browser = strings.Clone(k.device), strings.Clone(k.os), strings.Clone(k.browser)
			a = &playerAgg{}
			groups[k] = a
		}
		a.events++
		switch valueOf(typ, i) {
		case "play":
			a.plays++
		case "firstframe":
			a.firstFrames++
			if ttff.IsValid(i) {
				v := ttff.Value(i)
				a.ttffSum += v
				a.ttffCount++
				a.startTime.observe(v)
			}
		case "error":
			a.errors++
		case "stop":
			a.stops++
		case "stream":
			a.streams++
		case "buffer":
			switch valueOf(bufType, i) {
			case "screenfreezedbuffer", "rebuffer":
				a.stalls++
				if bufMs.IsValid(i) {
					a.stallMs += bufMs.Value(i)
				}
			case "firstbuffer":
				a.startupBuffers++
				if bufMs.IsValid(i) {
					a.startupBufferMs += bufMs.Value(i)
				}
			}
		case "step":
			// A step from 0 is the player's first choice of rendition, not
			// a switch.
			if bitrateFrom.IsValid(i) && bitrateFrom.Value(i) == 0 {
				break
			}
			switch valueOf(direction, i) {
			case "up":
				a.switchesUp++
			case "down":
				a.switchesDown++
			}
		}
		if bitrate.IsValid(i) {
			a.bitrateSum += bitrate.Value(i)
			a.bitrateCount++
		}
	}
}

func sortedPlayerKeys(groups map[playerKey]*playerAgg) []playerKey {
	return slices.SortedFunc(maps.Keys(groups), func(a, b playerKey) int {
		return cmp.Or(cmp.Compare(a.window, b.window), cmp.Compare(a.video, b.video), cmp.Compare(a.conn, b.conn),
			cmp.Compare(a.country, b.country), cmp.Compare(a.isp, b.isp), cmp.Compare(a.app, b.app),
			cmp.Compare(a.version, b.version), cmp.Compare(a.device, b.device), cmp.Compare(a.os, b.os),
			cmp.Compare(a.browser, b.browser))
	})
}

func appendPlayerMinute(out *lake.Rows, k playerKey, a *playerAgg) {
	out.Time("window_start", time.UnixMicro(k.window).UTC())
	out.NullableString("video_id", k.video)
	out.NullableString("connection_type", k.conn)
	out.NullableString("country", k.country)
	out.NullableString("isp", k.isp)
	out.NullableString("app_type", k.app)
	out.NullableString("app_version", k.version)
	out.NullableString("device_type", k.device)
	out.NullableString("os", k.os)
	out.NullableString("browser", k.browser)
	out.Int64("events", a.events)
	out.Int64("play_attempts", a.plays)
	out.Int64("first_frames", a.firstFrames)
	out.Int64("errors", a.errors)
	out.Int64("stops", a.stops)
	out.Int64("stream_events", a.streams)
	out.OptFloat64("time_to_first_frame_ms_sum", &a.ttffSum)
	out.Int64("time_to_first_frame_ms_count", a.ttffCount)
	out.Int64("stall_count", a.stalls)
	out.OptFloat64("stall_ms_sum", &a.stallMs)
	out.Int64("startup_buffers", a.startupBuffers)
	out.OptFloat64("startup_buffer_ms_sum", &a.startupBufferMs)
	out.Int64("bitrate_bps_sum", a.bitrateSum)
	out.Int64("bitrate_bps_count", a.bitrateCount)
	out.Int64("switches_up", a.switchesUp)
	out.Int64("switches_down", a.switchesDown)
	for i, c := range StartTimeBucketColumns {
		out.Int64(c, a.startTime[i])
	}
}

// StartTimeQuantile estimates the q-quantile (0 <= q <= 1) of video start
// time, ms, from the start_time_le_* buckets (one per StartTimeBounds entry
// followed by +inf, summed over any number of rows first), exactly as
// Quantile does for the latency buckets: linear inside the bucket the rank
// falls in, 0 as the first bucket's lower bound, the highest finite bound
// for a rank in the +inf bucket, NaN for an empty histogram, a q outside
// [0, 1] or a bucket count that does not match StartTimeBounds.
func StartTimeQuantile(buckets []int64, q float64) float64 {
	return quantileOf(StartTimeBounds[:], buckets, q)
}
