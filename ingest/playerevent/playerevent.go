// Package playerevent reads player events as player SDKs put them on Kinesis:
// one JSON object per record, a JSON array of them, or several objects on
// lines of their own (NDJSON). It extracts what bronze needs (event type and
// time) and says precisely why a record or an event cannot be read.
//
// Two forms of the same events are accepted: the AWS streaming media
// analytics reference player SDK's (MetricType and TimeStamp keys,
// upper-case values such as "PLAY", each record JSON.stringify(event)+"\n"),
// and the lower-cased form its Databricks notebooks produce (metrictype,
// timestamp, "play"). Keys and event types are matched without regard to
// case. The accepted form is published as JSON Schema in schema.json beside
// this file.
package playerevent

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	json "github.com/goccy/go-json"
)

// Reject reasons, stored in bronze.rejects.reason.
const (
	ReasonInvalidUTF8       = "invalid_utf8"
	ReasonMalformedJSON     = "malformed_json"
	ReasonNotAnObject       = "not_an_object"
	ReasonMissingType       = "missing_event_type"
	ReasonUnknownType       = "unknown_event_type"
	ReasonMissingTimestamp  = "missing_timestamp"
	ReasonAbsurdTimestamp   = "absurd_timestamp"
	ReasonOversized         = "oversized_record"
	ReasonEmpty             = "empty_record"
	ReasonTooManyEvents     = "too_many_events"
	maxEventsPerRecordLimit = 10000
)

// Types are the metrictype values players send (the AWS streaming media
// analytics reference player SDK), in their canonical lower-case form: the
// SDK sends them upper-case ("PLAY"), the Databricks notebooks lower-case.
var Types = map[string]bool{
	"play": true, "firstframe": true, "seek": true, "buffer": true, "stream": true,
	"step": true, "pause": true, "error": true, "stop": true,
}

// Event is one readable event of a record.
type Event struct {
	// Index counts the events of a record from 0, across the items of an
	// array and the lines of an NDJSON record.
	Index int
	// Type is the canonical lower-case metrictype (bronze's event_type).
	Type    string
	Time    time.Time
	Payload []byte // the event's JSON exactly as received
}

// Reject is an event (Index >= 0) or a whole record (Index == -1) that
// could not be read.
type Reject struct {
	Index  int
	Reason string
	Detail string
	Raw    []byte
}

// Limits bound what a record may be.
type Limits struct {
	// MaxRecordBytes rejects larger records whole. Kinesis itself allows
	// up to 10 MiB; player events are a few hundred bytes.
	MaxRecordBytes int
	// Earliest is the first plausible event time: earlier ones are clock
	// resets or seconds sent as milliseconds. Late but plausible events are
	// kept; lateness is the watermark's business, not bronze's.
	Earliest time.Time
	// MaxFuture is how far ahead of now a device clock may run.
	MaxFuture time.Duration
}

// DefaultLimits accept events from 2000 on and up to a day in the future,
// in records up to 1 MiB.
var DefaultLimits = Limits{
	MaxRecordBytes: 1 << 20,
	Earliest:       time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
	MaxFuture:      24 * time.Hour,
}

// Parse reads one Kinesis record. now anchors the plausibility window.
func Parse(data []byte, now time.Time, lim Limits) ([]Event, []Reject) {
	whole := func(reason, detail string) ([]Event, []Reject) {
		return nil, []Reject{{Index: -1, Reason: reason, Detail: detail, Raw: data}}
	}
	if lim.MaxRecordBytes > 0 && len(data) > lim.MaxRecordBytes {
		return whole(ReasonOversized, fmt.Sprintf("record is %d bytes, limit %d", len(data), lim.MaxRecordBytes))
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return whole(ReasonEmpty, "record has no data")
	}
	if !utf8.Valid(data) {
		return whole(ReasonInvalidUTF8, "record is not valid UTF-8")
	}
	oneValue := bytes.IndexByte(trimmed, '\n') < 0 || json.Valid(trimmed)
	if oneValue && trimmed[0] != '[' {
		// The common case, one event per record (the SDK's
		// JSON.stringify(event)+"\n"): no copy, no split.
		ev, rej := parseEvent(0, trimmed, now, lim)
		if rej != nil {
			return nil, []Reject{*rej}
		}
		return []Event{ev}, nil
	}
	r := records{now: now, lim: lim}
	if oneValue {
		if reason, detail := r.value(trimmed); reason != "" {
			return whole(reason, detail)
		}
		return r.events, r.rejects
	}
	// NDJSON: each non-empty line is an event (or an array of events), and
	// a bad line is rejected alone.
	for line := range bytes.SplitSeq(trimmed, []byte{'\n'}) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if line[0] == '[' {
			if reason, detail := r.value(line); reason != "" {
				r.rejects = append(r.rejects, Reject{Index: r.next, Reason: reason, Detail: detail, Raw: line})
				r.next++
			}
			continue
		}
		r.event(line)
	}
	if len(r.events)+len(r.rejects) > maxEventsPerRecordLimit {
		return whole(ReasonTooManyEvents, fmt.Sprintf("%d events in one record, limit %d", len(r.events)+len(r.rejects), maxEventsPerRecordLimit))
	}
	return r.events, r.rejects
}

