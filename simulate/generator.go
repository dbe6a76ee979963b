package simulate

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Scenarios that can be switched on. Each picks its target at random from
// the seed when it starts.
const (
	Normal       = "normal"
	EdgeLatency  = "edge-latency"  // one edge location's latency rises
	AppErrors    = "app-errors"    // one app/device type's playback errors rise
	ISPBuffering = "isp-buffering" // one ISP's buffering rises
	LateCDNLogs  = "late-cdn-logs" // CDN log files are delivered hours late
)

// Scenarios lists every scenario name.
var Scenarios = []string{Normal, EdgeLatency, AppErrors, ISPBuffering, LateCDNLogs}

// Config sets up a Generator.
type Config struct {
	Seed int64
	// Start is the simulated time of the first tick.
	Start time.Time
	// Rate is the target rate of player events per second once sessions
	// have built up (about 26 events per session).
	Rate float64
	// LogEvery is how much simulated time one CDN log file covers.
	LogEvery time.Duration
	// LateBy is how late CDN log files arrive during LateCDNLogs.
	LateBy time.Duration
	// Distribution is the CloudFront distribution id in log file names.
	Distribution string
	// LogPrefix is the key prefix of log files.
	LogPrefix string
}

// Event is one player event, as JSON.
type Event struct {
	Type         string
	PartitionKey string
	JSON         []byte
	Time         time.Time
}

// LogFile is one gzip-compressed CloudFront standard log file.
type LogFile struct {
	Key   string
	Body  []byte
	Lines int
	// Due is the simulated time the file is delivered.
	Due time.Time
}

// Incident is a scenario that was on, and what it targeted.
type Incident struct {
	Scenario string    `json:"scenario"`
	Target   string    `json:"target"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end,omitzero"`
}

// Generator produces traffic one simulated second at a time.
type Generator struct {
	cfg      Config
	rng      *rand.Rand
	now      time.Time
	sessions []*session
	nextID   int

	scenario  string
	incident  *Incident
	incidents []Incident
	target    string

	lines     []logLine
	periodEnd time.Time
	held      []LogFile
}

type logLine struct {
	t    time.Time
	text string
}

type session struct {
	id, user, trackingID string
	video                Video
	client               Client
	net                  Network
	ip                   netip.Addr
	edge, conn           string
	start, firstFrame    time.Time
	watchUntil           time.Time
	started, ended       bool
	failStart, exitEarly bool
	rung                 int
	pos                  float64
	lastSegment          time.Time
	lastStream           time.Time
	segment              int
}

// New returns a generator at cfg.Start with no sessions.
func New(cfg Config) *Generator {
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = 5 * time.Second
	}
	if cfg.LateBy <= 0 {
		cfg.LateBy = 3 * time.Hour
	}
	if cfg.Distribution == "" {
		cfg.Distribution = "E2QOSLAKEDEMO"
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 50
	}
	cfg.Start = cfg.Start.UTC().Truncate(time.Second)
	g := &Generator{cfg: cfg, rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)), now: cfg.Start, scenario: Normal}
	g.periodEnd = cfg.Start.Add(cfg.LogEvery)
	return g
}

// Now is the simulated time of the next tick.
func (g *Generator) Now() time.Time { return g.now }

// Scenario returns the scenario in force.
func (g *Generator) Scenario() string { return g.scenario }

// SetScenario switches scenario at the current simulated time.
func (g *Generator) SetScenario(name string) error {
	if !validScenario(name) {
		return fmt.Errorf("scenario %q: want one of %s", name, strings.Join(Scenarios, ", "))
	}
	if name == g.scenario {
		return nil
	}
	if g.incident != nil {
		g.incident.End = g.now
		g.incidents = append(g.incidents, *g.incident)
		g.incident = nil
	}
	g.scenario, g.target = name, ""
	switch name {
	case EdgeLatency:
		n := Networks[g.rng.IntN(len(Networks))]
		g.target = n.Edges[0]
	case AppErrors:
		c := Clients[g.rng.IntN(len(Clients))]
		g.target = c.App + "/" + c.Device
	case ISPBuffering:
		g.target = Networks[g.rng.IntN(len(Networks))].ISP
	case LateCDNLogs:
		g.target = g.cfg.LateBy.String()
	}
	if name != Normal {
		g.incident = &Incident{Scenario: name, Target: g.target, Start: g.now}
	}
	return nil
}

