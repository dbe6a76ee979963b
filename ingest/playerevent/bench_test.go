package playerevent_test

import (
	"strings"
	"testing"

	"github.com/qoslake/qoslake/ingest/playerevent"
)

// sdkStream is a STREAM event as the AWS reference player SDK sends it.
const sdkStream = `{"MetricType":"STREAM","at":105.077308,"rtt":350,"connection_type":"4g","package":"HLS","resolution":"640x360","fps":"29.970","avg_bitrate":1330203,"duration":597,"cdn_tracking_id":"PxiujVUNrtzfLQxa8OeTtfJvzRFWsoYFnh8opu0-6AZY38ev1vG==","user_id":"us-west-2:810f9e88-55e8-4a90-8e63-830446bed12d","video_id":"bigbuckbunny","playlist_type":"VOD","TimeStamp":1772474400000}` + "\n"

// BenchmarkParse measures Parse alone on one event per record, in the SDK's
// form and in the lower-cased form.
func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct{ name, rec string }{
		{"sdk", sdkStream},
		{"lowercase", strings.ToLower(sdkStream)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rec := []byte(bc.rec)
			b.SetBytes(int64(len(rec)))
			for b.Loop() {
				playerevent.Parse(rec, now, playerevent.DefaultLimits)
			}
		})
	}
}
