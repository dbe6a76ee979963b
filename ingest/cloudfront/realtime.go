package cloudfront

// CloudFront real-time logs: each Kinesis record CloudFront writes is one
// request, its values separated by tabs in the order of the real-time log
// configuration's fields, with no header. Timestamps are epoch seconds
// with milliseconds ("1600299221.087"), "-" is an empty value, and text
// values are URL-encoded as in standard logs.

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Reject reasons of real-time log records, besides ReasonFieldCount and
// ReasonInvalidUTF8.
const (
	// ReasonBadTimestamp: the timestamp is not epoch seconds (with a
	// fraction), or lies before 2000 or more than a day ahead.
	ReasonBadTimestamp = "bad_timestamp"
	// ReasonBadNumber: a number CloudFront itself writes (status, bytes,
	// seconds, port, ...) is not one: the field list does not match the
	// records.
	ReasonBadNumber = "bad_number"
	// ReasonEmptyRecord: a Kinesis record with no data.
	ReasonEmptyRecord = "empty_record"
	// ReasonOversizedRecord: a Kinesis record larger than the limit.
	ReasonOversizedRecord = "oversized_record"
)

// RealtimeFields are the fields of a CloudFront real-time log record in
// the order CloudFront writes them. The Developer Guide ("Real-time log
// configuration fields") lists them "in the order in which they appear in
// the log records that are delivered to Kinesis Data Streams": a
// configuration chooses a subset, and its records hold the chosen fields
// in this order whatever order the configuration names them in. The first
// 40 are the fields real-time logs launched with (2020); then distribution,
// origin latency and ASN fields; then the player's Common Media Client Data
// (CMCD, CTA-5004) keys CloudFront reads from the request (2024); then the
// newest. This list is the default of --realtime-log-fields and the field
// list of infra/qoslake.yaml's RealtimeLogConfig.
var RealtimeFields = []string{
	"timestamp", "c-ip", "time-to-first-byte", "sc-status", "sc-bytes", "cs-method", "cs-protocol",
	"cs-host", "cs-uri-stem", "cs-bytes", "x-edge-location", "x-edge-request-id", "x-host-header",
	"time-taken", "cs-protocol-version", "c-ip-version", "cs-user-agent", "cs-referer", "cs-cookie",
	"cs-uri-query", "x-edge-response-result-type", "x-forwarded-for", "ssl-protocol", "ssl-cipher",
	"x-edge-result-type", "fle-encrypted-fields", "fle-status", "sc-content-type", "sc-content-len",
	"sc-range-start", "sc-range-end", "c-port", "x-edge-detailed-result-type", "c-country",
	"cs-accept-encoding", "cs-accept", "cache-behavior-path-pattern", "cs-headers", "cs-header-names",
	"cs-headers-count",
	"primary-distribution-id", "primary-distribution-dns-name", "origin-fbl", "origin-lbl", "asn",
	"cmcd-encoded-bitrate", "cmcd-buffer-length", "cmcd-buffer-starvation", "cmcd-content-id",
	"cmcd-object-duration", "cmcd-deadline", "cmcd-measured-throughput", "cmcd-next-object-request",
	"cmcd-next-range-request", "cmcd-object-type", "cmcd-playback-rate",
	"cmcd-requested-maximum-throughput", "cmcd-streaming-format", "cmcd-session-id",
	"cmcd-stream-type", "cmcd-startup", "cmcd-top-bitrate", "cmcd-version",
	"r-host", "sr-reason", "x-edge-mqcs",
}

// RealtimeLaunchFields is the number of fields real-time logs launched
// with: RealtimeFields[:RealtimeLaunchFields] is the layout of records
// written with every field of 2020 (the public samples are).
const RealtimeLaunchFields = 40

// realtimeOrder is each documented field's place in RealtimeFields.
var realtimeOrder = func() map[string]int {
	m := make(map[string]int, len(RealtimeFields))
	for i, n := range RealtimeFields {
		m[n] = i
	}
	return m
}()

