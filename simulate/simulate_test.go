package simulate_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/ingest/playerevent"
	"github.com/qoslake/qoslake/simulate"
)

type memOutput struct {
	events   []simulate.Event
	logs     []simulate.LogFile
	realtime []simulate.RealtimeRecord
}

func (m *memOutput) PutRealtime(_ context.Context, r []simulate.RealtimeRecord) error {
	m.realtime = append(m.realtime, r...)
	return nil
}

func (m *memOutput) PutEvents(_ context.Context, ev []simulate.Event) (int, error) {
	m.events = append(m.events, ev...)
	return len(ev), nil
}

func (m *memOutput) PutLog(_ context.Context, f simulate.LogFile) error {
	m.logs = append(m.logs, f)
	return nil
}

var start = time.Date(2026, 3, 2, 18, 0, 0, 0, time.UTC)

func run(t *testing.T, seed int64, schedule string) (*memOutput, simulate.Summary) {
	t.Helper()
	return runForm(t, seed, schedule, "")
}

func runForm(t *testing.T, seed int64, schedule, form string) (*memOutput, simulate.Summary) {
	t.Helper()
	steps, err := simulate.ParseSchedule(schedule)
	if err != nil {
		t.Fatal(err)
	}
	out := &memOutput{}
	g := simulate.New(simulate.Config{Seed: seed, Form: form, Start: start, Rate: 200, LogPrefix: "cloudfront/"})
	sum, err := simulate.Run(context.Background(), g, out, simulate.RunOptions{Duration: 60 * time.Second, Schedule: steps, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	return out, sum
}

func TestSameSeedSameOutput(t *testing.T) {
	a, sa := run(t, 7, "")
	b, sb := run(t, 7, "")
	if !reflect.DeepEqual(sa, sb) || len(a.events) != len(b.events) {
		t.Fatalf("summaries differ:\n%+v\n%+v", sa, sb)
	}
	for i := range a.events {
		if !bytes.Equal(a.events[i].JSON, b.events[i].JSON) {
			t.Fatalf("event %d differs", i)
		}
	}
	c, _ := run(t, 8, "")
	if len(c.events) == len(a.events) && bytes.Equal(c.events[0].JSON, a.events[0].JSON) {
		t.Error("another seed gave the same output")
	}
}

// Every event parses as bronze will parse it, every log line reads as a
// 33-field CloudFront line, and every cdn_tracking_id a player sends is the
// x-edge-request-id of a logged request, in the same mixed case.
func TestOutputIsValidAndJoins(t *testing.T) {
	out, sum := run(t, 1, "10s=edge-latency,30s=normal")
	if sum.EventsTotal != len(out.events) || sum.EventsTotal < 500 || sum.Sessions == 0 {
		t.Fatalf("summary %+v for %d events", sum, len(out.events))
	}
	requestIDs := map[string]bool{}
	lines := 0
	for _, f := range out.logs {
		if !strings.HasPrefix(f.Key, "cloudfront/E2QOSLAKEDEMO.2026-03-02-18.") || !strings.HasSuffix(f.Key, ".gz") {
			t.Errorf("log key %s", f.Key)
		}
		zr, err := gzip.NewReader(bytes.NewReader(f.Body))
		if err != nil {
			t.Fatal(err)
		}
		r := cloudfront.NewReader(zr, 64<<10)
		for {
			l, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f.Key, err)
			}
			if len(l.Header.Names) != 33 {
				t.Fatalf("%d fields", len(l.Header.Names))
			}
			requestIDs[cloudfront.Split(l.Text, nil)[l.Header.Index("x-edge-request-id")]] = true
			lines++
		}
	}
	if lines != sum.LogLines || sum.LogFiles != len(out.logs) {
		t.Errorf("summary says %d lines in %d files, output has %d in %d", sum.LogLines, sum.LogFiles, lines, len(out.logs))
	}
	joined := 0
	for _, e := range out.events {
		evs, rej := playerevent.Parse(e.JSON, start.Add(time.Hour), playerevent.DefaultLimits)
		if len(rej) > 0 || len(evs) != 1 {
			t.Fatalf("event %s rejected: %+v", e.JSON, rej)
		}
		var m struct {
			ID *string `json:"cdn_tracking_id"`
		}
		_ = json.Unmarshal(e.JSON, &m)
		switch {
		case m.ID == nil || *m.ID == "":
		case requestIDs[*m.ID]:
			joined++
		default:
			t.Fatalf("%s: cdn_tracking_id is no logged request's id", e.JSON)
		}
	}
	if joined < len(out.events)/2 {
		t.Errorf("only %d of %d events join a logged request", joined, len(out.events))
	}
	mixed := 0
	for id := range requestIDs {
		if id != strings.ToLower(id) {
			mixed++
		}
	}
	if mixed < len(requestIDs)*9/10 {
		t.Errorf("only %d of %d request ids are in mixed case", mixed, len(requestIDs))
	}
	if len(sum.Incidents) != 1 || sum.Incidents[0].Scenario != "edge-latency" || sum.Incidents[0].Target == "" ||
		sum.Incidents[0].End.Sub(sum.Incidents[0].Start) != 20*time.Second {
		t.Errorf("incidents = %+v", sum.Incidents)
	}
}

