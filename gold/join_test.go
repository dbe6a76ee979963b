package gold

import (
	"testing"
	"time"

	"github.com/qoslake/qoslake/lake"
	"github.com/qoslake/qoslake/silver"
)

// TestJoinCDN joins sessions to CDN requests read from silver.cdn_logs
// rows: ids compared without regard to case, only within the join
// window, edge columns from the FIRSTFRAME's request, the player's own
// device fields first.
func TestJoinCDN(t *testing.T) {
	at := func(sec float64) time.Time { return base.Add(time.Duration(sec * float64(time.Second))) }
	req := func(id string, sec float64, edge, result string, agent silver.Agent) silver.CDNRow {
		return silver.CDNRow{EventID: id, LogTime: at(sec), EdgeRequestID: id, EdgeLocation: edge, POP: edge[:3], EdgeResult: result, Agent: agent}
	}
	chrome := silver.Agent{Browser: "Chrome", OS: "Windows", DeviceType: "desktop"}
	roku := silver.Agent{Browser: "Roku", OS: "Roku", DeviceType: "tv"}
	out, err := lake.NewRowsFor(silver.CDNLogsTable)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	for _, r := range []silver.CDNRow{
		req("FirstFrameReq==", 0, "FRA56-P3", "Miss", silver.Agent{}),
		req("LaterReq==", 20, "FRA56-P3", "Hit", roku),
		req("EarlierReq==", 10, "LHR61-C2", "Hit", chrome),
		req("TooEarly==", -700, "CDG50-C1", "Hit", chrome),
	} {
		silver.AppendCDN(out, &r)
	}
	rec := out.Batch()
	defer rec.Release()
	wanted := map[string]bool{}
	for _, id := range []string{"firstframereq==", "laterreq==", "earlierreq==", "tooearly=="} {
		wanted[id] = true
	}
	idx := cdnIndex{}
	in := interner{}
	idx.add(rec, wanted, &in)

	named := func(id string, sec float64) namedRequest {
		return namedRequest{silver.JoinKey(id), at(sec).UnixMicro()}
	}
	tests := []struct {
		name                         string
		s                            session
		edge, result, device, source string
	}{
		{"first frame's edge; device from the earliest request with an agent",
			session{ff: at(1).UnixMicro(), ffTrack: "firstframereq==",
				requests: []namedRequest{named("FirstFrameReq==", 1), named("LaterReq==", 21), named("EarlierReq==", 11)}},
			"FRA56-P3", "Miss", "desktop", DeviceFromCDN},
		{"the player's device fields win",
			session{sessionRow: sessionRow{device: "tv", os: "tvOS"}, ff: at(1).UnixMicro(), ffTrack: "firstframereq==",
				requests: []namedRequest{named("FirstFrameReq==", 1), named("LaterReq==", 21)}},
			"FRA56-P3", "Miss", "tv", DeviceFromPlayer},
		{"a request logged more than 10 minutes before the event does not join",
			session{ff: at(0).UnixMicro(), ffTrack: "tooearly==", requests: []namedRequest{named("TooEarly==", 0)}},
			"", "", "", ""},
		{"no first frame, no edge; device from a request",
			session{requests: []namedRequest{named("LaterReq==", 25)}},
			"", "", "tv", DeviceFromCDN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.s
			s.started = s.ffTrack != ""
			joinCDN(&s, idx)
			if s.edgeLocation != tt.edge || s.edgeResult != tt.result || s.device != tt.device || s.deviceSource != tt.source {
				t.Fatalf("joined: edge %q result %q device %q source %q; want %q %q %q %q",
					s.edgeLocation, s.edgeResult, s.device, s.deviceSource, tt.edge, tt.result, tt.device, tt.source)
			}
		})
	}
}