// realtimeNumbers are the numbers CloudFront itself writes: a value of
// another shape means the field list does not describe the record. The
// CMCD fields are not among them: their values come from the player, and a
// player's bad value must not cost the request its record (silver leaves
// such a value empty and counts it).
var realtimeNumbers = map[string]kind{
	"sc-status":            kindStatus,
	"sc-bytes":             kindInteger,
	"cs-bytes":             kindInteger,
	"fle-encrypted-fields": kindInteger,
	"sc-content-len":       kindInteger,
	"sc-range-start":       kindInteger,
	"sc-range-end":         kindInteger,
	"c-port":               kindInteger,
	"cs-headers-count":     kindInteger,
	"asn":                  kindInteger,
	"time-to-first-byte":   kindSeconds,
	"time-taken":           kindSeconds,
	"origin-fbl":           kindSeconds,
	"origin-lbl":           kindSeconds,
}

// RealtimeLayout is the field list of a real-time log configuration: the
// names of a record's values, in order.
type RealtimeLayout struct {
	Names     []string
	index     map[string]int
	timestamp int
	numbers   []typedField
	unknown   []string
}

// ParseRealtimeLayout reads a comma-separated field list.
func ParseRealtimeLayout(list string) (*RealtimeLayout, error) {
	var names []string
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return NewRealtimeLayout(names)
}

// NewRealtimeLayout checks a field list: it must name the timestamp (bronze
// partitions by it), no field twice, and the documented fields in the order
// CloudFront writes them (RealtimeFields). Names qoslake does not know are
// accepted where they stand (CloudFront adds fields from time to time):
// their values are kept in bronze and not typed (see Unknown).
func NewRealtimeLayout(names []string) (*RealtimeLayout, error) {
	if len(names) == 0 {
		return nil, errors.New("no fields")
	}
	l := &RealtimeLayout{Names: names, index: make(map[string]int, len(names)), timestamp: -1}
	prev := ""
	for i, n := range names {
		if _, dup := l.index[n]; dup {
			return nil, fmt.Errorf("%s is named twice", n)
		}
		l.index[n] = i
		at, known := realtimeOrder[n]
		if !known {
			l.unknown = append(l.unknown, n)
			continue
		}
		if prev != "" && at < realtimeOrder[prev] {
			return nil, fmt.Errorf("%s is named after %s, but CloudFront writes it before: list the fields in the documented order", n, prev)
		}
		prev = n
		if k, ok := realtimeNumbers[n]; ok {
			l.numbers = append(l.numbers, typedField{col: i, name: n, kind: k})
		}
	}
	var ok bool
	if l.timestamp, ok = l.index["timestamp"]; !ok {
		return nil, errors.New("no timestamp field: records could not be placed in time")
	}
	return l, nil
}

// String is the field list as --realtime-log-fields takes it, and as
// bronze stores it beside each record.
func (l *RealtimeLayout) String() string { return strings.Join(l.Names, ",") }

// Unknown are the names the layout holds that are not documented fields.
func (l *RealtimeLayout) Unknown() []string { return l.unknown }

// Index returns the column of a field, or -1.
func (l *RealtimeLayout) Index(name string) int {
	if i, ok := l.index[name]; ok {
		return i
	}
	return -1
}

// RealtimeLimits bound what a Kinesis record of real-time logs may be.
type RealtimeLimits struct {
	MaxRecordBytes int
	// Earliest and MaxFuture bound plausible timestamps.
	Earliest  time.Time
	MaxFuture time.Duration
}

// DefaultRealtimeLimits are the limits of the player intake: records up to
// 1 MiB (CloudFront's are about 1 KiB), timestamps from 2000 to a day ahead.
var DefaultRealtimeLimits = RealtimeLimits{
	MaxRecordBytes: 1 << 20,
	Earliest:       time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
	MaxFuture:      24 * time.Hour,
}

// RealtimeRecord is one readable log record.
type RealtimeRecord struct {
	// Index counts the lines of a Kinesis record from 0 (CloudFront writes
	// one per Kinesis record; other producers may batch them).
	Index int
	Text  string
	Time  time.Time
}

// RealtimeReject is a line (Index >= 0) or a whole Kinesis record (Index
// == -1) that could not be read.
type RealtimeReject struct {
	Index  int
	Reason string
	Detail string
	Raw    []byte
}

