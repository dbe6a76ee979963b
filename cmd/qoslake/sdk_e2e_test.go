package main

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qoslake/qoslake/simulate"
)

// sdkRecords are the nine events of the AWS reference player SDK, exactly
// as it sends them (string numbers, "" and -1 for unknowns, the request id
// in CloudFront's mixed case), one JSON.stringify(event)+"\n" per record,
// from ms on.
func sdkRecords(ms int64) []string {
	common := `"user_id":"us-west-2:810f9e88-55e8-4a90-8e63-830446bed12d","video_id":"BigBuckBunny","playlist_type":"VOD","TimeStamp":`
	ev := func(i int64, body string) string {
		return "{" + body + "," + common + strconv.FormatInt(ms+i*1000, 10) + "}\n"
	}
	return []string{
		ev(0, `"MetricType":"PLAY","at":0,"duration":597`),
		ev(1, `"MetricType":"FIRSTFRAME","rtt":350,"connection_type":"4g","package":"HLS","resolution":"1280x720","fps":"29.970","avg_bitrate":"2400000","time_millisecond":1240,"cdn_tracking_id":"PxiujVUNrtzfLQxa8OeTtfJvzRFWsoYFnh8opu0-6AZY38ev1vG=="`),
		ev(2, `"MetricType":"BUFFER","buffer_type":"FirstBuffer","at":0,"rtt":-1,"connection_type":"4g","time_millisecond":1251,"cdn_tracking_id":"PxiujVUNrtzfLQxa8OeTtfJvzRFWsoYFnh8opu0-6AZY38ev1vG=="`),
		ev(3, `"MetricType":"STREAM","at":5.0071,"rtt":"","connection_type":"4g","package":"HLS","resolution":"1280x720","fps":"29.970","avg_bitrate":2400000,"duration":597,"cdn_tracking_id":"PxiujVUNrtzfLQxa8OeTtfJvzRFWsoYFnh8opu0-6AZY38ev1vG=="`),
		ev(4, `"MetricType":"BUFFER","buffer_type":"ScreenFreezedBuffer","at":7.5,"rtt":410,"connection_type":"4g","time_millisecond":2150,"cdn_tracking_id":"Jhhzaxaw4LY-xhRJoeccATCyahbjDVwrFQCVwqYihU4PagnrYA=="`),
		ev(5, `"MetricType":"STEP","at":7.6,"bitrate_from":2400000,"bitrate_to":1330203,"direction":"DOWN","package":"HLS","resolution":"1280x720","fps":"29.970","connection_type":"4g"`),
		ev(6, `"MetricType":"SEEK","seek_from":8.25,"seek_to":60,"rtt":375,"connection_type":"4g","time_millisecond":820,"cdn_tracking_id":"Svyrtjqsrrpmly-ZEWW4u3pbdn2slGCaodm-2ogdPLFTH4zhKA=="`),
		ev(7, `"MetricType":"PAUSE","at":61,"duration":597`),
		ev(8, `"MetricType":"ERROR","at":61,"message":"Error","cdn_tracking_id":""`),
		ev(9, `"MetricType":"STOP","at":61,"duration":597,"connection_type":"4g","package":"HLS","resolution":"640x360","fps":"","avg_bitrate":1330203`),
	}
}

// Events in the SDK's exact shape, all nine types, run into silver with
// their timings; unknowns are nulls, not rejects.
func TestSDKEventsRunIntoSilver(t *testing.T) {
	s := newStack(t)
	for _, r := range sdkRecords(time.Now().Add(-time.Minute).UnixMilli()) {
		s.putRecord([]byte(r))
	}
	s.mustRun("run", "--once")
	if rejects := s.keys("bronze.rejects", "reason", "detail"); len(rejects) != 0 {
		t.Fatalf("rejected: %v", rejects)
	}
	got := map[string]bool{}
	for _, r := range s.keys("silver.player_events", "event_type", "buffer_type", "time_to_first_frame_ms", "buffer_duration_ms",
		"seek_time_ms", "seek_from_s", "seek_to_s", "bitrate_from_bps", "bitrate_to_bps", "direction", "rtt_ms", "package",
		"fps", "cdn_tracking_id", "video_id", "playlist_type") {
		got[r] = true
	}
	const n = "(null)"
	for _, want := range []string{
		"play|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|bigbuckbunny|vod",
		"firstframe|" + n + "|1240|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|350|hls|29.97|pxiujvunrtzflqxa8oettfjvzrfwsoyfnh8opu0-6azy38ev1vg==|bigbuckbunny|vod",
		"buffer|firstbuffer|" + n + "|1251|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|pxiujvunrtzflqxa8oettfjvzrfwsoyfnh8opu0-6azy38ev1vg==|bigbuckbunny|vod",
		"stream|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|hls|29.97|pxiujvunrtzflqxa8oettfjvzrfwsoyfnh8opu0-6azy38ev1vg==|bigbuckbunny|vod",
		"buffer|screenfreezedbuffer|" + n + "|2150|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|410|" + n + "|" + n + "|jhhzaxaw4ly-xhrjoeccatcyahbjdvwrfqcvwqyihu4pagnrya==|bigbuckbunny|vod",
		"step|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|2400000|1330203|down|" + n + "|hls|29.97|" + n + "|bigbuckbunny|vod",
		"seek|" + n + "|" + n + "|" + n + "|820|8.25|60|" + n + "|" + n + "|" + n + "|375|" + n + "|" + n + "|svyrtjqsrrpmly-zeww4u3pbdn2slgcaodm-2ogdplfth4zhka==|bigbuckbunny|vod",
		"pause|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|bigbuckbunny|vod",
		"error|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|bigbuckbunny|vod",
		"stop|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|" + n + "|hls|" + n + "|" + n + "|bigbuckbunny|vod",
	} {
		if !got[want] {
			t.Errorf("silver lacks row %s", want)
		}
	}
	if len(got) != 10 {
		t.Errorf("silver has %d rows: %v", len(got), got)
	}
}

