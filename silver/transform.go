package silver

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/qoslake/qoslake/anonymize"
	"github.com/qoslake/qoslake/geoip"
	"github.com/qoslake/qoslake/ingest/cloudfront"
)

// Geo looks up a full client address; geoip.DB is one.
type Geo interface {
	Lookup(netip.Addr) geoip.Info
}

// Transformer makes silver rows from bronze input. It holds no state
// between rows but the user-agent cache, and is safe for concurrent use.
type Transformer struct {
	Pseudonyms *anonymize.Pseudonymizer
	// Geo may be nil: enrichment turned off.
	Geo    Geo
	Agents *Agents
}

// Problem is a value that could not be used: the column is left empty and
// the problem counted, the row kept.
type Problem struct {
	Field  string
	Detail string
}

// PlayerRow is one row of silver.player_events. Enumerations and
// identifiers are lower-case, so the reference SDK's form of an event and
// the lower-cased form of its Databricks notebooks give the same row.
type PlayerRow struct {
	EventID, EventType                 string
	EventTime                          time.Time
	SessionID, UserKey, KeyID          string
	VideoID, PlaylistType              string
	Position, Response                 *float64
	ConnectionType, Package            string
	Resolution                         string
	Width, Height                      *int32
	FPS                                *float64
	Bitrate                            *int64
	VideoDuration, BufferDuration      *float64
	BufferType, CDNTrackingID          string
	AppType, AppVersion, Device        string
	OS, Browser, ErrorCode, ErrMessage string
	// RTT is the round-trip time of the segment request the reference SDK
	// reports (rtt), ms.
	RTT *float64
	// TimeToFirstFrame is FIRSTFRAME's time_millisecond: load start to the
	// first frame, ms.
	TimeToFirstFrame *float64
	// SeekTime is SEEK's time_millisecond, ms; SeekFrom and SeekTo are
	// playhead positions, seconds.
	SeekTime, SeekFrom, SeekTo *float64
	// BitrateFrom and BitrateTo are STEP's bitrates, bits per second;
	// Direction is up or down.
	BitrateFrom, BitrateTo *int64
	Direction              string
	Client
	ShardID, SequenceNumber string
	IngestTime              time.Time
}

// Client is the enrichment of a client address.
type Client struct {
	IP                         string // truncated
	Country, Subdivision, City string
	ASN                        *int64
	ISP                        string
}

// Details of the values players send for "not known".
const (
	unknownEmpty    = `unknown (the player sent "")`
	unknownMinusOne = "unknown (the player sent -1)"
)

// looseNumber is a number as players send it: a JSON number or a numeric
// string ("29.970"). It never fails a decode: "" and -1 (the reference
// SDK's unknowns) and values of the wrong type are left empty with the
// reason in bad.
type looseNumber struct {
	v   float64
	ok  bool
	bad string
}

func (f *looseNumber) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	s := string(b)
	if b[0] == '"' {
		s = strings.TrimSpace(s[1 : len(s)-1])
		if s == "" {
			f.bad = unknownEmpty
			return nil
		}
	} else if b[0] != '-' && (b[0] < '0' || b[0] > '9') {
		f.bad = fmt.Sprintf("%s is not a number", limit(s))
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil:
		f.bad = fmt.Sprintf("%q is not a number", limit(s))
	case v == -1:
		f.bad = unknownMinusOne
	default:
		f.v, f.ok = v, true
	}
	return nil
}

// looseString is a string as players send it. It never fails a decode:
// a number or boolean is kept as its text and reported in bad; an object
// or array is left empty; "" is an unknown.
type looseString struct {
	s   string
	bad string
}

func (f *looseString) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) == 0 || string(b) == "null":
	case b[0] == '"':
		if bytes.IndexByte(b, '\\') < 0 {
			f.s = string(b[1 : len(b)-1])
		} else if err := json.Unmarshal(b, &f.s); err != nil {
			f.bad = "not a valid string"
		}
		if f.s == "" && f.bad == "" {
			f.bad = unknownEmpty
		}
	case b[0] == '{' || b[0] == '[':
		f.bad = fmt.Sprintf("%s is not a string", limit(string(b)))
	default:
		f.s, f.bad = string(b), "a "+jsonKind(b)+" where a string belongs, kept as its text"
	}
	return nil
}