func validScenario(s string) bool {
	for _, x := range Scenarios {
		if x == s {
			return true
		}
	}
	return false
}

// Incidents returns the incidents so far, the open one with no end.
func (g *Generator) Incidents() []Incident {
	out := append([]Incident(nil), g.incidents...)
	if g.incident != nil {
		out = append(out, *g.incident)
	}
	return out
}

// Sessions returns how many sessions have started.
func (g *Generator) Sessions() int { return g.nextID }

// Tick simulates one second and returns the player events and the log
// files due by its end.
func (g *Generator) Tick() ([]Event, []LogFile) {
	var events []Event
	// New sessions: Poisson arrivals at Rate/26 a second.
	for range poisson(g.rng, g.cfg.Rate/26) {
		g.sessions = append(g.sessions, g.newSession())
	}
	live := g.sessions[:0]
	for _, s := range g.sessions {
		events = g.advance(s, events)
		if !s.ended {
			live = append(live, s)
		}
	}
	g.sessions = live
	g.now = g.now.Add(time.Second)
	sort.SliceStable(events, func(i, j int) bool { return events[i].Time.Before(events[j].Time) })
	return events, g.dueLogs(false)
}

// Flush ends every session and returns all log files not yet delivered,
// late ones included: a run's output is then complete.
func (g *Generator) Flush() ([]Event, []LogFile) {
	var events []Event
	for _, s := range g.sessions {
		if s.started && !s.ended {
			events = append(events, g.event(s, "stop", g.now, nil))
			s.ended = true
		}
	}
	g.sessions = nil
	if g.incident != nil {
		g.incident.End = g.now
		g.incidents = append(g.incidents, *g.incident)
		g.incident = nil
	}
	return events, g.dueLogs(true)
}

func (g *Generator) newSession() *session {
	g.nextID++
	s := &session{
		id:     fmt.Sprintf("s-%d-%06d", g.cfg.Seed, g.nextID),
		user:   "us-west-2:" + g.uuid(),
		video:  Videos[g.rng.IntN(len(Videos))],
		client: Clients[g.rng.IntN(len(Clients))],
		net:    Networks[g.rng.IntN(len(Networks))],
		conn:   connections[g.rng.IntN(len(connections))],
		start:  g.now.Add(time.Duration(g.rng.IntN(1000)) * time.Millisecond),
		rung:   1 + g.rng.IntN(2),
	}
	s.edge = s.net.Edges[g.rng.IntN(len(s.net.Edges))]
	if g.rng.IntN(4) == 0 {
		s.ip = randomAddr(g.rng, s.net.V6)
	} else {
		s.ip = randomAddr(g.rng, s.net.V4)
	}
	startup := time.Duration(800+g.rng.ExpFloat64()*900) * time.Millisecond
	if g.scenario == EdgeLatency && s.edge == g.target {
		startup *= 4
	}
	s.firstFrame = s.start.Add(startup)
	s.failStart = g.rng.Float64() < 0.01
	s.exitEarly = !s.failStart && g.rng.Float64() < 0.02
	s.watchUntil = s.firstFrame.Add(time.Duration(30+g.rng.ExpFloat64()*150) * time.Second)
	return s
}

