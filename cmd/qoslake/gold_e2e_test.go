package main

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/qoslake/qoslake/gold"
	"github.com/qoslake/qoslake/simulate"
)

// checkGoldMatchesTruth compares gold with what the simulator says it made
// happen (its summaries), not with silver: per-minute player sums against
// the sessions' true starts, stalls, errors and switches, the video start
// time percentiles against the true ones within the histogram's
// resolution, and gold.cdn_minute per edge location against what was
// logged there.
func (s *stack) checkGoldMatchesTruth(runs ...simulate.Summary) {
	s.t.Helper()
	var tot simulate.Totals
	var starts []float64
	edges := map[string]simulate.EdgeTruth{}
	for _, r := range runs {
		t := r.Totals
		tot.Sessions += t.Sessions
		tot.Started += t.Started
		tot.StartupMSSum += t.StartupMSSum
		tot.StallCount += t.StallCount
		tot.StallMS += t.StallMS
		tot.FailedBeforeStart += t.FailedBeforeStart
		tot.PlaybackFailures += t.PlaybackFailures
		tot.BitrateSwitches += t.BitrateSwitches
		tot.ExitBeforeStart += t.ExitBeforeStart
		tot.WatchedS += t.WatchedS
		for _, st := range r.SessionTruths {
			if st.StartupMS != nil {
				starts = append(starts, float64(*st.StartupMS))
			}
		}
		for k, e := range r.Edges {
			x := edges[k]
			x.Requests += e.Requests
			x.CacheHits += e.CacheHits
			x.Errors += e.Errors
			x.Bytes += e.Bytes
			x.TimeTakenMS += e.TimeTakenMS
			x.TTFBMS += e.TTFBMS
			edges[k] = x
		}
	}

	cols := append([]string{"play_attempts", "first_frames", "time_to_first_frame_ms_sum", "stall_count", "stall_ms_sum",
		"errors", "switches_up", "switches_down"}, gold.StartTimeBucketColumns...)
	sums := make([]float64, len(cols))
	for _, row := range s.keys("gold.player_minute", cols...) {
		for i, v := range strings.Split(row, "|") {
			sums[i] += s.number(v)
		}
	}
	want := []float64{float64(tot.Sessions), float64(tot.Started), float64(tot.StartupMSSum), float64(tot.StallCount),
		float64(tot.StallMS), float64(tot.FailedBeforeStart + tot.PlaybackFailures), float64(tot.BitrateSwitches)}
	got := []float64{sums[0], sums[1], sums[2], sums[3], sums[4], sums[5], sums[6] + sums[7]}
	for i, name := range []string{"play attempts", "first frames", "start time ms", "stalls", "stall ms", "errors", "switches"} {
		if math.Abs(got[i]-want[i]) > 0.5 {
			s.t.Errorf("gold.player_minute %s = %.0f, simulated %.0f", name, got[i], want[i])
		}
	}
	buckets := make([]int64, len(gold.StartTimeBucketColumns))
	for i := range buckets {
		buckets[i] = int64(sums[8+i])
	}
	slices.Sort(starts)
	for _, q := range []float64{0.5, 0.95} {
		truth := starts[int(math.Ceil(q*float64(len(starts))))-1]
		est := gold.StartTimeQuantile(buckets, q)
		if lo, hi := bucketAround(gold.StartTimeBounds[:], truth); est < lo || est > hi {
			s.t.Errorf("video start time p%.0f from gold = %.0f ms; true %.0f ms, in bucket (%.0f, %.0f]", q*100, est, truth, lo, hi)
		}
	}

	s.checkSessionsMatchTruth(tot)

	type edgeSum struct{ requests, hits, errors, bytes, taken, ttfb float64 }
	byEdge := map[string]*edgeSum{}
	for _, row := range s.keys("gold.cdn_minute", "edge_location", "requests", "cache_hits", "errors", "bytes",
		"time_taken_ms_sum", "ttfb_ms_sum") {
		f := strings.Split(row, "|")
		e := byEdge[f[0]]
		if e == nil {
			e = &edgeSum{}
			byEdge[f[0]] = e
		}
		e.requests += s.number(f[1])
		e.hits += s.number(f[2])
		e.errors += s.number(f[3])
		e.bytes += s.number(f[4])
		e.taken += s.number(f[5])
		e.ttfb += s.number(f[6])
	}
	if len(byEdge) != len(edges) {
		s.t.Errorf("gold.cdn_minute has %d edge locations, simulated %d", len(byEdge), len(edges))
	}
	for k, w := range edges {
		g := byEdge[k]
		if g == nil {
			s.t.Errorf("edge %s missing from gold.cdn_minute", k)
			continue
		}
		if g.requests != float64(w.Requests) || g.hits != float64(w.CacheHits) || g.errors != float64(w.Errors) ||
			g.bytes != float64(w.Bytes) || math.Abs(g.taken-w.TimeTakenMS) > 0.01 || math.Abs(g.ttfb-w.TTFBMS) > 0.01 {
			s.t.Errorf("edge %s: gold %+v, simulated %+v", k, *g, w)
		}
	}
}

