package silver_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/qoslake/qoslake/anonymize"
	"github.com/qoslake/qoslake/ingest/playerevent"
	"github.com/qoslake/qoslake/silver"
)

// The nine events of the AWS reference player SDK (QoSSDK.js), exactly as
// it sends them: MetricType first, common fields and TimeStamp last, numbers
// as strings where it reads them from the HLS playlist, "" and -1 for
// unknowns, the request id in CloudFront's mixed case.
var sdkEvents = map[string]string{
	"play":       `{"MetricType":"PLAY","at":0,"duration":597,"user_id":"us-west-2:810f9e88-55e8-4a90-8e63-830446bed12d","video_id":"BigBuckBunny","playlist_type":"VOD","TimeStamp":1772474400000}`,
	"firstframe": `{"MetricType":"FIRSTFRAME","rtt":350,"connection_type":"4g","package":"HLS","resolution":"1280x720","fps":"29.970","avg_bitrate":"2400000","time_millisecond":1240,"cdn_tracking_id":"PxiujVUNrtzfLQxa8OeTtfJvzRFWsoYFnh8opu0-6AZY38ev1vG==","user_id":"us-west-2:810f9e88-55e8-4a90-8e63-830446bed12d","video_id":"BigBuckBunny","playlist_type":"VOD","TimeStamp":1772474401240}`,
	"buffer":     `{"MetricType":"BUFFER","buffer_type":"ScreenFreezedBuffer","at":212.4,"rtt":-1,"connection_type":"4g","time_millisecond":2150,"cdn_tracking_id":"Jhhzaxaw4LY-xhRJoeccATCyahbjDVwrFQCVwqYihU4PagnrYA==","user_id":"us-west-2:810f9e88-55e8-4a90-8e63-830446bed12d","video_id":"BigBuckBunny","playlist_type":"VOD","TimeStamp":1772474613000}`,
	"stream":     `{"MetricType":"STREAM","at":105.077308,"rtt":"","connection_type":"not available","package":"HLS","resolution":"1280x720","fps":"29.970","avg_bitrate":2400000,"duration":597,"cdn_tracking_id":"PxiujVUNrtzfLQxa8OeTtfJvzRFWsoYFnh8opu0-6AZY38ev1vG==","user_id":"us-west-2:810f9e88-55e8-4a90-8e63-830446bed12d","video_id":"BigBuckBunny","playlist_type":"VOD","TimeStamp":1772474506000}`,
	"step":       `{"MetricType":"STEP","at":214,"bitrate_from":2400000,"bitrate_to":1330203,"direction":"DOWN","package":"HLS","resolution":"1280x720","fps":"29.970","connection_type":"4g","user_id":"us-west-2:810f9e88-55e8-4a90-8e63-830446bed12d","video_id":"BigBuckBunny","playlist_type":"VOD","TimeStamp":1772474615000}`,
	"seek":       `{"MetricType":"SEEK","seek_from":230.5,"seek_to":300,"rtt":375,"connection_type":"4g","time_millisecond":820,"cdn_tracking_id":"Svyrtjqsrrpmly-ZEWW4u3pbdn2slGCaodm-2ogdPLFTH4zhKA==","user_id":"us-west-2:810f9e88-55e8-4a90-8e63-830446bed12d","video_id":"BigBuckBunny","playlist_type":"VOD","TimeStamp":1772474632000}`,
	"pause":      `{"MetricType":"PAUSE","at":310.2,"duration":597,"user_id":"us-west-2:810f9e88-55e8-4a90-8e63-830446bed12d","video_id":"BigBuckBunny","playlist_type":"VOD","TimeStamp":1772474642000}`,
	"error":      `{"MetricType":"ERROR","at":311,"message":"Error","cdn_tracking_id":"","user_id":"us-west-2:810f9e88-55e8-4a90-8e63-830446bed12d","video_id":"BigBuckBunny","playlist_type":"VOD","TimeStamp":1772474643000}`,
	"stop":       `{"MetricType":"STOP","at":311,"duration":597,"connection_type":"4g","package":"HLS","resolution":"640x360","fps":"","avg_bitrate":1330203,"user_id":"us-west-2:810f9e88-55e8-4a90-8e63-830446bed12d","video_id":"BigBuckBunny","playlist_type":"VOD","TimeStamp":1772474644000}`,
}