func TestLateLogsAreHeldBackThenDelivered(t *testing.T) {
	out, sum := run(t, 3, "0s=late-cdn-logs")
	if sum.LogFiles == 0 || sum.LogLines == 0 {
		t.Fatalf("no logs: %+v", sum)
	}
	for _, f := range out.logs {
		if f.Due.Sub(start) < 3*time.Hour {
			t.Errorf("%s due %s, want at least 3h late", f.Key, f.Due)
		}
	}
}

func TestParseSchedule(t *testing.T) {
	if _, err := simulate.ParseSchedule("10s=volcano"); err == nil {
		t.Error("unknown scenario accepted")
	}
	if _, err := simulate.ParseSchedule("soon=normal"); err == nil {
		t.Error("bad offset accepted")
	}
}

// sdkFields are the fields the reference SDK (QoSSDK.js) sends per event
// type, in order, before the common user_id, video_id, playlist_type and
// TimeStamp.
var sdkFields = map[string][]string{
	"PLAY":       {"at", "duration"},
	"FIRSTFRAME": {"rtt", "connection_type", "package", "resolution", "fps", "avg_bitrate", "time_millisecond", "cdn_tracking_id"},
	"SEEK":       {"seek_from", "seek_to", "rtt", "connection_type", "time_millisecond", "cdn_tracking_id"},
	"BUFFER":     {"buffer_type", "at", "rtt", "connection_type", "time_millisecond", "cdn_tracking_id"},
	"STREAM":     {"at", "rtt", "connection_type", "package", "resolution", "fps", "avg_bitrate", "duration", "cdn_tracking_id"},
	"STEP":       {"at", "bitrate_from", "bitrate_to", "direction", "package", "resolution", "fps", "connection_type"},
	"PAUSE":      {"at", "duration"},
	"ERROR":      {"at", "message", "cdn_tracking_id"},
	"STOP":       {"at", "duration", "connection_type", "package", "resolution", "fps", "avg_bitrate"},
}

