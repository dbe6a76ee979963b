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
	events []simulate.Event
	logs   []simulate.LogFile
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
	steps, err := simulate.ParseSchedule(schedule)
	if err != nil {
		t.Fatal(err)
	}
	out := &memOutput{}
	g := simulate.New(simulate.Config{Seed: seed, Start: start, Rate: 200, LogPrefix: "cloudfront/"})
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
// 33-field CloudFront line, and the player's cdn_tracking_id is the
// x-edge-request-id of a logged request.
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
			ID string `json:"cdn_tracking_id"`
		}
		_ = json.Unmarshal(e.JSON, &m)
		if requestIDs[m.ID] {
			joined++
		}
	}
	if joined < len(out.events)*9/10 {
		t.Errorf("only %d of %d events join a logged request", joined, len(out.events))
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
