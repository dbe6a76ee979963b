package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/qoslake/qoslake/internal/testenv"
)

// run drives Main the way the binary does and returns exit code and output.
func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var stdout, stderr bytes.Buffer
	code := NewMain(&stdout, &stderr).Run(context.Background(), args)
	return code, stdout.String(), stderr.String()
}

func TestHelpAndExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"no arguments", nil, exitUsage, "Commands:"},
		{"help", []string{"help"}, exitOK, "provision"},
		{"command help", []string{"help", "scan"}, exitOK, "--where"},
		{"flag help", []string{"tables", "--help"}, exitOK, "QOSLAKE_CATALOG"},
		{"unknown command", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"not implemented says so", []string{"serve"}, exitNotImplemented, "not implemented yet"},
		{"bad flag", []string{"tables", "--nope"}, exitUsage, "nope"},
		{"scan needs a table", []string{"scan"}, exitUsage, "one table name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, nil, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if !strings.Contains(out+errOut, tc.contains) {
				t.Errorf("output lacks %q:\n%s%s", tc.contains, out, errOut)
			}
		})
	}
}

func TestBadSettingsFailAtStartNamingTheSetting(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"malformed env", map[string]string{"QOSLAKE_STREAM_SHARDS": "many"}, []string{"provision"}, "QOSLAKE_STREAM_SHARDS"},
		{"bad catalog", nil, []string{"tables", "--catalog", "oracle"}, "--catalog ($QOSLAKE_CATALOG)"},
		{"rest without uri", map[string]string{"QOSLAKE_CATALOG": "rest"}, []string{"tables"}, "--catalog-uri"},
		{"bad warehouse", nil, []string{"tables", "--warehouse", "ftp://x/y"}, "--warehouse"},
		{"bad prefix", nil, []string{"provision", "--prefix", "Not_OK"}, "--prefix"},
		{"bad route", nil, []string{"provision", "--notify-via", "email"}, "--notify-via"},
		{"short retention", nil, []string{"maintain", "--bronze-retention", "5m"}, "--bronze-retention"},
		{"no pseudonymisation key", nil, []string{"check", "--enrich=false", "x.jsonl"}, "--pseudonym-key"},
		{"weak key", map[string]string{"QOSLAKE_PSEUDONYM_KEY": "k:c2hvcnQ="}, []string{"check", "--enrich=false", "x.jsonl"}, "at least 32"},
		{"no geoip databases", map[string]string{"QOSLAKE_DEMO": "true"}, []string{"check", "x.jsonl"}, "--geoip-city"},
		{"unreadable geoip database", map[string]string{"QOSLAKE_DEMO": "true", "QOSLAKE_GEOIP_CITY": "/nonexistent/City.mmdb", "QOSLAKE_GEOIP_ASN": "/nonexistent/ASN.mmdb"}, []string{"check", "x.jsonl"}, "/nonexistent/City.mmdb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(t, tc.env, tc.args...)
			if code != exitUsage || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d naming %s", code, errOut, exitUsage, tc.want)
			}
		})
	}
}

