// Package cloudfront reads CloudFront standard access logs: tab-separated
// lines under "#Version" and "#Fields" headers. Columns are mapped by the
// names in "#Fields", so older and newer field sets and any field order
// work. "-" stands for an empty value.
//
// Real logs are not always that tidy, and the reader takes them as they
// are found in the wild:
//
//   - A line that lacks trailing fields is kept with Line.Missing set (the
//     absent fields read as empty, as Athena's CloudFront table reads
//     them), unless it lacks one of the twelve fields every CloudFront web
//     log has had, or its typed fields show that its columns are shifted
//     (a tab lost between two fields): then it is rejected.
//   - A file without a "#Fields" header is read with the standard layout
//     its first line's field count names (33, 26, 24 or 12 fields,
//     starting with a date); Line.Header is then synthesized.
//   - A line without any tab is split on runs of spaces: CloudFront
//     URL-encodes spaces inside fields, so only text that went through a
//     renderer (documentation, chat) looks like that. Split does the same,
//     so downstream stages split a stored line as the reader did.
//   - Logs of RTMP distributions (a discontinued streaming service, not
//     HTTP requests) are rejected line by line, and CloudFront real-time
//     log records (a different product, read from Kinesis) are not a
//     standard log at all.
//
// Real-time log records have a reader of their own (RealtimeLayout): no
// header, the configuration's field list names their values.
package cloudfront

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Reject reasons, stored in bronze.rejects.reason.
const (
	ReasonUnknownFormat  = "unknown_log_format"
	ReasonFieldCount     = "field_count_mismatch"
	ReasonShiftedColumns = "shifted_columns"
	ReasonRTMP           = "rtmp_log"
	ReasonBadLogTime     = "bad_log_time"
	ReasonOversizedLine  = "oversized_line"
	ReasonInvalidUTF8    = "invalid_utf8"
	ReasonTruncatedInput = "truncated_input"
)

// Standard-log layouts CloudFront has written, as "#Fields" values. Each
// one extends the one before at the end, so a line of an older layout is
// a prefix of a line of a newer one.
const (
	// Layout12 is the original web distribution log (Developer Guide,
	// API version 2010-11-01).
	Layout12 = "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query"
	// Layout24 adds cookies, result types, request id, protocol, timing
	// and TLS fields (complete by 2015).
	Layout24 = Layout12 + " cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version"
	// Layout26 adds field-level encryption (December 2017).
	Layout26 = Layout24 + " fle-status fle-encrypted-fields"
	// Layout33 is the current layout (December 2019 on; the AWS
	// "standard log file fields" list).
	Layout33 = Layout26 + " c-port time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end"
)

// StandardLayout returns the header of the standard-log layout with n
// fields (33, 26, 24 or 12), marked Assumed, or nil.
func StandardLayout(n int) *Header {
	raw := layoutFields(n)
	if raw == "" {
		return nil
	}
	h, err := ParseHeader(raw)
	if err != nil {
		panic("cloudfront: bad built-in layout: " + err.Error())
	}
	h.Assumed = true
	return h
}

// layoutFields is the standard layout with n fields, or "".
func layoutFields(n int) string {
	switch n {
	case 33:
		return Layout33
	case 26:
		return Layout26
	case 24:
		return Layout24
	case 12:
		return Layout12
	}
	return ""
}

// Header is the column layout declared by a "#Fields" line.
type Header struct {
	// Raw is the "#Fields:" line's value as written, or for an Assumed
	// header the layout's names joined by spaces. ParseHeader(Raw) gives
	// the same names.
	Raw   string
	Names []string
	// Assumed is true when the file had no "#Fields" line and the layout
	// was picked by the field count of its lines.
	Assumed bool
	index   map[string]int
	date    int
	time    int
	// minFields is how many leading fields a short line must have: up to
	// the last of the original twelve fields the header names.
	minFields int
	// typed are the columns whose values show a shift in a short line.
	typed []typedField
	// rtmp marks the field names of an RTMP distribution log.
	rtmp bool
}

// kind is the shape of a typed field's values.
type kind uint8

const (
	kindStatus  kind = iota // three digits
	kindInteger             // digits, or "-"
	kindSeconds             // digits with an optional fraction, or "-"
)

func (k kind) String() string {
	switch k {
	case kindStatus:
		return "a three-digit status"
	case kindInteger:
		return "a whole number or -"
	default:
		return "seconds or -"
	}
}

