package silver_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/qoslake/qoslake/anonymize"
	"github.com/qoslake/qoslake/bronze"
	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/lake"
	"github.com/qoslake/qoslake/silver"
)

// A real record of 2020 (40 fields) types like its standard-log twin: the
// query string CloudFront's real-time cs-uri-stem includes goes to
// uri_query, the client address is truncated and looked up in full, the
// user agent decoded; a record without CMCD has its CMCD columns null.
func TestRealtimeRecordTyping(t *testing.T) {
	data, err := os.ReadFile("../../shared/samples/real-world/datadog-cloudfront-pipeline-realtime-samples.log")
	if err != nil {
		t.Skip("real-world samples not present:", err)
	}
	geo := &fakeGeo{}
	tr := &silver.Transformer{Pseudonyms: anonymize.NewPseudonymizer(anonymize.DemoKey), Geo: geo}
	l, err := cloudfront.NewRealtimeLayout(cloudfront.RealtimeFields[:cloudfront.RealtimeLaunchFields])
	if err != nil {
		t.Fatal(err)
	}
	record := strings.SplitN(string(data), "\n", 2)[1]
	record = strings.TrimSpace(record)
	row, probs, _ := tr.RealtimeRecord(l, record, time.UnixMilli(1600020865895).UTC(), 5, nil)
	if len(probs) != 0 {
		t.Errorf("problems %v", probs)
	}
	if row.LogSource != silver.LogRealtime || row.SamplingRate != 5 || row.EdgeLocation != "SFO20-C1" || row.POP != "SFO" ||
		*row.Status != 200 || *row.SCBytes != 31126 || *row.TimeTaken != 237 || *row.TTFB != 168 || row.EdgeResult != "Miss" ||
		row.EdgeRequestID != "eR3FzjDcwV6Pq1BLuTy94PN9BicI_one9B4tC4ECGWrVfX4UsSBq_Q==" || row.Host != "preview.dashcon.io" ||
		row.URIStem != "/michaelw/real-time-logs-all_fields/2020/font/CalibreWeb-Medium.woff2" || row.ProtocolVersion != "HTTP/2.0" ||
		*row.ClientPort != 51179 || row.ContentType != "font/woff2" || *row.ContentLength != 30736 {
		t.Errorf("row %+v", row)
	}
	if row.IP != "67.183.143.0" || len(geo.asked) != 1 || geo.asked[0].String() != "67.183.143.147" || row.Country != "DE" {
		t.Errorf("client %+v, looked up %v", row.Client, geo.asked)
	}
	if !strings.HasPrefix(row.UserAgent, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_6)") {
		t.Errorf("user agent %q", row.UserAgent)
	}
	if row.SessionID != "" || row.BufferStarvation != nil || row.Startup != nil || row.EncodedBitrate != nil {
		t.Errorf("CMCD of a record without any: %+v", row.CMCD)
	}

	// The query string of a real-time stem.
	q, err := cloudfront.ParseRealtimeLayout("timestamp,cs-uri-stem,cs-uri-query")
	if err != nil {
		t.Fatal(err)
	}
	row, _, _ = tr.RealtimeRecord(q, "1600020865.895\t/seg_1.ts?token=abc\t-", time.Time{}, 100, nil)
	if row.URIStem != "/seg_1.ts" || row.URIQuery != "token=abc" {
		t.Errorf("stem %q query %q", row.URIStem, row.URIQuery)
	}
}

var cmcdLayout = func() *cloudfront.RealtimeLayout {
	l, err := cloudfront.ParseRealtimeLayout("timestamp,c-ip,sc-status,x-edge-location,x-edge-request-id,time-taken," +
		"cmcd-encoded-bitrate,cmcd-buffer-length,cmcd-buffer-starvation,cmcd-content-id,cmcd-object-duration,cmcd-deadline," +
		"cmcd-measured-throughput,cmcd-next-object-request,cmcd-next-range-request,cmcd-object-type,cmcd-playback-rate," +
		"cmcd-requested-maximum-throughput,cmcd-streaming-format,cmcd-session-id,cmcd-stream-type,cmcd-startup," +
		"cmcd-top-bitrate,cmcd-version")
	if err != nil {
		panic(err)
	}
	return l
}()