// code is an error code: a string or a number, both as sent.
type code struct{ looseString }

func (f *code) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9')) {
		f.s = string(b)
		return nil
	}
	return f.looseString.UnmarshalJSON(b)
}

func jsonKind(b []byte) string {
	if b[0] == 't' || b[0] == 'f' {
		return "boolean"
	}
	return "number"
}

// playerJSON is every field silver reads, in the lower-case spelling of
// the keys: a key matches in any case (MetricType, metrictype). Event type
// and time come from bronze.
type playerJSON struct {
	At              looseNumber `json:"at"`
	RT              looseNumber `json:"rt"`
	RTT             looseNumber `json:"rtt"`
	ConnectionType  looseString `json:"connection_type"`
	Package         looseString `json:"package"`
	Resolution      looseString `json:"resolution"`
	FPS             looseNumber `json:"fps"`
	AvgBitrate      looseNumber `json:"avg_bitrate"`
	Duration        looseNumber `json:"duration"`
	TimeMillisecond looseNumber `json:"time_millisecond"`
	BufferType      looseString `json:"buffer_type"`
	SeekFrom        looseNumber `json:"seek_from"`
	SeekTo          looseNumber `json:"seek_to"`
	BitrateFrom     looseNumber `json:"bitrate_from"`
	BitrateTo       looseNumber `json:"bitrate_to"`
	Direction       looseString `json:"direction"`
	CDNTrackingID   looseString `json:"cdn_tracking_id"`
	UserID          looseString `json:"user_id"`
	VideoID         looseString `json:"video_id"`
	PlaylistType    looseString `json:"playlist_type"`
	SessionID       looseString `json:"session_id"`
	AppType         looseString `json:"app_type"`
	Platform        looseString `json:"platform"`
	AppVersion      looseString `json:"app_version"`
	DeviceType      looseString `json:"device_type"`
	OS              looseString `json:"os"`
	Browser         looseString `json:"browser"`
	ErrorCode       code        `json:"error_code"`
	Message         looseString `json:"message"`
	ClientIP        looseString `json:"client_ip"`
}

// fastPlayerJSON is playerJSON with plain strings, which goccy/go-json
// decodes without a copy per field. It serves payloads with no field of
// the wrong type and no "" (which a plain string cannot tell from a missing
// field); the others take the lenient decode.
type fastPlayerJSON struct {
	At              looseNumber `json:"at"`
	RT              looseNumber `json:"rt"`
	RTT             looseNumber `json:"rtt"`
	ConnectionType  string      `json:"connection_type"`
	Package         string      `json:"package"`
	Resolution      string      `json:"resolution"`
	FPS             looseNumber `json:"fps"`
	AvgBitrate      looseNumber `json:"avg_bitrate"`
	Duration        looseNumber `json:"duration"`
	TimeMillisecond looseNumber `json:"time_millisecond"`
	BufferType      string      `json:"buffer_type"`
	SeekFrom        looseNumber `json:"seek_from"`
	SeekTo          looseNumber `json:"seek_to"`
	BitrateFrom     looseNumber `json:"bitrate_from"`
	BitrateTo       looseNumber `json:"bitrate_to"`
	Direction       string      `json:"direction"`
	CDNTrackingID   string      `json:"cdn_tracking_id"`
	UserID          string      `json:"user_id"`
	VideoID         string      `json:"video_id"`
	PlaylistType    string      `json:"playlist_type"`
	SessionID       string      `json:"session_id"`
	AppType         string      `json:"app_type"`
	Platform        string      `json:"platform"`
	AppVersion      string      `json:"app_version"`
	DeviceType      string      `json:"device_type"`
	OS              string      `json:"os"`
	Browser         string      `json:"browser"`
	ErrorCode       code        `json:"error_code"`
	Message         string      `json:"message"`
	ClientIP        string      `json:"client_ip"`
}

