package bronze

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/ingest/kinesis"
	"github.com/qoslake/qoslake/lake"
)

var testLayout = func() *cloudfront.RealtimeLayout {
	l, err := cloudfront.ParseRealtimeLayout("timestamp,c-ip,sc-status,x-edge-request-id,time-taken")
	if err != nil {
		panic(err)
	}
	return l
}()

// realtimeBatch is n records from sequence number first on; the first bad
// ones have a field too few.
func realtimeBatch(shard string, first, n, bad int, now time.Time) kinesis.Batch {
	b := kinesis.Batch{Shard: shard}
	for i := range n {
		seq := fmt.Sprint(first + i)
		rec := fmt.Sprintf("%d.%03d\t192.0.2.%d\t200\treq-%d==\t0.012\n", now.Unix(), i, i%250, first+i)
		if i < bad {
			rec = fmt.Sprintf("%d.000\t192.0.2.1\t200\n", now.Unix())
		}
		b.Records = append(b.Records, kinesis.Record{Shard: shard, Seq: seq, Data: []byte(rec), Arrival: now})
		b.Last = seq
	}
	return b
}

// Real-time log records land in bronze.cdn_realtime with their field list
// and sampling rate; bad ones in bronze.rejects as source realtime. A
// failed flush is retried whole, and the positions live under keys of
// their own: a player-events shard of the same id keeps its own place in
// bronze.rejects.
func TestRealtimeLogsLandOnceWithTheirRejects(t *testing.T) {
	ts := bronzeTables(t, CDNRealtimeTable, RejectsTable, PlayerEventsTable)
	logs, rejects, events := ts[0], ts[1], ts[2]
	now := time.Now()
	p := &PlayerEvents{Events: events, Rejects: rejects, Stream: "players"}
	if _, err := p.Positions(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := p.init(); err != nil {
		t.Fatal(err)
	}
	p.Add(kinesisBatch("shardId-000000000000", 500, 3, 1))
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	r := &RealtimeLogs{Logs: logs, Rejects: rejects, Stream: "rt", Layout: testLayout, SamplingRate: 25}
	if _, err := r.Positions(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := r.init(); err != nil {
		t.Fatal(err)
	}
	r.Add(realtimeBatch("shardId-000000000000", 100, 10, 2, now))
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := r.Flush(cancelled); err == nil {
		t.Fatal("flush with a cancelled context succeeded; the test proves nothing")
	}
	r.Add(realtimeBatch("shardId-000000000000", 110, 5, 1, now))
	for range 2 { // the failed batch, then the new one
		if err := r.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	for _, tbl := range ts {
		if _, err := tbl.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if d, _ := logs.Describe(); d.Rows != 12 {
		t.Errorf("%d records in bronze, want 12", d.Rows)
	}
	var reasons []string
	if err := rejects.Scan(t.Context(), lake.ScanOptions{Fields: []string{"source", "reason", "source_ref"}}, func(rec arrow.RecordBatch) error {
		for i := range int(rec.NumRows()) {
			col := func(name string) string { return rec.Column(rec.Schema().FieldIndices(name)[0]).ValueStr(i) }
			reasons = append(reasons, col("source")+":"+col("reason")+":"+col("source_ref"))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := "kinesis:malformed_json:shardId-000000000000/500/0/0 realtime:field_count_mismatch:shardId-000000000000/100/0/0 realtime:field_count_mismatch:shardId-000000000000/101/0/0 realtime:field_count_mismatch:shardId-000000000000/110/0/0"
	if got := strings.Join(slices.Sorted(slices.Values(reasons)), " "); got != want {
		t.Errorf("rejects:\n %s\nwant\n %s", got, want)
	}
	cp, _ := logs.Checkpoint()
	if cp["realtime:shardId-000000000000"] != "114" {
		t.Errorf("bronze.cdn_realtime checkpoint %v, want realtime:shardId-000000000000 at 114", cp)
	}
	cp, _ = rejects.Checkpoint()
	if cp["realtime:shardId-000000000000"] != "110" || cp[CheckpointKey("shardId-000000000000")] != "500" {
		t.Errorf("bronze.rejects checkpoint %v: the two streams' shards must keep their own positions", cp)
	}
	var fields, rates []string
	if err := logs.Scan(t.Context(), lake.ScanOptions{Fields: []string{"fields", "sampling_rate"}}, func(rec arrow.RecordBatch) error {
		for i := range int(rec.NumRows()) {
			fields = append(fields, rec.Column(0).ValueStr(i))
			rates = append(rates, rec.Column(1).ValueStr(i))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fields[0] != testLayout.String() || rates[0] != "25" {
		t.Errorf("row keeps fields %q and sampling rate %s", fields[0], rates[0])
	}
}