// cmcdRecord is a record of cmcdLayout with the given CMCD values (in the
// layout's order from cmcd-encoded-bitrate on).
func cmcdRecord(id string, cmcd ...string) string {
	return strings.Join(append([]string{"1772452800.250", "10.1.2.3", "200", "FRA56-P3", id, "0.020"}, cmcd...), "\t")
}

// CMCD values are typed in their keys' units (CTA-5004): strings lose
// their quotes and URL encoding, tokens are lower-cased, booleans absent
// from a record that carries CMCD read false; a value of the wrong type is
// left empty and reported, the row kept.
func TestCMCDTyping(t *testing.T) {
	tr := &silver.Transformer{Pseudonyms: anonymize.NewPseudonymizer(anonymize.DemoKey)}
	rec := cmcdRecord("r1==", "2400", "12300", "true", "%22bigbuckbunny%22", "4000", "9800", "25600", "..%2F480p%2Fseg_00012.ts",
		"-", "V", "1", "4800", "H", "6e2fb550-c457-11e9-bb97-0800200c9a66", "v", "-", "7800", "1")
	row, probs, _ := tr.RealtimeRecord(cmcdLayout, rec, time.Time{}, 100, nil)
	if len(probs) != 0 {
		t.Fatalf("problems %v", probs)
	}
	c := row.CMCD
	if *c.EncodedBitrate != 2400 || *c.BufferLength != 12300 || !*c.BufferStarvation || c.ContentID != "bigbuckbunny" ||
		*c.ObjectDuration != 4000 || *c.Deadline != 9800 || *c.MeasuredThroughput != 25600 || c.NextObjectRequest != "../480p/seg_00012.ts" ||
		c.NextRangeRequest != "" || c.ObjectType != "v" || *c.PlaybackRate != 1 || *c.RequestedMaxThroughput != 4800 ||
		c.StreamFormat != "h" || c.SessionID != "6e2fb550-c457-11e9-bb97-0800200c9a66" || c.StreamType != "v" ||
		*c.Startup || *c.TopBitrate != 7800 || *c.Version != 1 {
		t.Errorf("CMCD %+v", c)
	}

	rec = cmcdRecord("r2==", "fast", "-", "maybe", "-", "-", "-", "-", "-", "-", "-", "-1", "-", "-", "-", "-", "1", "-", "-")
	row, probs, _ = tr.RealtimeRecord(cmcdLayout, rec, time.Time{}, 100, nil)
	if got := fields(probs); got != "cmcd-encoded-bitrate,cmcd-buffer-starvation,cmcd-playback-rate" {
		t.Errorf("problems %q", got)
	}
	if row.EncodedBitrate != nil || row.BufferStarvation != nil || row.PlaybackRate != nil || !*row.Startup || row.EdgeLocation != "FRA56-P3" {
		t.Errorf("bad values: %+v", row.CMCD)
	}
}

// cdnPipeline is the CDN stage over both bronze tables, on its own catalog
// connection (as a separate process would have).
type cdnPipeline struct {
	logs, realtime, silver, sightings *lake.Table
	stage                             *silver.Stage
}