type typedField struct {
	col  int
	name string
	kind kind
}

var (
	// core are the fields of Layout12: every web distribution log has had
	// them, so a line without them is a fragment, not a short line.
	core = func() map[string]bool {
		m := map[string]bool{}
		for _, n := range strings.Fields(Layout12) {
			m[n] = true
		}
		return m
	}()
	// typedKinds are the fields whose values are checked in short lines.
	typedKinds = map[string]kind{
		"sc-status":            kindStatus,
		"sc-bytes":             kindInteger,
		"cs-bytes":             kindInteger,
		"fle-encrypted-fields": kindInteger,
		"c-port":               kindInteger,
		"sc-content-len":       kindInteger,
		"sc-range-start":       kindInteger,
		"sc-range-end":         kindInteger,
		"time-taken":           kindSeconds,
		"time-to-first-byte":   kindSeconds,
	}
	// rtmpNames are field names only RTMP distribution logs have.
	rtmpNames = []string{"x-event", "x-sname", "x-cf-status", "x-cf-client-id", "c-proto"}
	// rtmpEvents are the values of an RTMP log's x-event field.
	rtmpEvents = map[string]bool{"connect": true, "play": true, "stop": true, "pause": true, "unpause": true, "seek": true, "disconnect": true}
)

// ParseHeader reads the value of a "#Fields:" line.
func ParseHeader(raw string) (*Header, error) {
	names := strings.Fields(raw)
	h := &Header{Raw: strings.TrimSpace(raw), Names: names, index: make(map[string]int, len(names)), date: -1, time: -1}
	for i, n := range names {
		h.index[n] = i
		if core[n] {
			h.minFields = i + 1
		}
		if k, ok := typedKinds[n]; ok {
			h.typed = append(h.typed, typedField{col: i, name: n, kind: k})
		}
	}
	for _, n := range rtmpNames {
		if _, ok := h.index[n]; ok {
			h.rtmp = true
		}
	}
	var ok bool
	if h.date, ok = h.index["date"]; !ok {
		if _, rt := h.index["timestamp"]; rt {
			return nil, errors.New("#Fields has timestamp but no date field: a CloudFront real-time log layout, not a standard log")
		}
		return nil, errors.New("#Fields has no date field")
	}
	if h.time, ok = h.index["time"]; !ok {
		return nil, errors.New("#Fields has no time field")
	}
	return h, nil
}

// Index returns the column of a field name, or -1.
func (h *Header) Index(name string) int {
	if i, ok := h.index[name]; ok {
		return i
	}
	return -1
}

// Line is one data line.
type Line struct {
	Number int64 // 1-based line number in the (decompressed) object
	Text   string
	Time   time.Time
	Header *Header
	// Missing is how many trailing fields of Header the line lacks (they
	// read as empty); 0 for a complete line.
	Missing int
}

// LineError is a line that could not be read; reading continues after it.
type LineError struct {
	Number int64
	Reason string
	Detail string
	Raw    []byte
}

func (e *LineError) Error() string {
	return fmt.Sprintf("line %d: %s: %s", e.Number, e.Reason, e.Detail)
}

// FormatError means the input is not a CloudFront standard log at all (no
// usable "#Fields" header or known layout before the data); reading stops.
type FormatError struct{ Detail string }

func (e *FormatError) Error() string { return ReasonUnknownFormat + ": " + e.Detail }

// Reader reads lines from a (decompressed) log.
type Reader struct {
	br      *bufio.Reader
	maxLine int
	header  *Header
	n       int64
	fields  []string
	// layouts caches the assumed headers of a headerless file by field
	// count; nil while the file has a "#Fields" header.
	layouts map[int]*Header
	rtmp    bool // a headerless RTMP log
	buf     []byte
}

// NewReader reads lines of at most maxLine bytes (longer ones are
// LineErrors with ReasonOversizedLine).
func NewReader(r io.Reader, maxLine int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), maxLine: maxLine}
}

