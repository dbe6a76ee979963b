package silver

import (
	"crypto/sha256"
	"encoding/hex"
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

// PlayerRow is one row of silver.player_events.
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

// flexNumber accepts a JSON number or a numeric string ("29.970").
type flexNumber struct {
	v  float64
	ok bool
}

func (f *flexNumber) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" || s == "" {
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil // not numeric: left empty, reported by range checks
	}
	f.v, f.ok = v, true
	return nil
}

// flexString accepts a JSON string or a number (error codes are both).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	if string(b) != "null" {
		*f = flexString(b)
	}
	return nil
}

type playerJSON struct {
	Type           string     `json:"metrictype"`
	Timestamp      float64    `json:"timestamp"`
	At             flexNumber `json:"at"`
	RT             flexNumber `json:"rt"`
	ConnectionType string     `json:"connection_type"`
	Package        string     `json:"package"`
	Resolution     string     `json:"resolution"`
	FPS            flexNumber `json:"fps"`
	AvgBitrate     flexNumber `json:"avg_bitrate"`
	Duration       flexNumber `json:"duration"`
	BufferType     string     `json:"buffer_type"`
	CDNTrackingID  string     `json:"cdn_tracking_id"`
	UserID         string     `json:"user_id"`
	VideoID        string     `json:"video_id"`
	PlaylistType   string     `json:"playlist_type"`
	SessionID      string     `json:"session_id"`
	AppType        string     `json:"app_type"`
	Platform       string     `json:"platform"`
	AppVersion     string     `json:"app_version"`
	DeviceType     string     `json:"device_type"`
	OS             string     `json:"os"`
	Browser        string     `json:"browser"`
	ErrorCode      flexString `json:"error_code"`
	Message        string     `json:"message"`
	ClientIP       string     `json:"client_ip"`
}

// EventID is the stable id of an input: the first 128 bits of its SHA-256,
// hex. The same payload twice has the same id.
func EventID(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// PlayerEvent types one bronze player event. It fails only when the payload
// is not the JSON object bronze accepted.
func (t *Transformer) PlayerEvent(payload []byte, eventType string, eventTime time.Time) (PlayerRow, []Problem, error) {
	var j playerJSON
	if err := json.Unmarshal(payload, &j); err != nil {
		return PlayerRow{}, nil, fmt.Errorf("payload: %w", err)
	}
	var probs []Problem
	r := PlayerRow{
		EventID:        EventID(payload),
		EventType:      eventType,
		EventTime:      eventTime,
		SessionID:      j.SessionID,
		VideoID:        j.VideoID,
		PlaylistType:   j.PlaylistType,
		ConnectionType: j.ConnectionType,
		Package:        j.Package,
		BufferType:     j.BufferType,
		CDNTrackingID:  j.CDNTrackingID,
		AppType:        firstOf(j.AppType, j.Platform),
		AppVersion:     j.AppVersion,
		Device:         j.DeviceType,
		OS:             j.OS,
		Browser:        j.Browser,
		ErrorCode:      string(j.ErrorCode),
		ErrMessage:     j.Message,
	}
	if j.UserID != "" {
		r.UserKey, r.KeyID = t.Pseudonyms.Pseudonym(j.UserID), t.Pseudonyms.KeyID()
	}
	r.Position = ranged(j.At, 0, 1e7, "at", &probs)
	r.Response = ranged(j.RT, 0, 1e7, "rt", &probs)
	r.FPS = ranged(j.FPS, 0, 1000, "fps", &probs)
	if b := ranged(j.AvgBitrate, 0, 1e10, "avg_bitrate", &probs); b != nil {
		v := int64(*b)
		r.Bitrate = &v
	}
	if eventType == "buffer" {
		r.BufferDuration = ranged(j.Duration, 0, 24*3600*1000, "duration", &probs)
	} else {
		r.VideoDuration = ranged(j.Duration, 0, 1e7, "duration", &probs)
	}
	if j.Resolution != "" {
		w, h, ok := parseResolution(j.Resolution)
		if ok {
			r.Resolution, r.Width, r.Height = j.Resolution, &w, &h
		} else {
			probs = append(probs, Problem{"resolution", fmt.Sprintf("%q is not WIDTHxHEIGHT", limit(j.Resolution))})
		}
	}
	if j.ClientIP != "" {
		c, err := t.client(j.ClientIP)
		if err != nil {
			probs = append(probs, Problem{"client_ip", err.Error()})
		}
		r.Client = c
	}
	return r, probs, nil
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

func ranged(n flexNumber, lo, hi float64, field string, probs *[]Problem) *float64 {
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
	EventID                                  string
	LogTime                                  time.Time
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
	ObjectKey  string
	LineNumber int64
	IngestTime time.Time
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
	var probs []Problem
	r := CDNRow{
		EventID:            EventID([]byte(line)),
		LogTime:            logTime,
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
		ContentType:        get("sc-content-type"),
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
		if dec, err := url.PathUnescape(ua); err == nil {
			ua = dec
		}
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
	return r, probs, fields
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