// keys returns an object's keys in order.
func keys(t *testing.T, b []byte) []string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	var out []string
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s: not an object", b)
	}
	for d.More() {
		k, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k.(string))
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// By default events are exactly the SDK's: its keys in its order, one
// JSON.stringify(event)+"\n" per record, upper-case values, FIRSTFRAME's
// avg_bitrate and fps as strings, unknowns as "" and -1, and no session,
// app or device fields. All nine types are sent.
func TestEventsAreTheSDKs(t *testing.T) {
	out, sum := run(t, 5, "")
	if sum.Form != simulate.FormSDK {
		t.Errorf("form %q", sum.Form)
	}
	seen := map[string]bool{}
	var emptyFPS, unknownRTT, stringBitrate bool
	for _, e := range out.events {
		if !bytes.HasSuffix(e.JSON, []byte("}\n")) || bytes.Count(e.JSON, []byte("\n")) != 1 {
			t.Fatalf("record %q is not JSON.stringify(event)+newline", e.JSON)
		}
		var m map[string]any
		if err := json.Unmarshal(e.JSON, &m); err != nil {
			t.Fatal(err)
		}
		typ, _ := m["MetricType"].(string)
		want, ok := sdkFields[typ]
		if !ok {
			t.Fatalf("MetricType %q", typ)
		}
		seen[typ] = true
		want = append(append([]string{"MetricType"}, want...), "user_id", "video_id", "playlist_type", "TimeStamp")
		if got := keys(t, e.JSON); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("%s keys\n%v, want\n%v", typ, got, want)
		}
		if e.Type != strings.ToLower(typ) {
			t.Errorf("event type %q for %s", e.Type, typ)
		}
		if p, ok := m["package"]; ok && p != "HLS" {
			t.Errorf("package %v", p)
		}
		if d, ok := m["direction"]; ok && d != "UP" && d != "DOWN" {
			t.Errorf("direction %v", d)
		}
		if b, ok := m["buffer_type"]; ok && b != "FirstBuffer" && b != "ScreenFreezedBuffer" {
			t.Errorf("buffer_type %v", b)
		}
		if p := m["playlist_type"]; p != "VOD" && p != "LIVE" {
			t.Errorf("playlist_type %v", p)
		}
		emptyFPS = emptyFPS || m["fps"] == ""
		unknownRTT = unknownRTT || m["rtt"] == -1.0
		if typ == "FIRSTFRAME" {
			_, isString := m["avg_bitrate"].(string)
			stringBitrate = isString
		}
	}
	if len(seen) != 9 {
		t.Errorf("types sent: %v", seen)
	}
	if !emptyFPS || !unknownRTT || !stringBitrate {
		t.Errorf("unknowns as the SDK sends them: fps \"\" %v, rtt -1 %v, FIRSTFRAME avg_bitrate a string %v", emptyFPS, unknownRTT, stringBitrate)
	}
}

// The lower-cased form is the SDK's form lower-cased, byte for byte, with
// the same truths.
func TestLowercaseForm(t *testing.T) {
	sdk, ss := runForm(t, 9, "", simulate.FormSDK)
	low, ls := runForm(t, 9, "", simulate.FormLowercase)
	if len(sdk.events) != len(low.events) || !reflect.DeepEqual(ss.SessionTruths, ls.SessionTruths) || ls.Form != "lowercase" {
		t.Fatalf("forms differ beyond case: %d and %d events", len(sdk.events), len(low.events))
	}
	for i := range sdk.events {
		if !bytes.Equal(bytes.ToLower(sdk.events[i].JSON), low.events[i].JSON) {
			t.Fatalf("event %d: %s is not %s lower-cased", i, low.events[i].JSON, sdk.events[i].JSON)
		}
	}
}

