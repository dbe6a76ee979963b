package gold

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/qoslake/qoslake/lake"
	"github.com/qoslake/qoslake/silver"
)

// playerEnv is one process's view of a lake: its own catalog connection.
type playerEnv struct {
	dir          string
	silver, gold *lake.Table
	stage        *PlayerStage
}

func openPlayer(t testing.TB, dir string) playerEnv {
	t.Helper()
	ctx := context.Background()
	l, err := lake.Open(ctx, lake.Options{URI: filepath.Join(dir, "c.db"), Warehouse: filepath.Join(dir, "w")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s, err := l.Ensure(ctx, silver.PlayerEventsTable)
	if err != nil {
		t.Fatal(err)
	}
	g, err := l.Ensure(ctx, PlayerMinuteTable)
	if err != nil {
		t.Fatal(err)
	}
	return playerEnv{dir, s, g, &PlayerStage{Silver: s, Gold: g, MaxRows: 500}}
}

// Event types for genPlayerRows. Silver partitions by event type, so a
// silver commit writes one Parquet file per type it holds, and that is most
// of these tests' time: the tests of exactly once, which do not depend on
// the type, use three types.
var (
	allEventTypes = []string{"play", "firstframe", "seek", "buffer", "stream", "stream", "step", "pause", "error", "stop"}
	fewEventTypes = []string{"firstframe", "buffer", "step"}
)

// genPlayerRows makes n silver player events of the given types spread
// over the given minutes. Like the reference SDK's, most events carry no app or device
// fields, and the numeric fields are often absent; a few events use the
// older rebuffer buffer type, and some steps start from bitrate 0.
func genPlayerRows(r *rand.Rand, types []string, n int, minutes ...time.Time) []silver.PlayerRow {
	videos := []string{"v1", "v2", "v3", ""}
	conns := []string{"wifi", "4g", "not available", ""}
	countries := []string{"DE", "GB", ""}
	isps := []string{"Deutsche Telekom", "BT", ""}
	apps := []string{"", "", "", "web", "ios"}
	devices := []string{"", "", "", "mobile", "tv"}
	versions := []string{"", "", "1.2", "1.3"}
	oses := []string{"", "", "android", "ios"}
	browsers := []string{"", "", "chrome", "safari"}
	bufTypes := []string{"firstbuffer", "screenfreezedbuffer", "screenfreezedbuffer", "rebuffer", ""}
	dirs := []string{"up", "down", ""}
	out := make([]silver.PlayerRow, n)
	for i := range out {
		row := silver.PlayerRow{
			EventID:        randID(r),
			EventType:      types[r.IntN(len(types))],
			EventTime:      minutes[r.IntN(len(minutes))].Add(time.Duration(r.IntN(60_000)) * time.Millisecond),
			UserKey:        randID(r)[:8],
			VideoID:        videos[r.IntN(len(videos))],
			ConnectionType: conns[r.IntN(len(conns))],
			AppType:        apps[r.IntN(len(apps))],
			AppVersion:     versions[r.IntN(len(versions))],
			Device:         devices[r.IntN(len(devices))],
			OS:             oses[r.IntN(len(oses))],
			Browser:        browsers[r.IntN(len(browsers))],
			IngestTime:     base,
		}
		row.Client.Country = countries[r.IntN(len(countries))]
		row.Client.ISP = isps[r.IntN(len(isps))]
		// Quarter milliseconds add up exactly in float64.
		ms := func(maxMs int) *float64 {
			if r.IntN(8) == 0 {
				return nil
			}
			v := float64(r.IntN(maxMs*4)) / 4
			return &v
		}
		switch row.EventType {
		case "firstframe":
			// Most starts are fast, a few are very slow.
			row.TimeToFirstFrame = ms([]int{200, 1_500, 12_000}[r.IntN(3)])
		case "buffer":
			row.BufferType = bufTypes[r.IntN(len(bufTypes))]
			row.BufferDuration = ms(8_000)
		case "step":
			row.Direction = dirs[r.IntN(len(dirs))]
			from, to := int64(r.IntN(3)*1_000_000), int64(r.IntN(6_000_000))
			row.BitrateTo = &to
			if r.IntN(6) != 0 {
				row.BitrateFrom = &from
			}
		}
		if row.EventType != "play" && row.EventType != "error" && r.IntN(3) != 0 {
			b := int64(r.IntN(8_000_000))
			row.Bitrate = &b
		}
		out[i] = row
	}
	return out
}

func commitPlayerSilver(t testing.TB, e playerEnv, rows []silver.PlayerRow) {
	t.Helper()
	out, err := e.silver.NewRows()
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	for i := range rows {
		silver.AppendPlayer(out, &rows[i])
	}
	rec := out.Batch()
	defer rec.Release()
	if _, err := e.silver.Commit(context.Background(), lake.Batch{Records: []arrow.RecordBatch{rec}}); err != nil {
		t.Fatal(err)
	}
}

// playerGoldRow is a gold.player_minute row as the test compares it.
type playerGoldRow struct {
	events, plays, firstFrames, errors, stops, streams int64
	ttffSum                                            float64
	ttffCount, stalls                                  int64
	stallMs                                            float64
	startupBuffers                                     int64
	startupBufferMs                                    float64
	bitrateSum, bitrateCount, up, down                 int64
	startTime                                          [9]int64
}

// expectedPlayer computes gold from silver rows independently of the
// stage: per row, straight from the definitions in the column docs.
func expectedPlayer(rows []silver.PlayerRow) map[playerKey]playerGoldRow {
	bounds := []float64{100, 250, 500, 1000, 2000, 3000, 5000, 10000}
	out := map[playerKey]playerGoldRow{}
	for _, r := range rows {
		k := playerKey{window: r.EventTime.Truncate(time.Minute).UnixMicro(), video: r.VideoID, conn: r.ConnectionType,
			country: r.Client.Country, isp: r.Client.ISP, app: r.AppType, version: r.AppVersion, device: r.Device,
			os: r.OS, browser: r.Browser}
		g := out[k]
		g.events++
		switch r.EventType {
		case "play":
			g.plays++
		case "firstframe":
			g.firstFrames++
		case "error":
			g.errors++
		case "stop":
			g.stops++
		case "stream":
			g.streams++
		}
		if r.EventType == "firstframe" && r.TimeToFirstFrame != nil {
			v := *r.TimeToFirstFrame
			g.ttffSum += v
			g.ttffCount++
			for i, b := range bounds {
				if v <= b {
					g.startTime[i]++
				}
			}
			g.startTime[8]++
		}
		if r.EventType == "buffer" {
			d := 0.0
			if r.BufferDuration != nil {
				d = *r.BufferDuration
			}
			if r.BufferType == "screenfreezedbuffer" || r.BufferType == "rebuffer" {
				g.stalls++
				g.stallMs += d
			}
			if r.BufferType == "firstbuffer" {
				g.startupBuffers++
				g.startupBufferMs += d
			}
		}
		initial := r.BitrateFrom != nil && *r.BitrateFrom == 0
		if r.EventType == "step" && !initial && r.Direction == "up" {
			g.up++
		}
		if r.EventType == "step" && !initial && r.Direction == "down" {
			g.down++
		}
		if r.Bitrate != nil {
			g.bitrateSum += *r.Bitrate
			g.bitrateCount++
		}
		out[k] = g
	}
	return out
}

// readPlayerGold reads the whole gold table; a key seen twice fails the
// test.
func readPlayerGold(t testing.TB, e playerEnv) map[playerKey]playerGoldRow {
	t.Helper()
	ctx := context.Background()
	if _, err := e.gold.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	out := map[playerKey]playerGoldRow{}
	err := e.gold.Scan(ctx, lake.ScanOptions{}, func(r arrow.RecordBatch) error {
		i64 := func(name string) *array.Int64 { return column[*array.Int64](r, name) }
		f64 := func(name string) *array.Float64 { return column[*array.Float64](r, name) }
		ws := column[*array.Timestamp](r, "window_start")
		dim := func(name string, i int) string { return clone(valueOf(column[*array.String](r, name), i)) }
		for i := range int(r.NumRows()) {
			k := playerKey{window: int64(ws.Value(i)), video: dim("video_id", i), conn: dim("connection_type", i),
				country: dim("country", i), isp: dim("isp", i), app: dim("app_type", i), version: dim("app_version", i),
				device: dim("device_type", i), os: dim("os", i), browser: dim("browser", i)}
			if _, dup := out[k]; dup {
				t.Errorf("gold holds %+v twice", k)
			}
			g := playerGoldRow{
				events: i64("events").Value(i), plays: i64("play_attempts").Value(i),
				firstFrames: i64("first_frames").Value(i), errors: i64("errors").Value(i),
				stops: i64("stops").Value(i), streams: i64("stream_events").Value(i),
				ttffSum: f64("time_to_first_frame_ms_sum").Value(i), ttffCount: i64("time_to_first_frame_ms_count").Value(i),
				stalls: i64("stall_count").Value(i), stallMs: f64("stall_ms_sum").Value(i),
				startupBuffers: i64("startup_buffers").Value(i), startupBufferMs: f64("startup_buffer_ms_sum").Value(i),
				bitrateSum: i64("bitrate_bps_sum").Value(i), bitrateCount: i64("bitrate_bps_count").Value(i),
				up: i64("switches_up").Value(i), down: i64("switches_down").Value(i),
			}
			for j, c := range StartTimeBucketColumns {
				g.startTime[j] = i64(c).Value(i)
			}
			out[k] = g
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func assertPlayerGold(t testing.TB, got, want map[playerKey]playerGoldRow) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("gold lacks %+v", k)
		} else if g != w {
			t.Errorf("gold %+v:\n got %+v\nwant %+v", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("gold has unexpected %+v: %+v", k, got[k])
		}
	}
}

func drainPlayer(t testing.TB, e playerEnv) {
	t.Helper()
	if err := e.stage.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestStartTimeBucketColumns(t *testing.T) {
	want := []string{"start_time_le_100", "start_time_le_250", "start_time_le_500", "start_time_le_1000",
		"start_time_le_2000", "start_time_le_3000", "start_time_le_5000", "start_time_le_10000", "start_time_le_inf"}
	if !slices.Equal(StartTimeBucketColumns, want) {
		t.Fatalf("bucket columns %v, want %v", StartTimeBucketColumns, want)
	}
}

func TestStartTimeQuantile(t *testing.T) {
	//                bounds: 100 250 500 1000 2000 3000 5000 10000 +inf
	tests := []struct {
		name    string
		buckets []int64
		q       float64
		want    float64
	}{
		{"median inside one bucket", cumulative(0, 0, 0, 10, 0, 0, 0, 0, 0), 0.5, 750},
		{"interpolates across buckets", cumulative(50, 50, 0, 0, 0, 0, 0, 0, 0), 0.75, 175},
		{"+inf bucket returns highest finite bound", cumulative(1, 0, 0, 0, 0, 0, 0, 0, 9), 0.99, 10000},
		{"empty histogram", make([]int64, 9), 0.5, math.NaN()},
		{"latency buckets are not start time buckets", make([]int64, 11), 0.5, math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := StartTimeQuantile(tt.buckets, tt.q)
			if got != tt.want && !(math.IsNaN(got) && math.IsNaN(tt.want)) {
				t.Fatalf("StartTimeQuantile(%v, %g) = %g, want %g", tt.buckets, tt.q, got, tt.want)
			}
		})
	}
}

// TestPlayerStageAggregates checks every gold value against an independent
// computation from the input rows, over several windows and dimensions and
// silver commits (MaxRows makes the stage take several increments, some
// sharing windows).
func TestPlayerStageAggregates(t *testing.T) {
	e := openPlayer(t, t.TempDir())
	r := rand.New(rand.NewPCG(11, 12))
	e.stage.MaxRows = 250
	// Silver commits are slow (a Parquet file per event type), so there
	// are two, taken in two increments that share windows.
	var all []silver.PlayerRow
	for _, types := range [][]string{allEventTypes, fewEventTypes} {
		rows := genPlayerRows(r, types, 600, minutes(base, 5)...)
		commitPlayerSilver(t, e, rows)
		all = append(all, rows...)
	}
	drainPlayer(t, e)
	want := expectedPlayer(all)
	if len(want) < 100 {
		t.Fatalf("test data too uniform: %d groups", len(want))
	}
	got := readPlayerGold(t, e)
	assertPlayerGold(t, got, want)

	// Every metric the test data can exercise is non-zero somewhere, so
	// the comparison above is not vacuous.
	var sum playerGoldRow
	for _, g := range got {
		sum.plays += g.plays
		sum.firstFrames += g.firstFrames
		sum.errors += g.errors
		sum.stops += g.stops
		sum.streams += g.streams
		sum.ttffCount += g.ttffCount
		sum.stalls += g.stalls
		sum.startupBuffers += g.startupBuffers
		sum.bitrateCount += g.bitrateCount
		sum.up += g.up
		sum.down += g.down
		sum.startTime[0] += g.startTime[0]
		if g.startTime[8] != g.ttffCount {
			t.Errorf("%+v: +inf bucket %d != time_to_first_frame_ms_count %d", g, g.startTime[8], g.ttffCount)
		}
	}
	for name, v := range map[string]int64{"plays": sum.plays, "first frames": sum.firstFrames, "errors": sum.errors,
		"stops": sum.stops, "streams": sum.streams, "start times": sum.ttffCount, "stalls": sum.stalls,
		"startup buffers": sum.startupBuffers, "bitrates": sum.bitrateCount, "switches up": sum.up,
		"switches down": sum.down, "starts <= 100 ms": sum.startTime[0]} {
		if v == 0 {
			t.Errorf("no %s in the test data", name)
		}
	}

	cp, err := e.gold.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cp[lake.UpstreamKey(e.silver.Name())], e.silver.Position().String(); got != want {
		t.Fatalf("gold upstream position %q, want silver's %q", got, want)
	}
	if _, err := e.stage.RunOnce(context.Background()); !errors.Is(err, lake.ErrNoChange) {
		t.Fatalf("RunOnce after drain: %v, want ErrNoChange", err)
	}
}

// TestPlayerStageLateData commits events for a window three hours back
// after the later windows are done: only that window's gold rows change, in
// one snapshot, and gold equals an on-time computation in a fresh lake.
func TestPlayerStageLateData(t *testing.T) {
	e := openPlayer(t, t.TempDir())
	r := rand.New(rand.NewPCG(13, 14))
	old := base.Add(-3 * time.Hour)
	onTime := slices.Concat(genPlayerRows(r, fewEventTypes, 200, old), genPlayerRows(r, fewEventTypes, 400, minutes(base, 4)...))
	commitPlayerSilver(t, e, onTime)
	drainPlayer(t, e)
	before := readPlayerGold(t, e)
	goldAt := e.gold.Position()

	late := genPlayerRows(r, fewEventTypes, 150, old)
	commitPlayerSilver(t, e, late)
	drainPlayer(t, e)
	after := readPlayerGold(t, e)

	changes, err := e.gold.Changes(context.Background(), goldAt)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Operation != "overwrite" {
		t.Fatalf("late data made %d gold snapshots (%+v), want one overwrite", len(changes), changes)
	}
	oldW := old.UnixMicro()
	changed := 0
	for k, g := range after {
		if k.window != oldW {
			if before[k] != g {
				t.Errorf("window %v not touched by late data changed: %+v -> %+v", time.UnixMicro(k.window).UTC(), before[k], g)
			}
		} else if before[k] != g {
			changed++
		}
	}
	if changed == 0 {
		t.Fatal("late data changed no row of its window")
	}
	for k := range before {
		if _, ok := after[k]; !ok && k.window != oldW {
			t.Errorf("row %+v disappeared", k)
		}
	}

	fresh := openPlayer(t, t.TempDir())
	commitPlayerSilver(t, fresh, slices.Concat(onTime, late))
	drainPlayer(t, fresh)
	assertPlayerGold(t, after, readPlayerGold(t, fresh))
	assertPlayerGold(t, after, expectedPlayer(slices.Concat(onTime, late)))
}

// TestPlayerStageCrash stops the stage between reading and committing, and
// after committing before it learnt the outcome: the next run gives what an
// uninterrupted run gives, nothing doubled; a plan made stale by another
// process is refused.
func TestPlayerStageCrash(t *testing.T) {
	ctx := context.Background()
	e := openPlayer(t, t.TempDir())
	r := rand.New(rand.NewPCG(15, 16))
	first := genPlayerRows(r, fewEventTypes, 400, minutes(base, 3)...)
	commitPlayerSilver(t, e, first)

	// Read and recomputed, then the process dies: nothing written.
	if _, err := e.stage.plan(ctx); err != nil {
		t.Fatal(err)
	}
	if e.gold.Position() != (lake.SnapshotPos{}) {
		t.Fatal("plan wrote to gold")
	}
	drainPlayer(t, e)

	// Committed, but the process died before it knew: the restart plans
	// the same increment and commits it again.
	second := genPlayerRows(r, fewEventTypes, 300, minutes(base.Add(2*time.Minute), 3)...)
	commitPlayerSilver(t, e, second)
	p, err := e.stage.plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.stage.commit(ctx, p); err != nil {
		t.Fatal(err)
	}
	landed := e.gold.Position()
	if err := e.stage.commit(ctx, p); err != nil {
		t.Fatalf("committing the same increment again: %v", err)
	}
	if _, err := e.gold.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if e.gold.Position() != landed {
		t.Fatal("the same increment committed twice made a second snapshot")
	}
	// The same increment planned again after it landed is no new work.
	if _, err := e.stage.RunOnce(ctx); !errors.Is(err, lake.ErrNoChange) {
		t.Fatalf("RunOnce after the retried commit: %v, want ErrNoChange", err)
	}

	// A plan made before another process moved on is refused.
	third := genPlayerRows(r, fewEventTypes, 100, base)
	commitPlayerSilver(t, e, third)
	stale, err := e.stage.plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	commitPlayerSilver(t, e, nil) // an empty append: a new silver snapshot
	other := openPlayer(t, e.dir)
	drainPlayer(t, other)
	if err := e.stage.commit(ctx, stale); !errors.Is(err, lake.ErrCheckpointMoved) {
		t.Fatalf("stale plan committed: %v, want ErrCheckpointMoved", err)
	}
	drainPlayer(t, e)

	assertPlayerGold(t, readPlayerGold(t, e), expectedPlayer(slices.Concat(first, second, third)))
}

// TestPlayerStageConcurrent drains with two processes (two catalog
// connections on one lake) at once, while silver grows: gold equals a
// single-stage run. Their increments are bounded differently, so one often
// finds the position moved to where it did not plan, and starts over.
func TestPlayerStageConcurrent(t *testing.T) {
	dir := t.TempDir()
	a, b := openPlayer(t, dir), openPlayer(t, dir)
	a.stage.MaxRows, b.stage.MaxRows = 150, 260
	r := rand.New(rand.NewPCG(17, 18))
	var all []silver.PlayerRow
	// Snapshots of 120 rows: a takes one per increment, b two.
	for i := range 2 {
		rows := genPlayerRows(r, fewEventTypes, 120, minutes(base.Add(time.Duration(i)*time.Minute), 3)...)
		commitPlayerSilver(t, a, rows)
		all = append(all, rows...)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, e := range []playerEnv{a, b} {
		wg.Go(func() { errs[i] = e.stage.Drain(context.Background()) })
	}
	rows := genPlayerRows(r, fewEventTypes, 120, minutes(base.Add(time.Minute), 2)...)
	commitPlayerSilver(t, b, rows)
	all = append(all, rows...)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	drainPlayer(t, a)
	drainPlayer(t, b)

	single := openPlayer(t, t.TempDir())
	commitPlayerSilver(t, single, all)
	drainPlayer(t, single)
	got := readPlayerGold(t, a)
	if len(got) == 0 {
		t.Fatal("gold is empty")
	}
	assertPlayerGold(t, got, readPlayerGold(t, single))
	assertPlayerGold(t, got, expectedPlayer(all))
}