// Next returns the next data line. Errors: *LineError for a bad line (call
// Next again), *FormatError for input that is not a CloudFront log, io.EOF
// at the end, and the underlying read error otherwise (for example a
// truncated gzip stream): lines returned before it are good.
func (r *Reader) Next() (Line, error) {
	for {
		raw, err := r.readLine()
		if err != nil {
			return Line{}, err
		}
		r.n++
		if raw == nil { // oversized, already consumed
			return Line{}, &LineError{Number: r.n, Reason: ReasonOversizedLine, Detail: fmt.Sprintf("line longer than %d bytes", r.maxLine)}
		}
		text := strings.TrimRight(string(raw), "\r\n")
		if text == "" {
			continue
		}
		if text[0] == '#' {
			if v, ok := strings.CutPrefix(text, "#Fields:"); ok {
				h, err := ParseHeader(v)
				if err != nil {
					return Line{}, &FormatError{Detail: err.Error()}
				}
				r.header, r.layouts, r.rtmp = h, nil, false
			} else if v, ok := strings.CutPrefix(text, "#Version:"); ok && strings.TrimSpace(v) != "1.0" {
				return Line{}, &FormatError{Detail: fmt.Sprintf("log version %q, want 1.0", strings.TrimSpace(v))}
			}
			continue
		}
		r.fields = Split(text, r.fields[:0])
		h := r.header
		if h == nil || r.layouts != nil {
			if h, err = r.assume(); err != nil {
				return Line{}, err
			}
		}
		if h.rtmp || r.rtmp {
			return Line{}, &LineError{Number: r.n, Reason: ReasonRTMP, Raw: bytes.Clone(raw),
				Detail: "RTMP distribution log (discontinued streaming service): events of a stream, not HTTP requests"}
		}
		if !utf8.Valid(raw) {
			return Line{}, &LineError{Number: r.n, Reason: ReasonInvalidUTF8, Detail: "line is not valid UTF-8", Raw: bytes.Clone(raw)}
		}
		missing := len(h.Names) - len(r.fields)
		if missing != 0 {
			if reason, detail := h.short(r.fields); reason != "" {
				return Line{}, &LineError{Number: r.n, Reason: reason, Detail: detail, Raw: bytes.Clone(raw)}
			}
		}
		ts, err := logTime(r.fields[h.date], r.fields[h.time])
		if err != nil {
			return Line{}, &LineError{Number: r.n, Reason: ReasonBadLogTime, Detail: err.Error(), Raw: bytes.Clone(raw)}
		}
		return Line{Number: r.n, Text: text, Time: ts, Header: h, Missing: missing}, nil
	}
}

// assume picks the header of a line in a file without "#Fields": the
// standard layout of its field count, or for other counts the newest
// layout (older layouts are its prefixes, so the line is short or too
// long). The first data line decides whether the file is a CloudFront
// standard log at all.
func (r *Reader) assume() (*Header, error) {
	f := r.fields
	n := len(f)
	first := r.header == nil
	if first {
		switch {
		case n == 17 && isDate(f[0]) && rtmpEvents[strings.TrimSpace(f[4])]:
			r.rtmp = true
		case n > 0 && isEpoch(f[0]):
			return nil, &FormatError{Detail: fmt.Sprintf("line %d: %d fields starting with an epoch time: a CloudFront real-time log record, not a standard log", r.n, n)}
		case layoutFields(n) == "" || !isDate(f[0]):
			return nil, &FormatError{Detail: fmt.Sprintf("line %d: data before any #Fields header, and not a CloudFront standard-log layout (33, 26, 24 or 12 fields starting with a date; this line has %d)", r.n, n)}
		}
		r.layouts = map[int]*Header{}
	}
	if h, ok := r.layouts[n]; ok {
		r.header = h
		return h, nil
	}
	h := StandardLayout(n)
	if h == nil {
		h = r.layouts[33]
		if h == nil {
			h = StandardLayout(33)
			r.layouts[33] = h
		}
	} else {
		r.layouts[n] = h
	}
	r.header = h
	return h, nil
}

// short judges a line with fewer or more fields than the header: it
// returns a reject reason and detail, or "" to keep the line as short.
func (h *Header) short(f []string) (reason, detail string) {
	n, want := len(f), len(h.Names)
	names := "#Fields names"
	if h.Assumed {
		names = "the assumed standard layout has"
	}
	switch {
	case n > want:
		return ReasonFieldCount, fmt.Sprintf("%d fields, %s %d", n, names, want)
	case n < h.minFields:
		return ReasonFieldCount, fmt.Sprintf("%d fields, %s %d, and a line needs at least the first %d", n, names, want, h.minFields)
	}
	for _, t := range h.typed {
		if t.col >= n {
			continue
		}
		if v := f[t.col]; !t.kind.valid(v) {
			return ReasonShiftedColumns, fmt.Sprintf("%d of %d fields, and %s %q is not %s", n, want, t.name, limit(v), t.kind)
		}
	}
	return "", ""
}

