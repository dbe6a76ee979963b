package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/simulate"
)

// realWorldRealtime are the two real real-time records of 2020 (40 fields,
// no header), read in place from the shared samples.
const realWorldRealtime = "../../../shared/samples/real-world/datadog-cloudfront-pipeline-realtime-samples.log"

func (s *stack) putRealtime(records ...string) {
	s.t.Helper()
	for i, r := range records {
		_, err := s.aws.Kinesis.PutRecord(context.Background(), &kinesis.PutRecordInput{
			StreamName: aws.String(s.name("cdn-realtime-logs")), Data: []byte(r), PartitionKey: aws.String(fmt.Sprint(i)),
		})
		if err != nil {
			s.t.Fatal(err)
		}
	}
}

// launchFields is the 40-field layout the real records were written with.
var launchFields = strings.Join(cloudfront.RealtimeFields[:cloudfront.RealtimeLaunchFields], ",")

// The real records land in bronze.cdn_realtime with the 40-field layout
// configured; records with a wrong field count, a bad number or a bad
// timestamp go to bronze.rejects with their reasons, and the good ones
// around them still land. A second run adds nothing.
func TestRealtimeRecordsLandInBronzeAndBadOnesAreRejected(t *testing.T) {
	real, err := os.ReadFile(realWorldRealtime)
	if err != nil {
		t.Skip("real-world samples not present:", err)
	}
	s := newStack(t, "QOSLAKE_REALTIME_LOG_FIELDS", launchFields, "QOSLAKE_REALTIME_SAMPLING_RATE", "10")
	var good []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(real)), "\n") {
		good = append(good, line+"\n")
	}
	fields := strings.Split(strings.TrimSuffix(good[0], "\n"), "\t")
	with := func(i int, v string) string {
		f := slices.Clone(fields)
		f[i] = v
		return strings.Join(f, "\t") + "\n"
	}
	s.putRealtime(good[0],
		strings.Join(fields[:39], "\t")+"\n", // a field short
		with(3, "3O4"),                       // sc-status
		with(13, "slow"),                     // time-taken
		with(0, "2020-09-16 23:33:41"),       // timestamp
		with(0, "1600299221087"),             // timestamp in ms
		"",
		good[1])
	s.mustRun("run", "--once")

	reasons := s.keys("bronze.rejects", "source", "reason")
	sort.Strings(reasons)
	want := []string{"realtime|bad_number", "realtime|bad_number", "realtime|bad_timestamp", "realtime|bad_timestamp",
		"realtime|empty_record", "realtime|field_count_mismatch"}
	if !slices.Equal(reasons, want) {
		t.Errorf("rejects:\n got %v\nwant %v", reasons, want)
	}
	rows := s.keys("bronze.cdn_realtime", "log_time", "sampling_rate", "fields")
	sort.Strings(rows)
	if len(rows) != 2 || !strings.HasPrefix(rows[0], "2020-09-13T18:14:25.895Z") || !strings.HasPrefix(rows[1], "2020-09-16T23:33:41.087Z") ||
		!strings.Contains(rows[0], "|10|"+launchFields) {
		t.Errorf("bronze.cdn_realtime rows:\n%s", strings.Join(rows, "\n"))
	}
	s.mustRun("run", "--once")
	if n := len(s.keys("bronze.rejects", "reason")); n != len(want) {
		t.Errorf("%d rejects after a second run, want %d", n, len(want))
	}
	if n := len(s.keys("bronze.cdn_realtime", "record")); n != 2 {
		t.Errorf("%d records after a second run, want 2", n)
	}
}

// `qoslake check --type realtime` reads records one per line by the
// configured field list: the real records with the 40-field layout; with
// the default layout they are rejected naming both counts, exit 1. The
// kind is detected from the epoch time before the first tab.
func TestCheckRealtimeRecords(t *testing.T) {
	if _, err := os.Stat(realWorldRealtime); err != nil {
		t.Skip("real-world samples not present")
	}
	env := map[string]string{"QOSLAKE_DEMO": "true", "QOSLAKE_ENRICH": "false", "QOSLAKE_REALTIME_LOG_FIELDS": launchFields, "QOSLAKE_REALTIME_SAMPLING_RATE": "20"}
	code, out, errOut := run(t, env, "check", "--type", "realtime", realWorldRealtime)
	if code != exitOK || !strings.Contains(errOut, "realtime input, 2 rows, 0 rejected") {
		t.Fatalf("check: exit %d\n%s", code, errOut)
	}
	var rows []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, m)
	}
	for k, v := range map[string]any{
		"log_source": "realtime", "sampling_rate": 20.0, "log_time": "2020-09-16T23:33:41.087Z", "edge_location": "SEA19-C2",
		"status": 304.0, "time_taken_ms": 140.0, "client_ip": "174.204.64.0", "os": "iOS", "cache_hit": true,
	} {
		if rows[0][k] != v {
			t.Errorf("%s = %v, want %v", k, rows[0][k], v)
		}
	}
	if strings.Contains(out, "174.204.64.230") {
		t.Error("check printed a raw client address")
	}
	env["QOSLAKE_REALTIME_LOG_FIELDS"] = strings.Join(cloudfront.RealtimeFields, ",") // the default
	code, _, errOut = run(t, env, "check", realWorldRealtime)
	if code != exitFailure || strings.Count(errOut, "field_count_mismatch: 40 fields") != 2 || !strings.Contains(errOut, "realtime input") {
		t.Errorf("default layout: exit %d\n%s", code, errOut)
	}
}

