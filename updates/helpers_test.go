package updates

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/qoslake/qoslake/gold"
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
	lake *lake.Lake
	gold Gold
}

func openGold(t testing.TB, dir string) goldLake {
	t.Helper()
	ctx := context.Background()
	l, err := lake.Open(ctx, lake.Options{URI: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var g Gold
	for def, dst := range map[*lake.TableDef]**lake.Table{
		&gold.PlayerMinuteTable: &g.PlayerMinute, &gold.CDNMinuteTable: &g.CDNMinute, &sessionsDef: &g.Sessions,
	} {
		if *dst, err = l.Ensure(ctx, *def); err != nil {
			t.Fatal(err)
		}
	}
	return goldLake{l, g}
}

// row is one table row by column name; columns left out are zero (a
// required number) or null.
type row map[string]any

// rowsOf builds a record batch of the table's rows.
func rowsOf(t testing.TB, tbl *lake.Table, def lake.TableDef, rows []row) arrow.RecordBatch {
	t.Helper()
	out, err := tbl.NewRows()
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	for _, r := range rows {
		for _, c := range def.Columns {
			v, ok := r[c.Name]
			switch c.Type {
			case iceberg.PrimitiveTypes.TimestampTz:
				ts, _ := v.(time.Time) // lake.Rows writes no null timestamps
				out.Time(c.Name, ts)
			case iceberg.PrimitiveTypes.String:
				s, _ := v.(string)
				out.NullableString(c.Name, s)
			case iceberg.PrimitiveTypes.Int64:
				n, _ := v.(int64)
				if !ok && !c.Required {
					out.OptInt64(c.Name, nil)
					continue
				}
				out.Int64(c.Name, n)
			case iceberg.PrimitiveTypes.Float64:
				f, _ := v.(float64)
				out.OptFloat64(c.Name, &f)
			case iceberg.PrimitiveTypes.Bool:
				b, _ := v.(bool)
				out.Bool(c.Name, b)
			default:
				t.Fatalf("column %s: type %s not handled", c.Name, c.Type)
			}
		}
	}
	for _, r := range rows {
		for name := range r {
			if !slices.ContainsFunc(def.Columns, func(c lake.Column) bool { return c.Name == name }) {
				t.Fatalf("%s has no column %s", def.FullName(), name)
			}
		}
	}
	return out.Batch()
}

// appendRows commits rows to the table.
func appendRows(t testing.TB, tbl *lake.Table, def lake.TableDef, rows []row) {
	t.Helper()
	rec := rowsOf(t, tbl, def, rows)
	defer rec.Release()
	if _, err := tbl.Commit(context.Background(), lake.Batch{Records: []arrow.RecordBatch{rec}}); err != nil {
		t.Fatal(err)
	}
}

// replaceMinutes replaces the rows of the windows starting at minutes with
// rows, as the gold minute stages do.
func replaceMinutes(t testing.TB, tbl *lake.Table, def lake.TableDef, minutes []time.Time, rows []row) {
	t.Helper()
	rec := rowsOf(t, tbl, def, rows)
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
