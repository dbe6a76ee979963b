package simulate_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/qoslake/qoslake/anonymize"
	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/silver"
	"github.com/qoslake/qoslake/simulate"
)

func runRealtime(t *testing.T, seed int64, schedule string, rate int) (*memOutput, simulate.Summary) {
	t.Helper()
	steps, err := simulate.ParseSchedule(schedule)
	if err != nil {
		t.Fatal(err)
	}
	layout, err := cloudfront.NewRealtimeLayout(cloudfront.RealtimeFields)
	if err != nil {
		t.Fatal(err)
	}
	out := &memOutput{}
	g := simulate.New(simulate.Config{Seed: seed, Start: start, Rate: 200, LogPrefix: "cloudfront/", Realtime: layout, SamplingRate: rate})
	sum, err := simulate.Run(context.Background(), g, out, simulate.RunOptions{Duration: 60 * time.Second, Schedule: steps, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	return out, sum
}

// standardLines are the data lines of the simulated log files.
func standardLines(t *testing.T, out *memOutput) []string {
	t.Helper()
	var lines []string
	for _, f := range out.logs {
		zr, err := gzip.NewReader(bytes.NewReader(f.Body))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(zr)
		for sc.Scan() {
			if !strings.HasPrefix(sc.Text(), "#") {
				lines = append(lines, sc.Text())
			}
		}
	}
	return lines
}

// With real-time logs at 100%, each segment request is a real-time record
// (every documented field, one per Kinesis record) that reads as bronze
// reads it and types in silver exactly as its standard log line does,
// besides what only real-time logs have. Player events and standard logs
// are those of the same seed without real-time logs.
func TestRealtimeRecordsRepeatTheirStandardLines(t *testing.T) {
	out, sum := runRealtime(t, 3, "", 100)
	plain, plainSum := run(t, 3, "")
	if len(out.events) != len(plain.events) || sum.LogLines != plainSum.LogLines || !bytes.Equal(out.events[10].JSON, plain.events[10].JSON) {
		t.Fatalf("real-time logs changed the rest of the output: %d/%d events, %d/%d lines", len(out.events), len(plain.events), sum.LogLines, plainSum.LogLines)
	}
	lines := standardLines(t, out)
	if sum.RealtimeRecords != len(out.realtime) || sum.RealtimeRecords != len(lines) || sum.RealtimeSamplingRate != 100 || sum.RealtimeFields != 66 {
		t.Fatalf("%d real-time records (summary %d, rate %d, %d fields) for %d lines", len(out.realtime), sum.RealtimeRecords,
			sum.RealtimeSamplingRate, sum.RealtimeFields, len(lines))
	}
	layout, _ := cloudfront.NewRealtimeLayout(cloudfront.RealtimeFields)
	header, _ := cloudfront.ParseHeader(simulate.Fields)
	tr := &silver.Transformer{Pseudonyms: anonymize.NewPseudonymizer(anonymize.DemoKey)}
	std := map[string]silver.CDNRow{}
	for _, l := range lines {
		row, _, _ := tr.CDNLine(header, l, time.Time{}, nil)
		std[row.EdgeRequestID] = row
	}
	now := start.Add(time.Hour)
	for _, r := range out.realtime {
		recs, rejects := layout.ParseRealtime(r.Data, now, cloudfront.DefaultRealtimeLimits)
		if len(rejects) != 0 || len(recs) != 1 {
			t.Fatalf("record %q: %+v", r.Data, rejects)
		}
		row, probs, _ := tr.RealtimeRecord(layout, recs[0].Text, recs[0].Time, 100, nil)
		if len(probs) != 0 {
			t.Fatalf("record %q: %v", r.Data, probs)
		}
		twin, ok := std[row.EdgeRequestID]
		if !ok || r.PartitionKey != row.EdgeRequestID {
			t.Fatalf("record of request %s (key %s) has no standard line", row.EdgeRequestID, r.PartitionKey)
		}
		if !recs[0].Time.Truncate(time.Second).Equal(twin.LogTime) && !twin.LogTime.IsZero() {
			t.Errorf("times %s and %s", recs[0].Time, twin.LogTime)
		}
		shared := func(c silver.CDNRow) silver.CDNRow {
			c.EventID, c.LogTime, c.LogSource, c.SamplingRate, c.CMCD, c.OriginFBL, c.OriginLBL = "", time.Time{}, "", 0, silver.CMCD{}, nil, nil
			return c
		}
		if !reflect.DeepEqual(shared(row), shared(twin)) {
			t.Fatalf("record and line of %s differ:\n%+v\n%+v", row.EdgeRequestID, shared(row), shared(twin))
		}
	}
}

// The CMCD values follow the session: its session id (in the summary), its
// video, the rendition's bitrate, start-up on its first request and after
// a stall, buffer starvation after a stall.
func TestRealtimeCMCDFollowsTheSession(t *testing.T) {
	out, sum := runRealtime(t, 13, "0s=isp-buffering", 100)
	layout, _ := cloudfront.NewRealtimeLayout(cloudfront.RealtimeFields)
	tr := &silver.Transformer{Pseudonyms: anonymize.NewPseudonymizer(anonymize.DemoKey)}
	bySID := map[string]simulate.SessionTruth{}
	for _, s := range sum.SessionTruths {
		if s.CMCDSessionID == "" {
			t.Fatal("a session without a CMCD session id")
		}
		bySID[s.CMCDSessionID] = s
	}
	segments := map[string]int{}
	starved, startups := 0, 0
	rates := map[int64]bool{}
	for _, l := range simulate.Ladder {
		rates[int64(l.Bitrate/1000)] = true
	}
	for _, r := range out.realtime {
		row, _, _ := tr.RealtimeRecord(layout, strings.TrimSpace(string(r.Data)), time.Time{}, 100, nil)
		c := row.CMCD
		s, ok := bySID[c.SessionID]
		if !ok || c.ContentID != s.VideoID || !rates[*c.EncodedBitrate] || *c.TopBitrate != 7800 || c.StreamFormat != "h" ||
			c.ObjectType != "av" || *c.ObjectDuration != 4000 || *c.Version != 1 || *c.PlaybackRate != 1 || *c.BufferLength%100 != 0 {
			t.Fatalf("CMCD %+v of session %+v", c, s)
		}
		if (c.StreamType == "l") != strings.HasPrefix(c.ContentID, "channel") {
			t.Errorf("stream type %s for %s", c.StreamType, c.ContentID)
		}
		if segments[c.SessionID] == 0 && (!*c.Startup || *c.BufferLength != 0 || *c.BufferStarvation) {
			t.Errorf("first request of %s: %+v", c.SessionID, c)
		}
		if *c.BufferStarvation {
			starved++
			if !*c.Startup {
				t.Errorf("a request after a stall is not start-up: %+v", c)
			}
		}
		if *c.Startup {
			startups++
		}
		segments[c.SessionID]++
	}
	for sid, n := range segments {
		if bySID[sid].Segments != n {
			t.Errorf("session %s: %d records, summary says %d segments", sid, n, bySID[sid].Segments)
		}
	}
	if starved == 0 || starved > sum.Totals.StallCount || startups != len(segments)+starved {
		t.Errorf("%d starved requests, %d stalls, %d start-ups for %d sessions", starved, sum.Totals.StallCount, startups, len(segments))
	}
}

// Sampling writes about the rate's share of requests; the summary counts
// them per edge, and an edge-latency incident shows in the real-time
// records' time-taken as in the standard logs'.
func TestRealtimeSamplingAndIncidents(t *testing.T) {
	out, sum := runRealtime(t, 5, "0s=edge-latency", 20)
	var lines, sampled int64
	var target string
	for _, inc := range sum.Incidents {
		target = inc.Target
	}
	var hotMS, hotN, coldMS, coldN float64
	for edge, e := range sum.Edges {
		lines += e.Requests
		sampled += e.Realtime
		if edge == target {
			hotMS, hotN = e.RealtimeTimeTakenMS, float64(e.Realtime)
		} else {
			coldMS += e.RealtimeTimeTakenMS
			coldN += float64(e.Realtime)
		}
	}
	if sampled != int64(len(out.realtime)) || sampled != int64(sum.RealtimeRecords) {
		t.Fatalf("edges count %d real-time records, %d written", sampled, len(out.realtime))
	}
	if share := float64(sampled) / float64(lines); share < 0.15 || share > 0.25 {
		t.Errorf("%d of %d requests sampled at 20%%", sampled, lines)
	}
	if hotN == 0 || hotMS/hotN < 3*coldMS/coldN {
		t.Errorf("edge %s: mean time-taken %.1f ms in real-time records, others %.1f ms", target, hotMS/hotN, coldMS/coldN)
	}
}
