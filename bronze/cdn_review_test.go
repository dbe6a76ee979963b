package bronze

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/qoslake/qoslake/ingest/s3sqs"
	"github.com/qoslake/qoslake/lake"
)

const badLine = "2026-03-02\t18:00:01\tx\ty\n" // one field too many: a reject

// rejectRefsOf lists bronze.rejects' source_ref values.
func rejectRefsOf(t *testing.T, rejects *lake.Table) []string {
	t.Helper()
	if _, err := rejects.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	var out []string
	err := rejects.Scan(t.Context(), lake.ScanOptions{Fields: []string{"source_ref"}}, func(r arrow.RecordBatch) error {
		col := r.Column(0).(*array.String)
		for i := range col.Len() {
			out = append(out, col.Value(i))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// 1. An object that failed at its last receive gets an object_unreadable
// reject (line = MaxInt64 in the rejects index). When the object is read
// later (DLQ redrive, or a duplicate S3 notification), every line reject
// is taken as "already committed" and silently dropped.
func TestLineRejectsKeptAfterObjectUnreadable(t *testing.T) {
	logs, rejects := cdnTables(t)
	body := logBody(20) + badLine // line 23 is a reject
	// Every transfer is cut until the last receive: object_unreadable.
	q := &redeliveringQueue{body: createdEvent, visible: true, maxReceives: 2}
	s3c := &cuttingS3{body: body, cuts: 2, after: len(body) / 2}
	first := &CDNLogs{Logs: logs, Rejects: rejects, MaxReceives: 2, Batching: Batching{MaxRows: 5},
		Queue: &s3sqs.Queue{SQS: q, S3: s3c, URL: "q", Visibility: testVisibility}}
	if err := first.Run(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	if refs := rejectRefsOf(t, rejects); len(refs) != 1 {
		t.Fatalf("rejects %v, want the object_unreadable one", refs)
	}
	// (Also: until a redrive, this key stays in every snapshot forever.)
	if cp, _ := logs.Checkpoint(); cp[objectKeyPrefix+"s3://b/k.log@e"] == "" {
		t.Fatalf("checkpoint %v: expected the partly read object's key", cp)
	}
	// The message is redriven from the DLQ (or a duplicate notification
	// arrives); S3 serves the object whole now.
	q2 := &redeliveringQueue{body: createdEvent, visible: true}
	again := &CDNLogs{Logs: logs, Rejects: rejects,
		Queue: &s3sqs.Queue{SQS: q2, S3: fixedS3(body), URL: "q", Visibility: testVisibility}}
	if err := again.Run(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	checkLines(t, logs, 20)
	refs := rejectRefsOf(t, rejects)
	want := s3sqs.Object{Bucket: "b", Key: "k.log", ETag: "e"}.Ref() + ":23"
	found := false
	for _, r := range refs {
		found = found || r == want
	}
	if !found {
		t.Errorf("rejects %v: line 23's field_count_mismatch reject was never recorded", refs)
	}
}

// 2. The first chunk of an object read in several batches holds only
// rejects (no line), so bronze.cdn_logs has no row of the object, only its
// object: key. A second process that started reading the object before
// that commit (whole, in one batch, no key) passes guardObjects (it looks
// only at lines) and commits every line. The first process then resumes
// after its key and commits the rest of the lines again.
func TestRejectsOnlyFirstChunkStopsAWholeReadElsewhere(t *testing.T) {
	logs, rejects := cdnTables(t)
	head := "#Version: 1.0\n#Fields: date time x-edge-request-id\n" + strings.Repeat(badLine, 3) // rejects 3..5
	var good strings.Builder
	for i := 6; i <= 35; i++ {
		fmt.Fprintf(&good, "2026-03-02\t18:00:%02d\tr%d\n", i%60, i)
	}
	body := head + good.String()
	firstLine := strings.Index(good.String(), "\n") + 1
	// Process A: batches of 3 rows; its transfer breaks after line 6.
	a := &CDNLogs{Logs: logs, Rejects: rejects, Batching: Batching{MaxRows: 3},
		Queue: &s3sqs.Queue{SQS: &redeliveringQueue{body: createdEvent, visible: true, maxReceives: 1},
			S3: &cuttingS3{body: body, cuts: 1, after: len(head) + firstLine}, URL: "qa", Visibility: testVisibility}}
	// Process B received a duplicate notification and checked the
	// checkpoint before A's first commit; A commits while B fetches.
	b := &CDNLogs{Logs: logs, Rejects: rejects,
		Queue: &s3sqs.Queue{SQS: &redeliveringQueue{body: createdEvent, visible: true, maxReceives: 1},
			S3: &interleavedS3{body: body, before: func() {
				if err := a.Run(context.Background(), true); err != nil {
					t.Error(err)
				}
			}}, URL: "qb", Visibility: testVisibility}}
	if err := b.Run(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	// Before the fix, B has committed lines 6..35 (and deleted its
	// message) while A's key still says 5.
	if cp, _ := logs.Checkpoint(); cp[objectKeyPrefix+"s3://b/k.log@e"] != "5" {
		t.Fatalf("checkpoint %v, want A's key at 5", cp)
	}
	// A's message comes back (its retry), S3 is fine now.
	a2 := &CDNLogs{Logs: logs, Rejects: rejects,
		Queue: &s3sqs.Queue{SQS: &redeliveringQueue{body: createdEvent, visible: true}, S3: fixedS3(body), URL: "qa", Visibility: testVisibility}}
	if err := a2.Run(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	checkLines(t, logs, 30)
	if refs := rejectRefsOf(t, rejects); len(refs) != 3 {
		t.Errorf("rejects %v, want lines 3-5 once", refs)
	}
}

// twoObjectS3 fails every GetObject of key "bad.log" and serves body for
// any other key.
type twoObjectS3 struct{ body string }

func (s twoObjectS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if *in.Key == "bad.log" {
		return nil, errors.New("access denied")
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(strings.NewReader(s.body))}, nil
}

// 3. A message naming two objects, the first unreadable for good: the
// second is never read on any receive, the message reaches the DLQ, and
// bronze.rejects names only the first. The second object's lines are
// neither in bronze.cdn_logs nor accounted for by a reject.
func TestEveryObjectOfAMessageIsTried(t *testing.T) {
	logs, rejects := cdnTables(t)
	ev := `{"Records":[` +
		`{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"bad.log","eTag":"e1"}}},` +
		`{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"good.log","eTag":"e2"}}}]}`
	q := &redeliveringQueue{body: ev, visible: true, maxReceives: 3}
	sink := &CDNLogs{Logs: logs, Rejects: rejects, MaxReceives: 3,
		Queue: &s3sqs.Queue{SQS: q, S3: twoObjectS3{body: logBody(10)}, URL: "q", Visibility: testVisibility}}
	if err := sink.Run(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	// The message is now in the DLQ (3 receives, not deleted).
	d, _ := logs.Describe()
	refs := rejectRefsOf(t, rejects)
	named := false
	for _, r := range refs {
		named = named || strings.Contains(r, "good.log")
	}
	if d.Rows != 10 && !named {
		t.Errorf("good.log: %d lines committed and no reject names it (rejects %v): its 10 lines are lost to the DLQ unaccounted", d.Rows, refs)
	}
}
