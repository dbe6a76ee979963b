package bronze

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/qoslake/qoslake/ingest/s3sqs"
	"github.com/qoslake/qoslake/lake"
)

// logBody is a CloudFront log of n lines (x-edge-request-id r<i>).
func logBody(n int) string {
	var b strings.Builder
	b.WriteString("#Version: 1.0\n#Fields: date time x-edge-request-id\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "2026-03-02\t18:%02d:%02d\tr%d\n", (i/60)%60, i%60, i)
	}
	return b.String()
}

// testVisibility is the queue visibility in these tests: heartbeats set
// it, anything else is a release or a retry.
const testVisibility = 10 * time.Minute

// redeliveringQueue serves the same message again after each visibility
// change (a retry) until it is deleted, and records visibilities.
type redeliveringQueue struct {
	mu          sync.Mutex
	body        string
	receives    int
	visible     bool
	deleted     int
	visibility  []int32
	maxReceives int
}

func (q *redeliveringQueue) ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted > 0 || !q.visible || (q.maxReceives > 0 && q.receives >= q.maxReceives) {
		return &sqs.ReceiveMessageOutput{}, nil
	}
	q.receives++
	q.visible = false
	return &sqs.ReceiveMessageOutput{Messages: []sqstypes.Message{{
		MessageId: aws.String("m1"), ReceiptHandle: aws.String(fmt.Sprint("r", q.receives)), Body: aws.String(q.body),
		Attributes: map[string]string{"ApproximateReceiveCount": fmt.Sprint(q.receives)},
	}}}, nil
}

func (q *redeliveringQueue) DeleteMessageBatch(_ context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deleted += len(in.Entries)
	return &sqs.DeleteMessageBatchOutput{}, nil
}

func (q *redeliveringQueue) ChangeMessageVisibility(_ context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.visibility = append(q.visibility, in.VisibilityTimeout)
	if in.VisibilityTimeout != int32(testVisibility/time.Second) {
		q.visible = true // anything but a heartbeat: "returns" at once in the test
	}
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

func (q *redeliveringQueue) GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := "0"
	if q.deleted == 0 && (q.maxReceives == 0 || q.receives < q.maxReceives) {
		n = "1"
	}
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{"ApproximateNumberOfMessages": n, "ApproximateNumberOfMessagesNotVisible": "0"}}, nil
}

// cuttingS3 serves body; the first `cuts` transfers break after `after`
// bytes with a connection reset.
type cuttingS3 struct {
	mu    sync.Mutex
	body  string
	cuts  int
	after int
	gets  int
}

