// Package playerevent reads player events as player SDKs put them on Kinesis:
// one JSON object per record, or a JSON array of them. It extracts what
// bronze needs (event type and time) and says precisely why a record or an
// event cannot be read. The accepted form is published as JSON Schema in
// schema.json beside this file.
package playerevent

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"

	json "github.com/goccy/go-json"
	"math"
	"strings"
	"time"
	"unicode/utf8"
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
// analytics reference player SDK).
var Types = map[string]bool{
	"play": true, "firstframe": true, "seek": true, "buffer": true, "stream": true,
	"step": true, "pause": true, "error": true, "stop": true,
}

// Event is one readable event of a record.
type Event struct {
	Index   int
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
	if trimmed[0] != '[' {
		ev, rej := parseEvent(0, trimmed, now, lim)
		if rej != nil {
			return nil, []Reject{*rej}
		}
		return []Event{ev}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(trimmed, &items); err != nil {
		return whole(ReasonMalformedJSON, err.Error())
	}
	if len(items) == 0 {
		return whole(ReasonEmpty, "empty array")
	}
	if len(items) > maxEventsPerRecordLimit {
		return whole(ReasonTooManyEvents, fmt.Sprintf("%d events in one record, limit %d", len(items), maxEventsPerRecordLimit))
	}
	events := make([]Event, 0, len(items))
	var rejects []Reject
	for i, it := range items {
		ev, rej := parseEvent(i, it, now, lim)
		if rej != nil {
			rejects = append(rejects, *rej)
			continue
		}
		events = append(events, ev)
	}
	return events, rejects
}

// head is the part of an event bronze needs.
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
	if !Types[*h.Type] {
		return bad(ReasonUnknownType, "metrictype %q is not one of play, firstframe, seek, buffer, stream, step, pause, error, stop", *h.Type)
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
	return Event{Index: i, Type: *h.Type, Time: ts, Payload: raw}, nil
}
