package cloudfront_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/qoslake/qoslake/ingest/cloudfront"
)

// realWorld holds CloudFront logs from public projects, kept as found
// (see its README). They are read in place, never copied here.
const realWorld = "../../../shared/samples/real-world/"

// absent is what field returns for a column a short line lacks.
const absent = "<absent>"

type wantRow struct {
	line    int64
	missing int
	fields  map[string]string // a few key fields, by #Fields name, as written
}

type wantReject struct {
	line   int64
	reason string
	detail string // a substring of the detail
}

// field is a line's value of a named column, split as silver splits it.
func field(t *testing.T, l cloudfront.Line, name string) string {
	t.Helper()
	i := l.Header.Index(name)
	if i < 0 {
		t.Fatalf("line %d: header has no %s", l.Number, name)
	}
	f := cloudfront.Split(l.Text, nil)
	if i >= len(f) {
		return absent
	}
	return f[i]
}

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(realWorld + name)
	if err != nil {
		t.Skip("real-world samples not present:", err)
	}
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := out.ReadFrom(zr); err != nil {
			t.Fatal(err)
		}
		b = out.Bytes()
	}
	return b
}

// realWorldCases states, for every file of the samples folder, the rows
// and rejects of the reader.
var realWorldCases = []struct {
	file           string
	names          int    // fields in the rows' Header
	raw            string // the rows' Header.Raw, when checked
	assumed        bool   // the rows' Header was synthesized (no #Fields)
	noFinalNewline bool
	rows           []wantRow
	rejects        []wantReject
	err            string // a *FormatError containing this, or "" for none
}{
	{
		file:  "angelochecked-blog-cloudfront-logs-report-logshape_test.log",
		names: 33, raw: cloudfront.Layout33,
		rows: []wantRow{
			{3, 0, map[string]string{"sc-status": "302", "time-taken": "0.382", "x-edge-result-type": "Miss", "sc-content-type": "text/html;%20charset=utf-8"}},
			{5, 0, map[string]string{"c-ip": "107.151.187.202", "x-edge-location": "LAX54-P2", "x-edge-result-type": "Hit"}},
			{6, 0, map[string]string{"x-edge-result-type": "RefreshHit", "time-taken": "0.298"}},
			{7, 0, map[string]string{"c-ip": "128.14.159.252", "time-taken": "0.000"}},
			{8, 0, map[string]string{"c-ip": "128.14.159.251"}},
			// Bot user agents keep their literal '+'.
			{9, 0, map[string]string{"cs(User-Agent)": "Mozilla/5.0%20(compatible;%20DotBot/1.2;%20+https://opensiteexplorer.org/dotbot;%20help@moz.com)", "sc-content-len": "69"}},
			{10, 0, map[string]string{"sc-status": "301", "cs-protocol": "http", "ssl-protocol": "-", "x-edge-result-type": "Redirect", "sc-range-end": "-"}},
		},
		// The tab between sc-status and cs(Referer) is missing: every
		// later column is shifted by one.
		rejects: []wantReject{{4, cloudfront.ReasonShiftedColumns, `32 of 33 fields, and sc-status "200https://angeloceccato.it/graph" is not a three-digit status`}},
	},
	{
		file:  "aws-solutions-centralized-logging-with-opensearch-test-cloudfront.log",
		names: 33, raw: cloudfront.Layout33, noFinalNewline: true,
		rows: []wantRow{
			// Status 200 with result type Error: the viewer hung up.
			{3, 0, map[string]string{"sc-status": "200", "x-edge-result-type": "Error", "x-edge-detailed-result-type": "Error", "time-taken": "0.834", "cs-protocol-version": "HTTP/2.0"}},
			{4, 0, map[string]string{"cs-bytes": "82", "time-taken": "1.044", "sc-range-end": "-"}},
		},
	},
	{
		// Synthetic: decimal sc-content-len, unencoded spaces in user
		// agents, a leading space in fle-encrypted-fields. Full-count lines
		// are not judged by their values: they are kept, and silver reports
		// the values it cannot type.
		file:  "aws-solutions-centralized-logging-with-opensearch-microbatch-cloudfront.log.gz",
		names: 33, raw: cloudfront.Layout33, noFinalNewline: true,
		rows: []wantRow{
			{3, 0, map[string]string{
				"cs(User-Agent)":       "Mozilla/5.0 (iPad; CPU iPad OS 12_4_8 like Mac OS X) AppleWebKit/532.2 (KHTML, like Gecko) FxiOS/13.9n5321.0 Mobile/11T585 Safari/532.2",
				"sc-content-len":       "570129.7648412298",
				"fle-encrypted-fields": " -",
				"cs-protocol":          "ws",
				"time-taken":           "1.1000590226167435",
			}},
			{4, 0, map[string]string{"x-edge-location": "LHR3-C1", "sc-content-len": "677955.7753429408", "cs(User-Agent)": "Mozilla/5.0 (compatible; MSIE 5.0; Windows NT 5.01; Trident/4.1)"}},
		},
	},
	{
		// Rows separated by spaces, as the 2018 docs rendered them; the
		// header ends with a space.
		file:  "awsdocs-cloudfront-devguide-AccessLogs-example-2018-26fields-spaces.log",
		names: 26, raw: cloudfront.Layout26,
		rows: []wantRow{
			{3, 0, map[string]string{"x-edge-location": "FRA2", "cs(Referer)": "www.displaymyfiles.com", "cs(User-Agent)": "Mozilla/4.0%20(compatible;%20MSIE%205.0b1;%20Mac_PowerPC)", "cs-uri-query": "-", "cs(Cookie)": "zip=98101", "cs-bytes": "-", "fle-status": "Processed", "fle-encrypted-fields": "1"}},
			{4, 0, map[string]string{"sc-bytes": "2390282", "sc-status": "304", "cs-uri-query": "a=b&c=d", "x-edge-result-type": "Hit", "fle-status": "-", "fle-encrypted-fields": "-"}},
		},
	},
	{
		// A real-time log record under a #Fields line its author made up:
		// no date or time field, so not a standard log. Nothing is read.
		file: "claygregory-node-cloudfront-log-parser-kinesis-1-0.txt",
		err:  "#Fields has timestamp but no date field: a CloudFront real-time log layout, not a standard log",
	},
	{
		file:           "claygregory-node-cloudfront-log-parser-rtmp-1-0.txt",
		noFinalNewline: true,
		rejects:        []wantReject{{3, "rtmp_log", "RTMP"}, {4, "rtmp_log", "RTMP"}, {5, "rtmp_log", "RTMP"}, {6, "rtmp_log", "RTMP"}, {7, "rtmp_log", "RTMP"}, {8, "rtmp_log", "RTMP"}},
	},
	{
		// Tabs inside "#Version:\t1.0" and "#Fields:\tdate\ttime...": Raw
		// keeps them. Line 5 ends with a tab and no newline. User agents
		// are double-encoded (%2520).
		file:  "claygregory-node-cloudfront-log-parser-web-1-0-2019-12.txt",
		names: 33, raw: strings.ReplaceAll(cloudfront.Layout33, " ", "\t"), noFinalNewline: true,
		rows: []wantRow{
			{3, 0, map[string]string{"x-edge-request-id": "SOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==", "cs(User-Agent)": "Mozilla/5.0%2520(Windows%2520NT%252010.0;%2520Win64;%2520x64)%2520AppleWebKit/537.36%2520(KHTML,%2520like%2520Gecko)%2520Chrome/78.0.3904.108%2520Safari/537.36"}},
			{4, 0, map[string]string{"x-edge-request-id": "k6WGMNkEzR5BEM_SaF47gjtX9zBDO2m349OY2an0QPEaUum1ZOLrow==", "time-taken": "0.000"}},
			{5, 0, map[string]string{"x-edge-request-id": "f37nTMVvnKvV2ZSvEsivup_c2kZ7VXzYdjC-GUQZ5qNs-89BlWazbw==", "sc-content-len": "78", "sc-range-end": "-"}},
		},
	},
	{
		// The 24-field layout; cs-bytes "-"; double-encoded user agents.
		file:  "claygregory-node-cloudfront-log-parser-web-1-0.txt",
		names: 24, raw: cloudfront.Layout24, noFinalNewline: true,
		rows: []wantRow{
			{3, 0, map[string]string{"cs-bytes": "-", "x-edge-result-type": "RefreshHit", "cs-protocol-version": "HTTP/1.1", "cs(User-Agent)": "Mozilla/5.0%2520(iPhone;%2520CPU%2520iPhone%2520OS%252010_2_1%2520like%2520Mac%2520OS%2520X)%2520AppleWebKit/602.4.6%2520(KHTML,%2520like%2520Gecko)%2520Version/10.0%2520Mobile/14D27%2520Safari/602.1"}},
			{4, 0, map[string]string{"sc-status": "304", "cs-uri-query": "a=b&c=d", "time-taken": "0.002", "cs-protocol-version": "HTTP/1.1"}},
		},
	},
	{
		// Real-time log records (40 fields, epoch seconds, no header) are
		// a different product: not read here.
		file: "datadog-cloudfront-pipeline-realtime-samples.log",
		err:  "line 1: 40 fields starting with an epoch time: a CloudFront real-time log record",
	},
	{
		// A JSON array of samples is not a log.
		file: "datadog-cloudfront-pipeline-samples.json",
		err:  "line 1: data before any #Fields header",
	},
	{
		// No header: the first line's 33 fields name the current layout.
		// Line 2 is a docs line mangled into tabs and runs of spaces.
		file:  "datadog-cloudfront-pipeline-web-samples.log",
		names: 33, raw: cloudfront.Layout33, assumed: true,
		rows: []wantRow{
			{1, 0, map[string]string{"cs-method": "POST", "sc-status": "401", "cs(User-Agent)": "NetSuite/2019.2%2520(SuiteScript)", "sc-content-type": "application/json"}},
		},
		rejects: []wantReject{{2, cloudfront.ReasonFieldCount, "2 fields, the assumed standard layout has 33"}},
	},
	{
		file:  "linz-basemaps-lambda-analytics-file.process.test-ExampleLogs.log",
		names: 33, raw: cloudfront.Layout33,
		rows: []wantRow{
			{4, 0, map[string]string{"c-ip": "255.255.255.4", "cs-uri-query": "api=${DevApiKey}&foo=bar", "time-taken": "1.791", "time-to-first-byte": "0.028"}},
			{5, 0, map[string]string{"x-edge-result-type": "Miss", "sc-content-len": "20797"}},
			// The last two fields are missing: kept, as Athena reads it.
			{6, 2, map[string]string{"cs(User-Agent)": "Mozilla/5.0%20QGIS/31006", "sc-content-type": "text/xml", "sc-content-len": "-", "sc-range-start": absent, "sc-range-end": absent}},
		},
		// fle-status and fle-encrypted-fields merged into "--": c-port
		// holds time-to-first-byte's value.
		rejects: []wantReject{{3, cloudfront.ReasonShiftedColumns, `32 of 33 fields, and c-port "0.049" is not a whole number or -`}},
	},
}