func openCDN(t *testing.T, dir string) cdnPipeline {
	t.Helper()
	l, err := lake.Open(t.Context(), lake.Options{URI: filepath.Join(dir, "c.db"), Warehouse: filepath.Join(dir, "w")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var ts []*lake.Table
	for _, d := range []lake.TableDef{bronze.CDNLogsTable, bronze.CDNRealtimeTable, silver.CDNLogsTable, silver.CDNSightingsTable} {
		tbl, err := l.Ensure(t.Context(), d)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tbl)
	}
	p := cdnPipeline{logs: ts[0], realtime: ts[1], silver: ts[2], sightings: ts[3]}
	p.stage = &silver.Stage{
		Kind: silver.CDN, Bronze: p.logs, Realtime: p.realtime, Silver: p.silver, Sightings: p.sightings, Lateness: time.Hour,
		Transformer: &silver.Transformer{Pseudonyms: anonymize.NewPseudonymizer(anonymize.DemoKey)},
	}
	return p
}

const stdFields = "date time x-edge-location sc-bytes c-ip cs-method x-edge-request-id time-taken"

// commitLines commits standard log lines, one per request id, to bronze.
func (p cdnPipeline) commitLines(t *testing.T, at time.Time, ids ...string) {
	t.Helper()
	r, err := p.logs.NewRows()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	for i, id := range ids {
		r.Time("log_time", at.Truncate(time.Second))
		r.String("bucket", "b")
		r.String("object_key", "k.gz")
		r.String("etag", "e")
		r.Int64("line_number", int64(i+1))
		r.String("fields", stdFields)
		r.String("line", strings.Join([]string{at.Format("2006-01-02"), at.Format("15:04:05"), "FRA56-P3", "1000", "10.1.2.3", "GET", id, "0.020"}, "\t"))
		r.Time("ingest_time", time.Now())
	}
	commit(t, p.logs, r)
}

// commitRecords commits real-time records, one per request id, to bronze.
func (p cdnPipeline) commitRecords(t *testing.T, at time.Time, ids ...string) {
	t.Helper()
	r, err := p.realtime.NewRows()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	for i, id := range ids {
		r.Time("log_time", at)
		r.String("fields", cmcdLayout.String())
		r.String("record", cmcdRecord(id, "2400", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "sess", "-", "-", "-", "-"))
		r.Int32("sampling_rate", 50)
		r.String("stream", "rt")
		r.String("shard_id", "shard-0")
		r.String("sequence_number", fmt.Sprint(i))
		r.Int32("sub_sequence", 0)
		r.Int32("record_index", 0)
		r.NullableString("partition_key", "")
		r.Time("arrival_time", at)
		r.Time("ingest_time", time.Now())
	}
	commit(t, p.realtime, r)
}

func commit(t *testing.T, tbl *lake.Table, r *lake.Rows) {
	t.Helper()
	b := r.Batch()
	defer b.Release()
	if _, err := tbl.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.Commit(t.Context(), lake.Batch{Records: []arrow.RecordBatch{b}}); err != nil {
		t.Fatal(err)
	}
}

// requests reads a silver table's edge_request_id|log_source, sorted.
func requests(t *testing.T, tbl *lake.Table) []string {
	t.Helper()
	if _, err := tbl.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	var out []string
	err := tbl.Scan(t.Context(), lake.ScanOptions{Fields: []string{"edge_request_id", "log_source"}}, func(r arrow.RecordBatch) error {
		for i := range int(r.NumRows()) {
			col := func(name string) string { return r.Column(r.Schema().FieldIndices(name)[0]).ValueStr(i) }
			out = append(out, col("edge_request_id")+"|"+col("log_source"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func (p cdnPipeline) drain(t *testing.T) {
	t.Helper()
	if err := p.stage.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func (p cdnPipeline) check(t *testing.T, step string, rows, sightings []string) {
	t.Helper()
	if got := requests(t, p.silver); !slices.Equal(got, rows) {
		t.Errorf("%s: silver.cdn_logs\n got %v\nwant %v", step, got, rows)
	}
	if got := requests(t, p.sightings); !slices.Equal(got, sightings) {
		t.Errorf("%s: silver.cdn_sightings\n got %v\nwant %v", step, got, sightings)
	}
}

// A request carried by both log kinds is one row of silver.cdn_logs, typed
// from the record silver read first (the real-time one when both come in
// one increment), and its other record a sighting; a repeated record of
// either kind is a duplicate, also after a restart.
func TestRequestInBothLogKindsIsOneRow(t *testing.T) {
	dir := t.TempDir()
	p := openCDN(t, dir)
	at := time.Now().UTC().Add(-time.Minute)

	p.commitRecords(t, at, "x==", "y==")
	p.drain(t)
	p.check(t, "real-time first", []string{"x==|realtime", "y==|realtime"}, nil)

	p.commitLines(t, at, "x==", "z==")
	p.drain(t)
	p.check(t, "then standard", []string{"x==|realtime", "y==|realtime", "z==|standard"}, []string{"x==|standard"})

	// Both kinds in one increment: the real-time record makes the row.
	p.commitLines(t, at, "w==")
	p.commitRecords(t, at, "w==", "z==")
	p.drain(t)
	p.check(t, "one increment", []string{"w==|realtime", "x==|realtime", "y==|realtime", "z==|standard"},
		[]string{"w==|standard", "x==|standard", "z==|realtime"})

	// Repeats of either kind, to this stage and to a restarted one.
	p.commitLines(t, at, "x==", "w==")
	p.commitRecords(t, at, "y==")
	p.drain(t)
	restarted := openCDN(t, dir)
	restarted.commitLines(t, at, "z==", "x==")
	restarted.commitRecords(t, at, "w==", "x==")
	restarted.drain(t)
	restarted.check(t, "repeats", []string{"w==|realtime", "x==|realtime", "y==|realtime", "z==|standard"},
		[]string{"w==|standard", "x==|standard", "z==|realtime"})

	var rates []string
	if err := p.silver.Scan(t.Context(), lake.ScanOptions{Fields: []string{"log_source", "sampling_rate", "cmcd_session_id"}}, func(r arrow.RecordBatch) error {
		for i := range int(r.NumRows()) {
			rates = append(rates, r.Column(0).ValueStr(i)+":"+r.Column(1).ValueStr(i)+":"+r.Column(2).ValueStr(i))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(rates)
	if want := []string{"realtime:50:sess", "realtime:50:sess", "realtime:50:sess", "standard:100:(null)"}; !slices.Equal(rates, want) {
		t.Errorf("log_source:sampling_rate:cmcd_session_id = %v, want %v", rates, want)
	}
}

// An increment whose sightings landed and whose rows did not (the process
// failed between the two commits) is moved again whole: its rows land, its
// sightings do not land twice, by the same stage or by a restarted one.
func TestFailureBetweenSightingsAndRowsIsRepairedOnce(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			dir := t.TempDir()
			p := openCDN(t, dir)
			at := time.Now().UTC().Add(-time.Minute)
			p.commitLines(t, at, "a==")
			p.commitRecords(t, at, "a==", "b==")
			ctx, cancel := context.WithCancel(t.Context())
			silver.BeforeRowsCommit(p.stage, cancel)
			if _, err := p.stage.RunOnce(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("the rows commit did not fail: %v", err)
			}
			p.check(t, "after the failure", nil, []string{"a==|standard"})
			if restart {
				p = openCDN(t, dir)
			} else {
				silver.BeforeRowsCommit(p.stage, nil)
			}
			p.drain(t)
			p.check(t, "repaired", []string{"a==|realtime", "b==|realtime"}, []string{"a==|standard"})
		})
	}
}

// Two processes moving the same increment: one lands its sightings and
// rows, the other finds the positions moved and commits neither twice.
func TestTwoProcessesMoveOneIncrementOnce(t *testing.T) {
	dir := t.TempDir()
	a, b := openCDN(t, dir), openCDN(t, dir)
	at := time.Now().UTC().Add(-time.Minute)
	a.commitRecords(t, at, "m==")
	a.drain(t)
	b.drain(t) // b's memory now holds m's row
	a.commitLines(t, at, "m==", "n==")
	// b computes the increment and commits its sightings; before its rows
	// land, a moves the same increment whole.
	silver.BeforeRowsCommit(b.stage, func() { a.drain(t) })
	if err := b.stage.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	a.check(t, "both done", []string{"m==|realtime", "n==|standard"}, []string{"m==|standard"})
}
