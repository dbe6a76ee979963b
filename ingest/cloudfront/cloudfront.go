// Package cloudfront reads CloudFront standard access logs: tab-separated
// lines under "#Version" and "#Fields" headers. Columns are mapped by the
// names in "#Fields", so older and newer field sets and any field order
// work. "-" stands for an empty value.
package cloudfront

import (
	"bufio"
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
	ReasonBadLogTime     = "bad_log_time"
	ReasonOversizedLine  = "oversized_line"
	ReasonInvalidUTF8    = "invalid_utf8"
	ReasonTruncatedInput = "truncated_input"
)

// Header is the column layout declared by a "#Fields" line.
type Header struct {
	// Raw is the "#Fields:" line's value as written.
	Raw   string
	Names []string
	index map[string]int
	date  int
	time  int
}

// ParseHeader reads the value of a "#Fields:" line.
func ParseHeader(raw string) (*Header, error) {
	names := strings.Fields(raw)
	h := &Header{Raw: strings.TrimSpace(raw), Names: names, index: make(map[string]int, len(names)), date: -1, time: -1}
	for i, n := range names {
		h.index[n] = i
	}
	var ok bool
	if h.date, ok = h.index["date"]; !ok {
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

// FormatError means the input is not a CloudFront log at all (no usable
// "#Fields" header before the data); reading stops.
type FormatError struct{ Detail string }

func (e *FormatError) Error() string { return ReasonUnknownFormat + ": " + e.Detail }

// Reader reads lines from a (decompressed) log.
type Reader struct {
	br      *bufio.Reader
	maxLine int
	header  *Header
	n       int64
	fields  []string
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
				r.header = h
			} else if v, ok := strings.CutPrefix(text, "#Version:"); ok && strings.TrimSpace(v) != "1.0" {
				return Line{}, &FormatError{Detail: fmt.Sprintf("log version %q, want 1.0", strings.TrimSpace(v))}
			}
			continue
		}
		if r.header == nil {
			return Line{}, &FormatError{Detail: fmt.Sprintf("line %d: data before any #Fields header", r.n)}
		}
		if !utf8.Valid(raw) {
			return Line{}, &LineError{Number: r.n, Reason: ReasonInvalidUTF8, Detail: "line is not valid UTF-8", Raw: raw}
		}
		r.fields = Split(text, r.fields[:0])
		if want := len(r.header.Names); len(r.fields) != want {
			return Line{}, &LineError{Number: r.n, Reason: ReasonFieldCount,
				Detail: fmt.Sprintf("%d fields, #Fields names %d", len(r.fields), want), Raw: raw}
		}
		ts, err := time.Parse("2006-01-02 15:04:05", r.fields[r.header.date]+" "+r.fields[r.header.time])
		if err != nil {
			return Line{}, &LineError{Number: r.n, Reason: ReasonBadLogTime, Detail: err.Error(), Raw: raw}
		}
		return Line{Number: r.n, Text: text, Time: ts, Header: r.header}, nil
	}
}

// readLine returns the next line with its newline, nil for an oversized
// line (skipped to its end), or an error. A last line without a newline is
// returned as is.
func (r *Reader) readLine() ([]byte, error) {
	var buf []byte
	oversized := false
	for {
		chunk, err := r.br.ReadSlice('\n')
		if !oversized {
			if len(buf)+len(chunk) > r.maxLine {
				oversized = true
				buf = nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == nil:
			if oversized {
				return nil, nil
			}
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if oversized {
				return nil, nil
			}
			if len(buf) > 0 {
				return buf, nil
			}
			return nil, io.EOF
		default:
			return nil, err
		}
	}
}

// Split splits a line on tabs into dst. A single trailing tab (some
// writers end lines with one) does not add a field.
func Split(line string, dst []string) []string {
	line = strings.TrimSuffix(line, "\t")
	for {
		i := strings.IndexByte(line, '\t')
		if i < 0 {
			return append(dst, line)
		}
		dst = append(dst, line[:i])
		line = line[i+1:]
	}
}
