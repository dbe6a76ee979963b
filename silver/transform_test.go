package silver_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/qoslake/qoslake/anonymize"
	"github.com/qoslake/qoslake/geoip"
	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/silver"
)

// fakeGeo records the addresses it is asked about.
type fakeGeo struct{ asked []netip.Addr }

func (g *fakeGeo) Lookup(a netip.Addr) geoip.Info {
	g.asked = append(g.asked, a)
	return geoip.Info{Country: "DE", ASN: 64601, ISP: "Spreenet"}
}

func fields(probs []silver.Problem) string {
	var f []string
	for _, p := range probs {
		f = append(f, p.Field)
	}
	return strings.Join(f, ",")
}

func TestPlayerEventTypingAndAbsurdValues(t *testing.T) {
	geo := &fakeGeo{}
	tr := &silver.Transformer{Pseudonyms: anonymize.NewPseudonymizer(anonymize.DemoKey), Geo: geo}
	at := time.Date(2026, 3, 2, 18, 0, 0, 0, time.UTC)
	payload := []byte(`{"metrictype":"buffer","timestamp":1,"at":-5,"rt":12,"avg_bitrate":-1,
		"resolution":"wide","fps":"29.970","duration":1500,"buffer_type":"rebuffer","platform":"roku","error_code":3016,
		"user_id":"u1","client_ip":"10.1.2.3"}`)
	row, probs, err := tr.PlayerEvent(payload, "buffer", at)
	if err != nil {
		t.Fatal(err)
	}
	if got := fields(probs); got != "at,avg_bitrate,resolution" {
		t.Errorf("problems %q", got)
	}
	if row.Position != nil || row.Bitrate != nil || row.Resolution != "" || row.Width != nil {
		t.Errorf("absurd values kept: %+v", row)
	}
	if *row.Response != 12 || *row.FPS != 29.97 || *row.BufferDuration != 1500 || row.VideoDuration != nil {
		t.Errorf("values: rt %v fps %v buffer %v video %v", *row.Response, *row.FPS, row.BufferDuration, row.VideoDuration)
	}
	if row.AppType != "roku" || row.ErrorCode != "3016" || row.UserKey == "u1" || row.KeyID != "demo" {
		t.Errorf("app %q error %q user %q key %q", row.AppType, row.ErrorCode, row.UserKey, row.KeyID)
	}
	// Geo uses the full address; only the network is kept.
	if len(geo.asked) != 1 || geo.asked[0].String() != "10.1.2.3" || row.IP != "10.1.2.0" || row.Country != "DE" || *row.ASN != 64601 {
		t.Errorf("geo asked %v, row %+v", geo.asked, row.Client)
	}
	if row.EventID != silver.EventID(payload) || len(row.EventID) != 32 || row.EventID == silver.EventID([]byte(`{}`)) {
		t.Errorf("event id %q is not the payload's", row.EventID)
	}

	_, probs, _ = tr.PlayerEvent([]byte(`{"metrictype":"play","timestamp":1,"client_ip":"not-an-ip"}`), "play", at)
	if fields(probs) != "client_ip" {
		t.Errorf("bad client ip: %q", fields(probs))
	}
	if _, _, err := tr.PlayerEvent([]byte(`not json`), "play", at); err == nil {
		t.Error("unreadable payload accepted")
	}
}

func TestCDNLineTyping(t *testing.T) {
	tr := &silver.Transformer{Pseudonyms: anonymize.NewPseudonymizer(anonymize.DemoKey)}
	// An older, shorter field set in another order, with a field qoslake
	// does not know: mapped by name, unknown ones ignored.
	h, err := cloudfront.ParseHeader("time date c-ip x-edge-location sc-status time-taken x-future-field sc-bytes x-forwarded-for cs(User-Agent)")
	if err != nil {
		t.Fatal(err)
	}
	line := "18:04:11\t2026-03-02\t2001:db8:4f2a:1200::1\tLHR61-P5\t503\t-0.5\tsomething\tlots\t192.0.2.44,%20garbage\tcurl/8.0"
	row, probs, _ := tr.CDNLine(h, line, time.Time{}, nil)
	if got := fields(probs); got != "sc-bytes,time-taken,x-forwarded-for" {
		t.Errorf("problems %q", got)
	}
	if row.IP != "2001:db8:4f2a::" || row.POP != "LHR" || *row.Status != 503 || !row.Error || row.CacheHit {
		t.Errorf("row %+v", row)
	}
	if row.SCBytes != nil || row.TimeTaken != nil || row.ForwardedFor != "192.0.2.0" || row.UserAgent != "curl/8.0" {
		t.Errorf("sc-bytes %v time-taken %v xff %q ua %q", row.SCBytes, row.TimeTaken, row.ForwardedFor, row.UserAgent)
	}
	if row.EdgeRequestID != "" || row.ContentLength != nil {
		t.Error("fields absent from the header are not empty")
	}
}
