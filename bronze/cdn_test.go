package bronze

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/qoslake/qoslake/ingest/s3sqs"
	"github.com/qoslake/qoslake/lake"
)

// bronzeTables opens a local lake with the given tables.
func bronzeTables(t *testing.T, defs ...lake.TableDef) []*lake.Table {
	t.Helper()
	dir := t.TempDir()
	l, err := lake.Open(t.Context(), lake.Options{URI: filepath.Join(dir, "c.db"), Warehouse: filepath.Join(dir, "w")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	out := make([]*lake.Table, len(defs))
	for i, d := range defs {
		if out[i], err = l.Ensure(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// cdnTables opens a local lake with the tables CDNLogs writes.
func cdnTables(t *testing.T) (logs, rejects *lake.Table) {
	t.Helper()
	ts := bronzeTables(t, CDNLogsTable, RejectsTable)
	return ts[0], ts[1]
}

// createdEvent names the object b/k.log (ETag e).
const createdEvent = `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k.log","eTag":"e"}}}]}`

// fakeQueue serves one message once and records visibility changes and
// deletes.
type fakeQueue struct {
	mu       sync.Mutex
	body     string
	served   bool
	extended int
	deleted  int
}

func (q *fakeQueue) ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.served {
		return &sqs.ReceiveMessageOutput{}, nil
	}
	q.served = true
	return &sqs.ReceiveMessageOutput{Messages: []sqstypes.Message{{
		MessageId: aws.String("m1"), ReceiptHandle: aws.String("r1"), Body: aws.String(q.body),
		Attributes: map[string]string{"ApproximateReceiveCount": "1"},
	}}}, nil
}

func (q *fakeQueue) DeleteMessageBatch(_ context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deleted += len(in.Entries)
	return &sqs.DeleteMessageBatchOutput{}, nil
}

func (q *fakeQueue) ChangeMessageVisibility(_ context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if in.VisibilityTimeout > 0 {
		q.extended++
	}
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

func (q *fakeQueue) GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}}, nil
}

// slowS3 serves a log that takes a while to read.
type slowS3 struct{ lines int }

func (s slowS3) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	var b strings.Builder
	b.WriteString("#Version: 1.0\n#Fields: date time c-ip\n")
	for i := range s.lines {
		fmt.Fprintf(&b, "2026-03-02\t18:00:%02d\t10.0.0.1\n", i%60)
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(&slowReader{r: strings.NewReader(b.String())})}, nil
}

type slowReader struct{ r io.Reader }

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(100 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 64)])
}

// A message is kept hidden while its object is still being read, and
// deleted only after the lines are committed.
func TestVisibilityExtendedWhileAnObjectIsRead(t *testing.T) {
	logs, rejects := cdnTables(t)
	q := &fakeQueue{body: createdEvent}
	sink := &CDNLogs{
		Logs: logs, Rejects: rejects,
		// Visibility 3s: the heartbeat extends it every second; reading
		// the object takes about 2.5s.
		Queue: &s3sqs.Queue{SQS: q, S3: slowS3{lines: 40}, URL: "q", Visibility: 3 * time.Second},
	}
	if err := sink.Run(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.extended < 2 {
		t.Errorf("visibility extended %d times while a 2.5 s read ran, want at least 2", q.extended)
	}
	if q.deleted != 1 {
		t.Errorf("%d deletes, want the message deleted once after its commit", q.deleted)
	}
	if d, _ := logs.Describe(); d.Rows != 40 {
		t.Errorf("%d lines committed, want 40", d.Rows)
	}
}

func TestSourceOf(t *testing.T) {
	for in, want := range map[string]string{
		"s3://b/cloudfront/a:b@c.gz@etag123:17": "s3://b/cloudfront/a:b@c.gz@etag123",
		"s3://b/k@e":                            "s3://b/k@e",
		"sqs://https://q/1#m-1":                 "sqs://https://q/1#m-1",
		"shardId-0/123/0/1":                     "shardId-0/123/0/1",
	} {
		if got := sourceOf(in); got != want {
			t.Errorf("sourceOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// fixedS3 serves one object's body.
type fixedS3 string

func (s fixedS3) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return &s3.GetObjectOutput{Body: io.NopCloser(strings.NewReader(string(s)))}, nil
}

// After a crash between the rejects commit and the lines commit, the
// redelivered object's lines land and its rejects are not added again.
func TestRedeliveryAfterRejectsCommitAddsNoRejects(t *testing.T) {
	logs, rejects := cdnTables(t)
	obj := s3sqs.Object{Bucket: "b", Key: "k.log", ETag: "e"}

	// What the crashed run committed: the object's reject, not its lines.
	r, _ := rejects.NewRows()
	appendReject(r, Reject{At: time.Now(), Source: "s3", SourceRef: obj.Ref() + ":4", Reason: "field_count_mismatch"})
	b := r.Batch()
	if _, err := rejects.Commit(t.Context(), lake.Batch{Records: []arrow.RecordBatch{b}}); err != nil {
		t.Fatal(err)
	}
	b.Release()
	r.Release()

	body := "#Version: 1.0\n#Fields: date time c-ip\n2026-03-02\t18:00:01\t10.0.0.1\n2026-03-02\t18:00:02\n"
	q := &fakeQueue{body: createdEvent}
	sink := &CDNLogs{Logs: logs, Rejects: rejects, Queue: &s3sqs.Queue{SQS: q, S3: fixedS3(body), URL: "q", Visibility: time.Minute}}
	if err := sink.Run(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	if d, _ := logs.Describe(); d.Rows != 1 {
		t.Errorf("%d lines, want the good one", d.Rows)
	}
	if d, _ := rejects.Describe(); d.Rows != 1 {
		t.Errorf("%d rejects, want the one committed before the crash", d.Rows)
	}
	if q.deleted != 1 {
		t.Errorf("%d deletes", q.deleted)
	}
}
