package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/qoslake/qoslake/awsclient"
	"github.com/qoslake/qoslake/internal/testenv"
	"github.com/qoslake/qoslake/lake"
	"github.com/qoslake/qoslake/simulate"
)

// testKey is the pseudonymisation key of the test stacks.
const testKey = "test-1:dGVzdC1rZXktb2YtdGhpcnR5LXR3by1ieXRlcy1sb25nIQ=="

// stack is one isolated deployment on the shared emulator: its own
// resource prefix and state folder.
type stack struct {
	t   testing.TB
	env map[string]string
	aws *awsclient.Clients
	dir string
}

func newStack(t testing.TB, extra ...string) *stack {
	t.Helper()
	s := newBareStack(t, extra...)
	s.mustRun("provision", "--skip-tables")
	return s
}

// newBareStack is a stack whose resources are left for the test to create.
func newBareStack(t testing.TB, extra ...string) *stack {
	t.Helper()
	c := testenv.AWS(t)
	s := &stack{t: t, aws: c, dir: t.TempDir()}
	city, asn, err := simulate.WriteGeoIP(filepath.Join(s.dir, "geoip"))
	if err != nil {
		t.Fatal(err)
	}
	s.env = map[string]string{
		"QOSLAKE_GEOIP_CITY":    city,
		"QOSLAKE_GEOIP_ASN":     asn,
		"QOSLAKE_PSEUDONYM_KEY": testKey,
		"QOSLAKE_STATE_DIR":     s.dir,
		"QOSLAKE_PREFIX":        testenv.Name("e2e"),
		"QOSLAKE_BATCH_MAX_AGE": "200ms",
		"QOSLAKE_LOG_LEVEL":     "warn",
		// Messages a killed run held come back quickly, and so do
		// messages whose object failed.
		"QOSLAKE_QUEUE_VISIBILITY":    "3s",
		"QOSLAKE_QUEUE_RETRY_BACKOFF": "1s",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		s.env[extra[i]] = extra[i+1]
	}
	return s
}

func (s *stack) name(suffix string) string { return s.env["QOSLAKE_PREFIX"] + "-" + suffix }

