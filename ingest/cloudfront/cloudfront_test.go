package cloudfront_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/qoslake/qoslake/ingest/cloudfront"
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
