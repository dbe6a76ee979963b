package cloudfront_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/simulate"
)

type result struct {
	lines   []cloudfront.Line
	rejects []*cloudfront.LineError
	err     error
}

func readAll(r io.Reader) result {
	var res result
	rd := cloudfront.NewReader(r, 64<<10)
	for {
		l, err := rd.Next()
		var le *cloudfront.LineError
		switch {
		case err == nil:
			res.lines = append(res.lines, l)
		case errors.As(err, &le):
			res.rejects = append(res.rejects, le)
		case errors.Is(err, io.EOF):
			return res
		default:
			res.err = err
			return res
		}
	}
}

func TestSampleLog(t *testing.T) {
	f, err := os.Open("../../../shared/samples/cloudfront-standard.log")
	if err != nil {
		t.Skip("shared samples not present:", err)
	}
	defer f.Close()
	res := readAll(f)
	if res.err != nil || len(res.rejects) != 0 || len(res.lines) != 4 {
		t.Fatalf("lines %d rejects %v err %v", len(res.lines), res.rejects, res.err)
	}
	l := res.lines[0]
	if l.Number != 3 || l.Time.Format("2006-01-02T15:04:05") != "2026-03-02T18:04:11" || len(l.Header.Names) != 33 {
		t.Errorf("first line = %d %s %d fields", l.Number, l.Time, len(l.Header.Names))
	}
	if l.Header.Index("x-edge-request-id") != 14 {
		t.Errorf("x-edge-request-id at %d", l.Header.Index("x-edge-request-id"))
	}
}

const hdr = "#Version: 1.0\n#Fields: date time x-edge-location c-ip\n"

func TestLinesAndRejects(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		lines   int
		reasons []string
		err     string
	}{
		{"good", hdr + "2026-03-02\t18:00:00\tFRA56-P3\t1.2.3.4\n", 1, nil, ""},
		{"trailing tab and CRLF", hdr + "2026-03-02\t18:00:00\tFRA56-P3\t1.2.3.4\t\r\n", 1, nil, ""},
		{"no final newline", hdr + "2026-03-02\t18:00:00\tFRA56-P3\t1.2.3.4", 1, nil, ""},
		{"other field order", "#Version: 1.0\n#Fields: c-ip time date\n1.2.3.4\t18:00:00\t2026-03-02\n", 1, nil, ""},
		{"field count", hdr + "2026-03-02\t18:00:00\tFRA56-P3\n2026-03-02\t18:00:01\tFRA56-P3\t1.2.3.4\n", 1, []string{"field_count_mismatch"}, ""},
		{"bad time", hdr + "2026-03-02\t25:00:00\tFRA56-P3\t1.2.3.4\n", 0, []string{"bad_log_time"}, ""},
		{"invalid utf-8", hdr + "2026-03-02\t18:00:00\tFRA\xff\t1.2.3.4\n", 0, []string{"invalid_utf8"}, ""},
		{"oversized", hdr + "2026-03-02\t18:00:00\t" + strings.Repeat("x", 70<<10) + "\t1.2.3.4\n2026-03-02\t18:00:00\tA\tB\n", 1, []string{"oversized_line"}, ""},
		{"no header", "2026-03-02\t18:00:00\tFRA56-P3\t1.2.3.4\n", 0, nil, "unknown_log_format"},
		{"not a log", "<html>hello</html>\n", 0, nil, "unknown_log_format"},
		{"header without time", "#Version: 1.0\n#Fields: date c-ip\n", 0, nil, "unknown_log_format"},
		{"other version", "#Version: 2.0\n", 0, nil, "unknown_log_format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := readAll(strings.NewReader(tc.in))
			var reasons []string
			for _, r := range res.rejects {
				reasons = append(reasons, r.Reason)
			}
			if len(res.lines) != tc.lines || strings.Join(reasons, ",") != strings.Join(tc.reasons, ",") {
				t.Errorf("lines %d rejects %v, want %d and %v", len(res.lines), reasons, tc.lines, tc.reasons)
			}
			if (res.err == nil) != (tc.err == "") || (res.err != nil && !strings.Contains(res.err.Error(), tc.err)) {
				t.Errorf("err = %v, want %q", res.err, tc.err)
			}
		})
	}
}

func TestTruncatedGzipKeepsLinesBefore(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(hdr))
	for range 2000 {
		zw.Write([]byte("2026-03-02\t18:00:00\tFRA56-P3\t1.2.3.4\n"))
	}
	zw.Close()
	cut := buf.Bytes()[:buf.Len()/2]
	zr, err := gzip.NewReader(bytes.NewReader(cut))
	if err != nil {
		t.Fatal(err)
	}
	res := readAll(zr)
	if !errors.Is(res.err, io.ErrUnexpectedEOF) || len(res.lines) == 0 || len(res.lines) >= 2000 {
		t.Errorf("lines %d err %v, want some lines then unexpected EOF", len(res.lines), res.err)
	}
}