// checkRealtimeExactlyOnce asserts bronze.cdn_realtime holds each
// simulated real-time record once, and silver one row per request (every
// request is in the standard logs) and one sighting per request both log
// kinds carry, whichever came first. It returns the silver rows and
// sightings counted by log_source.
func (s *stack) checkRealtimeExactlyOnce(sum simulate.Summary, rate int) (rows, sightings map[string]int) {
	s.t.Helper()
	keys := s.keys("bronze.cdn_realtime", "shard_id", "sequence_number", "sub_sequence", "record_index")
	if dup := firstDuplicate(keys); dup != "" || len(keys) != sum.RealtimeRecords {
		s.t.Errorf("bronze.cdn_realtime holds %d records (duplicate %q), the simulator wrote %d", len(keys), dup, sum.RealtimeRecords)
	}
	rows, sightings = map[string]int{}, map[string]int{}
	var ids []string
	for _, r := range s.keys("silver.cdn_logs", "edge_request_id", "log_source", "sampling_rate") {
		parts := strings.Split(r, "|")
		ids = append(ids, parts[0])
		rows[parts[1]]++
		if want := map[string]string{"realtime": fmt.Sprint(rate), "standard": "100"}[parts[1]]; parts[2] != want {
			s.t.Errorf("silver row %s has sampling rate %s, want %s", r, parts[2], want)
		}
	}
	if dup := firstDuplicate(ids); dup != "" || len(ids) != sum.LogLines {
		s.t.Errorf("silver.cdn_logs holds %d rows (request %q twice), the simulator made %d requests", len(ids), dup, sum.LogLines)
	}
	ids = nil
	for _, r := range s.keys("silver.cdn_sightings", "edge_request_id", "log_source") {
		id, source, _ := strings.Cut(r, "|")
		ids = append(ids, id)
		sightings[source]++
	}
	if dup := firstDuplicate(ids); dup != "" || len(ids) != sum.RealtimeRecords {
		s.t.Errorf("silver.cdn_sightings holds %d (%q twice), want one for each of the %d requests both log kinds carry", len(ids), dup, sum.RealtimeRecords)
	}
	if rows["realtime"]+sightings["realtime"] != sum.RealtimeRecords || rows["standard"]+sightings["standard"] != sum.LogLines {
		s.t.Errorf("rows %v and sightings %v by log kind, for %d real-time records and %d log lines", rows, sightings, sum.RealtimeRecords, sum.LogLines)
	}
	return rows, sightings
}

// Simulated real-time records (half the requests) land exactly once in
// bronze and silver beside the standard logs of the same requests, and a
// second run changes nothing.
func TestSimulatedRealtimeLogsLandExactlyOnce(t *testing.T) {
	s := newStack(t, "QOSLAKE_REALTIME_SAMPLING_RATE", "50")
	sum := s.simulate("--rate", "200", "--duration", "20s", "--seed", "31")
	if sum.RealtimeRecords == 0 || sum.RealtimeRecords >= sum.LogLines {
		t.Fatalf("%d real-time records for %d requests at 50%%", sum.RealtimeRecords, sum.LogLines)
	}
	s.mustRun("run", "--once")
	s.checkExactlyOnce(sum.EventsTotal, sum.LogLines)
	// One run reads both log kinds before silver moves them: each
	// request's row is its real-time record's, the standard line a sighting.
	if rows, sightings := s.checkRealtimeExactlyOnce(sum, 50); rows["realtime"] != sum.RealtimeRecords || sightings["realtime"] != 0 {
		t.Errorf("rows %v, sightings %v: want the real-time records as rows", rows, sightings)
	}
	s.checkGoldMatchesSilver()
	s.mustRun("run", "--once")
	s.checkRealtimeExactlyOnce(sum, 50)
	if rejects := s.keys("bronze.rejects", "reason"); len(rejects) != 0 {
		t.Errorf("simulated traffic produced rejects: %v", rejects)
	}
}