func (g *Generator) advance(s *session, events []Event) []Event {
	end := g.now.Add(time.Second)
	if !s.started {
		if s.start.After(end) {
			return events
		}
		s.started = true
		// The first segment request goes out with the play event.
		g.segment(s, s.start)
		s.lastSegment = s.start
		events = append(events, g.event(s, "play", s.start, nil))
		if s.failStart {
			events = append(events, g.event(s, "error", s.start.Add(1500*time.Millisecond), map[string]any{"error_code": "MEDIA_ERR_SRC_NOT_SUPPORTED", "message": "video start failure"}))
			events = append(events, g.event(s, "stop", s.start.Add(1600*time.Millisecond), nil))
			s.ended = true
			return events
		}
		if s.exitEarly {
			events = append(events, g.event(s, "stop", s.start.Add(700*time.Millisecond), nil))
			s.ended = true
			return events
		}
	}
	if s.firstFrame.Before(end) && s.lastStream.IsZero() {
		ms := s.firstFrame.Sub(s.start).Milliseconds()
		events = append(events, g.event(s, "buffer", s.firstFrame, map[string]any{"buffer_type": "firstbuffer", "duration": ms}))
		events = append(events, g.event(s, "firstframe", s.firstFrame, map[string]any{"rt": ms}))
		s.lastStream = s.firstFrame
	}
	if s.lastStream.IsZero() {
		return events
	}
	t := g.now.Add(time.Duration(g.rng.IntN(1000)) * time.Millisecond)
	if t.Before(s.firstFrame) {
		t = s.firstFrame
	}
	s.pos++
	if t.Sub(s.lastSegment) >= 4*time.Second {
		g.segment(s, t)
		s.lastSegment = t
	}
	if t.Sub(s.lastStream) >= 10*time.Second {
		events = append(events, g.event(s, "stream", t, nil))
		s.lastStream = t
	}
	rebuffer := 0.003
	if g.scenario == ISPBuffering && s.net.ISP == g.target {
		rebuffer = 0.05
	}
	if g.rng.Float64() < rebuffer {
		events = append(events, g.event(s, "buffer", t, map[string]any{"buffer_type": "rebuffer", "duration": 400 + g.rng.IntN(3600)}))
		if s.rung > 0 {
			s.rung--
			events = append(events, g.event(s, "step", t.Add(time.Millisecond), nil))
		}
	} else if g.rng.Float64() < 0.01 && s.rung < len(Ladder)-1 {
		s.rung++
		events = append(events, g.event(s, "step", t, nil))
	}
	if g.rng.Float64() < 0.002 {
		events = append(events, g.event(s, "seek", t, nil))
		s.pos += float64(g.rng.IntN(60))
	}
	if g.rng.Float64() < 0.002 {
		events = append(events, g.event(s, "pause", t, nil))
	}
	failure := 0.0002
	if g.scenario == AppErrors && s.client.App+"/"+s.client.Device == g.target {
		failure = 0.02
	}
	switch {
	case g.rng.Float64() < failure:
		events = append(events, g.event(s, "error", t, map[string]any{"error_code": "MEDIA_ERR_DECODE", "message": "playback failure"}))
		events = append(events, g.event(s, "stop", t.Add(100*time.Millisecond), nil))
		s.ended = true
	case !t.Before(s.watchUntil):
		events = append(events, g.event(s, "stop", t, nil))
		s.ended = true
	}
	return events
}

func (g *Generator) event(s *session, typ string, t time.Time, extra map[string]any) Event {
	r := Ladder[s.rung]
	duration := s.video.Duration
	m := map[string]any{
		"metrictype":      typ,
		"at":              math.Round(s.pos*1000) / 1000,
		"connection_type": s.conn,
		"package":         "hls",
		"resolution":      r.Resolution,
		"fps":             "29.970",
		"avg_bitrate":     r.Bitrate,
		"duration":        duration,
		"cdn_tracking_id": s.trackingID,
		"user_id":         s.user,
		"video_id":        s.video.ID,
		"playlist_type":   s.video.Playlist,
		"session_id":      s.id,
		"app_type":        s.client.App,
		"app_version":     s.client.Version,
		"device_type":     s.client.Device,
		"os":              s.client.OS,
		"browser":         s.client.Browser,
		"client_ip":       s.ip.String(),
		"timestamp":       t.UnixMilli(),
	}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return Event{Type: typ, PartitionKey: s.id, JSON: b, Time: t}
}