func (f *fastPlayerJSON) loose() playerJSON {
	return playerJSON{
		At: f.At, RT: f.RT, RTT: f.RTT, FPS: f.FPS, AvgBitrate: f.AvgBitrate, Duration: f.Duration,
		TimeMillisecond: f.TimeMillisecond, SeekFrom: f.SeekFrom, SeekTo: f.SeekTo,
		BitrateFrom: f.BitrateFrom, BitrateTo: f.BitrateTo, ErrorCode: f.ErrorCode,
		ConnectionType: looseString{s: f.ConnectionType}, Package: looseString{s: f.Package},
		Resolution: looseString{s: f.Resolution}, BufferType: looseString{s: f.BufferType},
		Direction: looseString{s: f.Direction}, CDNTrackingID: looseString{s: f.CDNTrackingID},
		UserID: looseString{s: f.UserID}, VideoID: looseString{s: f.VideoID},
		PlaylistType: looseString{s: f.PlaylistType}, SessionID: looseString{s: f.SessionID},
		AppType: looseString{s: f.AppType}, Platform: looseString{s: f.Platform},
		AppVersion: looseString{s: f.AppVersion}, DeviceType: looseString{s: f.DeviceType},
		OS: looseString{s: f.OS}, Browser: looseString{s: f.Browser},
		Message: looseString{s: f.Message}, ClientIP: looseString{s: f.ClientIP},
	}
}

// decodePlayer decodes a JSON object leniently: it fails only when the
// payload is not an object.
func decodePlayer(payload []byte) (playerJSON, error) {
	if p := bytes.TrimSpace(payload); len(p) == 0 || p[0] != '{' {
		return playerJSON{}, errors.New("payload: not a JSON object")
	}
	if !bytes.Contains(payload, []byte(`""`)) {
		var f fastPlayerJSON
		if json.Unmarshal(payload, &f) == nil {
			return f.loose(), nil
		}
	}
	var j playerJSON
	if err := json.Unmarshal(payload, &j); err != nil {
		return playerJSON{}, fmt.Errorf("payload: %w", err)
	}
	return j, nil
}

// JoinKey is the form in which a player's cdn_tracking_id and CloudFront's
// x-edge-request-id are compared: lower-case. The reference SDK sends the
// request id as CloudFront wrote it (mixed case), and its Databricks
// notebooks lower-case it, so the join must ignore case.
func JoinKey(requestID string) string { return strings.ToLower(requestID) }

