package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/qoslake/qoslake/ingest/cloudfront"
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