func (s *cuttingS3) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	var r io.Reader = strings.NewReader(s.body)
	if s.gets <= s.cuts {
		r = io.MultiReader(strings.NewReader(s.body[:s.after]), errReader{syscall.ECONNRESET})
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(r)}, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// lineNumbers reads every line_number of bronze.cdn_logs.
func lineNumbers(t *testing.T, logs *lake.Table) map[int64]int {
	t.Helper()
	if _, err := logs.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	out := map[int64]int{}
	err := logs.Scan(t.Context(), lake.ScanOptions{Fields: []string{"line_number"}}, func(r arrow.RecordBatch) error {
		col := r.Column(0).(*array.Int64)
		for i := range col.Len() {
			out[col.Value(i)]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func checkLines(t *testing.T, logs *lake.Table, n int) {
	t.Helper()
	got := lineNumbers(t, logs)
	for l, c := range got {
		if c != 1 {
			t.Errorf("line %d committed %d times", l, c)
		}
	}
	// Lines 1 and 2 are the headers.
	if len(got) != n {
		t.Errorf("%d distinct lines committed, want %d", len(got), n)
	}
}

// A transfer cut mid-object (a connection reset) is not a truncated file:
// before this change the lines read so far were committed, the message
// deleted, and the rest of the object lost with a truncated_input reject.
// Now nothing more of the object is committed, the message is retried
// after a backoff, and the retry commits every line once.
func TestCutTransferIsRetriedNotTruncated(t *testing.T) {
	logs, rejects := cdnTables(t)
	body := logBody(500)
	q := &redeliveringQueue{body: createdEvent, visible: true}
	s3c := &cuttingS3{body: body, cuts: 2, after: len(body) / 2}
	sink := &CDNLogs{Logs: logs, Rejects: rejects, Batching: Batching{MaxRows: 100},
		Queue: &s3sqs.Queue{SQS: q, S3: s3c, URL: "q", Visibility: testVisibility}}
	if err := sink.Run(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	checkLines(t, logs, 500)
	if d, _ := rejects.Describe(); d.Rows != 0 {
		t.Errorf("%d rejects, want none: the object is whole", d.Rows)
	}
	if q.deleted != 1 || q.receives != 3 {
		t.Errorf("%d receives, %d deletes; want 3 receives (two cut) and one delete", q.receives, q.deleted)
	}
	// The two failed receives hid the message for 30 s, then 60 s.
	var retries []int32
	for _, v := range q.visibility {
		if v > 0 && v != int32(testVisibility/time.Second) {
			retries = append(retries, v)
		}
	}
	if fmt.Sprint(retries) != "[30 60]" {
		t.Errorf("retry visibilities %v, want [30 60] (backoff growing with receives)", q.visibility)
	}
	cp, _ := logs.Checkpoint()
	for k := range cp {
		if strings.HasPrefix(k, objectKeyPrefix) {
			t.Errorf("object position %s left in the checkpoint after the object ended", k)
		}
	}
}

// An object far larger than a batch is committed in several batches, each
// bounded; the object's position is cleared at its end.
func TestLargeObjectIsCommittedInBoundedBatches(t *testing.T) {
	logs, rejects := cdnTables(t)
	const n = 300_000
	q := &redeliveringQueue{body: createdEvent, visible: true}
	sink := &CDNLogs{Logs: logs, Rejects: rejects, Batching: Batching{MaxRows: 40_000},
		Queue: &s3sqs.Queue{SQS: q, S3: fixedS3(logBody(n)), URL: "q", Visibility: testVisibility}}
	if err := sink.Run(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	checkLines(t, logs, n)
	var batches int
	for _, s := range logs.Iceberg().Metadata().Snapshots() {
		if s.Summary != nil && s.Summary.Operation == "append" {
			batches++
			if rows := s.Summary.Properties["added-records"]; rows > "40000" && len(rows) >= 5 {
				t.Errorf("a batch of %s rows, limit 40000", rows)
			}
		}
	}
	if batches < n/40_000 {
		t.Errorf("%d commits, want at least %d", batches, n/40_000)
	}
	if q.deleted != 1 {
		t.Errorf("%d deletes, want the message deleted once at the end", q.deleted)
	}
}

// Shutdown in the middle of a large object: what was committed stays, the
// message goes back, and the next run resumes after the last committed
// line: every line once.
func TestShutdownMidObjectResumesAfterLastCommittedLine(t *testing.T) {
	logs, rejects := cdnTables(t)
	const n = 50_000
	q := &redeliveringQueue{body: createdEvent, visible: true}
	ctx, cancel := context.WithCancel(t.Context())
	obs := &cancelAfterCommits{n: 2, cancel: cancel}
	sink := &CDNLogs{Logs: logs, Rejects: rejects, Batching: Batching{MaxRows: 5_000}, Observer: obs,
		Queue: &s3sqs.Queue{SQS: q, S3: fixedS3(logBody(n)), URL: "q", Visibility: testVisibility}}
	if err := sink.Run(ctx, false); err != nil {
		t.Fatal(err)
	}
	got := lineNumbers(t, logs)
	if len(got) == 0 || len(got) >= n {
		t.Fatalf("%d lines after the cut; the test proves nothing", len(got))
	}
	if q.deleted != 0 {
		t.Fatal("message deleted before its object was read")
	}
	again := &CDNLogs{Logs: logs, Rejects: rejects, Batching: Batching{MaxRows: 5_000},
		Queue: &s3sqs.Queue{SQS: q, S3: fixedS3(logBody(n)), URL: "q", Visibility: testVisibility}}
	if err := again.Run(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	checkLines(t, logs, n)
	if q.deleted != 1 {
		t.Errorf("%d deletes", q.deleted)
	}
}

type cancelAfterCommits struct {
	nopObserver
	n      int
	cancel func()
}

func (c *cancelAfterCommits) BatchCommitted(string, int, time.Duration) {
	c.n--
	if c.n == 0 {
		c.cancel()
	}
}

// A Flush that fails keeps its batch: before this change the lines were
// gone from the builder, and the next Flush deleted the message with
// nothing committed.
func TestFailedCDNFlushIsRetriedWhole(t *testing.T) {
	logs, rejects := cdnTables(t)
	q := &redeliveringQueue{body: createdEvent, visible: true}
	sink := &CDNLogs{Logs: logs, Rejects: rejects,
		Queue: &s3sqs.Queue{SQS: q, S3: fixedS3(logBody(20) + "2026-03-02\t18:00:01\tx\ty\n"), URL: "q", Visibility: testVisibility}}
	if err := sink.init(); err != nil {
		t.Fatal(err)
	}
	msgs, err := sink.Queue.Receive(t.Context(), 10, 0)
	if err != nil || len(msgs) != 1 {
		t.Fatal(msgs, err)
	}
	if err := sink.refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := sink.process(t.Context(), msgs[0]); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := sink.Flush(cancelled); err == nil {
		t.Fatal("flush with a cancelled context succeeded; the test proves nothing")
	}
	if err := sink.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkLines(t, logs, 20)
	if d, _ := rejects.Describe(); d.Rows != 1 {
		t.Errorf("%d rejects, want the over-long line's one", d.Rows)
	}
	if q.deleted != 1 {
		t.Errorf("%d deletes", q.deleted)
	}
}

// Two processes receive the same object (a duplicate S3 notification):
// the second, whose index was read before the first committed, must not
// commit the object again. Before this change both committed its lines.
func TestSecondProcessDoesNotCommitAnObjectAgain(t *testing.T) {
	logs, rejects := cdnTables(t)
	body := logBody(30)
	first := &CDNLogs{Logs: logs, Rejects: rejects,
		Queue: &s3sqs.Queue{SQS: &redeliveringQueue{body: createdEvent, visible: true}, S3: fixedS3(body), URL: "q1", Visibility: testVisibility}}
	// The second process's S3 lets the first run to its end while the
	// second is reading: the second has refreshed its index already.
	q2 := &redeliveringQueue{body: createdEvent, visible: true, maxReceives: 2}
	second := &CDNLogs{Logs: logs, Rejects: rejects,
		Queue: &s3sqs.Queue{SQS: q2, S3: &interleavedS3{body: body, before: func() {
			if err := first.Run(context.Background(), true); err != nil {
				t.Error(err)
			}
		}}, URL: "q2", Visibility: testVisibility}}
	if err := second.Run(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	checkLines(t, logs, 30)
	if q2.deleted != 1 {
		t.Errorf("second queue: %d deletes, want the redelivered message deleted once the object is found done", q2.deleted)
	}
}

type interleavedS3 struct {
	once   sync.Once
	body   string
	before func()
}

func (s *interleavedS3) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	s.once.Do(s.before)
	return &s3.GetObjectOutput{Body: io.NopCloser(strings.NewReader(s.body))}, nil
}
