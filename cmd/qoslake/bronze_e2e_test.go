package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func (s *stack) putRecord(data []byte) {
	s.t.Helper()
	_, err := s.aws.Kinesis.PutRecord(context.Background(), &kinesis.PutRecordInput{
		StreamName: aws.String(s.name("player-events")), Data: data, PartitionKey: aws.String("pk"),
	})
	if err != nil {
		s.t.Fatal(err)
	}
}

func (s *stack) putObject(key string, body []byte) string {
	s.t.Helper()
	out, err := s.aws.S3.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(s.name("cdn-logs")), Key: aws.String("cloudfront/" + key), Body: bytes.NewReader(body),
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.Trim(aws.ToString(out.ETag), `"`)
}

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.Bytes()
}

const logHeader = "#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip cs-method x-edge-request-id time-taken\n"

func logLine(i int) string {
	return fmt.Sprintf("2026-03-02\t18:04:%02d\tFRA56-P3\t1843201\t203.0.113.77\tGET\treq-%d==\t0.014\n", i%60, i)
}

func event(typ string, ts int64) string {
	return fmt.Sprintf(`{"metrictype":%q,"timestamp":%d,"user_id":"u1","video_id":"v"}`, typ, ts)
}

// Each kind of bad input lands in bronze.rejects with its reason, and the
// good records around it still land.
func TestBadInputIsRejectedWithReason(t *testing.T) {
	s := newStack(t, "QOSLAKE_MAX_RECORD_BYTES", "4096")
	now := time.Now().UnixMilli()
	s.putRecord([]byte(event("play", now)))
	s.putRecord([]byte(`{"metrictype":"play","timestamp":`))
	s.putRecord([]byte("{\"metrictype\":\"play\",\"user_id\":\"\xff\xfe\",\"timestamp\":1}"))
	s.putRecord([]byte(`{"metrictype":"play"}`))
	s.putRecord([]byte(event("play", 42)))
	s.putRecord([]byte(`{"metrictype":"play","timestamp":` + fmt.Sprint(now) + `,"pad":"` + strings.Repeat("x", 5000) + `"}`))
	s.putRecord([]byte("[" + event("stream", now) + `,{"metrictype":"teleport","timestamp":1}` + "]"))
	s.putRecord([]byte(event("stop", now)))

	good := logHeader + logLine(1) + logLine(2)
	s.putObject("good.gz", gz(t, good))
	truncated := gz(t, logHeader+strings.Repeat(logLine(3), 3000))
	s.putObject("truncated.gz", truncated[:len(truncated)/2])
	s.putObject("page.gz", gz(t, "<html><body>not a log</body></html>\n"))
	s.putObject("mixed.log", []byte(logHeader+logLine(4)+"2026-03-02\t18:04:05\tFRA56-P3\n"+
		"2026-03-02\t18:04:06\tFRA56-P3\t1\t203.0.113.1\tGET\t"+strings.Repeat("y", 70<<10)+"\t0.1\n"+
		"2026-03-02\t18:04:07\tFR\xffA\t1\t203.0.113.1\tGET\tr==\t0.1\n"+logLine(5)))

	s.mustRun("run", "--once")

	reasons := s.keys("bronze.rejects", "source", "reason")
	sort.Strings(reasons)
	want := []string{
		"kinesis|absurd_timestamp", "kinesis|invalid_utf8", "kinesis|malformed_json", "kinesis|missing_timestamp",
		"kinesis|oversized_record", "kinesis|unknown_event_type",
		"s3|field_count_mismatch", "s3|invalid_utf8", "s3|oversized_line", "s3|truncated_input", "s3|unknown_log_format",
	}
	if !slices.Equal(reasons, want) {
		t.Errorf("rejects:\n got %v\nwant %v", reasons, want)
	}
	if ev := s.keys("bronze.player_events", "event_type"); len(ev) != 3 {
		t.Errorf("good events landed: %v, want play, stream, stop", ev)
	}
	lines := s.keys("bronze.cdn_logs", "object_key")
	byObject := map[string]int{}
	for _, k := range lines {
		byObject[k]++
	}
	if byObject["cloudfront/good.gz"] != 2 || byObject["cloudfront/mixed.log"] != 2 || byObject["cloudfront/truncated.gz"] == 0 {
		t.Errorf("good lines per object: %v", byObject)
	}
	// Rejects keep the raw bytes for inspection.
	for _, r := range s.keys("bronze.rejects", "reason", "raw_size") {
		if strings.HasPrefix(r, "malformed_json|") && r != "malformed_json|33" {
			t.Errorf("malformed record kept as %s, want its 33 bytes", r)
		}
	}
	// Running again adds nothing.
	s.mustRun("run", "--once")
	if n := len(s.keys("bronze.rejects", "reason")); n != len(want) {
		t.Errorf("%d rejects after a second run, want %d", n, len(want))
	}
}

