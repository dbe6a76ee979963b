package silver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/qoslake/qoslake/anonymize"
	"github.com/qoslake/qoslake/geoip"
	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/silver"
	"github.com/qoslake/qoslake/simulate"
)

func transformer(b *testing.B) *silver.Transformer {
	b.Helper()
	city, asn, err := simulate.WriteGeoIP(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	db, err := geoip.Open(city, asn, nil)
	if err != nil {
		b.Fatal(err)
	}
	agents, err := silver.NewAgents(10_000)
	if err != nil {
		b.Fatal(err)
	}
	return &silver.Transformer{Pseudonyms: anonymize.NewPseudonymizer(anonymize.DemoKey), Geo: db, Agents: agents}
}

// BenchmarkPlayerTransform measures the silver transform of player events:
// JSON decode, typing and range checks, pseudonymisation (HMAC-SHA-256),
// IP truncation and the geo and ISP lookups. Run with -cpu 1 for a per-core
// figure.
func BenchmarkPlayerTransform(b *testing.B) {
	t := transformer(b)
	start := time.Date(2026, 3, 2, 18, 0, 0, 0, time.UTC)
	g := simulate.New(simulate.Config{Seed: 1, Start: start, Rate: 2000})
	var events []simulate.Event
	for len(events) < 10_000 {
		evs, _ := g.Tick()
		events = append(events, evs...)
	}
	events = events[:10_000]
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		for _, e := range events {
			if _, _, err := t.PlayerEvent(e.JSON, e.Type, e.Time); err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkCDNTransform measures the silver transform of CloudFront lines:
// field split and typing, user agent (cached ua-parser), IP truncation and
// geo and ISP lookups.
func BenchmarkCDNTransform(b *testing.B) {
	t := transformer(b)
	g := simulate.New(simulate.Config{Seed: 1, Start: time.Date(2026, 3, 2, 18, 0, 0, 0, time.UTC), Rate: 3000})
	out := &lines{}
	if _, err := simulate.Run(context.Background(), g, out, simulate.RunOptions{Duration: 20 * time.Second, Fast: true}); err != nil {
		b.Fatal(err)
	}
	h, err := cloudfront.ParseHeader(simulate.Fields)
	if err != nil {
		b.Fatal(err)
	}
	var fields []string
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		for _, l := range out.lines {
			_, _, fields = t.CDNLine(h, l, time.Time{}, fields)
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkRealtimeTransform measures the silver transform of CloudFront
// real-time records with every documented field: the split, the fields
// standard lines have typed as for them, the origin latencies and the
// CMCD values.
func BenchmarkRealtimeTransform(b *testing.B) {
	t := transformer(b)
	layout, err := cloudfront.NewRealtimeLayout(cloudfront.RealtimeFields)
	if err != nil {
		b.Fatal(err)
	}
	g := simulate.New(simulate.Config{Seed: 1, Start: time.Date(2026, 3, 2, 18, 0, 0, 0, time.UTC), Rate: 3000, Realtime: layout})
	out := &lines{}
	if _, err := simulate.Run(context.Background(), g, out, simulate.RunOptions{Duration: 20 * time.Second, Fast: true}); err != nil {
		b.Fatal(err)
	}
	records := make([]string, len(out.realtime))
	for i, r := range out.realtime {
		records[i] = strings.TrimSuffix(string(r.Data), "\n")
	}
	var fields []string
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		for _, r := range records {
			_, _, fields = t.RealtimeRecord(layout, r, time.Time{}, 100, fields)
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