// `qoslake check` accepts the SDK's exact shape, all nine types, in both
// forms, and says which unknowns it left empty.
func TestCheckSDKEvents(t *testing.T) {
	dir := t.TempDir()
	city, asn, err := simulate.WriteGeoIP(dir)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"QOSLAKE_PSEUDONYM_KEY": testKey, "QOSLAKE_GEOIP_CITY": city, "QOSLAKE_GEOIP_ASN": asn}
	recs := strings.Join(sdkRecords(time.Now().Add(-time.Minute).UnixMilli()), "")
	for form, body := range map[string]string{"sdk": recs, "lowercase": strings.ToLower(recs)} {
		path := filepath.Join(dir, form+".jsonl")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := run(t, env, "check", path)
		if code != exitOK || strings.Count(out, "\n") != 10 || !strings.Contains(errOut, "10 rows, 0 rejected") {
			t.Fatalf("%s: exit %d\n%s\n%s", form, code, out, errOut)
		}
		for _, want := range []string{`"event_type":"firstframe"`, `"buffer_type":"screenfreezedbuffer"`, `"package":"hls"`,
			`"cdn_tracking_id":"pxiujvunrtzflqxa8oettfjvzrfwsoyfnh8opu0-6azy38ev1vg=="`} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %s", form, want)
			}
		}
		for _, want := range []string{"rtt left empty", "fps left empty", "cdn_tracking_id left empty"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", form, want, errOut)
			}
		}
	}
}

// Simulated traffic in the SDK's form and in the lower-cased form runs
// through `run --once` exactly, and silver holds the timings the
// simulation used: every start time and every stall.
func TestSDKFormSimulatedTrafficExactly(t *testing.T) {
	s := newStack(t)
	sdk := s.simulate("--rate", "300", "--duration", "20s", "--seed", "61")
	low := s.simulate("--rate", "300", "--duration", "15s", "--seed", "62", "--payload-form", "lowercase", "--kpl-aggregate", "5")
	if sdk.Form != "sdk" || low.Form != "lowercase" {
		t.Fatalf("forms %q and %q", sdk.Form, low.Form)
	}
	s.mustRun("run", "--once")
	s.checkExactlyOnce(sdk.EventsTotal+low.EventsTotal, sdk.LogLines+low.LogLines)
	if rejects := s.keys("bronze.rejects", "reason"); len(rejects) != 0 {
		t.Errorf("simulated traffic produced rejects: %v", rejects)
	}
	if n := len(s.keys("silver.player_events", "event_id")); n != sdk.EventsTotal+low.EventsTotal {
		t.Errorf("silver has %d player events, simulated %d", n, sdk.EventsTotal+low.EventsTotal)
	}
	var started, stalls int
	var startupMS, stallMS float64
	for _, r := range s.keys("silver.player_events", "event_type", "buffer_type", "time_to_first_frame_ms", "buffer_duration_ms") {
		f := strings.Split(r, "|")
		switch {
		case f[0] == "firstframe":
			v, err := strconv.ParseFloat(f[2], 64)
			if err != nil {
				t.Fatalf("firstframe without a start time: %s", r)
			}
			started++
			startupMS += v
		case f[1] == "screenfreezedbuffer":
			v, err := strconv.ParseFloat(f[3], 64)
			if err != nil {
				t.Fatalf("stall without a time: %s", r)
			}
			stalls++
			stallMS += v
		}
	}
	tot := sdk.Totals
	tot2 := low.Totals
	if started != tot.Started+tot2.Started || math.Abs(startupMS-float64(tot.StartupMSSum+tot2.StartupMSSum)) > 0.5 {
		t.Errorf("silver: %d starts, %.0f ms; simulated %d, %d ms", started, startupMS, tot.Started+tot2.Started, tot.StartupMSSum+tot2.StartupMSSum)
	}
	if stalls != tot.StallCount+tot2.StallCount || math.Abs(stallMS-float64(tot.StallMS+tot2.StallMS)) > 0.5 || stalls == 0 {
		t.Errorf("silver: %d stalls, %.0f ms; simulated %d, %d ms", stalls, stallMS, tot.StallCount+tot2.StallCount, tot.StallMS+tot2.StallMS)
	}
	// Every cdn_tracking_id joins a CloudFront request, without regard to case.
	requests := map[string]bool{}
	for _, id := range s.keys("silver.cdn_logs", "edge_request_id") {
		requests[strings.ToLower(id)] = true
	}
	joined := 0
	for _, id := range s.keys("silver.player_events", "cdn_tracking_id") {
		if id == "(null)" {
			continue
		}
		if !requests[id] {
			t.Fatalf("cdn_tracking_id %s joins no request", id)
		}
		joined++
	}
	if joined == 0 {
		t.Error("nothing joined")
	}
	s.checkGoldMatchesTruth(sdk, low)

	// run --once carried gold to the updates topic too.
	types, kpi := s.receiveUpdates()
	for _, ut := range []string{"kpi_summary", "recent_views", "total_views", "active_users"} {
		if types[ut] == 0 {
			t.Errorf("the updates queue got no %s (got %v)", ut, types)
		}
	}
	if kpi["gold_snapshots"] == nil || kpi["last_5_minutes"] == nil {
		t.Errorf("kpi_summary %v", kpi)
	}
}