// ParseRealtime reads the data of one Kinesis record: a log record per
// line, each checked against the layout.
func (l *RealtimeLayout) ParseRealtime(data []byte, now time.Time, lim RealtimeLimits) ([]RealtimeRecord, []RealtimeReject) {
	whole := func(reason, detail string) ([]RealtimeRecord, []RealtimeReject) {
		return nil, []RealtimeReject{{Index: -1, Reason: reason, Detail: detail, Raw: data}}
	}
	switch {
	case lim.MaxRecordBytes > 0 && len(data) > lim.MaxRecordBytes:
		return whole(ReasonOversizedRecord, fmt.Sprintf("record is %d bytes, limit %d", len(data), lim.MaxRecordBytes))
	case len(bytes.TrimSpace(data)) == 0:
		return whole(ReasonEmptyRecord, "record has no data")
	case !utf8.Valid(data):
		return whole(ReasonInvalidUTF8, "record is not valid UTF-8")
	}
	var recs []RealtimeRecord
	var rejects []RealtimeReject
	var fields []string
	i := 0
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		var t time.Time
		var reason, detail string
		t, reason, detail, fields = l.Check(line, now, lim, fields)
		if reason != "" {
			rejects = append(rejects, RealtimeReject{Index: i, Reason: reason, Detail: detail, Raw: []byte(line)})
		} else {
			recs = append(recs, RealtimeRecord{Index: i, Text: line, Time: t})
		}
		i++
	}
	return recs, rejects
}

// Check judges one log record: its time, or a reject reason and detail.
// fields is scratch space, returned for reuse.
func (l *RealtimeLayout) Check(line string, now time.Time, lim RealtimeLimits, fields []string) (time.Time, string, string, []string) {
	fields = SplitRealtime(line, fields[:0])
	if len(fields) != len(l.Names) {
		return time.Time{}, ReasonFieldCount, fmt.Sprintf("%d fields, the real-time log field list (--realtime-log-fields) names %d", len(fields), len(l.Names)), fields
	}
	for _, f := range l.numbers {
		if v := fields[f.col]; !f.kind.valid(v) {
			return time.Time{}, ReasonBadNumber, fmt.Sprintf("%s %q is not %s", f.name, limit(v), f.kind), fields
		}
	}
	t, err := EpochTime(fields[l.timestamp])
	if err == nil {
		if t.Before(lim.Earliest) {
			err = fmt.Errorf("%s is before %s", t.Format(time.RFC3339Nano), lim.Earliest.Format("2006-01-02"))
		} else if lim.MaxFuture > 0 && t.After(now.Add(lim.MaxFuture)) {
			err = fmt.Errorf("%s is more than %s ahead", t.Format(time.RFC3339Nano), lim.MaxFuture)
		}
	}
	if err != nil {
		return time.Time{}, ReasonBadTimestamp, "timestamp: " + err.Error(), fields
	}
	return t, "", "", fields
}

// SplitRealtime splits a record into its values: on every tab, none
// trimmed (a real-time record has no header to forgive a trailing tab by).
func SplitRealtime(line string, dst []string) []string {
	for {
		i := strings.IndexByte(line, '\t')
		if i < 0 {
			return append(dst, line)
		}
		dst = append(dst, line[:i])
		line = line[i+1:]
	}
}

// Get returns a field's value in a split record, or "" when the layout
// lacks the field or its value is "-".
func (l *RealtimeLayout) Get(fields []string, name string) string {
	i, ok := l.index[name]
	if !ok || i >= len(fields) || fields[i] == "-" {
		return ""
	}
	return fields[i]
}

// EpochTime reads epoch seconds with an optional fraction of up to nine
// digits ("1600299221.087") as UTC.
func EpochTime(s string) (time.Time, error) {
	sec, frac, _ := strings.Cut(s, ".")
	if sec == "" || digits(sec) != len(sec) || len(sec) > 12 || digits(frac) != len(frac) || len(frac) > 9 || strings.HasSuffix(s, ".") {
		return time.Time{}, fmt.Errorf("%q is not epoch seconds such as 1600299221.087", limit(s))
	}
	n, _ := strconv.ParseInt(sec, 10, 64)
	var ns int64
	if frac != "" {
		ns, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	return time.Unix(n, ns).UTC(), nil
}