// newMain is an in-process qoslake that reads the stack's settings
// before the process environment, so stacks run side by side.
func (s *stack) newMain(stdout, stderr io.Writer) *Main {
	m := NewMain(stdout, stderr)
	m.Config.LookupEnv = func(k string) (string, bool) {
		if v, ok := s.env[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	}
	return m
}

// run executes a qoslake command line in-process.
func (s *stack) run(ctx context.Context, args ...string) (int, string, string) {
	s.t.Helper()
	var stdout, stderr bytes.Buffer
	code := s.newMain(&stdout, &stderr).Run(ctx, args)
	return code, stdout.String(), stderr.String()
}

func (s *stack) mustRun(args ...string) string {
	s.t.Helper()
	code, out, errOut := s.run(context.Background(), args...)
	if code != exitOK {
		s.t.Fatalf("qoslake %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// simulate produces traffic and returns the summary.
func (s *stack) simulate(args ...string) simulate.Summary {
	s.t.Helper()
	path := filepath.Join(s.dir, fmt.Sprintf("summary-%d.json", len(args)))
	s.mustRun(append([]string{"simulate", "--fast", "--summary", path}, args...)...)
	b, err := os.ReadFile(path)
	if err != nil {
		s.t.Fatal(err)
	}
	var sum simulate.Summary
	if err := json.Unmarshal(b, &sum); err != nil {
		s.t.Fatal(err)
	}
	return sum
}

// keys reads the given columns of a table, joined per row.
func (s *stack) keys(table string, cols ...string) []string {
	s.t.Helper()
	l, err := lake.Open(context.Background(), lake.Options{URI: filepath.Join(s.dir, "catalog.db"), Warehouse: filepath.Join(s.dir, "warehouse")})
	if err != nil {
		s.t.Fatal(err)
	}
	defer l.Close()
	tbl, err := l.Load(context.Background(), table)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	err = tbl.Scan(context.Background(), lake.ScanOptions{Fields: cols}, func(r arrow.RecordBatch) error {
		for i := range int(r.NumRows()) {
			parts := make([]string, len(cols))
			for c, name := range cols {
				col := r.Column(r.Schema().FieldIndices(name)[0])
				parts[c] = col.ValueStr(i)
			}
			out = append(out, strings.Join(parts, "|"))
		}
		return nil
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// checkExactlyOnce asserts the bronze tables hold exactly the simulated
// output: as many rows as produced, and no key twice.
func (s *stack) checkExactlyOnce(events, lines int) {
	s.t.Helper()
	ev := s.keys("bronze.player_events", "shard_id", "sequence_number", "sub_sequence", "event_index")
	cdn := s.keys("bronze.cdn_logs", "bucket", "object_key", "etag", "line_number")
	if dup := firstDuplicate(ev); dup != "" {
		s.t.Errorf("player event %s is in bronze twice", dup)
	}
	if dup := firstDuplicate(cdn); dup != "" {
		s.t.Errorf("log line %s is in bronze twice", dup)
	}
	if len(ev) != events || len(cdn) != lines {
		s.t.Errorf("bronze holds %d events and %d log lines, the simulator produced %d and %d", len(ev), len(cdn), events, lines)
	}
}

func firstDuplicate(keys []string) string {
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if seen[k] {
			return k
		}
		seen[k] = true
	}
	return ""
}

func TestSimulatorToBronzeExactly(t *testing.T) {
	s := newStack(t)
	plain := s.simulate("--rate", "300", "--duration", "30s", "--seed", "11")
	// KPL-aggregated records go through the same path, de-aggregated.
	agg := s.simulate("--rate", "300", "--duration", "20s", "--seed", "12", "--kpl-aggregate", "7")
	if agg.KinesisRecords >= agg.EventsTotal {
		t.Fatalf("aggregation packed nothing: %d records for %d events", agg.KinesisRecords, agg.EventsTotal)
	}
	s.mustRun("run", "--once")
	s.checkExactlyOnce(plain.EventsTotal+agg.EventsTotal, plain.LogLines+agg.LogLines)

	// A second pass finds nothing new.
	s.mustRun("run", "--once")
	s.checkExactlyOnce(plain.EventsTotal+agg.EventsTotal, plain.LogLines+agg.LogLines)
	if rejects := s.keys("bronze.rejects", "reason"); len(rejects) != 0 {
		t.Errorf("simulated traffic produced rejects: %v", rejects)
	}
}

// Ingestion cancelled at random points, again and again, while traffic
// keeps arriving, ends with every record in bronze exactly once.
func TestCancelledIngestLosesAndDuplicatesNothing(t *testing.T) {
	s := newStack(t)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	t.Logf("random seed %d", seed)
	var events, lines int
	for round := range 3 {
		sum := s.simulate("--rate", "400", "--duration", "15s", "--seed", fmt.Sprint(100+round), "--kpl-aggregate", fmt.Sprint(round*3))
		events += sum.EventsTotal
		lines += sum.LogLines
		s.cutRuns(rng, 3, 50*time.Millisecond, 1500*time.Millisecond)
	}
	s.mustRun("run", "--once")
	s.checkExactlyOnce(events, lines)
}

// cutRuns starts the pipeline n times and cancels each run after a random
// time between base and base+spread.
func (s *stack) cutRuns(rng *rand.Rand, n int, base, spread time.Duration) {
	s.t.Helper()
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), base+time.Duration(rng.Int64N(int64(spread))))
		code, _, errOut := s.run(ctx, "run", "--http-addr", "127.0.0.1:0")
		cancel()
		if code != exitOK {
			s.t.Fatalf("run: exit %d: %s", code, errOut)
		}
	}
}

// The process killed with SIGKILL at random points (no flush, no cleanup,
// perhaps mid-commit), then restarted: nothing lost, nothing doubled.
func TestKilledProcessLosesAndDuplicatesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	s := newStack(t)
	bin := builtBinary(t)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 2))
	t.Logf("random seed %d", seed)
	var events, lines int
	for round := range 2 {
		sum := s.simulate("--rate", "500", "--duration", "20s", "--seed", fmt.Sprint(200+round))
		events += sum.EventsTotal
		lines += sum.LogLines
		for range 3 {
			cmd, stderr := s.startBinary(bin, "run", "--http-addr", "127.0.0.1:0", "--batch-max-age", "50ms")
			time.Sleep(time.Duration(200+rng.IntN(2500)) * time.Millisecond)
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			if strings.Contains(stderr.String(), "level=ERROR") {
				t.Errorf("run logged an error before the kill:\n%s", stderr.String())
			}
		}
	}
	s.mustRun("run", "--once")
	s.checkExactlyOnce(events, lines)
}