var recvTime = time.Date(2026, 3, 2, 19, 0, 0, 0, time.UTC)

// typeRecord runs one record through bronze's parser and silver's typing.
func typeRecord(t *testing.T, tr *silver.Transformer, record string) (silver.PlayerRow, []silver.Problem) {
	t.Helper()
	evs, rejs := playerevent.Parse([]byte(record), recvTime, playerevent.DefaultLimits)
	if len(rejs) > 0 || len(evs) != 1 {
		t.Fatalf("%s: rejected %+v", record, rejs)
	}
	row, probs, err := tr.PlayerEvent(evs[0].Payload, evs[0].Type, evs[0].Time)
	if err != nil {
		t.Fatal(err)
	}
	return row, probs
}

func f(v float64) *float64 { return &v }
func i(v int64) *int64     { return &v }

// The SDK's form and the Databricks notebooks' lower-cased form of each
// event give the same typed row (all but the event id, which is the hash of
// different bytes), with the timings QoE needs, and the same problems.
func TestSDKAndLowercaseFormsTypeAlike(t *testing.T) {
	tr := &silver.Transformer{Pseudonyms: anonymize.NewPseudonymizer(anonymize.DemoKey)}
	for typ, sdk := range sdkEvents {
		t.Run(typ, func(t *testing.T) {
			a, pa := typeRecord(t, tr, sdk+"\n")
			b, pb := typeRecord(t, tr, strings.ToLower(sdk)+"\n")
			if a.EventID == b.EventID {
				t.Error("different payloads share an event id")
			}
			if a.EventType != typ {
				t.Errorf("event_type %q", a.EventType)
			}
			a.EventID, b.EventID = "", ""
			if !reflect.DeepEqual(a, b) {
				t.Errorf("rows differ:\nsdk       %+v\nlowercase %+v", a, b)
			}
			if !reflect.DeepEqual(pa, pb) {
				t.Errorf("problems differ: %v / %v", pa, pb)
			}
			if a.UserKey == "" || a.VideoID != "bigbuckbunny" || a.PlaylistType != "vod" || a.EventTime.IsZero() {
				t.Errorf("common fields: %+v", a)
			}
		})
	}

	row := func(typ string) (silver.PlayerRow, string) {
		r, p := typeRecord(t, tr, sdkEvents[typ]+"\n")
		return r, fields(p)
	}
	ff, probs := row("firstframe")
	if !reflect.DeepEqual(ff.TimeToFirstFrame, f(1240)) || !reflect.DeepEqual(ff.RTT, f(350)) || !reflect.DeepEqual(ff.Bitrate, i(2400000)) ||
		!reflect.DeepEqual(ff.FPS, f(29.97)) || ff.Package != "hls" || ff.Resolution != "1280x720" || probs != "" ||
		ff.CDNTrackingID != "pxiujvunrtzflqxa8oettfjvzrfwsoyfnh8opu0-6azy38ev1vg==" {
		t.Errorf("firstframe %+v, problems %q", ff, probs)
	}
	buf, probs := row("buffer")
	if !reflect.DeepEqual(buf.BufferDuration, f(2150)) || buf.BufferType != "screenfreezedbuffer" || buf.RTT != nil ||
		!reflect.DeepEqual(buf.Position, f(212.4)) || buf.VideoDuration != nil || probs != "rtt" {
		t.Errorf("buffer %+v, problems %q", buf, probs)
	}
	seek, _ := row("seek")
	if !reflect.DeepEqual(seek.SeekTime, f(820)) || !reflect.DeepEqual(seek.SeekFrom, f(230.5)) || !reflect.DeepEqual(seek.SeekTo, f(300)) ||
		seek.BufferDuration != nil || seek.TimeToFirstFrame != nil {
		t.Errorf("seek %+v", seek)
	}
	step, _ := row("step")
	if !reflect.DeepEqual(step.BitrateFrom, i(2400000)) || !reflect.DeepEqual(step.BitrateTo, i(1330203)) || step.Direction != "down" {
		t.Errorf("step %+v", step)
	}
	stream, probs := row("stream")
	if stream.RTT != nil || probs != "rtt" || !reflect.DeepEqual(stream.VideoDuration, f(597)) || stream.ConnectionType != "not available" {
		t.Errorf("stream %+v, problems %q", stream, probs)
	}
	errRow, probs := row("error")
	if errRow.ErrMessage != "error" || errRow.CDNTrackingID != "" || probs != "cdn_tracking_id" {
		t.Errorf("error %+v, problems %q", errRow, probs)
	}
	stop, probs := row("stop")
	if stop.FPS != nil || probs != "fps" || !reflect.DeepEqual(stop.Bitrate, i(1330203)) {
		t.Errorf("stop %+v, problems %q", stop, probs)
	}
}

