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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/qoslake/qoslake/ingest/s3sqs"
	"github.com/qoslake/qoslake/lake"
)

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
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{}}, nil
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
	dir := t.TempDir()
	l, err := lake.Open(t.Context(), lake.Options{URI: filepath.Join(dir, "c.db"), Warehouse: filepath.Join(dir, "w")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	logs, _ := l.Ensure(t.Context(), CDNLogsTable)
	rejects, _ := l.Ensure(t.Context(), RejectsTable)
	q := &fakeQueue{body: `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k.log","eTag":"e"}}}]}`}
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
