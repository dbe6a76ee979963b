package cloudfront_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qoslake/qoslake/ingest/cloudfront"
)

var launch40 = cloudfront.RealtimeFields[:cloudfront.RealtimeLaunchFields]

func layout(t *testing.T, names []string) *cloudfront.RealtimeLayout {
	t.Helper()
	l, err := cloudfront.NewRealtimeLayout(names)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The two real real-time records (2020, 40 fields, no header) parse with
// the 40-field layout their writer configured, which is the header the
// claygregory fixture's author put above its record.
func TestRealWorldRealtimeRecordsParseWithTheLaunchLayout(t *testing.T) {
	header := string(readSample(t, "claygregory-node-cloudfront-log-parser-kinesis-1-0.txt"))
	var fieldsLine string
	for line := range strings.SplitSeq(header, "\n") {
		if v, ok := strings.CutPrefix(line, "#Fields:"); ok {
			fieldsLine = v
		}
	}
	if got := strings.Fields(fieldsLine); !slices.Equal(got, launch40) {
		t.Fatalf("the fixture's #Fields is not the first %d documented fields:\n%v", cloudfront.RealtimeLaunchFields, got)
	}
	l, err := cloudfront.ParseRealtimeLayout(strings.Join(strings.Fields(fieldsLine), ","))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	data := readSample(t, "datadog-cloudfront-pipeline-realtime-samples.log")
	recs, rejects := l.ParseRealtime(data, now, cloudfront.DefaultRealtimeLimits)
	if len(rejects) != 0 || len(recs) != 2 {
		t.Fatalf("%d records, rejects %+v; want 2 records", len(recs), rejects)
	}
	want := []struct {
		at         time.Time
		edge, id   string
		status, ms string
	}{
		{time.UnixMilli(1600299221087).UTC(), "SEA19-C2", "eRwgLa8bR0pQBnbTFt_jIVY77WAfmcRuE980cPpEpGBcxrM6rq97vw==", "304", "0.140"},
		{time.UnixMilli(1600020865895).UTC(), "SFO20-C1", "eR3FzjDcwV6Pq1BLuTy94PN9BicI_one9B4tC4ECGWrVfX4UsSBq_Q==", "200", "0.237"},
	}
	for i, w := range want {
		r := recs[i]
		f := cloudfront.SplitRealtime(r.Text, nil)
		if !r.Time.Equal(w.at) || l.Get(f, "x-edge-location") != w.edge || l.Get(f, "x-edge-request-id") != w.id ||
			l.Get(f, "sc-status") != w.status || l.Get(f, "time-taken") != w.ms {
			t.Errorf("record %d: time %s edge %s id %s status %s time-taken %s", i, r.Time, l.Get(f, "x-edge-location"),
				l.Get(f, "x-edge-request-id"), l.Get(f, "sc-status"), l.Get(f, "time-taken"))
		}
		if l.Get(f, "fle-status") != "" {
			t.Errorf("record %d: a - reads %q, want empty", i, l.Get(f, "fle-status"))
		}
	}

	// The fixture's own record, below its header, reads too.
	var body []string
	for line := range strings.SplitSeq(header, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			body = append(body, line)
		}
	}
	recs, rejects = l.ParseRealtime([]byte(strings.Join(body, "\n")), now, cloudfront.DefaultRealtimeLimits)
	if len(recs) != 1 || len(rejects) != 0 || recs[0].Time.UnixMilli() != 1607374321541 {
		t.Errorf("claygregory record: %+v rejects %+v", recs, rejects)
	}

	// With the default layout (every field of today) the same records
	// are rejected, naming both counts.
	_, rejects = layout(t, cloudfront.RealtimeFields).ParseRealtime(data, now, cloudfront.DefaultRealtimeLimits)
	if len(rejects) != 2 || rejects[0].Reason != cloudfront.ReasonFieldCount ||
		!strings.Contains(rejects[0].Detail, "40 fields") || !strings.Contains(rejects[0].Detail, "names 66") {
		t.Errorf("default layout on 40-field records: %+v", rejects)
	}
}