// A lower-cased cdn_tracking_id joins the mixed-case x-edge-request-id of
// the CloudFront request that served it.
func TestJoinKeyIgnoresCase(t *testing.T) {
	tr := &silver.Transformer{Pseudonyms: anonymize.NewPseudonymizer(anonymize.DemoKey)}
	const edgeID = "PxiujVUNrtzfLQxa8OeTtfJvzRFWsoYFnh8opu0-6AZY38ev1vG=="
	for _, rec := range []string{sdkEvents["firstframe"], strings.ToLower(sdkEvents["firstframe"])} {
		r, _ := typeRecord(t, tr, rec)
		if r.CDNTrackingID != silver.JoinKey(edgeID) || !strings.EqualFold(r.CDNTrackingID, edgeID) {
			t.Errorf("cdn_tracking_id %q does not join %q", r.CDNTrackingID, edgeID)
		}
	}
	if silver.JoinKey(edgeID) == silver.JoinKey("PxiujVUNrtzfLQxa8OeTtfJvzRFWsoYFnh8opu0-6AZY38ev1vH==") {
		t.Error("different ids share a key")
	}
}

// A field of the wrong JSON type is a problem, not a lost row: the column
// is left empty (a number for a string field keeps its text), and only a
// payload that is not an object fails.
func TestPlayerEventIsLenient(t *testing.T) {
	tr := &silver.Transformer{Pseudonyms: anonymize.NewPseudonymizer(anonymize.DemoKey)}
	at := time.Date(2026, 3, 2, 18, 0, 0, 0, time.UTC)
	text := func(r silver.PlayerRow) string {
		return r.UserKey + "|" + r.VideoID + "|" + r.ConnectionType + "|" + r.BufferType
	}
	num := func(p *float64) any {
		if p == nil {
			return nil
		}
		return *p
	}
	for _, tc := range []struct {
		name, field, json string
		check             func(silver.PlayerRow) bool
	}{
		{"user_id a number", "user_id", `"user_id":42`, func(r silver.PlayerRow) bool {
			return r.UserKey == tr.Pseudonyms.Pseudonym("42")
		}},
		{"video_id an object", "video_id", `"video_id":{}`, func(r silver.PlayerRow) bool { return r.VideoID == "" }},
		{"video_id an array", "video_id", `"video_id":["a","b"]`, func(r silver.PlayerRow) bool { return r.VideoID == "" }},
		{"connection_type a boolean", "connection_type", `"connection_type":true`, func(r silver.PlayerRow) bool { return r.ConnectionType == "true" }},
		{"buffer_type empty", "buffer_type", `"buffer_type":""`, func(r silver.PlayerRow) bool { return r.BufferType == "" }},
		{"at an object", "at", `"at":{"s":1}`, func(r silver.PlayerRow) bool { return r.Position == nil }},
		{"at a boolean", "at", `"at":false`, func(r silver.PlayerRow) bool { return r.Position == nil }},
		{"rtt not numeric", "rtt", `"rtt":"fast"`, func(r silver.PlayerRow) bool { return r.RTT == nil }},
		{"rtt unknown", "rtt", `"rtt":-1`, func(r silver.PlayerRow) bool { return r.RTT == nil }},
		{"fps empty", "fps", `"fps":""`, func(r silver.PlayerRow) bool { return r.FPS == nil }},
		{"time_millisecond an array", "time_millisecond", `"time_millisecond":[1]`, func(r silver.PlayerRow) bool { return r.BufferDuration == nil }},
		{"time_millisecond as a string", "", `"time_millisecond":"1500"`, func(r silver.PlayerRow) bool { return num(r.BufferDuration) == 1500.0 }},
		{"cdn_tracking_id a number", "cdn_tracking_id", `"cdn_tracking_id":7`, func(r silver.PlayerRow) bool { return r.CDNTrackingID == "7" }},
		{"message an object", "message", `"message":{"code":3}`, func(r silver.PlayerRow) bool { return r.ErrMessage == "" }},
		{"error_code a number is fine", "", `"error_code":3016`, func(r silver.PlayerRow) bool { return r.ErrorCode == "3016" }},
		{"client_ip a number", "client_ip", `"client_ip":10`, func(r silver.PlayerRow) bool { return r.IP == "" }},
		{"null is absent", "", `"user_id":null,"at":null`, func(r silver.PlayerRow) bool { return r.UserKey == "" && r.Position == nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := `{"MetricType":"BUFFER","TimeStamp":1772474400000,"buffer_type":"ScreenFreezedBuffer",` + tc.json + `}`
			r, probs, err := tr.PlayerEvent([]byte(payload), "buffer", at)
			if err != nil {
				t.Fatalf("row lost: %v", err)
			}
			if got := fields(probs); got != tc.field {
				t.Errorf("problems %q (%+v), want %q", got, probs, tc.field)
			}
			for _, p := range probs {
				if p.Detail == "" {
					t.Errorf("problem %+v has no detail", p)
				}
			}
			if !tc.check(r) {
				t.Errorf("row %s: %+v", text(r), r)
			}
			if r.EventID != silver.EventID([]byte(payload)) {
				t.Error("event id is not the payload's hash")
			}
		})
	}
	for _, bad := range []string{`not json`, `[1,2]`, `"play"`, `null`, `42`, `{"at":`, ``} {
		if _, _, err := tr.PlayerEvent([]byte(bad), "play", at); err == nil {
			t.Errorf("%q typed as an event", bad)
		}
	}
}

// Whatever bronze accepts, silver types: PlayerEvent fails only on a
// payload that is not a JSON object, which bronze never passes on.
func FuzzPlayerEventAcceptsWhatBronzeAccepts(f *testing.F) {
	for _, e := range sdkEvents {
		f.Add([]byte(e))
		f.Add([]byte(strings.ToLower(e)))
	}
	f.Add([]byte(`{"metrictype":"buffer","timestamp":1772474400000,"user_id":42,"video_id":{},"at":[1],"fps":"x","rtt":-1,"message":"\u00e9\"","cdn_tracking_id":""}`))
	tr := &silver.Transformer{Pseudonyms: anonymize.NewPseudonymizer(anonymize.DemoKey)}
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, _ := playerevent.Parse(data, recvTime, playerevent.DefaultLimits)
		for _, e := range evs {
			if _, _, err := tr.PlayerEvent(e.Payload, e.Type, e.Time); err != nil {
				t.Fatalf("%q accepted by bronze, lost in silver: %v", e.Payload, err)
			}
		}
	})
}