// A request CloudFront logged in real time, and minutes later in a
// standard log file, is one silver row that says both saw it: typed from
// the real-time record, its standard line a sighting. A standard line
// first and its real-time record later: the same, the other way round.
func TestRequestSeenInBothLogKindsIsOneSilverRow(t *testing.T) {
	s := newStack(t, "QOSLAKE_REALTIME_LOG_FIELDS", "timestamp,c-ip,sc-status,sc-bytes,x-edge-location,x-edge-request-id,time-taken,cmcd-session-id")
	now := time.Now().UTC().Add(-time.Minute)
	rec := func(id string) string {
		return fmt.Sprintf("%d.%03d\t203.0.113.77\t200\t1843201\tFRA56-P3\t%s\t0.014\tsess-1\n", now.Unix(), now.Nanosecond()/1e6, id)
	}
	line := func(id string) string {
		return fmt.Sprintf("%s\t%s\tFRA56-P3\t1843201\t203.0.113.77\tGET\t%s\t0.014\n", now.Format("2006-01-02"), now.Format("15:04:05"), id)
	}
	s.putRealtime(rec("Rt1stAbc=="))
	s.putObject("late.log", []byte(logHeader+line("Std1stXyz==")))
	s.mustRun("run", "--once")
	s.putObject("later.log", []byte(logHeader+line("Rt1stAbc==")))
	s.putRealtime(rec("Std1stXyz=="))
	s.mustRun("run", "--once")

	rows := s.keys("silver.cdn_logs", "edge_request_id", "log_source", "cmcd_session_id")
	sort.Strings(rows)
	if want := []string{"Rt1stAbc==|realtime|sess-1", "Std1stXyz==|standard|(null)"}; !slices.Equal(rows, want) {
		t.Errorf("silver.cdn_logs: %v, want %v", rows, want)
	}
	seen := s.keys("silver.cdn_sightings", "edge_request_id", "log_source")
	sort.Strings(seen)
	if want := []string{"Rt1stAbc==|standard", "Std1stXyz==|realtime"}; !slices.Equal(seen, want) {
		t.Errorf("silver.cdn_sightings: %v, want %v", seen, want)
	}
}

// killAt starts the real binary with debug logs and SIGKILLs it at the
// first line of its standard error that at accepts: a point the process
// itself names, not a guessed time. It reports whether the point came.
func (s *stack) killAt(bin string, at func(line string) bool, args ...string) bool {
	s.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ()
	for k, v := range s.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "QOSLAKE_LOG_LEVEL=debug")
	pipe, err := cmd.StderrPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	hit, done := make(chan struct{}), make(chan struct{})
	var errors []string
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		reached := false
		for sc.Scan() {
			if strings.Contains(sc.Text(), "level=ERROR") {
				errors = append(errors, sc.Text())
			}
			if !reached && at(sc.Text()) {
				reached = true
				close(hit)
			}
		}
	}()
	reached := true
	select {
	case <-hit:
	case <-time.After(20 * time.Second):
		reached = false
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	<-done
	if len(errors) > 0 {
		s.t.Errorf("run logged errors before the kill:\n%s", strings.Join(errors, "\n"))
	}
	return reached
}

// logLineOf matches a debug line by its message and table.
func logLineOf(msg, table string) func(string) bool {
	return func(l string) bool {
		return strings.Contains(l, `msg="`+msg+`"`) && strings.Contains(l, "table="+table)
	}
}

// The process killed with SIGKILL (no flush, no cleanup) right after it
// commits real-time records to bronze, right after it commits an
// increment's sightings (before or during its rows), and after silver
// commits, then run again: every real-time record is in bronze once and
// every request in silver once, with its sightings once.
func TestKilledProcessMidRealtimeChangesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	s := newStack(t, "QOSLAKE_SILVER_EVERY", "100ms")
	bin := builtBinary(t)
	run := []string{"run", "--http-addr", "127.0.0.1:0", "--batch-max-age", "50ms"}
	started := time.Now()
	first := s.simulate("--rate", "200", "--duration", "10s", "--seed", "61")
	if !s.killAt(bin, logLineOf("bronze batch committed", "bronze.cdn_realtime"), run...) {
		t.Fatal("no real-time records were committed to bronze")
	}
	if !s.killAt(bin, logLineOf("sightings committed", "silver.cdn_sightings"), run...) {
		t.Fatal("no sightings were committed")
	}
	second := s.simulate("--rate", "200", "--duration", "10s", "--seed", "62")
	if !s.killAt(bin, logLineOf("silver committed", "silver.cdn_logs"), run...) {
		t.Fatal("silver committed nothing")
	}
	t.Logf("three killed runs in %s", time.Since(started))
	s.mustRun("run", "--once")
	sum := first
	sum.RealtimeRecords += second.RealtimeRecords
	sum.LogLines += second.LogLines
	s.checkExactlyOnce(first.EventsTotal+second.EventsTotal, sum.LogLines)
	s.checkRealtimeExactlyOnce(sum, 100)
	s.checkGoldMatchesSilver()
}
