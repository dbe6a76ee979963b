package gold

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/qoslake/qoslake/anonymize"
	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/lake"
	"github.com/qoslake/qoslake/silver"
	"github.com/qoslake/qoslake/simulate"
)

// sessionsEnv is one process's view of a lake: its own catalog connection.
type sessionsEnv struct {
	dir               string
	player, cdn, gold *lake.Table
	stage             *SessionsStage
}

func openSessions(t testing.TB, dir string) sessionsEnv {
	t.Helper()
	ctx := context.Background()
	l, err := lake.Open(ctx, lake.Options{URI: filepath.Join(dir, "c.db"), Warehouse: filepath.Join(dir, "w")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var tables [3]*lake.Table
	for i, def := range []lake.TableDef{silver.PlayerEventsTable, silver.CDNLogsTable, SessionsTable} {
		if tables[i], err = l.Ensure(ctx, def); err != nil {
			t.Fatal(err)
		}
	}
	return sessionsEnv{dir, tables[0], tables[1], tables[2],
		&SessionsStage{Silver: tables[0], SilverCDN: tables[1], Gold: tables[2], MaxRows: 2000}}
}

func commitPlayerEvents(t testing.TB, e sessionsEnv, rows []silver.PlayerRow) {
	t.Helper()
	out, err := e.player.NewRows()
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	for i := range rows {
		silver.AppendPlayer(out, &rows[i])
	}
	commitRecords(t, e.player, out)
}

func commitCDNRequests(t testing.TB, e sessionsEnv, rows []silver.CDNRow) {
	t.Helper()
	out, err := e.cdn.NewRows()
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	for i := range rows {
		silver.AppendCDN(out, &rows[i])
	}
	commitRecords(t, e.cdn, out)
}

func commitRecords(t testing.TB, tbl *lake.Table, out *lake.Rows) {
	t.Helper()
	rec := out.Batch()
	defer rec.Release()
	if _, err := tbl.Commit(context.Background(), lake.Batch{Records: []arrow.RecordBatch{rec}}); err != nil {
		t.Fatal(err)
	}
}

func drainSessions(t testing.TB, e sessionsEnv) {
	t.Helper()
	if err := e.stage.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// readGoldSessions reads the whole gold table by session key; a key seen
// twice fails the test.
func readGoldSessions(t testing.TB, e sessionsEnv) map[string]sessionRow {
	t.Helper()
	ctx := context.Background()
	if _, err := e.gold.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	out := map[string]sessionRow{}
	err := e.gold.Scan(ctx, lake.ScanOptions{}, func(r arrow.RecordBatch) error {
		for _, s := range readSessions(r) {
			if _, dup := out[s.key]; dup {
				t.Errorf("gold holds session %s twice", s.key)
			}
			out[s.key] = s.sessionRow
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertSameSessions compares two gold tables row by row.
func assertSameSessions(t testing.TB, got, want map[string]sessionRow) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("gold lacks session %s: %+v", k, w)
		} else if g != w {
			t.Errorf("session %s:\n got %+v\nwant %+v", k, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("gold has unexpected session %s: %+v", k, g)
		}
	}
}

// simRun is a simulated run as silver holds it.
type simRun struct {
	player []silver.PlayerRow
	cdn    []silver.CDNRow
	truths []simulate.SessionTruth
	// userKey maps a simulated user id to silver's pseudonym.
	userKey func(string) string
}

var userAgents = sync.OnceValues(func() (*silver.Agents, error) { return silver.NewAgents(1000) })

// simFeed runs the simulator in process and types its events and CDN log
// lines as silver does, with an ingest time a second after each event and
// the log files' delivery time for their lines.
type simFeed struct {
	g  *simulate.Generator
	tr *silver.Transformer
}

func newSimFeed(t testing.TB, seed int64, rate float64) *simFeed {
	t.Helper()
	a, err := userAgents()
	if err != nil {
		t.Fatal(err)
	}
	return &simFeed{
		g:  simulate.New(simulate.Config{Seed: seed, Start: base, Rate: rate}),
		tr: &silver.Transformer{Pseudonyms: anonymize.NewPseudonymizer(anonymize.DemoKey), Agents: a},
	}
}

// userKey is silver's pseudonym of a simulated user id.
func (f *simFeed) userKey(u string) string { return f.tr.Pseudonyms.Pseudonym(strings.ToLower(u)) }

// next simulates the given seconds (with flush, to the end of every
// session and log) and returns silver's rows of them.
func (f *simFeed) next(t testing.TB, seconds int, flush bool) ([]silver.PlayerRow, []silver.CDNRow) {
	t.Helper()
	var player []silver.PlayerRow
	var cdn []silver.CDNRow
	add := func(events []simulate.Event, logs []simulate.LogFile) {
		for _, e := range events {
			row, probs := f.tr.PlayerRowOf(e.JSON, e.Type, e.Time)
			for _, p := range probs {
				// The SDK's "" and -1 unknowns are expected; nothing else.
				if !strings.Contains(p.Detail, "unknown") {
					t.Fatalf("%s: %+v", e.JSON, p)
				}
			}
			row.IngestTime = e.Time.Add(time.Second)
			player = append(player, row)
		}
		for _, lf := range logs {
			zr, err := gzip.NewReader(bytes.NewReader(lf.Body))
			if err != nil {
				t.Fatal(err)
			}
			rd := cloudfront.NewReader(zr, 64<<10)
			for {
				l, err := rd.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				row, _, _ := f.tr.CDNLine(l.Header, l.Text, l.Time, nil)
				row.IngestTime = lf.Due
				cdn = append(cdn, row)
			}
		}
	}
	for range seconds {
		add(f.g.Tick())
	}
	if flush {
		add(f.g.Flush())
	}
	return player, cdn
}

// simulateRun runs the simulator for the given simulated seconds: the
// run as silver holds it and the simulator's truth of every session.
func simulateRun(t testing.TB, seed int64, seconds int, rate float64) simRun {
	t.Helper()
	f := newSimFeed(t, seed, rate)
	player, cdn := f.next(t, seconds, true)
	return simRun{player: player, cdn: cdn, truths: f.g.Truths(), userKey: f.userKey}
}

// later is a player event an hour after the run, of another user: time
// moves on, and the watermark passes every session of the run.
func later() silver.PlayerRow {
	return ev("someone-else", "v", "play", 3600)
}

// TestSessionsMatchSimulatorTruth is the acceptance test: every session
// the simulator made is one gold session, with the values its
// SessionTruth says, when silver arrives in increments and CDN logs after
// the player events.
func TestSessionsMatchSimulatorTruth(t *testing.T) {
	run := simulateRun(t, 21, 100, 40)
	e := openSessions(t, t.TempDir())
	// The player events, then the CDN logs they join, hours late: every
	// session is recomputed when its requests arrive. (Increments in any
	// order are TestSessionsIncrementsInAnyOrder's.)
	commitPlayerEvents(t, e, append(run.player, later()))
	drainSessions(t, e)
	commitCDNRequests(t, e, run.cdn)
	drainSessions(t, e)

	gold := readGoldSessions(t, e)
	byUser := map[string]sessionRow{}
	for _, s := range gold {
		if s.user == "someone-else" {
			continue
		}
		if _, dup := byUser[s.user+"/"+s.video]; dup {
			t.Errorf("user %s has two sessions of %s", s.user, s.video)
		}
		byUser[s.user+"/"+s.video] = s
	}
	if len(byUser) != len(run.truths) || len(run.truths) < 80 {
		t.Fatalf("gold has %d sessions, the simulator made %d", len(byUser), len(run.truths))
	}
	seekStalls := stallsNearSeeks(run.player)
	var exact, stopped, errored, exited, timedOut, fromCDN int
	for _, tr := range run.truths {
		s, ok := byUser[run.userKey(tr.UserID)+"/"+tr.VideoID]
		if !ok {
			t.Errorf("no gold session for %+v", tr)
			continue
		}
		errs := compareTruth(s, tr, seekStalls[s.user])
		for _, err := range errs {
			t.Errorf("session of %s (%s): %v\n gold %+v\ntruth %+v", tr.UserID, s.endReason, err, s, tr)
		}
		if math.Abs(s.watchS-tr.WatchedS) < 1 {
			exact++
		}
		switch s.endReason {
		case EndStop:
			stopped++
		case EndError:
			errored++
		case EndTimeout:
			timedOut++
		}
		if s.exitBeforeStart {
			exited++
		}
		if s.deviceSource == DeviceFromCDN {
			fromCDN++
		}
	}
	t.Logf("%d sessions: %d stopped, %d errors, %d timed out, %d exits before start, %d with CDN devices; watch time within 1 s for %d",
		len(run.truths), stopped, errored, timedOut, exited, fromCDN, exact)
	if stopped == 0 || errored == 0 || timedOut == 0 || exited == 0 || fromCDN == 0 {
		t.Error("the run does not exercise every end of a session")
	}
}

// compareTruth lists how a gold session differs from the simulator's
// truth. Watch time: a viewer who leaves without STOP sends nothing more,
// so gold knows the session played until its last event, while the
// simulator counts on to the second the viewer left, at most one STREAM
// interval (5 s) and two one-second ticks later; sessions ending in STOP
// or ERROR agree within a second.
func compareTruth(s sessionRow, tr simulate.SessionTruth, seekStalls []int64) []error {
	var errs []error
	check := func(what string, ok bool, got, want any) {
		if !ok {
			errs = append(errs, fmt.Errorf("%s: gold %v, truth %v", what, got, want))
		}
	}
	check("session_start", s.start == tr.Start.UnixMicro(), time.UnixMicro(s.start).UTC(), tr.Start)
	check("attempt", s.attempt, s.attempt, true)
	check("started", s.started == (tr.StartupMS != nil), s.started, tr.StartupMS != nil)
	if tr.StartupMS != nil {
		check("start_time_ms", s.hasStartTime && s.startTimeMs == float64(*tr.StartupMS), s.startTimeMs, *tr.StartupMS)
	}
	check("start_failure", s.startFailure == tr.FailedBeforeStart, s.startFailure, tr.FailedBeforeStart)
	// A session the run ended before its first frame (no viewer of the
	// simulator leaves then otherwise) is, to gold, a viewer who left.
	exit := tr.ExitBeforeStart || (tr.StartupMS == nil && !tr.FailedBeforeStart)
	check("exit_before_start", s.exitBeforeStart == exit, s.exitBeforeStart, exit)
	check("playback_failure", s.playbackFailure == tr.PlaybackFailed, s.playbackFailure, tr.PlaybackFailed)
	// A stall within 250 ms of a seek is the seek's buffering to gold (the
	// SDK sends one so); the simulator does not model that buffering, so
	// a stall of its that falls there is not one to gold either.
	wantStalls, wantStallMs := int64(tr.StallCount), float64(tr.StallMS)
	for _, ms := range seekStalls {
		wantStalls--
		wantStallMs -= float64(ms)
	}
	check("stall_count", s.stallCount == wantStalls, s.stallCount, wantStalls)
	check("stall_ms", s.stallMs == wantStallMs, s.stallMs, wantStallMs)
	check("switches", s.switchesUp+s.switchesDown == int64(tr.BitrateSwitches), s.switchesUp+s.switchesDown, tr.BitrateSwitches)
	check("events", s.events == int64(tr.Events), s.events, tr.Events)
	reason := EndTimeout
	switch {
	case tr.Stopped:
		reason = EndStop
	case tr.FailedBeforeStart || tr.PlaybackFailed:
		reason = EndError
	}
	check("end_reason", s.endReason == reason, s.endReason, reason)
	short := tr.WatchedS - s.watchS
	if reason == EndTimeout {
		check("watch_time_s (left silently)", short > -1 && short < 5+2, s.watchS, tr.WatchedS)
	} else {
		check("watch_time_s", math.Abs(short) < 1, s.watchS, tr.WatchedS)
	}
	if s.started {
		check("bits_played", s.bitsPlayed >= 365_000*s.watchS && s.bitsPlayed <= 7_800_000*s.watchS, s.bitsPlayed, "within the ladder")
		// The FIRSTFRAME names the first segment request: its log joins.
		check("edge_location", s.edgeLocation != "" && s.pop == s.edgeLocation[:3] && s.edgeResult != "",
			s.edgeLocation+" "+s.pop+" "+s.edgeResult, "the first segment's edge")
		check("device_source", s.deviceSource == DeviceFromCDN && s.os != "" && s.device != "", s.deviceSource+" "+s.os+" "+s.device, "cdn")
	} else {
		check("device_source", s.deviceSource == "" && s.edgeLocation == "", s.deviceSource+" "+s.edgeLocation, "none: no segment named")
	}
	return errs
}

// stallsNearSeeks lists, by user, the durations of screenfreezedbuffer
// events within seekBufferWindow of a SEEK of the same user.
func stallsNearSeeks(rows []silver.PlayerRow) map[string][]int64 {
	seeks := map[string][]time.Time{}
	for _, r := range rows {
		if r.EventType == "seek" {
			seeks[r.UserKey] = append(seeks[r.UserKey], r.EventTime)
		}
	}
	out := map[string][]int64{}
	for _, r := range rows {
		if r.EventType != "buffer" || r.BufferType != "screenfreezedbuffer" {
			continue
		}
		for _, s := range seeks[r.UserKey] {
			if d := r.EventTime.Sub(s); d >= -seekBufferWindow && d <= seekBufferWindow {
				out[r.UserKey] = append(out[r.UserKey], int64(*r.BufferDuration))
				break
			}
		}
	}
	return out
}

// randomSessionEvents makes events of a few users and videos that cross
// every cut: plays, stops, errors, first frames, gaps longer than the
// timeout, events of one instant, session ids, and tracking ids of CDN
// requests (returned, in CloudFront's mixed case, logged a few seconds
// before the events that name them). Four event types, the ones that
// cut sessions and the first frame, because silver writes a Parquet file
// per type and that is most of these tests' time: ERROR cuts as STOP
// does, and stalls and errors are TestSessionDefinition's.
func randomSessionEvents(r *rand.Rand, n int) ([]silver.PlayerRow, []silver.CDNRow) {
	types := []string{"play", "play", "firstframe", "firstframe", "stream", "stream", "stream", "stop"}
	users := []string{"u1", "u2", "u3", ""}
	videos := []string{"v1", "v2"}
	var rows []silver.PlayerRow
	var cdn []silver.CDNRow
	for i := range n {
		// Clusters of activity with gaps of up to 6 minutes between them,
		// and some events on the same second.
		sec := float64(r.IntN(40)*30) + float64(r.IntN(20))
		if r.IntN(3) == 0 {
			sec += float64(r.IntN(1000)) / 1000
		}
		typ := types[r.IntN(len(types))]
		var opts []func(*silver.PlayerRow)
		switch typ {
		case "firstframe":
			opts = append(opts, ttff(float64(200+r.IntN(3000))), bitrate(int64(1+r.IntN(5))*1_000_000))
		case "stream":
			opts = append(opts, bitrate(int64(1+r.IntN(5))*1_000_000))
		}
		if r.IntN(10) == 0 {
			opts = append(opts, sessionIDOf(fmt.Sprintf("S%d", r.IntN(3))))
		}
		if typ != "play" && typ != "stop" && r.IntN(2) == 0 {
			id := fmt.Sprintf("Req%dXyZ%d==", i, r.IntN(1000))
			opts = append(opts, tracking(id))
			c := cdnRow(id, base.Add(time.Duration(sec*float64(time.Second))-time.Duration(r.IntN(10))*time.Second))
			if r.IntN(3) == 0 {
				c.DeviceType, c.OS, c.Browser = "", "", ""
			}
			cdn = append(cdn, c)
		}
		if r.IntN(8) == 0 {
			opts = append(opts, func(row *silver.PlayerRow) { row.Device, row.OS = "tv", "tvOS" })
		}
		row := ev(users[r.IntN(len(users))], videos[r.IntN(len(videos))], typ, sec, opts...)
		row.EventID = fmt.Sprintf("e%05d", i)
		rows = append(rows, row)
	}
	return rows, cdn
}

func cdnRow(id string, at time.Time) silver.CDNRow {
	at = at.Truncate(time.Second) // CloudFront logs seconds
	r := silver.CDNRow{EventID: "log-" + id, LogTime: at, EdgeRequestID: id, EdgeLocation: "FRA56-P3", POP: "FRA",
		EdgeResult: "Hit", Agent: silver.Agent{Browser: "Chrome", OS: "Windows", DeviceType: "desktop"}, IngestTime: at.Add(time.Hour)}
	r.Client.Country, r.Client.ISP = "DE", "Spreenet"
	return r
}

// randomData are the events the incremental tests deliver in pieces, and
// onTime is gold after one increment of all of them, computed once.
var randomData = sync.OnceValues(func() ([]silver.PlayerRow, []silver.CDNRow) {
	return randomSessionEvents(rand.New(rand.NewPCG(31, 32)), 450)
})

var onTime struct {
	once sync.Once
	gold map[string]sessionRow
}

func onTimeSessions(t *testing.T) map[string]sessionRow {
	t.Helper()
	onTime.once.Do(func() {
		rows, cdn := randomData()
		e := openSessions(t, t.TempDir())
		commitPlayerEvents(t, e, append(slices.Clone(rows), later()))
		commitCDNRequests(t, e, cdn)
		drainSessions(t, e)
		onTime.gold = readGoldSessions(t, e)
	})
	if onTime.gold == nil {
		t.Fatal("the on-time computation failed")
	}
	return onTime.gold
}

// TestSessionsIncrementsInAnyOrder delivers the events in shuffled
// increments, CDN rows before and after the events that name them, and
// compares gold with one increment of everything: only the touched
// sessions are recomputed each time, and the result is the same.
func TestSessionsIncrementsInAnyOrder(t *testing.T) {
	want := onTimeSessions(t)
	rows, cdn := randomData()
	r := rand.New(rand.NewPCG(33, 34))
	shuffled, cdn := slices.Clone(rows), slices.Clone(cdn)
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	r.Shuffle(len(cdn), func(i, j int) { cdn[i], cdn[j] = cdn[j], cdn[i] })

	e := openSessions(t, t.TempDir())
	e.stage.MaxRows = 100
	n := len(shuffled)
	commitPlayerEvents(t, e, shuffled[:n/3])
	commitCDNRequests(t, e, cdn[:len(cdn)/2])
	drainSessions(t, e)
	commitPlayerEvents(t, e, shuffled[n/3:2*n/3])
	drainSessions(t, e)
	commitCDNRequests(t, e, cdn[len(cdn)/2:])
	commitPlayerEvents(t, e, append(shuffled[2*n/3:], later()))
	drainSessions(t, e)
	assertSameSessions(t, readGoldSessions(t, e), want)

	var reasons = map[string]int{}
	var byID, fromCDN, fromPlayer int
	for _, s := range want {
		reasons[s.endReason]++
		if s.sessionID != "" {
			byID++
		}
		switch s.deviceSource {
		case DeviceFromCDN:
			fromCDN++
		case DeviceFromPlayer:
			fromPlayer++
		}
	}
	t.Logf("%d sessions, end reasons %v, %d by session id, devices from CDN %d, from the player %d",
		len(want), reasons, byID, fromCDN, fromPlayer)
	if reasons[EndStop] == 0 || reasons[EndNewPlay] == 0 || reasons[EndTimeout] == 0 ||
		byID == 0 || fromCDN == 0 || fromPlayer == 0 {
		t.Error("the test data does not cross every cut")
	}
}

// TestSessionsLateCDN commits a CDN log line after its session is in gold:
// that session gains its device (from the user agent) and its first
// frame's edge, in one snapshot, and no other session changes.
func TestSessionsLateCDN(t *testing.T) {
	ctx := context.Background()
	e := openSessions(t, t.TempDir())
	const reqA, reqB = "PxiujVUNrtzfLQxa8OeTtfJvzRFWsoYFnh8opu0-6AZY38ev1vG==", "Jhhzaxaw4LY-xhRJoeccATCyahbjDVwrFQCVwqYihU4PagnrYA=="
	commitPlayerEvents(t, e, []silver.PlayerRow{
		ev("a", "v", "play", 0), ev("a", "v", "firstframe", 1.2, ttff(1200), tracking(reqA)), ev("a", "v", "stream", 6, tracking(reqA)),
		ev("b", "v", "play", 0), ev("b", "v", "firstframe", 0.9, ttff(900), tracking(reqB)), ev("b", "v", "stream", 6, tracking(reqB)),
	})
	drainSessions(t, e)
	before := readGoldSessions(t, e)
	if len(before) != 2 {
		t.Fatalf("%d sessions, want 2", len(before))
	}
	for _, s := range before {
		if s.deviceSource != "" || s.edgeLocation != "" {
			t.Fatalf("session joined a CDN request before any was logged: %+v", s)
		}
	}
	goldAt := e.gold.Position()

	// Hours later, the standard log with A's request, its id in
	// CloudFront's case.
	late := cdnRow(reqA, base)
	commitCDNRequests(t, e, []silver.CDNRow{late})
	drainSessions(t, e)
	after := readGoldSessions(t, e)
	changes, err := e.gold.Changes(ctx, goldAt)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Operation != "overwrite" {
		t.Fatalf("the late CDN row made %d gold snapshots (%+v), want one overwrite", len(changes), changes)
	}
	changed := 0
	for k, s := range after {
		b := before[k]
		if s.user == "b" {
			if s != b {
				t.Errorf("session of b changed:\n%+v\n%+v", b, s)
			}
			continue
		}
		changed++
		want := b
		want.device, want.os, want.browser, want.deviceSource = "desktop", "Windows", "Chrome", DeviceFromCDN
		// The SDK sends no client address: the CDN request's client gives
		// the session its country and ISP.
		want.country, want.isp, want.networkSource = "DE", "Spreenet", DeviceFromCDN
		want.edgeLocation, want.pop, want.edgeResult = "FRA56-P3", "FRA", "Hit"
		if s != want {
			t.Errorf("session of a after its CDN row:\n got %+v\nwant %+v", s, want)
		}
	}
	if changed != 1 || len(after) != 2 {
		t.Fatalf("sessions after the late CDN row: %+v", after)
	}
	cp, err := e.gold.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	for _, tbl := range []*lake.Table{e.player, e.cdn} {
		if got, want := cp[lake.UpstreamKey(tbl.Name())], tbl.Position().String(); got != want {
			t.Errorf("gold's position in %s is %q, want %q", tbl.Name(), got, want)
		}
	}
}

// TestSessionsExactlyOnce stops the stage between planning and
// committing, commits one increment twice (a retry that did not know it
// had landed, or a second process with the same plan), and commits plans
// made stale by another process: nothing is doubled or lost.
func TestSessionsExactlyOnce(t *testing.T) {
	ctx := context.Background()
	want := onTimeSessions(t)
	rows, cdn := randomData()
	e := openSessions(t, t.TempDir())
	commitPlayerEvents(t, e, rows[:150])

	// Planned, then the process dies: nothing written.
	if _, err := e.stage.plan(ctx); err != nil {
		t.Fatal(err)
	}
	if e.gold.Position() != (lake.SnapshotPos{}) {
		t.Fatal("plan wrote to gold")
	}

	// Committed twice: one snapshot.
	p, err := e.stage.plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.stage.commit(ctx, p); err != nil {
		t.Fatal(err)
	}
	landed := e.gold.Position()
	other := openSessions(t, e.dir)
	if err := other.stage.commit(ctx, p); err != nil {
		t.Fatalf("committing the same increment again: %v", err)
	}
	if _, err := e.gold.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if e.gold.Position() != landed {
		t.Fatal("the same increment committed twice made a second snapshot")
	}
	if _, err := e.stage.RunOnce(ctx); !errors.Is(err, lake.ErrNoChange) {
		t.Fatalf("RunOnce after the increment landed: %v, want ErrNoChange", err)
	}

	// A plan whose position another process moved further is refused.
	commitPlayerEvents(t, e, rows[150:300])
	stale, err := e.stage.plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	commitPlayerEvents(t, e, nil) // a new silver snapshot: the other's increment ends elsewhere
	drainSessions(t, other)
	if err := e.stage.commit(ctx, stale); !errors.Is(err, lake.ErrCheckpointMoved) {
		t.Fatalf("stale plan committed: %v, want ErrCheckpointMoved", err)
	}

	commitPlayerEvents(t, e, append(slices.Clone(rows[300:]), later()))
	commitCDNRequests(t, e, cdn)
	drainSessions(t, e)
	assertSameSessions(t, readGoldSessions(t, e), want)

	// Every plan reads both silver tables, so a writer that moved a
	// position a plan leaves alone has in practice moved one it moves too;
	// the guard makes that a rule. A player-only plan meets a gold whose
	// CDN position alone moved: refused.
	commitPlayerEvents(t, e, []silver.PlayerRow{ev("u9", "v1", "play", 10)})
	stale, err = e.stage.plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cdnKey := lake.UpstreamKey(e.cdn.Name())
	if _, err := other.gold.Commit(ctx, lake.Batch{Advance: []lake.Position{{Key: cdnKey, From: stale.from[cdnKey], To: "1:1"}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.stage.commit(ctx, stale); !errors.Is(err, errStalePlan) {
		t.Fatalf("plan committed over another writer's move of a position it does not move: %v, want errStalePlan", err)
	}
}

// TestSessionsConcurrent drains with two processes at once while silver
// grows: gold equals one increment of everything. Their increments are
// bounded differently, so one often finds gold moved and starts over.
func TestSessionsConcurrent(t *testing.T) {
	want := onTimeSessions(t)
	rows, cdn := randomData()
	dir := t.TempDir()
	a, b := openSessions(t, dir), openSessions(t, dir)
	a.stage.MaxRows, b.stage.MaxRows = 100, 170
	commitPlayerEvents(t, a, rows[:200])
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, e := range []sessionsEnv{a, b} {
		wg.Go(func() { errs[i] = e.stage.Drain(context.Background()) })
	}
	commitCDNRequests(t, b, cdn)
	commitPlayerEvents(t, b, append(slices.Clone(rows[200:]), later()))
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	drainSessions(t, a)
	drainSessions(t, b)
	assertSameSessions(t, readGoldSessions(t, a), want)
}

// TestSessionsTimeout: a session with no STOP stays open until the
// watermark passes its end by the timeout, then closes (an exit before
// start when it had no first frame) in the commit that moved the
// watermark; an event that arrives later reopens it.
func TestSessionsTimeout(t *testing.T) {
	e := openSessions(t, t.TempDir())
	commitPlayerEvents(t, e, []silver.PlayerRow{
		ev("a", "v", "play", 0),
		ev("b", "v", "play", 0), ev("b", "v", "firstframe", 1, ttff(1000)), ev("b", "v", "stream", 10),
	})
	drainSessions(t, e)
	reasons := func() map[string]sessionRow {
		out := map[string]sessionRow{}
		for _, s := range readGoldSessions(t, e) {
			out[s.user] = s
		}
		return out
	}
	for u, s := range reasons() {
		if s.endReason != EndOpen || s.exitBeforeStart {
			t.Fatalf("session of %s: %s, exit before start %v; want open", u, s.endReason, s.exitBeforeStart)
		}
	}

	// Another viewer's events move the watermark to 2 minutes past b's
	// last event, not beyond it.
	commitPlayerEvents(t, e, []silver.PlayerRow{ev("c", "v", "play", 130)})
	drainSessions(t, e)
	if got := reasons(); got["a"].endReason != EndTimeout || !got["a"].exitBeforeStart || got["b"].endReason != EndOpen {
		t.Fatalf("at watermark +130 s: a %+v, b %+v", got["a"], got["b"])
	}

	goldAt := e.gold.Position()
	commitPlayerEvents(t, e, []silver.PlayerRow{ev("c", "v", "stream", 131)})
	drainSessions(t, e)
	got := reasons()
	if b := got["b"]; b.endReason != EndTimeout || b.exitBeforeStart || b.watchS != 9 {
		t.Fatalf("at watermark +131 s: b %+v, want timed out after 9 s of play", b)
	}
	changes, err := e.gold.Changes(context.Background(), goldAt)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 {
		t.Fatalf("%d gold snapshots for one increment, want 1", len(changes))
	}

	// b's viewer was still there: a late event within the timeout of its
	// last one puts it back in b's session.
	commitPlayerEvents(t, e, []silver.PlayerRow{ev("b", "v", "stream", 100)})
	drainSessions(t, e)
	if b := reasons()["b"]; b.endReason != EndOpen || b.events != 4 || b.watchS != 99 {
		t.Fatalf("b after its late event: %+v, want open again, 99 s of play", b)
	}
	if n := len(readGoldSessions(t, e)); n != 3 {
		t.Fatalf("%d sessions, want 3", n)
	}
}