// bucketAround is the histogram bucket (lower, upper bound] that holds v;
// above the last bound the bucket's estimate is the last bound.
func bucketAround(bounds []float64, v float64) (float64, float64) {
	lo := 0.0
	for _, b := range bounds {
		if v <= b {
			return lo, b
		}
		lo = b
	}
	return lo, lo
}

func (s *stack) number(v string) float64 {
	s.t.Helper()
	n, err := strconv.ParseFloat(v, 64)
	if err != nil {
		s.t.Fatalf("gold value %q: %v", v, err)
	}
	return n
}

// receiveUpdates drains the updates topic's example queue (raw delivery):
// the update types received, and the last kpi_summary body.
func (s *stack) receiveUpdates() (map[string]int, map[string]any) {
	s.t.Helper()
	url := s.queueURL(s.name("updates-example"))
	types := map[string]int{}
	var kpi map[string]any
	for {
		out, err := s.aws.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url),
			MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
		if err != nil {
			s.t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return types, kpi
		}
		for _, m := range out.Messages {
			a, ok := m.MessageAttributes["update_type"]
			if !ok {
				s.t.Fatalf("update without an update_type attribute: %s", aws.ToString(m.Body))
			}
			types[aws.ToString(a.StringValue)]++
			if aws.ToString(a.StringValue) == "kpi_summary" {
				if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &kpi); err != nil {
					s.t.Fatal(err)
				}
			}
		}
	}
}

// checkSessionsMatchTruth compares gold.sessions with the simulator's
// sessions: one gold session per simulated one, and their CTA-2066 values
// summed. Watch time may fall short by a heartbeat per viewer who left
// silently (the SDK sends nothing then; gold stops at the last event), and
// an attempt the run's end cut off before its first frame is an exit
// before start in gold and in no truth.
func (s *stack) checkSessionsMatchTruth(tot simulate.Totals) {
	s.t.Helper()
	cols := []string{"attempt", "started", "start_failure", "exit_before_start", "playback_failure", "stall_count",
		"stall_ms", "watch_time_s", "switches_up", "switches_down"}
	sums := make([]float64, len(cols))
	rows := s.keys("gold.sessions", cols...)
	for _, row := range rows {
		for i, v := range strings.Split(row, "|") {
			switch v {
			case "true":
				sums[i]++
			case "false":
			default:
				sums[i] += s.number(v)
			}
		}
	}
	got := map[string]float64{"sessions": float64(len(rows)), "attempts": sums[0], "started": sums[1], "start failures": sums[2],
		"playback failures": sums[4], "stalls": sums[5], "stall ms": sums[6], "switches": sums[8] + sums[9]}
	want := map[string]float64{"sessions": float64(tot.Sessions), "attempts": float64(tot.Sessions), "started": float64(tot.Started),
		"start failures": float64(tot.FailedBeforeStart), "playback failures": float64(tot.PlaybackFailures),
		"stalls": float64(tot.StallCount), "stall ms": float64(tot.StallMS), "switches": float64(tot.BitrateSwitches)}
	for k, w := range want {
		if math.Abs(got[k]-w) > 0.5 {
			s.t.Errorf("gold.sessions %s = %.0f, simulated %.0f", k, got[k], w)
		}
	}
	// A viewer who leaves before the first frame sends nothing more: gold
	// knows it an exit only once the watermark passes the session's end by
	// the timeout, so a short run leaves such sessions open.
	pending := 0.0
	for _, row := range s.keys("gold.sessions", "end_reason", "attempt", "started", "start_failure") {
		if row == "open|true|false|false" {
			pending++
		}
	}
	if sums[3]+pending < float64(tot.ExitBeforeStart) {
		s.t.Errorf("gold.sessions exits before start = %.0f (and %.0f open without a first frame), simulated %d",
			sums[3], pending, tot.ExitBeforeStart)
	}
	if short := tot.WatchedS - sums[7]; short < -1 || short > 8*float64(tot.Sessions) {
		s.t.Errorf("gold.sessions watch time %.0f s, simulated %.0f s", sums[7], tot.WatchedS)
	}
}