// full is a complete line of the 33-field layout.
var full = strings.Join([]string{
	"2026-03-02", "18:00:00", "FRA56-P3", "1024", "192.0.2.1", "GET", "d1.cloudfront.net", "/v/seg1.ts", "200",
	"-", "Mozilla/5.0%20(X11)", "-", "-", "Hit", "REQ==", "video.example.com", "https", "120", "0.012",
	"-", "TLSv1.3", "TLS_AES_128_GCM_SHA256", "Hit", "HTTP/2.0", "-", "-", "443", "0.010", "Hit",
	"video/MP2T", "900", "-", "-"}, "\t")

var hdr33 = "#Version: 1.0\n#Fields: " + cloudfront.Layout33 + "\n"

// cut drops the last n fields of full.
func cut(n int) string {
	f := strings.Split(full, "\t")
	return strings.Join(f[:len(f)-n], "\t")
}

// merge joins field i of full with the next one (a lost tab).
func merge(i int) string {
	f := strings.Split(full, "\t")
	f[i] += f[i+1]
	return strings.Join(append(f[:i+1], f[i+2:]...), "\t")
}

// with replaces field i of full.
func with(i int, v string) string {
	f := strings.Split(full, "\t")
	f[i] = v
	return strings.Join(f, "\t")
}

func TestShortShiftedAndHeaderless(t *testing.T) {
	type row struct {
		line    int64
		missing int
		fields  int  // names in the header
		assumed bool // header synthesized
	}
	for _, tc := range []struct {
		name    string
		in      string
		rows    []row
		reasons []string
		err     string
	}{
		{"complete", hdr33 + full + "\n", []row{{3, 0, 33, false}}, nil, ""},
		{"two trailing fields missing", hdr33 + cut(2) + "\n", []row{{3, 2, 33, false}}, nil, ""},
		{"cut down to the 12 original fields", hdr33 + cut(21) + "\n", []row{{3, 21, 33, false}}, nil, ""},
		{"fewer than the 12 original fields", hdr33 + cut(22) + "\n", nil, []string{"field_count_mismatch"}, ""},
		{"lost tab shifts sc-status", hdr33 + merge(7) + "\n", nil, []string{"shifted_columns"}, ""},
		{"lost tab shifts time-taken", hdr33 + merge(16) + "\n", nil, []string{"shifted_columns"}, ""},
		{"lost tab shifts sc-bytes", hdr33 + merge(2) + "\n", nil, []string{"shifted_columns"}, ""},
		{"lost tab after the typed fields goes unseen", hdr33 + merge(28) + "\n", []row{{3, 1, 33, false}}, nil, ""},
		{"dash in numeric fields of a short line", hdr33 + with(17, "-") + "\n" + cut(1) + "\n", []row{{3, 0, 33, false}, {4, 1, 33, false}}, nil, ""},
		// Full-count lines are not judged by their values: silver types them.
		{"odd values in a full line are kept", hdr33 + with(8, "2xx") + "\n" + with(30, "12.5") + "\n", []row{{3, 0, 33, false}, {4, 0, 33, false}}, nil, ""},
		{"one field too many", hdr33 + full + "\tx\n", nil, []string{"field_count_mismatch"}, ""},
		{"two trailing tabs", hdr33 + full + "\t\t\n", nil, []string{"field_count_mismatch"}, ""},
		{"space separated", hdr33 + strings.ReplaceAll(full, "\t", " ") + "\n", []row{{3, 0, 33, false}}, nil, ""},
		{"space separated runs and short", hdr33 + strings.ReplaceAll(cut(2), "\t", "   ") + "  \n", []row{{3, 2, 33, false}}, nil, ""},
		{"headerless 33", full + "\n" + cut(2) + "\n", []row{{1, 0, 33, true}, {2, 2, 33, true}}, nil, ""},
		{"headerless 26 then 24 then 12", cut(7) + "\n" + cut(9) + "\n" + cut(21) + "\n", []row{{1, 0, 26, true}, {2, 0, 24, true}, {3, 0, 12, true}}, nil, ""},
		{"headerless after #Version", "#Version: 1.0\n" + cut(7) + "\n", []row{{2, 0, 26, true}}, nil, ""},
		{"headerless, unknown count", cut(1) + "\n", nil, nil, "this line has 32"},
		{"headerless, no date", with(0, "02/03/2026") + "\n", nil, nil, "unknown_log_format"},
		{"headerless real-time", "1600299221.087\t" + cut(2)[11:] + "\n", nil, nil, "a CloudFront real-time log record"},
		{"#Fields after headerless lines", full + "\n" + hdr + "2026-03-02\t18:00:00\tFRA56-P3\t1.2.3.4\n", []row{{1, 0, 33, true}, {4, 0, 4, false}}, nil, ""},
		{"rtmp header", "#Version: 1.0\n#Fields: date time x-edge-location c-ip x-event sc-bytes x-cf-status\n2010-03-12\t23:51:20\tSEA4\t192.0.2.1\tconnect\t2014\tOK\n", nil, []string{"rtmp_log"}, ""},
		{"rtmp headerless", "2010-03-12\t23:51:20\tSEA4\t192.0.2.147\tplay\t2014\tOK\tid\trtmp://s.cloudfront.net/cfx/st\t-\t-\t-\t-\tmyvideo\t-\tflv\t1\n" +
			"2010-03-12\t23:51:21\tSEA4\t192.0.2.147\tstop\t2014\tOK\tid\trtmp://s.cloudfront.net/cfx/st\t-\t-\t-\t-\tmyvideo\t-\tflv\t1\n", nil, []string{"rtmp_log", "rtmp_log"}, ""},
		{"real-time #Fields", "#Version: 1.0\n#Fields: timestamp c-ip sc-status\n1600299221.087\t192.0.2.1\t200\n", nil, nil, "real-time log layout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := readAll(strings.NewReader(tc.in))
			var got []row
			for _, l := range res.lines {
				got = append(got, row{l.Number, l.Missing, len(l.Header.Names), l.Header.Assumed})
				if n := len(cloudfront.Split(l.Text, nil)); n != len(l.Header.Names)-l.Missing {
					t.Errorf("line %d: Split gives %d fields, reader %d", l.Number, n, len(l.Header.Names)-l.Missing)
				}
			}
			var reasons []string
			for _, r := range res.rejects {
				reasons = append(reasons, r.Reason)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.rows) || strings.Join(reasons, ",") != strings.Join(tc.reasons, ",") {
				t.Errorf("rows %v rejects %v, want %v and %v", got, res.rejects, tc.rows, tc.reasons)
			}
			if (res.err == nil) != (tc.err == "") || (res.err != nil && !strings.Contains(res.err.Error(), tc.err)) {
				t.Errorf("err = %v, want %q", res.err, tc.err)
			}
		})
	}
}