func TestRealtimeRecordsAreJudgedOneByOne(t *testing.T) {
	l := layout(t, []string{"timestamp", "c-ip", "sc-status", "sc-bytes", "x-edge-request-id", "time-taken", "cmcd-encoded-bitrate"})
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	rec := func(ts, status, bytes, taken, br string) string {
		return strings.Join([]string{ts, "192.0.2.1", status, bytes, "id==", taken, br}, "\t")
	}
	good := rec("1772452800.123", "200", "1024", "0.014", "3000")
	cases := []struct {
		name, data string
		reason     string
		detail     string
	}{
		{"good", good + "\n", "", ""},
		{"no final newline, CRLF elsewhere", good, "", ""},
		{"status 000 (viewer hung up) and - for numbers", rec("1772452800.123", "000", "-", "-", "-"), "", ""},
		{"a player's CMCD value is silver's concern", rec("1772452800.123", "200", "1", "0.1", "fast"), "", ""},
		{"seconds without a fraction", rec("1772452800", "200", "1", "0.1", "1"), "", ""},
		{"one field too few", strings.Join(strings.Split(good, "\t")[:6], "\t"), cloudfront.ReasonFieldCount, "6 fields"},
		{"one field too many", good + "\t-", cloudfront.ReasonFieldCount, "8 fields"},
		{"timestamp in ms", rec("1772452800123", "200", "1", "0.1", "1"), cloudfront.ReasonBadTimestamp, "not epoch seconds"},
		{"timestamp as a date", rec("2026-03-02T12:00:00Z", "200", "1", "0.1", "1"), cloudfront.ReasonBadTimestamp, "not epoch seconds"},
		{"timestamp with a trailing dot", rec("1772452800.", "200", "1", "0.1", "1"), cloudfront.ReasonBadTimestamp, "not epoch seconds"},
		{"timestamp negative", rec("-1772452800.1", "200", "1", "0.1", "1"), cloudfront.ReasonBadTimestamp, "not epoch seconds"},
		{"timestamp before 2000", rec("915148800.000", "200", "1", "0.1", "1"), cloudfront.ReasonBadTimestamp, "before 2000"},
		{"timestamp days ahead", rec("1772712000.000", "200", "1", "0.1", "1"), cloudfront.ReasonBadTimestamp, "ahead"},
		{"status not a status", rec("1772452800.1", "2OO", "1", "0.1", "1"), cloudfront.ReasonBadNumber, "sc-status"},
		{"bytes not a number", rec("1772452800.1", "200", "1k", "0.1", "1"), cloudfront.ReasonBadNumber, "sc-bytes"},
		{"seconds not a number", rec("1772452800.1", "200", "1", "fast", "1"), cloudfront.ReasonBadNumber, "time-taken"},
		{"empty", "\n", cloudfront.ReasonEmptyRecord, ""},
		{"not UTF-8", rec("1772452800.1", "200", "1", "0.1", "\xff"), cloudfront.ReasonInvalidUTF8, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs, rejects := l.ParseRealtime([]byte(c.data), now, cloudfront.DefaultRealtimeLimits)
			if c.reason == "" {
				if len(rejects) != 0 || len(recs) != 1 {
					t.Fatalf("records %+v rejects %+v, want one record", recs, rejects)
				}
				return
			}
			if len(recs) != 0 || len(rejects) != 1 || rejects[0].Reason != c.reason || !strings.Contains(rejects[0].Detail, c.detail) {
				t.Fatalf("records %+v rejects %+v, want %s (%s)", recs, rejects, c.reason, c.detail)
			}
			if len(rejects[0].Raw) == 0 {
				t.Error("the reject keeps no raw bytes")
			}
		})
	}

	// Lines of one Kinesis record are records of their own; a bad one is
	// rejected alone, by its index.
	recs, rejects := l.ParseRealtime([]byte(good+"\n"+rec("x", "200", "1", "0.1", "1")+"\r\n"+good+"\n"), now, cloudfront.DefaultRealtimeLimits)
	if len(recs) != 2 || recs[0].Index != 0 || recs[1].Index != 2 || len(rejects) != 1 || rejects[0].Index != 1 {
		t.Errorf("three lines: records %+v rejects %+v", recs, rejects)
	}
	big := cloudfront.DefaultRealtimeLimits
	big.MaxRecordBytes = 16
	if _, rejects := l.ParseRealtime([]byte(good), now, big); len(rejects) != 1 || rejects[0].Reason != cloudfront.ReasonOversizedRecord || rejects[0].Index != -1 {
		t.Errorf("oversized: %+v", rejects)
	}
	if got := rec("1772452800.123", "200", "1", "0.1", "1"); !strings.HasPrefix(got, "1772452800.123\t") {
		t.Fatal(got)
	}
	if ts, err := cloudfront.EpochTime("1772452800.5"); err != nil || ts.UnixMilli() != 1772452800500 {
		t.Errorf("EpochTime(1772452800.5) = %s, %v", ts, err)
	}
}

func TestRealtimeLayoutIsChecked(t *testing.T) {
	cases := []struct {
		list string
		err  string // "" for a valid list
	}{
		{strings.Join(cloudfront.RealtimeFields, ","), ""},
		{"timestamp, c-ip ,sc-status", ""},
		{"timestamp,c-ip,s-ip,sc-status", ""}, // a field qoslake does not know yet
		{"", "no fields"},
		{"c-ip,sc-status", "no timestamp"},
		{"timestamp,c-ip,c-ip", "named twice"},
		{"c-ip,timestamp", "timestamp is named after c-ip"},
		{"timestamp,cmcd-version,cmcd-session-id", "cmcd-session-id is named after cmcd-version"},
	}
	for _, c := range cases {
		l, err := cloudfront.ParseRealtimeLayout(c.list)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.list, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want one saying %q", c.list, err, c.err)
		case c.err == "" && strings.Count(l.String(), ",") != strings.Count(c.list, ","):
			t.Errorf("%q: String() = %q", c.list, l.String())
		}
	}
	l := layout(t, []string{"timestamp", "c-ip", "s-ip", "sc-status"})
	if !slices.Equal(l.Unknown(), []string{"s-ip"}) || l.Index("sc-status") != 3 || l.Index("asn") != -1 {
		t.Errorf("unknown %v, sc-status at %d, asn at %d", l.Unknown(), l.Index("sc-status"), l.Index("asn"))
	}
}