// Two pipelines on the same stream, queue and tables at once, as two
// processes scaled out would be, with and without splitting the shards:
// the tables' compare-and-set commits keep every record exactly once.
func TestTwoPipelinesShareTheSourcesExactlyOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		workers [2]string
	}{
		{"every shard read by both", [2]string{"0/1", "0/1"}},
		{"shards split between them", [2]string{"0/2", "1/2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t, "QOSLAKE_STREAM_SHARDS", "4")
			sum := s.simulate("--rate", "400", "--duration", "20s", "--seed", "41")
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer cancel()
			codes := make(chan int, 2)
			var stderr [2]bytes.Buffer
			for i, w := range tc.workers {
				go func() {
					codes <- s.newMain(io.Discard, &stderr[i]).Run(ctx, []string{"run", "--http-addr", "127.0.0.1:0", "--kinesis-worker", w})
				}()
			}
			for range 2 {
				if code := <-codes; code != exitOK {
					t.Fatalf("pipeline exited %d:\n%s\n%s", code, stderr[0].String(), stderr[1].String())
				}
			}
			s.mustRun("run", "--once")
			s.checkExactlyOnce(sum.EventsTotal, sum.LogLines)
			if n := len(s.keys("silver.player_events", "event_id")); n != sum.EventsTotal {
				t.Errorf("silver has %d events, want %d", n, sum.EventsTotal)
			}
		})
	}
}

// checkGoldMatchesSilver asserts gold counts every silver row once:
// gold.cdn_minute's requests and bytes and gold.player_minute's events add
// up to silver's.
func (s *stack) checkGoldMatchesSilver() {
	s.t.Helper()
	var silverBytes, goldRequests, goldBytes int64
	rows := s.keys("silver.cdn_logs", "sc_bytes")
	for _, v := range rows {
		n, _ := strconv.ParseInt(v, 10, 64) // null: no bytes
		silverBytes += n
	}
	for _, v := range s.keys("gold.cdn_minute", "requests", "bytes") {
		r, b, _ := strings.Cut(v, "|")
		nr, err := strconv.ParseInt(r, 10, 64)
		if err != nil {
			s.t.Fatalf("gold requests %q: %v", r, err)
		}
		nb, _ := strconv.ParseInt(b, 10, 64)
		goldRequests += nr
		goldBytes += nb
	}
	if goldRequests != int64(len(rows)) || goldBytes != silverBytes {
		s.t.Errorf("gold.cdn_minute counts %d requests and %d bytes; silver holds %d requests and %d bytes",
			goldRequests, goldBytes, len(rows), silverBytes)
	}
	var goldEvents int64
	for _, v := range s.keys("gold.player_minute", "events") {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			s.t.Fatalf("gold events %q: %v", v, err)
		}
		goldEvents += n
	}
	if events := len(s.keys("silver.player_events", "event_id")); goldEvents != int64(events) {
		s.t.Errorf("gold.player_minute counts %d events; silver holds %d", goldEvents, events)
	}
	// Every event in exactly one session, every session in exactly one
	// minute of gold.session_minute.
	var sessionEvents int64
	sessions := s.keys("gold.sessions", "events")
	for _, v := range sessions {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			s.t.Fatalf("gold.sessions events %q: %v", v, err)
		}
		sessionEvents += n
	}
	if sessionEvents != goldEvents {
		s.t.Errorf("gold.sessions hold %d events; silver holds %d", sessionEvents, goldEvents)
	}
	var minuteSessions int64
	for _, v := range s.keys("gold.session_minute", "sessions") {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			s.t.Fatalf("gold.session_minute sessions %q: %v", v, err)
		}
		minuteSessions += n
	}
	if minuteSessions != int64(len(sessions)) {
		s.t.Errorf("gold.session_minute counts %d sessions; gold.sessions holds %d", minuteSessions, len(sessions))
	}
}