func TestShiftedDetailNamesFieldAndValue(t *testing.T) {
	res := readAll(strings.NewReader(hdr33 + merge(16) + "\n"))
	if len(res.rejects) != 1 {
		t.Fatalf("rejects %v", res.rejects)
	}
	// cs-protocol and cs-bytes merged: cs-bytes holds time-taken's value.
	if want := `32 of 33 fields, and cs-bytes "0.012" is not a whole number or -`; res.rejects[0].Detail != want {
		t.Errorf("detail %q, want %q", res.rejects[0].Detail, want)
	}
}

func TestStandardLayouts(t *testing.T) {
	for n, raw := range map[int]string{12: cloudfront.Layout12, 24: cloudfront.Layout24, 26: cloudfront.Layout26, 33: cloudfront.Layout33} {
		h := cloudfront.StandardLayout(n)
		if h == nil || len(h.Names) != n || h.Raw != raw || !h.Assumed {
			t.Errorf("StandardLayout(%d) = %+v", n, h)
		}
	}
	if cloudfront.StandardLayout(40) != nil || cloudfront.StandardLayout(17) != nil {
		t.Error("StandardLayout of an unknown count")
	}
	if cloudfront.Layout33 != simulate.Fields {
		t.Error("the simulator does not write the 33-field layout")
	}
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"a\tb\tc", []string{"a", "b", "c"}},
		{"a\tb\t", []string{"a", "b"}},
		{"a\t\tc", []string{"a", "", "c"}},
		{"a b\tc", []string{"a b", "c"}}, // a tab: spaces are data
		{"a b  c", []string{"a", "b", "c"}},
		{" a b ", []string{"a", "b"}},
		{"abc", []string{"abc"}},
		{"", []string{""}},
	} {
		if got := cloudfront.Split(tc.in, nil); !slices.Equal(got, tc.want) {
			t.Errorf("Split(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLogTime(t *testing.T) {
	for _, tc := range []struct{ date, clock, want string }{
		{"2024-02-29", "23:59:59", "2024-02-29T23:59:59Z"},
		{"2023-02-29", "12:00:00", ""},
		{"2026-12-31", "00:00:00", "2026-12-31T00:00:00Z"},
		{"2026-13-01", "00:00:00", ""},
		{"2026-03-02", "24:00:00", ""},
		{"2026-03-02", "8:00:00", "2026-03-02T08:00:00Z"}, // as time.Parse reads it
	} {
		res := readAll(strings.NewReader(hdr + tc.date + "\t" + tc.clock + "\tFRA56-P3\t1.2.3.4\n"))
		switch {
		case tc.want == "" && (len(res.rejects) != 1 || res.rejects[0].Reason != cloudfront.ReasonBadLogTime):
			t.Errorf("%s %s: rows %v rejects %v, want bad_log_time", tc.date, tc.clock, res.lines, res.rejects)
		case tc.want != "" && (len(res.lines) != 1 || res.lines[0].Time.Format(time.RFC3339) != tc.want):
			t.Errorf("%s %s: rows %v rejects %v, want %s", tc.date, tc.clock, res.lines, res.rejects, tc.want)
		}
	}
}