func (s *stack) queueURL(name string) string {
	s.t.Helper()
	out, err := s.aws.SQS.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		s.t.Fatal(err)
	}
	return *out.QueueUrl
}

func (s *stack) sendEvent(key, etag string) {
	s.t.Helper()
	body, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{
		"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "eventTime": "2026-03-02T18:05:00.000Z",
		"s3": map[string]any{
			"bucket": map[string]any{"name": s.name("cdn-logs")},
			"object": map[string]any{"key": "cloudfront/" + key, "eTag": etag, "size": 10},
		},
	}}})
	_, err := s.aws.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{
		QueueUrl: aws.String(s.queueURL(s.name("cdn-log-events"))), MessageBody: aws.String(string(body)),
	})
	if err != nil {
		s.t.Fatal(err)
	}
}

func (s *stack) depth(queue string) int {
	s.t.Helper()
	out, err := s.aws.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(s.queueURL(queue)),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		s.t.Fatal(err)
	}
	var n int
	for _, v := range out.Attributes {
		var x int
		fmt.Sscan(v, &x)
		n += x
	}
	return n
}

// A message redelivered after its object was committed (the consumer died
// before deleting it, or S3 sent the event twice) is only deleted.
func TestRedeliveredMessageCreatesNoDuplicate(t *testing.T) {
	s := newStack(t)
	etag := s.putObject("a.gz", gz(t, logHeader+logLine(1)+logLine(2)+logLine(3)))
	s.mustRun("run", "--once")
	if n := len(s.keys("bronze.cdn_logs", "line_number")); n != 3 {
		t.Fatalf("%d lines after first run", n)
	}
	s.sendEvent("a.gz", etag)
	s.sendEvent("a.gz", `"`+etag+`"`) // quoted, as some producers send it
	s.mustRun("run", "--once")
	if n := len(s.keys("bronze.cdn_logs", "line_number")); n != 3 {
		t.Errorf("%d lines after redelivery, want 3", n)
	}
	if d := s.depth(s.name("cdn-log-events")); d != 0 {
		t.Errorf("%d messages left on the queue, want the redeliveries deleted", d)
	}
}

// An object that cannot be read ends in the DLQ through the redrive
// policy, with the reason in bronze.rejects, and does not hold up others.
func TestPoisonObjectReachesDLQAndRejects(t *testing.T) {
	s := newStack(t, "QOSLAKE_QUEUE_MAX_RECEIVES", "2")
	s.sendEvent("vanished.gz", "0123456789abcdef0123456789abcdef")
	s.putObject("fine.gz", gz(t, logHeader+logLine(1)))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if code, _, errOut := s.run(ctx, "run", "--once"); code != exitOK {
		t.Fatalf("run --once: exit %d: %s", code, errOut)
	}
	if n := len(s.keys("bronze.cdn_logs", "line_number")); n != 1 {
		t.Errorf("%d lines of the good object, want 1", n)
	}
	rejects := s.keys("bronze.rejects", "reason", "source_ref")
	if len(rejects) != 1 || !strings.HasPrefix(rejects[0], "object_unreadable|s3://") || !strings.Contains(rejects[0], "vanished.gz") {
		t.Errorf("rejects = %v, want one object_unreadable for vanished.gz", rejects)
	}
	if d := s.depth(s.name("cdn-log-events-dlq")); d != 1 {
		t.Errorf("%d messages in the DLQ, want 1", d)
	}
	if d := s.depth(s.name("cdn-log-events")); d != 0 {
		t.Errorf("%d messages left on the queue", d)
	}
}

// An intake that keeps failing (here: its stream does not exist) is
// restarted with backoff and counted, while the other intake goes on.
func TestFailingIntakeRestartsWithoutStoppingTheOther(t *testing.T) {
	s := newStack(t)
	s.putObject("a.gz", gz(t, logHeader+logLine(1)+logLine(2)))
	s.env["QOSLAKE_STREAM"] = s.name("no-such-stream")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m := s.newMain(io.Discard, io.Discard)
	if code := m.Run(ctx, []string{"run", "--http-addr", "127.0.0.1:0"}); code != exitOK {
		t.Fatalf("run exited %d", code)
	}
	if n := len(s.keys("bronze.cdn_logs", "line")); n != 2 {
		t.Errorf("%d CDN lines landed while the Kinesis intake failed, want 2", n)
	}
	if got := testutil.ToFloat64(m.Metrics.Ingest.Restarts.WithLabelValues("kinesis")); got < 2 {
		t.Errorf("kinesis intake restarted %v times, want at least 2", got)
	}
}