func TestRealWorldFiles(t *testing.T) {
	for _, tc := range realWorldCases {
		t.Run(tc.file, func(t *testing.T) {
			data := readSample(t, tc.file)
			if got := !bytes.HasSuffix(data, []byte("\n")); got != tc.noFinalNewline {
				t.Errorf("no final newline = %v, the case says %v", got, tc.noFinalNewline)
			}
			res := readAll(bytes.NewReader(data))
			if (res.err == nil) != (tc.err == "") || res.err != nil && !strings.Contains(res.err.Error(), tc.err) {
				t.Errorf("err = %v, want %q", res.err, tc.err)
			}
			checkRows(t, res.lines, tc.rows, tc.names, tc.raw, tc.assumed)
			checkRejects(t, res.rejects, tc.rejects)
		})
	}
}

func checkRows(t *testing.T, got []cloudfront.Line, want []wantRow, names int, raw string, assumed bool) {
	t.Helper()
	if len(got) != len(want) {
		var nums []int64
		for _, l := range got {
			nums = append(nums, l.Number)
		}
		t.Fatalf("rows at lines %v, want %d rows", nums, len(want))
	}
	for i, w := range want {
		l := got[i]
		if l.Number != w.line || l.Missing != w.missing {
			t.Errorf("row %d: line %d missing %d, want line %d missing %d", i, l.Number, l.Missing, w.line, w.missing)
		}
		h := l.Header
		if len(h.Names) != names || raw != "" && h.Raw != raw || h.Assumed != assumed {
			t.Errorf("line %d: header of %d names, assumed %v, raw %q", l.Number, len(h.Names), h.Assumed, h.Raw)
		}
		// Silver re-reads the stored header and splits the stored line:
		// both must give what the reader saw.
		if again, err := cloudfront.ParseHeader(h.Raw); err != nil || !slices.Equal(again.Names, h.Names) {
			t.Errorf("line %d: ParseHeader(Raw) = %v, %v", l.Number, again, err)
		}
		if n := len(cloudfront.Split(l.Text, nil)); n != len(h.Names)-l.Missing {
			t.Errorf("line %d: Split gives %d fields, the reader saw %d", l.Number, n, len(h.Names)-l.Missing)
		}
		for name, v := range w.fields {
			if g := field(t, l, name); g != v {
				t.Errorf("line %d %s = %q, want %q", l.Number, name, g, v)
			}
		}
	}
}