// segment writes the CDN log line of one segment request and makes its
// request id the session's tracking id.
func (g *Generator) segment(s *session, t time.Time) {
	s.segment++
	s.trackingID = g.requestID()
	r := Ladder[s.rung]
	size := r.Bitrate / 8 * 4
	latency := 0.005 + g.rng.ExpFloat64()*0.03
	result := "Hit"
	if g.rng.IntN(10) == 0 {
		result = "Miss"
		latency += 0.08 + g.rng.ExpFloat64()*0.1
	}
	if g.scenario == EdgeLatency && s.edge == g.target {
		latency *= 6
	}
	status := "200"
	if g.rng.IntN(500) == 0 {
		status, result, size = "502", "Error", 0
	}
	ttfb := latency * 0.6
	stem := fmt.Sprintf("/vod/%s/%s/seg_%05d.ts", s.video.ID, r.Path, s.segment)
	if s.video.Playlist == "live" {
		stem = fmt.Sprintf("/live/%s/%s/seg_%05d.ts", s.video.ID, r.Path, s.segment)
	}
	fields := []string{
		t.Format("2006-01-02"), t.Format("15:04:05"), s.edge, fmt.Sprint(size + 512), s.ip.String(), "GET",
		"d1qoslakedemo.cloudfront.net", stem, status, "-", encodeUA(s.client.UserAgent), "-", "-", result,
		s.trackingID, "video.example.com", "https", fmt.Sprint(280 + g.rng.IntN(120)), fmt.Sprintf("%.3f", latency), "-",
		"TLSv1.3", "TLS_AES_128_GCM_SHA256", result, "HTTP/2.0", "-", "-", fmt.Sprint(40000 + g.rng.IntN(25000)),
		fmt.Sprintf("%.3f", ttfb), result, "video/MP2T", fmt.Sprint(size), "-", "-",
	}
	g.lines = append(g.lines, logLine{t: t, text: strings.Join(fields, "\t")})
}

// Fields is the #Fields header of the simulated logs: all 33 fields of
// the CloudFront standard log format.
const Fields = "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end"

func (g *Generator) dueLogs(all bool) []LogFile {
	var out []LogFile
	for !g.now.Before(g.periodEnd) || (all && len(g.lines) > 0) {
		if f, ok := g.cut(); ok {
			if g.scenario == LateCDNLogs {
				f.Due = g.periodEnd.Add(g.cfg.LateBy)
				g.held = append(g.held, f)
			} else {
				out = append(out, f)
			}
		}
		g.periodEnd = g.periodEnd.Add(g.cfg.LogEvery)
		if all && len(g.lines) == 0 {
			break
		}
	}
	keep := g.held[:0]
	for _, f := range g.held {
		if all || !g.now.Before(f.Due) {
			out = append(out, f)
		} else {
			keep = append(keep, f)
		}
	}
	g.held = keep
	return out
}

// cut packs the lines of the period ending at periodEnd into a log file.
func (g *Generator) cut() (LogFile, bool) {
	var in, rest []logLine
	for _, l := range g.lines {
		if l.t.Before(g.periodEnd) {
			in = append(in, l)
		} else {
			rest = append(rest, l)
		}
	}
	g.lines = rest
	if len(in) == 0 {
		return LogFile{}, false
	}
	sort.SliceStable(in, func(i, j int) bool { return in[i].t.Before(in[j].t) })
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	fmt.Fprintf(zw, "#Version: 1.0\n#Fields: %s\n", Fields)
	for _, l := range in {
		zw.Write([]byte(l.text))
		zw.Write([]byte{'\n'})
	}
	zw.Close()
	key := fmt.Sprintf("%s%s.%s.%08x.gz", g.cfg.LogPrefix, g.cfg.Distribution, in[0].t.Format("2006-01-02-15"), g.rng.Uint32())
	return LogFile{Key: key, Body: buf.Bytes(), Lines: len(in), Due: g.periodEnd}, true
}

func (g *Generator) uuid() string {
	a, b := g.rng.Uint64(), g.rng.Uint64()
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_"

func (g *Generator) requestID() string {
	b := make([]byte, 50, 52)
	for i := range b {
		b[i] = idAlphabet[g.rng.IntN(len(idAlphabet))]
	}
	return string(append(b, '=', '='))
}

func randomAddr(rng *rand.Rand, p netip.Prefix) netip.Addr {
	a := p.Addr().AsSlice()
	for i := p.Bits() / 8; i < len(a); i++ {
		a[i] = byte(rng.IntN(256))
	}
	if len(a) == 4 && (a[3] == 0 || a[3] == 255) {
		a[3] = 1 + byte(rng.IntN(254))
	}
	addr, _ := netip.AddrFromSlice(a)
	return addr
}

// encodeUA encodes a user agent the way CloudFront logs it.
func encodeUA(ua string) string {
	return strings.NewReplacer(" ", "%20", "\t", "%09", `"`, "%22").Replace(ua)
}

func poisson(rng *rand.Rand, mean float64) int {
	if mean <= 0 {
		return 0
	}
	if mean > 30 { // normal approximation; exp(-mean) would underflow
		return max(0, int(math.Round(mean+math.Sqrt(mean)*rng.NormFloat64())))
	}
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