// The summary's truths are what the events say: per session (user and
// video), FIRSTFRAME's time_millisecond is the start time, the
// ScreenFreezedBuffer events sum to the stall time, the STEPs from a
// rendition are the switches, an ERROR before FIRSTFRAME is a start
// failure; and the totals add them up.
func TestSummaryStatesTheTruth(t *testing.T) {
	out, sum := run(t, 13, "0s=isp-buffering")
	type got struct {
		startup                           *int64
		stalls, switches, seeks, events   int
		stallMS                           int64
		failedBeforeStart, playbackFailed bool
		stopped                           bool
	}
	per := map[string]*got{}
	for _, e := range out.events {
		var m struct {
			Type, User, Video string
			BufferType        string  `json:"buffer_type"`
			MS                *int64  `json:"time_millisecond"`
			From              float64 `json:"bitrate_from"`
		}
		var raw map[string]any
		json.Unmarshal(e.JSON, &raw)
		m.Type, m.User, m.Video = raw["MetricType"].(string), raw["user_id"].(string), raw["video_id"].(string)
		json.Unmarshal(e.JSON, &m)
		k := m.User + "/" + m.Video
		g := per[k]
		if g == nil {
			g = &got{}
			per[k] = g
		}
		g.events++
		switch m.Type {
		case "FIRSTFRAME":
			g.startup = m.MS
		case "BUFFER":
			if m.BufferType == "ScreenFreezedBuffer" {
				g.stalls++
				g.stallMS += *m.MS
			}
		case "STEP":
			if m.From > 0 {
				g.switches++
			}
		case "SEEK":
			g.seeks++
		case "ERROR":
			g.failedBeforeStart = g.startup == nil
			g.playbackFailed = g.startup != nil
		case "STOP":
			g.stopped = true
		}
	}
	if len(sum.SessionTruths) != sum.Sessions || len(per) != sum.Sessions {
		t.Fatalf("%d truths, %d sessions in events, %d in the summary", len(sum.SessionTruths), len(per), sum.Sessions)
	}
	events, stalls := 0, 0
	for _, tr := range sum.SessionTruths {
		g := per[tr.UserID+"/"+tr.VideoID]
		if g == nil {
			t.Fatalf("session %s/%s sent nothing", tr.UserID, tr.VideoID)
		}
		if !reflect.DeepEqual(g.startup, tr.StartupMS) || g.stalls != tr.StallCount || g.stallMS != tr.StallMS ||
			g.switches != tr.BitrateSwitches || g.seeks != tr.Seeks || g.events != tr.Events ||
			g.failedBeforeStart != tr.FailedBeforeStart || g.playbackFailed != tr.PlaybackFailed || g.stopped != tr.Stopped {
			t.Errorf("truth %+v, events say %+v", tr, *g)
		}
		if tr.StartupMS == nil && tr.WatchedS != 0 || tr.StartupMS != nil && *tr.StartupMS < 800 {
			t.Errorf("truth %+v", tr)
		}
		events += tr.Events
		stalls += tr.StallCount
	}
	tot := sum.Totals
	if events != sum.EventsTotal || stalls != tot.StallCount || stalls == 0 || tot.Sessions != sum.Sessions ||
		tot.Started+tot.FailedBeforeStart+tot.ExitBeforeStart < tot.Sessions-10 || tot.WatchedS <= 0 || tot.BitrateSwitches == 0 ||
		tot.StartupMSMean < 800 || tot.StartupMSMean > 5000 {
		t.Errorf("totals %+v (events %d, summed %d; stalls %d)", tot, sum.EventsTotal, events, stalls)
	}
}

// TestConcurrentIncidents: incidents joined by "+" run at once; one that
// goes on keeps its target, the others end when the schedule drops them.
func TestConcurrentIncidents(t *testing.T) {
	g := simulate.New(simulate.Config{Start: time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC), Seed: 3, Rate: 20})
	steps := map[int]string{10: simulate.EdgeLatency + "+" + simulate.ISPBuffering, 20: simulate.ISPBuffering, 30: simulate.Normal}
	for i := range 40 {
		if sc, ok := steps[i]; ok {
			if err := g.SetScenario(sc); err != nil {
				t.Fatal(err)
			}
		}
		g.Tick()
	}
	inc := g.Incidents()
	if len(inc) != 2 || inc[0].Scenario != simulate.EdgeLatency || inc[1].Scenario != simulate.ISPBuffering {
		t.Fatalf("incidents %+v", inc)
	}
	at := func(s int) time.Time { return time.Date(2026, 3, 2, 12, 0, s, 0, time.UTC) }
	if !inc[0].Start.Equal(at(10)) || !inc[0].End.Equal(at(20)) || !inc[1].Start.Equal(at(10)) || !inc[1].End.Equal(at(30)) {
		t.Errorf("incident times %+v", inc)
	}
	if err := g.SetScenario("normal+edge-latency"); err == nil {
		t.Error("normal joined with an incident accepted")
	}
}
