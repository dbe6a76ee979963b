package updates

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/qoslake/qoslake/gold"
	"github.com/qoslake/qoslake/internal/testlake"
	"github.com/qoslake/qoslake/lake"
	"github.com/qoslake/qoslake/metrics"
)

// The metrics package's adapter is what cmd hands New.
var _ Observer = (*metrics.Updates)(nil)

// sessionsDef stands in for gold.SessionsTable, which another change is
// building: the columns the updates read, by name.
var sessionsDef = lake.TableDef{
	Namespace: gold.Namespace,
	Name:      "sessions",
	Columns: []lake.Column{
		{Name: "session_key", Type: iceberg.PrimitiveTypes.String, Required: true},
		{Name: "user_key", Type: iceberg.PrimitiveTypes.String},
		{Name: "video_id", Type: iceberg.PrimitiveTypes.String},
		{Name: "session_start", Type: iceberg.PrimitiveTypes.TimestampTz, Required: true},
		{Name: "session_end", Type: iceberg.PrimitiveTypes.TimestampTz},
		{Name: "end_reason", Type: iceberg.PrimitiveTypes.String},
		{Name: "attempt", Type: iceberg.PrimitiveTypes.Int64},
		{Name: "started", Type: iceberg.PrimitiveTypes.Bool},
	},
	Partition: []lake.PartitionField{
		{Column: "session_start", Transform: iceberg.DayTransform{}, Name: "session_day"},
	},
}

// goldLake is a lake in a temporary folder with the gold tables the
// updates read.
type goldLake struct {
	gold Gold
}

func openGold(t testing.TB, dir string) goldLake {
	t.Helper()
	tbl := testlake.Open(t, dir, gold.PlayerMinuteTable, gold.CDNMinuteTable, sessionsDef)
	return goldLake{Gold{PlayerMinute: tbl[0], CDNMinute: tbl[1], Sessions: tbl[2]}}
}

// row is one table row by column name; columns left out are zero (a
// required number) or null.
type row = testlake.Row

// appendRows commits rows to the table.
func appendRows(t testing.TB, tbl *lake.Table, def lake.TableDef, rows []row) {
	t.Helper()
	testlake.Commit(t, tbl, def, rows)
}

// replaceMinutes replaces the rows of the windows starting at minutes with
// rows, as the gold minute stages do.
func replaceMinutes(t testing.TB, tbl *lake.Table, def lake.TableDef, minutes []time.Time, rows []row) {
	t.Helper()
	rec := testlake.Batch(t, tbl, def, rows)
	defer rec.Release()
	if _, err := tbl.Replace(context.Background(), lake.ReplaceBatch{
		Batch:  lake.Batch{Records: []arrow.RecordBatch{rec}},
		Delete: lake.TimesIn("window_start", minutes),
	}); err != nil {
		t.Fatal(err)
	}
}

// fakeSNS is a PublishBatch that checks every request against SNS's
// limits and answers as respond says (every entry accepted when nil).
type fakeSNS struct {
	t       testing.TB
	respond func(call int, in *sns.PublishBatchInput) (*sns.PublishBatchOutput, error)

	mu       sync.Mutex
	calls    [][]snstypes.PublishBatchRequestEntry
	accepted []snstypes.PublishBatchRequestEntry
}

func (f *fakeSNS) PublishBatch(ctx context.Context, in *sns.PublishBatchInput, _ ...func(*sns.Options)) (*sns.PublishBatchOutput, error) {
	f.t.Helper()
	checkRequest(f.t, in)
	f.mu.Lock()
	call := len(f.calls)
	f.calls = append(f.calls, in.PublishBatchRequestEntries)
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out, err := acceptAll(in), error(nil)
	if f.respond != nil {
		out, err = f.respond(call, in)
	}
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range out.Successful {
		for _, e := range in.PublishBatchRequestEntries {
			if aws.ToString(e.Id) == aws.ToString(s.Id) {
				f.accepted = append(f.accepted, e)
			}
		}
	}
	return out, nil
}

func (f *fakeSNS) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *fakeSNS) acceptedBodies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.accepted))
	for i, e := range f.accepted {
		out[i] = aws.ToString(e.Message)
	}
	return out
}

// checkRequest fails the test when a request breaks an SNS limit or lacks
// the update_type attribute.
func checkRequest(t testing.TB, in *sns.PublishBatchInput) {
	t.Helper()
	if aws.ToString(in.TopicArn) == "" {
		t.Error("request without a topic ARN")
	}
	n := len(in.PublishBatchRequestEntries)
	if n == 0 || n > MaxBatchEntries {
		t.Errorf("request of %d entries, want 1 to %d", n, MaxBatchEntries)
	}
	total := 0
	ids := map[string]bool{}
	for _, e := range in.PublishBatchRequestEntries {
		m := message{body: []byte(aws.ToString(e.Message)), attrs: e.MessageAttributes}
		if m.size() > MaxMessageBytes {
			t.Errorf("entry %s: %d bytes, over %d", aws.ToString(e.Id), m.size(), MaxMessageBytes)
		}
		total += m.size()
		if ids[aws.ToString(e.Id)] {
			t.Errorf("entry id %s twice in one request", aws.ToString(e.Id))
		}
		ids[aws.ToString(e.Id)] = true
		a, ok := e.MessageAttributes[AttrUpdateType]
		if !ok || aws.ToString(a.DataType) != "String" || aws.ToString(a.StringValue) == "" {
			t.Errorf("entry %s: update_type attribute %+v", aws.ToString(e.Id), a)
		}
	}
	if total > MaxBatchBytes {
		t.Errorf("request of %d bytes, over %d", total, MaxBatchBytes)
	}
}

func acceptAll(in *sns.PublishBatchInput) *sns.PublishBatchOutput {
	return acceptExcept(in, nil)
}

// acceptExcept accepts every entry but those failed names, which fail
// with the given entries.
func acceptExcept(in *sns.PublishBatchInput, failed map[string]snstypes.BatchResultErrorEntry) *sns.PublishBatchOutput {
	out := &sns.PublishBatchOutput{}
	for i, e := range in.PublishBatchRequestEntries {
		if f, ok := failed[aws.ToString(e.Id)]; ok {
			f.Id = e.Id
			out.Failed = append(out.Failed, f)
			continue
		}
		out.Successful = append(out.Successful, snstypes.PublishBatchResultEntry{
			Id: e.Id, MessageId: aws.String(fmt.Sprintf("m-%d", i)),
		})
	}
	return out
}

// observed counts what an Observer is told.
type observed struct {
	mu                                     sync.Mutex
	published, failed, retried, superseded map[string]int
	builds                                 int
	last                                   map[string]time.Time
}

func newObserved() *observed {
	return &observed{published: map[string]int{}, failed: map[string]int{}, retried: map[string]int{},
		superseded: map[string]int{}, last: map[string]time.Time{}}
}

func (o *observed) Published(t string, n int, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.published[t] += n
	o.last[t] = at
}

func (o *observed) Failed(t string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failed[t] += n
}

func (o *observed) Retried(t string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.retried[t] += n
}

func (o *observed) Superseded(t string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.superseded[t]++
}

func (o *observed) BuildFailed() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.builds++
}

func (o *observed) get(m map[string]int, t UpdateType) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return m[string(t)]
}

var errBuild = errors.New("gold unreadable")