// The path `make demo` takes, over the wire against the emulator: provision
// creates the resources and tables, a second run changes nothing, and
// `tables` and `scan` read the catalog.
func TestProvisionTablesScanAgainstEmulator(t *testing.T) {
	c := testenv.AWS(t)
	env := map[string]string{
		"QOSLAKE_STATE_DIR": t.TempDir(),
		"QOSLAKE_PREFIX":    testenv.Name("cli"),
	}
	emails := "oncall@example.com,traffic=edge-team@example.com,product=edge-team@example.com"
	code, out, errOut := run(t, env, "provision", "--alert-emails", emails)
	if code != exitOK {
		t.Fatalf("provision: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"created  kinesis-stream", "created  iceberg-table     bronze.player_events", "email:oncall@example.com"} {
		if !strings.Contains(out, want) {
			t.Errorf("provision output lacks %q:\n%s", want, out)
		}
	}
	// The team's address gets only its team's alerts.
	var topics []snstypes.Topic
	for pages := sns.NewListTopicsPaginator(c.SNS, &sns.ListTopicsInput{}); pages.HasMorePages(); {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		topics = append(topics, page.Topics...)
	}
	policies := map[string]string{}
	for _, tp := range topics {
		if !strings.HasSuffix(*tp.TopicArn, ":"+env["QOSLAKE_PREFIX"]+"-alerts") {
			continue
		}
		subs, err := c.SNS.ListSubscriptionsByTopic(context.Background(), &sns.ListSubscriptionsByTopicInput{TopicArn: tp.TopicArn})
		if err != nil {
			t.Fatal(err)
		}
		for _, sub := range subs.Subscriptions {
			a, err := c.SNS.GetSubscriptionAttributes(context.Background(), &sns.GetSubscriptionAttributesInput{SubscriptionArn: sub.SubscriptionArn})
			if err != nil {
				t.Fatal(err)
			}
			policies[*sub.Endpoint] = a.Attributes["FilterPolicy"]
		}
	}
	if policies["oncall@example.com"] != "" || policies["edge-team@example.com"] != `{"team":["product","traffic"]}` {
		t.Errorf("alert subscriptions and filter policies: %v", policies)
	}
	code, out, _ = run(t, env, "provision", "--alert-emails", emails)
	if code != exitOK || !strings.Contains(out, "nothing changed") || strings.Contains(out, "created") {
		t.Errorf("second provision (exit %d) changed something:\n%s", code, out)
	}

	code, out, _ = run(t, env, "tables", "--json")
	if code != exitOK {
		t.Fatalf("tables: exit %d", code)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var d struct{ Name string }
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("tables --json line %q: %v", line, err)
		}
		names = append(names, d.Name)
	}
	if strings.Join(names, ",") != "bronze.cdn_logs,bronze.cdn_realtime,bronze.player_events,bronze.rejects,gold.alerts,gold.cdn_minute,gold.player_minute,gold.session_minute,gold.sessions,silver.cdn_logs,silver.cdn_sightings,silver.player_events" {
		t.Errorf("tables = %v", names)
	}
	code, _, errOut = run(t, env, "scan", "bronze.player_events", "--where", "event_type=play", "--since", "1h", "--format", "csv")
	if code != exitOK {
		t.Errorf("scan: exit %d: %s", code, errOut)
	}
	code, _, errOut = run(t, env, "scan", "bronze.player_events", "--where", "sub_sequence=abc")
	if code != exitUsage || !strings.Contains(errOut, "sub_sequence") {
		t.Errorf("scan with a mistyped value: exit %d: %s", code, errOut)
	}
}

// `run` serves health and metrics, becomes ready once its tables exist, and
// stops promptly and cleanly when its context ends (SIGTERM in the binary).
func TestRunServesHealthAndShutsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	s := newStack(t)
	s.simulate("--rate", "200", "--duration", "10s")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- s.newMain(io.Discard, &stderr).Run(ctx, []string{"run", "--http-addr", addr})
	}()

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := get("/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready; stderr:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, body := get("/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	// Ingest runs: its metrics appear once the first batches commit.
	want := []string{
		`qoslake_rows_committed_total{table="bronze.player_events"}`,
		`qoslake_rows_committed_total{table="bronze.cdn_logs"}`,
		`qoslake_records_read_total{source="kinesis"}`,
		`qoslake_records_read_total{source="s3"}`,
		`qoslake_kinesis_millis_behind_latest{shard="shardId-000000000000"}`,
		`qoslake_sqs_messages_received_total`,
		`qoslake_batch_commit_seconds_bucket`,
		"go_goroutines",
	}
	var body string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_, body = get("/metrics")
		missing := false
		for _, w := range want {
			missing = missing || !strings.Contains(body, w)
		}
		if !missing {
			break
		}
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}

	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("run exited %d after shutdown; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop within 10s of cancellation")
	}
	if code, _ := get("/healthz"); code != 0 {
		t.Errorf("ops server still answering after shutdown")
	}
}

// `qoslake bench` runs the real stages on a temporary lake and reports each.
func TestBenchCommand(t *testing.T) {
	code, out, errOut := run(t, map[string]string{"QOSLAKE_LOG_LEVEL": "warn"}, "bench", "--events", "3000")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"bronze.player_events (with commits)", "cloudfront parse", "silver.player_events (with commits)", "GOMAXPROCS"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