// records collects the events of a record that holds more than one, and
// numbers them.
type records struct {
	now     time.Time
	lim     Limits
	next    int
	events  []Event
	rejects []Reject
}

func (r *records) event(raw []byte) {
	ev, rej := parseEvent(r.next, raw, r.now, r.lim)
	r.next++
	if rej != nil {
		r.rejects = append(r.rejects, *rej)
		return
	}
	r.events = append(r.events, ev)
}

// value reads one valid JSON value: an object, or an array of events. It
// returns a reason when the whole value must be rejected.
func (r *records) value(v []byte) (reason, detail string) {
	if v[0] != '[' {
		r.event(v)
		return "", ""
	}
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil {
		return ReasonMalformedJSON, err.Error()
	}
	if len(items) == 0 {
		return ReasonEmpty, "empty array"
	}
	if len(items) > maxEventsPerRecordLimit {
		return ReasonTooManyEvents, fmt.Sprintf("%d events in one record, limit %d", len(items), maxEventsPerRecordLimit)
	}
	for _, it := range items {
		r.event(it)
	}
	return "", ""
}

// head is the part of an event bronze needs. Keys match in any case
// (MetricType, metrictype, METRICTYPE): goccy/go-json and encoding/json
// both fall back to a case-insensitive match of the tag. The SDK sends
// TimeStamp as Date.now(), always a JSON number: a string is rejected.
type head struct {
	Type      *string  `json:"metrictype"`
	Timestamp *float64 `json:"timestamp"`
}

func parseEvent(i int, raw []byte, now time.Time, lim Limits) (Event, *Reject) {
	bad := func(reason, format string, args ...any) (Event, *Reject) {
		return Event{}, &Reject{Index: i, Reason: reason, Detail: fmt.Sprintf(format, args...), Raw: raw}
	}
	if len(raw) == 0 || raw[0] != '{' {
		if !json.Valid(raw) {
			return bad(ReasonMalformedJSON, "not JSON")
		}
		return bad(ReasonNotAnObject, "event is not a JSON object")
	}
	var h head
	// goccy/go-json is the fast path (about twice encoding/json here); a
	// record it refuses is decoded again with encoding/json, whose errors
	// say precisely what is wrong.
	if err := json.Unmarshal(raw, &h); err != nil {
		err = stdjson.Unmarshal(raw, &h)
		if err == nil {
			return bad(ReasonMalformedJSON, "not valid JSON")
		}
		var te *stdjson.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && strings.Contains(te.Field, "timestamp"):
			return bad(ReasonAbsurdTimestamp, "timestamp is not epoch milliseconds: %v", err)
		case errors.As(err, &te):
			return bad(ReasonMissingType, "metrictype is not a string: %v", err)
		}
		return bad(ReasonMalformedJSON, "%v", err)
	}
	if h.Type == nil || *h.Type == "" {
		return bad(ReasonMissingType, "no metrictype")
	}
	typ, ok := canonicalType(*h.Type)
	if !ok {
		return bad(ReasonUnknownType, "metrictype %q is not one of play, firstframe, seek, buffer, stream, step, pause, error, stop (in any case)", *h.Type)
	}
	if h.Timestamp == nil {
		return bad(ReasonMissingTimestamp, "no timestamp")
	}
	ms := *h.Timestamp
	if math.IsNaN(ms) || math.IsInf(ms, 0) || math.Abs(ms) > 1e15 {
		return bad(ReasonAbsurdTimestamp, "timestamp %v is not epoch milliseconds", ms)
	}
	ts := time.UnixMilli(int64(ms)).UTC()
	if ts.Before(lim.Earliest) || ts.After(now.Add(lim.MaxFuture)) {
		return bad(ReasonAbsurdTimestamp, "timestamp %.0f (%s) is before %s or more than %s ahead",
			ms, ts.Format(time.RFC3339), lim.Earliest.Format(time.DateOnly), lim.MaxFuture)
	}
	return Event{Index: i, Type: typ, Time: ts, Payload: raw}, nil
}

// typeNames are the Types in a fixed order.
var typeNames = []string{"play", "firstframe", "seek", "buffer", "stream", "step", "pause", "error", "stop"}

// canonicalType returns the lower-case event type s names in any case,
// without allocating (the SDK's "STREAM" is most records).
func canonicalType(s string) (string, bool) {
	if Types[s] {
		return s, true
	}
	for _, t := range typeNames {
		if strings.EqualFold(s, t) {
			return t, true
		}
	}
	return "", false
}
