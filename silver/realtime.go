package silver

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/qoslake/qoslake/ingest/cloudfront"
)

// realtimeNames are the real-time log names of the fields standard logs
// name differently; the others have the same name in both.
var realtimeNames = map[string]string{
	"cs(Host)":       "cs-host",
	"cs(User-Agent)": "cs-user-agent",
	"cs(Referer)":    "cs-referer",
	"cs(Cookie)":     "cs-cookie",
}

// RealtimeRecord types one bronze real-time log record, given the field
// list it was read with, into a silver.cdn_logs row: the columns both log
// kinds share, typed as for a standard line, plus the origin latencies and
// the player's CMCD values. Values it cannot use are left empty and
// returned as Problems; the row is kept.
func (t *Transformer) RealtimeRecord(l *cloudfront.RealtimeLayout, record string, logTime time.Time, samplingRate int32, fields []string) (CDNRow, []Problem, []string) {
	fields = cloudfront.SplitRealtime(record, fields[:0])
	get := func(name string) string {
		if n, ok := realtimeNames[name]; ok {
			name = n
		}
		return l.Get(fields, name)
	}
	r, probs := t.cdnRow(get)
	r.EventID, r.LogTime, r.LogSource, r.SamplingRate = EventID([]byte(record)), logTime, LogRealtime, samplingRate
	// The real-time cs-uri-stem holds the query string too; a standard
	// log's does not, and the query has a field of its own.
	if stem, query, ok := strings.Cut(r.URIStem, "?"); ok {
		r.URIStem = stem
		if r.URIQuery == "" {
			r.URIQuery = query
		}
	}
	r.OriginFBL = secondsField(get("origin-fbl"), "origin-fbl", &probs)
	r.OriginLBL = secondsField(get("origin-lbl"), "origin-lbl", &probs)
	r.CMCD = cmcdOf(get, &probs)
	return r, probs, fields
}

// RealtimeRowOf types one bronze real-time record as the stage does; a nil
// layout (bronze's field list did not parse: only a bronze written by
// another tool) keeps the row with its time and reports the problem.
func (t *Transformer) RealtimeRowOf(l *cloudfront.RealtimeLayout, rawFields, record string, logTime time.Time, samplingRate int32, fields []string) (CDNRow, []Problem, []string) {
	if l == nil {
		return CDNRow{EventID: EventID([]byte(record)), LogTime: logTime, LogSource: LogRealtime, SamplingRate: samplingRate},
			[]Problem{{Field: "fields", Detail: fmt.Sprintf("bronze field list %q does not parse", limit(rawFields))}}, fields
	}
	return t.RealtimeRecord(l, record, logTime, samplingRate, fields)
}

// CMCD is the player's Common Media Client Data (CTA-5004) of a request,
// as CloudFront's real-time logs carry it: one field per key.
type CMCD struct {
	SessionID, ContentID                 string   // sid, cid
	EncodedBitrate                       *int64   // br, kbps
	BufferLength                         *int64   // bl, ms
	BufferStarvation                     *bool    // bs
	ObjectDuration                       *int64   // d, ms
	Deadline                             *int64   // dl, ms
	MeasuredThroughput                   *int64   // mtp, kbps
	NextObjectRequest, NextRangeRequest  string   // nor, nrr
	ObjectType, StreamType, StreamFormat string   // ot, st, sf
	PlaybackRate                         *float64 // pr
	RequestedMaxThroughput               *int64   // rtp, kbps
	Startup                              *bool    // su
	TopBitrate                           *int64   // tb, kbps
	Version                              *int32   // v
}

// cmcdOf reads the CMCD fields. Values come from the player: one that is
// not of its key's type is left empty and reported. Strings lose the
// quotes CTA-5004 puts around them and CloudFront's URL encoding; tokens
// are lower-cased.
func cmcdOf(get func(string) string, probs *[]Problem) CMCD {
	carries := false
	str := func(name string) string {
		v := get(name)
		if v == "" {
			return ""
		}
		carries = true
		v = unescape(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return v
	}
	num := func(name string, hi int64) *int64 {
		v := get(name)
		if v != "" {
			carries = true
		}
		return intField(v, 0, hi, name, probs)
	}
	flag := func(name string) *bool {
		v := get(name)
		if v == "" {
			return nil
		}
		carries = true
		var b bool
		switch strings.ToLower(v) {
		case "true", "1":
			b = true
		case "false", "0":
		default:
			*probs = append(*probs, Problem{name, fmt.Sprintf("%q is not true or false", limit(v))})
			return nil
		}
		return &b
	}
	const kbps, ms = 1 << 32, 1 << 40
	c := CMCD{
		SessionID:              str("cmcd-session-id"),
		ContentID:              str("cmcd-content-id"),
		EncodedBitrate:         num("cmcd-encoded-bitrate", kbps),
		BufferLength:           num("cmcd-buffer-length", ms),
		BufferStarvation:       flag("cmcd-buffer-starvation"),
		ObjectDuration:         num("cmcd-object-duration", ms),
		Deadline:               num("cmcd-deadline", ms),
		MeasuredThroughput:     num("cmcd-measured-throughput", kbps),
		NextObjectRequest:      str("cmcd-next-object-request"),
		NextRangeRequest:       str("cmcd-next-range-request"),
		ObjectType:             strings.ToLower(str("cmcd-object-type")),
		StreamType:             strings.ToLower(str("cmcd-stream-type")),
		StreamFormat:           strings.ToLower(str("cmcd-streaming-format")),
		RequestedMaxThroughput: num("cmcd-requested-maximum-throughput", kbps),
		Startup:                flag("cmcd-startup"),
		TopBitrate:             num("cmcd-top-bitrate", kbps),
	}
	if v := get("cmcd-playback-rate"); v != "" {
		carries = true
		if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f <= 1000 {
			c.PlaybackRate = &f
		} else {
			*probs = append(*probs, Problem{"cmcd-playback-rate", fmt.Sprintf("%q is not a rate in [0, 1000]", limit(v))})
		}
	}
	if v := num("cmcd-version", 1000); v != nil {
		x := int32(*v)
		c.Version = &x
	}
	// CTA-5004 sends a boolean key only when it is true.
	if carries {
		no := false
		if get("cmcd-buffer-starvation") == "" {
			c.BufferStarvation = &no
		}
		if get("cmcd-startup") == "" {
			c.Startup = &no
		}
	}
	return c
}
