package simulate

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// realtimeValues are a segment request's values the standard log line has
// too: the real-time record repeats them.
type realtimeValues struct {
	stem, status, result string
	size, csBytes, port  int
	latency, ttfb        float64
}

// realtimeRecord writes a segment request as a CloudFront real-time log
// record with the configured fields, in their order. The CMCD values are
// what the session's player knows as it makes the request (CTA-5004
// units): the rendition's bitrate, the buffer (four seconds a segment,
// from empty at start-up and after a stall), whether it ran empty since
// the last request, start-up, the throughput it measured.
func (g *Generator) realtimeRecord(s *session, t time.Time, v realtimeValues) {
	r := Ladder[s.rung]
	pattern, stream := "/vod/*", "v"
	if s.video.Playlist == "live" {
		pattern, stream = "/live/*", "l"
	}
	ipVersion := "IPv4"
	if s.ip.Is6() {
		ipVersion = "IPv6"
	}
	originFBL, originLBL := "-", "-"
	if v.result == "Miss" {
		originFBL, originLBL = fmt.Sprintf("%.3f", v.ttfb*0.8), fmt.Sprintf("%.3f", v.latency*0.9)
	}
	bufferMS := min(s.buffered*4000, 30000)
	throughput := "-"
	if v.latency > 0 && v.size > 0 {
		// kbps, rounded to 100 kbps as CTA-5004 asks.
		throughput = fmt.Sprint(int(math.Round(float64(v.size)*8/v.latency/1000/100)) * 100)
	}
	headers := fmt.Sprintf("Host:d1qoslakedemo.cloudfront.net%%0AUser-Agent:%s%%0AAccept:*/*%%0A", encodeUA(s.client.UserAgent))
	values := map[string]string{
		"timestamp":                     fmt.Sprintf("%d.%03d", t.Unix(), t.Nanosecond()/1e6),
		"c-ip":                          s.ip.String(),
		"time-to-first-byte":            fmt.Sprintf("%.3f", v.ttfb),
		"sc-status":                     v.status,
		"sc-bytes":                      fmt.Sprint(v.size + 512),
		"cs-method":                     "GET",
		"cs-protocol":                   "https",
		"cs-host":                       "d1qoslakedemo.cloudfront.net",
		"cs-uri-stem":                   v.stem,
		"cs-bytes":                      fmt.Sprint(v.csBytes),
		"x-edge-location":               s.edge,
		"x-edge-request-id":             s.trackingID,
		"x-host-header":                 "video.example.com",
		"time-taken":                    fmt.Sprintf("%.3f", v.latency),
		"cs-protocol-version":           "HTTP/2.0",
		"c-ip-version":                  ipVersion,
		"cs-user-agent":                 encodeUA(s.client.UserAgent),
		"x-edge-response-result-type":   v.result,
		"ssl-protocol":                  "TLSv1.3",
		"ssl-cipher":                    "TLS_AES_128_GCM_SHA256",
		"x-edge-result-type":            v.result,
		"sc-content-type":               "video/MP2T",
		"sc-content-len":                fmt.Sprint(v.size),
		"c-port":                        fmt.Sprint(v.port),
		"x-edge-detailed-result-type":   v.result,
		"c-country":                     s.net.Country,
		"cs-accept-encoding":            "gzip",
		"cs-accept":                     "*/*",
		"cache-behavior-path-pattern":   pattern,
		"cs-headers":                    headers,
		"cs-header-names":               "Host%0AUser-Agent%0AAccept%0A",
		"cs-headers-count":              "3",
		"primary-distribution-id":       g.cfg.Distribution,
		"primary-distribution-dns-name": "d1qoslakedemo.cloudfront.net",
		"origin-fbl":                    originFBL,
		"origin-lbl":                    originLBL,
		"asn":                           fmt.Sprint(s.net.ASN),
		"cmcd-encoded-bitrate":          fmt.Sprint(r.Bitrate / 1000),
		"cmcd-buffer-length":            fmt.Sprint(bufferMS),
		"cmcd-buffer-starvation":        boolValue(s.starved),
		"cmcd-content-id":               s.video.ID,
		"cmcd-object-duration":          "4000",
		"cmcd-deadline":                 fmt.Sprint(bufferMS),
		"cmcd-measured-throughput":      throughput,
		"cmcd-next-object-request":      fmt.Sprintf("seg_%05d.ts", s.segment+1),
		"cmcd-object-type":              "av",
		"cmcd-playback-rate":            "1",
		"cmcd-streaming-format":         "h",
		"cmcd-session-id":               s.cmcdSID,
		"cmcd-stream-type":              stream,
		"cmcd-startup":                  boolValue(s.buffered == 0),
		"cmcd-top-bitrate":              fmt.Sprint(Ladder[len(Ladder)-1].Bitrate / 1000),
		"cmcd-version":                  "1",
	}
	names := g.cfg.Realtime.Names
	out := make([]string, len(names))
	for i, n := range names {
		if out[i] = values[n]; out[i] == "" {
			out[i] = "-"
		}
	}
	g.realtime = append(g.realtime, RealtimeRecord{
		PartitionKey: s.trackingID,
		Data:         []byte(strings.Join(out, "\t") + "\n"),
		Time:         t,
	})
}

// boolValue is a CMCD boolean as a real-time log field: CTA-5004 sends
// the key only when true, so false is an absent value.
func boolValue(b bool) string {
	if b {
		return "true"
	}
	return "-"
}

// Realtime returns the real-time log records written since the last call,
// in time order: CloudFront delivers them within seconds, so Run sends them
// with the tick that made them.
func (g *Generator) Realtime() []RealtimeRecord {
	out := g.realtime
	g.realtime = nil
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}