func checkRejects(t *testing.T, got []*cloudfront.LineError, want []wantReject) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("rejects %v, want %d", got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Number != w.line || g.Reason != w.reason || !strings.Contains(g.Detail, w.detail) || len(g.Raw) == 0 {
			t.Errorf("reject %d = line %d %s %q (raw %d bytes), want line %d %s %q", i, g.Number, g.Reason, g.Detail, len(g.Raw), w.line, w.reason, w.detail)
		}
	}
}

// TestRealWorldFilesAllStated fails when a sample file has no case above.
func TestRealWorldFilesAllStated(t *testing.T) {
	entries, err := os.ReadDir(realWorld)
	if err != nil {
		t.Skip("real-world samples not present:", err)
	}
	stated := map[string]bool{}
	for _, tc := range realWorldCases {
		stated[tc.file] = true
	}
	for _, e := range entries {
		if e.Name() != "README.md" && !stated[e.Name()] {
			t.Errorf("%s has no case in realWorldCases", e.Name())
		}
	}
}

// TestRealWorldJSONSamples reads each string of Datadog's sample array
// as an object of its own.
func TestRealWorldJSONSamples(t *testing.T) {
	var samples []string
	if err := json.Unmarshal(readSample(t, "datadog-cloudfront-pipeline-samples.json"), &samples); err != nil {
		t.Fatal(err)
	}
	if len(samples) != 5 {
		t.Fatalf("%d samples", len(samples))
	}
	for i, tc := range []struct {
		name    string
		rows    []wantRow
		rejects []wantReject
		err     string
	}{
		// Tab+space separators and a zero-width space: still RTMP.
		{name: "rtmp", rejects: []wantReject{{1, cloudfront.ReasonRTMP, "RTMP"}}},
		{name: "web 33 fields", rows: []wantRow{{1, 0, map[string]string{"sc-status": "401", "x-edge-result-type": "Error", "time-to-first-byte": "0.067"}}}},
		{name: "mangled docs line", err: "this line has 2"},
		{name: "real-time 1", err: "40 fields starting with an epoch time"},
		{name: "real-time 2", err: "40 fields starting with an epoch time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := readAll(strings.NewReader(samples[i]))
			if (res.err == nil) != (tc.err == "") || res.err != nil && !strings.Contains(res.err.Error(), tc.err) {
				t.Errorf("err = %v, want %q", res.err, tc.err)
			}
			checkRows(t, res.lines, tc.rows, 33, cloudfront.Layout33, true)
			checkRejects(t, res.rejects, tc.rejects)
		})
	}
}