func (k kind) valid(v string) bool {
	switch k {
	case kindStatus:
		return len(v) == 3 && isDigit(v[0]) && isDigit(v[1]) && isDigit(v[2])
	case kindInteger:
		return v == "-" || digits(v) == len(v) && v != ""
	default:
		if v == "-" {
			return true
		}
		i := digits(v)
		if i == 0 {
			return false
		}
		if i == len(v) {
			return true
		}
		return v[i] == '.' && digits(v[i+1:]) == len(v)-i-1
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// digits is the length of the leading run of ASCII digits in s.
func digits(s string) int {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return i
		}
	}
	return len(s)
}

// isDate reports whether s has the shape of YYYY-MM-DD.
func isDate(s string) bool {
	return len(s) == 10 && digits(s[:4]) == 4 && s[4] == '-' && digits(s[5:7]) == 2 && s[7] == '-' && digits(s[8:]) == 2
}

// isEpoch reports whether s looks like seconds since 1970 with a fraction,
// as real-time log records start.
func isEpoch(s string) bool {
	i := digits(s)
	return i >= 9 && i+1 < len(s) && s[i] == '.' && digits(s[i+1:]) == len(s)-i-1
}

// limit shortens a value for a reject detail.
func limit(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// logTime reads "YYYY-MM-DD" and "HH:MM:SS" as UTC. The fixed-width form
// CloudFront writes is read directly; anything else goes through
// time.Parse, which also words the error.
func logTime(date, clock string) (time.Time, error) {
	if len(date) == 10 && len(clock) == 8 && isDate(date) && clock[2] == ':' && clock[5] == ':' &&
		digits(clock[:2]) == 2 && digits(clock[3:5]) == 2 && digits(clock[6:]) == 2 {
		y := num(date[:4])
		mo, d := num(date[5:7]), num(date[8:])
		hh, mm, ss := num(clock[:2]), num(clock[3:5]), num(clock[6:])
		if mo >= 1 && mo <= 12 && d >= 1 && d <= daysIn(mo, y) && hh < 24 && mm < 60 && ss < 60 {
			return time.Date(y, time.Month(mo), d, hh, mm, ss, 0, time.UTC), nil
		}
	}
	return time.Parse("2006-01-02 15:04:05", date+" "+clock)
}

func num(s string) int {
	v := 0
	for i := 0; i < len(s); i++ {
		v = v*10 + int(s[i]-'0')
	}
	return v
}

func daysIn(month, year int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// readLine returns the next line with its newline, nil for an oversized
// line (skipped to its end), or an error. A last line without a newline is
// returned as is. The returned bytes are valid until the next call.
func (r *Reader) readLine() ([]byte, error) {
	buf := r.buf[:0]
	oversized := false
	for {
		chunk, err := r.br.ReadSlice('\n')
		if !oversized {
			if len(buf)+len(chunk) > r.maxLine {
				oversized = true
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == nil, errors.Is(err, io.EOF) && (oversized || len(buf) > 0):
			r.buf = buf
			if oversized {
				return nil, nil
			}
			return buf, nil
		default:
			return nil, err
		}
	}
}

// Split splits a line into dst as the Reader does: on tabs, where a
// single trailing tab (some writers end lines with one) does not add a
// field; a line without any tab is split on runs of spaces, ignoring
// leading and trailing ones (CloudFront URL-encodes spaces inside fields,
// so such a line is a rendered copy, as in the AWS documentation).
func Split(line string, dst []string) []string {
	line = strings.TrimSuffix(line, "\t")
	i := strings.IndexByte(line, '\t')
	if i < 0 {
		return splitSpaces(line, dst)
	}
	for i >= 0 {
		dst = append(dst, line[:i])
		line = line[i+1:]
		i = strings.IndexByte(line, '\t')
	}
	return append(dst, line)
}

func splitSpaces(line string, dst []string) []string {
	if strings.IndexByte(line, ' ') < 0 {
		return append(dst, line)
	}
	for {
		line = strings.TrimLeft(line, " ")
		if line == "" {
			return dst
		}
		i := strings.IndexByte(line, ' ')
		if i < 0 {
			return append(dst, line)
		}
		dst = append(dst, line[:i])
		line = line[i+1:]
	}
}