// EventID is the stable id of an input: the first 128 bits of its SHA-256,
// hex. The same payload twice has the same id.
func EventID(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// PlayerEvent types one bronze player event. A value it cannot use (of
// the wrong JSON type, out of range, or an unknown: "" or -1) is left empty
// and returned as a Problem; the row is kept. It fails only when the payload
// is not a JSON object.
func (t *Transformer) PlayerEvent(payload []byte, eventType string, eventTime time.Time) (PlayerRow, []Problem, error) {
	j, err := decodePlayer(payload)
	if err != nil {
		return PlayerRow{}, nil, err
	}
	var probs []Problem
	str := func(f looseString, field string) string {
		if f.bad != "" {
			probs = append(probs, Problem{field, f.bad})
		}
		return f.s
	}
	lower := func(f looseString, field string) string { return strings.ToLower(str(f, field)) }
	num := func(n looseNumber, lo, hi float64, field string) *float64 {
		if n.bad != "" {
			probs = append(probs, Problem{field, n.bad})
		}
		return ranged(n, lo, hi, field, &probs)
	}
	eventType = strings.ToLower(eventType)
	r := PlayerRow{
		EventID:   EventID(payload),
		EventType: eventType,
		EventTime: eventTime,
		SessionID: str(j.SessionID, "session_id"),
		// Identifiers and enumerations are lower-cased: the Databricks
		// form has them so, and a user, a video or a request must be the
		// same in both forms.
		VideoID:        lower(j.VideoID, "video_id"),
		PlaylistType:   lower(j.PlaylistType, "playlist_type"),
		ConnectionType: lower(j.ConnectionType, "connection_type"),
		Package:        lower(j.Package, "package"),
		BufferType:     lower(j.BufferType, "buffer_type"),
		Direction:      lower(j.Direction, "direction"),
		CDNTrackingID:  JoinKey(str(j.CDNTrackingID, "cdn_tracking_id")),
		AppType:        firstOf(str(j.AppType, "app_type"), str(j.Platform, "platform")),
		AppVersion:     str(j.AppVersion, "app_version"),
		Device:         str(j.DeviceType, "device_type"),
		OS:             str(j.OS, "os"),
		Browser:        str(j.Browser, "browser"),
		ErrorCode:      str(j.ErrorCode.looseString, "error_code"),
		ErrMessage:     lower(j.Message, "message"),
	}
	if u := lower(j.UserID, "user_id"); u != "" {
		r.UserKey, r.KeyID = t.Pseudonyms.Pseudonym(u), t.Pseudonyms.KeyID()
	}
	r.Position = num(j.At, 0, 1e7, "at")
	r.Response = num(j.RT, 0, 1e7, "rt")
	r.RTT = num(j.RTT, 0, 1e7, "rtt")
	r.FPS = num(j.FPS, 0, 1000, "fps")
	r.Bitrate = whole(num(j.AvgBitrate, 0, 1e10, "avg_bitrate"))
	const day = 24 * 3600 * 1000
	switch eventType {
	case "buffer":
		// The reference SDK sends the stall's length in time_millisecond;
		// older forms sent it in duration.
		if j.TimeMillisecond.ok || j.TimeMillisecond.bad != "" {
			r.BufferDuration = num(j.TimeMillisecond, 0, day, "time_millisecond")
		} else {
			r.BufferDuration = num(j.Duration, 0, day, "duration")
		}
	case "firstframe":
		r.TimeToFirstFrame = num(j.TimeMillisecond, 0, day, "time_millisecond")
	case "seek":
		r.SeekTime = num(j.TimeMillisecond, 0, day, "time_millisecond")
	}
	if eventType != "buffer" {
		r.VideoDuration = num(j.Duration, 0, 1e7, "duration")
	}
	r.SeekFrom = num(j.SeekFrom, 0, 1e7, "seek_from")
	r.SeekTo = num(j.SeekTo, 0, 1e7, "seek_to")
	r.BitrateFrom = whole(num(j.BitrateFrom, 0, 1e10, "bitrate_from"))
	r.BitrateTo = whole(num(j.BitrateTo, 0, 1e10, "bitrate_to"))
	if res := lower(j.Resolution, "resolution"); res != "" {
		w, h, ok := parseResolution(res)
		if ok {
			r.Resolution, r.Width, r.Height = res, &w, &h
		} else {
			probs = append(probs, Problem{"resolution", fmt.Sprintf("%q is not WIDTHxHEIGHT", limit(res))})
		}
	}
	if j.ClientIP.bad != "" {
		probs = append(probs, Problem{"client_ip", j.ClientIP.bad})
	} else if ip := j.ClientIP.s; ip != "" {
		c, err := t.client(ip)
		if err != nil {
			probs = append(probs, Problem{"client_ip", err.Error()})
		}
		r.Client = c
	}
	return r, probs, nil
}

// whole rounds a number of bits per second to an integer.
func whole(v *float64) *int64 {
	if v == nil {
		return nil
	}
	i := int64(math.Round(*v))
	return &i
}

// client looks up the full address, then keeps only its network.
func (t *Transformer) client(ip string) (Client, error) {
	a, err := anonymize.ParseIP(ip)
	if err != nil {
		return Client{}, err
	}
	c := Client{IP: anonymize.Truncate(a).String()}
	if t.Geo != nil {
		info := t.Geo.Lookup(a)
		c.Country, c.Subdivision, c.City, c.ISP = info.Country, info.Subdivision, info.City, info.ISP
		if info.ASN != 0 {
			asn := int64(info.ASN)
			c.ASN = &asn
		}
	}
	return c, nil
}

func ranged(n looseNumber, lo, hi float64, field string, probs *[]Problem) *float64 {
	if !n.ok {
		return nil
	}
	if math.IsNaN(n.v) || n.v < lo || n.v > hi {
		*probs = append(*probs, Problem{field, fmt.Sprintf("%v is outside [%v, %v]", n.v, lo, hi)})
		return nil
	}
	v := n.v
	return &v
}

func parseResolution(s string) (int32, int32, bool) {
	w, h, ok := strings.Cut(strings.ToLower(s), "x")
	if !ok {
		return 0, 0, false
	}
	wi, err1 := strconv.Atoi(w)
	hi, err2 := strconv.Atoi(h)
	if err1 != nil || err2 != nil || wi < 1 || hi < 1 || wi > 20000 || hi > 20000 {
		return 0, 0, false
	}
	return int32(wi), int32(hi), true
}

func firstOf(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func limit(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// CDNRow is one row of silver.cdn_logs.
type CDNRow struct {
	EventID string
	LogTime time.Time
	// LogSource is LogStandard or LogRealtime; SamplingRate the percent
	// of requests that log kind logs (0 is null).
	LogSource                                string
	SamplingRate                             int32
	EdgeLocation, POP                        string
	SCBytes, CSBytes                         *int64
	Method, Host, URIStem, URIQuery, Referer string
	Status                                   *int32
	UserAgent                                string
	Agent
	EdgeResult, EdgeResponseResult, EdgeDetailedResult string
	EdgeRequestID, HostHeader                          string
	Protocol, ProtocolVersion                          string
	TimeTaken, TTFB                                    *float64
	ForwardedFor, SSLProtocol, SSLCipher               string
	ClientPort                                         *int32
	ContentType                                        string
	ContentLength, RangeStart, RangeEnd                *int64
	CacheHit, Error                                    bool
	Client
	// OriginFBL and OriginLBL are the origin's first- and last-byte
	// latencies, ms (real-time logs only).
	OriginFBL, OriginLBL *float64
	CMCD
	// Lineage: the log object and line of a standard log, the shard and
	// sequence number of a real-time record.
	ObjectKey               string
	LineNumber              int64
	ShardID, SequenceNumber string
	IngestTime              time.Time
}

// CDNLine types one bronze CloudFront line, given its #Fields header.
func (t *Transformer) CDNLine(h *cloudfront.Header, line string, logTime time.Time, fields []string) (CDNRow, []Problem, []string) {
	fields = cloudfront.Split(line, fields[:0])
	get := func(name string) string {
		i := h.Index(name)
		if i < 0 || i >= len(fields) || fields[i] == "-" {
			return ""
		}
		return fields[i]
	}
	r, probs := t.cdnRow(get)
	r.EventID, r.LogTime, r.LogSource, r.SamplingRate = EventID([]byte(line)), logTime, LogStandard, 100
	return r, probs, fields
}

// cdnRow types the fields a CloudFront request has in both log kinds,
// read by their standard-log names.
func (t *Transformer) cdnRow(get func(name string) string) (CDNRow, []Problem) {
	var probs []Problem
	r := CDNRow{
		EdgeLocation:       get("x-edge-location"),
		Method:             get("cs-method"),
		Host:               get("cs(Host)"),
		URIStem:            get("cs-uri-stem"),
		URIQuery:           get("cs-uri-query"),
		Referer:            get("cs(Referer)"),
		EdgeResult:         get("x-edge-result-type"),
		EdgeResponseResult: get("x-edge-response-result-type"),
		EdgeDetailedResult: get("x-edge-detailed-result-type"),
		EdgeRequestID:      get("x-edge-request-id"),
		HostHeader:         get("x-host-header"),
		Protocol:           get("cs-protocol"),
		ProtocolVersion:    get("cs-protocol-version"),
		SSLProtocol:        get("ssl-protocol"),
		SSLCipher:          get("ssl-cipher"),
		ContentType:        unescape(get("sc-content-type")),
	}
	if len(r.EdgeLocation) >= 3 {
		r.POP = r.EdgeLocation[:3]
	}
	r.SCBytes = intField(get("sc-bytes"), 0, 1<<50, "sc-bytes", &probs)
	r.CSBytes = intField(get("cs-bytes"), 0, 1<<40, "cs-bytes", &probs)
	r.ContentLength = intField(get("sc-content-len"), 0, 1<<50, "sc-content-len", &probs)
	r.RangeStart = intField(get("sc-range-start"), 0, 1<<50, "sc-range-start", &probs)
	r.RangeEnd = intField(get("sc-range-end"), 0, 1<<50, "sc-range-end", &probs)
	if s := intField(get("sc-status"), 0, 999, "sc-status", &probs); s != nil {
		v := int32(*s)
		r.Status = &v
	}
	if p := intField(get("c-port"), 0, 65535, "c-port", &probs); p != nil {
		v := int32(*p)
		r.ClientPort = &v
	}
	r.TimeTaken = secondsField(get("time-taken"), "time-taken", &probs)
	r.TTFB = secondsField(get("time-to-first-byte"), "time-to-first-byte", &probs)
	if ua := get("cs(User-Agent)"); ua != "" {
		ua = unescapeAgent(ua)
		r.UserAgent = ua
		if t.Agents != nil {
			r.Agent = t.Agents.Parse(ua)
		}
	}
	if xff := get("x-forwarded-for"); xff != "" {
		if dec, err := url.PathUnescape(xff); err == nil {
			xff = dec
		}
		var bad int
		r.ForwardedFor, bad = anonymize.TruncateList(xff)
		if bad > 0 {
			probs = append(probs, Problem{"x-forwarded-for", fmt.Sprintf("%d entries are not addresses", bad)})
		}
	}
	if ip := get("c-ip"); ip != "" {
		c, err := t.client(ip)
		if err != nil {
			probs = append(probs, Problem{"c-ip", err.Error()})
		}
		r.Client = c
	}
	r.CacheHit = r.EdgeResult == "Hit" || r.EdgeResult == "RefreshHit"
	r.Error = r.EdgeResult == "Error" || (r.Status != nil && (*r.Status >= 500 || *r.Status == 0))
	return r, probs
}

func intField(s string, lo, hi int64, field string, probs *[]Problem) *int64 {
	if s == "" {
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		*probs = append(*probs, Problem{field, fmt.Sprintf("%q is not a whole number in [%d, %d]", limit(s), lo, hi)})
		return nil
	}
	return &v
}

// secondsField reads CloudFront's seconds with millisecond precision as ms.
func secondsField(s, field string, probs *[]Problem) *float64 {
	if s == "" {
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > 24*3600 {
		*probs = append(*probs, Problem{field, fmt.Sprintf("%q is not seconds in [0, 86400]", limit(s))})
		return nil
	}
	ms := math.Round(v*1e6) / 1e3
	return &ms
}

// unescape decodes CloudFront's URL encoding once; a value that does not
// decode (a lone %) is kept as written.
func unescape(s string) string {
	if dec, err := url.PathUnescape(s); err == nil {
		return dec
	}
	return s
}

// unescapeAgent decodes a user agent. CloudFront encodes it once (%20);
// some log pipelines encode it again (%2520: seen in real files), so a
// value that, once decoded, still has escapes and no space is decoded a
// second time, never more (an agent that itself holds an escape such as
// %25 is then decoded one step too far: rare, and only in that column).
// PathUnescape, not QueryUnescape: bot agents carry a literal "+".
func unescapeAgent(s string) string {
	once := unescape(s)
	if once != s && !strings.Contains(once, " ") && hasEscape(once) {
		return unescape(once)
	}
	return once
}

func hasEscape(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '%' && isHex(s[i+1]) && isHex(s[i+2]) {
			return true
		}
	}
	return false
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}
