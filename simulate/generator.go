package simulate

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/qoslake/qoslake/ingest/cloudfront"
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

// Payload forms of the player events.
const (
	// FormSDK is the AWS reference player SDK's form (QoSSDK.js): MetricType
	// and TimeStamp keys, upper-case values, numbers as strings where it
	// reads them from the HLS playlist, "" and -1 for unknowns, and each
	// record JSON.stringify(event)+"\n".
	FormSDK = "sdk"
	// FormLowercase is the same with the whole record lower-cased, as the
	// solution's Databricks notebooks hold it.
	FormLowercase = "lowercase"
)

// Forms lists the payload forms.
var Forms = []string{FormSDK, FormLowercase}

// Config sets up a Generator.
type Config struct {
	Seed int64
	// Form is the payload form of player events: FormSDK (the default) or
	// FormLowercase.
	Form string
	// Start is the simulated time of the first tick.
	Start time.Time
	// Rate is the target rate of player events per second once sessions
	// have built up (about eventsPerSession events per session).
	Rate float64
	// LogEvery is how much simulated time one CDN log file covers.
	LogEvery time.Duration
	// LateBy is how late CDN log files arrive during LateCDNLogs.
	LateBy time.Duration
	// Distribution is the CloudFront distribution id in log file names.
	Distribution string
	// LogPrefix is the key prefix of log files.
	LogPrefix string
	// Realtime, when set, is the field list of a CloudFront real-time log
	// configuration: each segment request is also written as a real-time
	// record with these fields, CMCD values included, at SamplingRate.
	Realtime *cloudfront.RealtimeLayout
	// SamplingRate is the percent of requests written as real-time
	// records (1-100; 0 means 100).
	SamplingRate int
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

// RealtimeRecord is one CloudFront real-time log record, as CloudFront
// puts it on Kinesis: a line of tab-separated values.
type RealtimeRecord struct {
	PartitionKey string
	Data         []byte
	Time         time.Time
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

	// active are the incidents under way, by scenario.
	active    map[string]*Incident
	incidents []Incident

	truths []*SessionTruth
	edges  map[string]*EdgeTruth // by edge location

	lines     []logLine
	periodEnd time.Time
	held      []LogFile

	// rt draws the real-time sampling and CMCD session ids from a source
	// of its own, so the player events and standard logs of a seed are the
	// same with real-time logs on or off.
	rt       *rand.Rand
	realtime []RealtimeRecord
}

type logLine struct {
	t    time.Time
	text string
}

type session struct {
	user, trackingID     string
	video                Video
	client               Client
	net                  Network
	ip                   netip.Addr
	edge, conn           string
	start, firstFrame    time.Time
	watchUntil           time.Time
	started, ended       bool
	failStart, exitEarly bool
	watchToEnd           bool
	rung                 int
	bitrate              int // bitrate the SDK believes is playing: 0 until the first step
	pos                  float64
	rtt                  int // ms, of the last segment request
	lastSegment          time.Time
	lastStream           time.Time
	segment              int
	truth                *SessionTruth
	// CMCD state: the player's session id, whether the buffer ran empty
	// since the last request, and segments buffered since start or a
	// stall.
	cmcdSID  string
	starved  bool
	buffered int
}

// SessionTruth is what the simulation made happen in one session: the
// values gold should find in the events.
type SessionTruth struct {
	UserID  string    `json:"user_id"`
	VideoID string    `json:"video_id"`
	Start   time.Time `json:"start"` // the PLAY event
	// StartupMS is the video start time: PLAY (load start) to the first
	// frame, ms, as FIRSTFRAME's time_millisecond says; absent when the
	// video never started.
	StartupMS *int64 `json:"startup_ms,omitempty"`
	// FailedBeforeStart: an ERROR before the first frame (CTA-2066 video
	// start failure). ExitBeforeStart: the viewer left before the first
	// frame, with no error (and no further event).
	FailedBeforeStart bool `json:"failed_before_start"`
	ExitBeforeStart   bool `json:"exit_before_start"`
	// PlaybackFailed: an ERROR after the first frame ended the session.
	PlaybackFailed bool `json:"playback_failed"`
	// StallCount and StallMS count the ScreenFreezedBuffer events and sum
	// their time_millisecond (start-up buffering excluded).
	StallCount int   `json:"stall_count"`
	StallMS    int64 `json:"stall_ms"`
	// WatchedS is the content played, seconds: one per simulated second
	// from the first frame to the end of the session (seeks and stalls do
	// not change it).
	WatchedS float64 `json:"watched_s"`
	// BitrateSwitches counts STEP events between two renditions; the STEP
	// the SDK sends as playback starts (bitrate_from 0) is not one.
	BitrateSwitches int `json:"bitrate_switches"`
	Seeks           int `json:"seeks"`
	Pauses          int `json:"pauses"`
	// Stopped: the viewer watched to the end and the SDK sent STOP; a
	// viewer who leaves earlier sends nothing more.
	Stopped bool `json:"stopped"`
	Events  int  `json:"events"`
	// CMCDSessionID is the CMCD sid the player sends with its segment
	// requests (real-time logs carry it); Segments counts its requests.
	CMCDSessionID string `json:"cmcd_session_id,omitempty"`
	Segments      int    `json:"segments"`
}

// eventsPerSession is about how many events a session sends: a STREAM
// every 5 seconds of playback over a mean watch of 3 minutes, and a few
// others.
const eventsPerSession = 40

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
	if cfg.Form == "" {
		cfg.Form = FormSDK
	}
	if cfg.SamplingRate <= 0 || cfg.SamplingRate > 100 {
		cfg.SamplingRate = 100
	}
	cfg.Start = cfg.Start.UTC().Truncate(time.Second)
	g := &Generator{cfg: cfg, rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)), now: cfg.Start,
		rt: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5851f42d4c957f2d))}
	g.periodEnd = cfg.Start.Add(cfg.LogEvery)
	return g
}

// Now is the simulated time of the next tick.
func (g *Generator) Now() time.Time { return g.now }

// Scenario returns the scenario in force: "normal", one incident, or
// incidents joined by "+".
func (g *Generator) Scenario() string {
	if len(g.active) == 0 {
		return Normal
	}
	names := make([]string, 0, len(g.active))
	for _, inc := range g.active {
		names = append(names, inc.Scenario)
	}
	slices.Sort(names)
	return strings.Join(names, "+")
}

// SetScenario switches scenario at the current simulated time. Several
// incidents run at once when joined by "+" (edge-latency+isp-buffering):
// an incident already under way goes on with its target, the others end.
func (g *Generator) SetScenario(name string) error {
	if err := checkScenario(name); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, part := range strings.Split(name, "+") {
		if part != Normal {
			want[part] = true
		}
	}
	for _, sc := range slices.Sorted(maps.Keys(g.active)) {
		if !want[sc] {
			inc := g.active[sc]
			inc.End = g.now
			g.incidents = append(g.incidents, *inc)
			delete(g.active, sc)
		}
	}
	// In schedule order, so a run's targets follow from its seed.
	for _, sc := range strings.Split(name, "+") {
		if sc == Normal || g.active[sc] != nil {
			continue
		}
		var target string
		switch sc {
		case EdgeLatency:
			n := Networks[g.rng.IntN(len(Networks))]
			target = n.Edges[0]
		case AppErrors:
			c := Clients[g.rng.IntN(len(Clients))]
			target = c.App + "/" + c.Device
		case ISPBuffering:
			target = Networks[g.rng.IntN(len(Networks))].ISP
		case LateCDNLogs:
			target = g.cfg.LateBy.String()
		}
		if g.active == nil {
			g.active = map[string]*Incident{}
		}
		g.active[sc] = &Incident{Scenario: sc, Target: target, Start: g.now}
	}
	return nil
}

// hit reports whether the incident of the scenario is under way and
// targets the value (an edge, an ISP, app/device).
func (g *Generator) hit(scenario, value string) bool {
	inc := g.active[scenario]
	return inc != nil && inc.Target == value
}

// checkScenario accepts a scenario or several joined by "+".
func checkScenario(name string) error {
	parts := strings.Split(name, "+")
	for _, p := range parts {
		if !slices.Contains(Scenarios, p) || (p == Normal && len(parts) > 1) {
			return fmt.Errorf("scenario %q: want one of %s, or incidents joined by +", name, strings.Join(Scenarios, ", "))
		}
	}
	return nil
}

// Incidents returns the incidents so far, in order of start, the open ones
// with no end.
func (g *Generator) Incidents() []Incident {
	out := append([]Incident(nil), g.incidents...)
	for _, sc := range slices.Sorted(maps.Keys(g.active)) {
		out = append(out, *g.active[sc])
	}
	slices.SortStableFunc(out, func(a, b Incident) int { return a.Start.Compare(b.Start) })
	return out
}

// EdgeTruth is what the simulation logged at one edge location: the values
// gold.cdn_minute should sum to over the edge's rows.
type EdgeTruth struct {
	Requests  int64 `json:"requests"`
	CacheHits int64 `json:"cache_hits"` // x-edge-result-type Hit
	Errors    int64 `json:"errors"`     // x-edge-result-type Error, sc-status 502
	Bytes     int64 `json:"bytes"`      // sc-bytes
	// TimeTakenMS and TTFBMS sum time-taken and time-to-first-byte as the
	// log writes them (seconds with three decimals), in ms.
	TimeTakenMS float64 `json:"time_taken_ms"`
	TTFBMS      float64 `json:"ttfb_ms"`
	// Realtime counts the requests also written as real-time records
	// (sampled), RealtimeTimeTakenMS their time-taken sum, ms.
	Realtime            int64   `json:"realtime_records"`
	RealtimeTimeTakenMS float64 `json:"realtime_time_taken_ms"`
}

func (e *EdgeTruth) add(result, status string, bytes int, latency, ttfb float64) {
	e.Requests++
	e.CacheHits += b2i64(result == "Hit")
	e.Errors += b2i64(result == "Error" || strings.HasPrefix(status, "5"))
	e.Bytes += int64(bytes)
	e.TimeTakenMS += logged(latency)
	e.TTFBMS += logged(ttfb)
}

// logged is a duration in seconds as a log line holds it (three
// decimals), in ms.
func logged(sec float64) float64 {
	v, _ := strconv.ParseFloat(fmt.Sprintf("%.3f", sec), 64)
	return v * 1000
}

func b2i64(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func (g *Generator) edgeTruth(edge string) *EdgeTruth {
	if g.edges == nil {
		g.edges = map[string]*EdgeTruth{}
	}
	e := g.edges[edge]
	if e == nil {
		e = &EdgeTruth{}
		g.edges[edge] = e
	}
	return e
}

// Edges returns what was logged at each edge location so far, whether or
// not its log file is delivered yet.
func (g *Generator) Edges() map[string]EdgeTruth {
	out := make(map[string]EdgeTruth, len(g.edges))
	for k, e := range g.edges {
		out[k] = *e
	}
	return out
}

// Sessions returns how many sessions have started.
func (g *Generator) Sessions() int { return g.nextID }

// Truths returns what happened in each session so far, in order of start.
func (g *Generator) Truths() []SessionTruth {
	out := make([]SessionTruth, len(g.truths))
	for i, t := range g.truths {
		out[i] = *t
	}
	return out
}

// ValidForm reports whether s names a payload form.
func ValidForm(s string) bool { return s == FormSDK || s == FormLowercase }

// Tick simulates one second and returns the player events and the log
// files due by its end.
func (g *Generator) Tick() ([]Event, []LogFile) {
	var events []Event
	// New sessions: Poisson arrivals at Rate/eventsPerSession a second.
	for range poisson(g.rng, g.cfg.Rate/eventsPerSession) {
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
	// Viewers still watching send nothing more: the SDK has no event for
	// a session that is simply still going.
	var events []Event
	g.sessions = nil
	for _, sc := range slices.Sorted(maps.Keys(g.active)) {
		inc := g.active[sc]
		inc.End = g.now
		g.incidents = append(g.incidents, *inc)
	}
	g.active = nil
	return events, g.dueLogs(true)
}

func (g *Generator) newSession() *session {
	g.nextID++
	s := &session{
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
	if g.hit(EdgeLatency, s.edge) {
		startup *= 4
	}
	s.firstFrame = s.start.Add(startup.Truncate(time.Millisecond))
	s.failStart = g.rng.Float64() < 0.01
	s.exitEarly = !s.failStart && g.rng.Float64() < 0.02
	watch := time.Duration(30+g.rng.ExpFloat64()*150) * time.Second
	if d := time.Duration(s.video.Duration) * time.Second; d > 0 && watch >= d {
		// Watches it all: the only way the SDK sends STOP.
		s.watchToEnd, watch = true, d
	} else if d > 0 && g.rng.Float64() < 0.15 {
		// Resumes near the end, where they left off, and watches it out.
		s.watchToEnd = true
		watch = min(time.Duration(10+g.rng.ExpFloat64()*60)*time.Second, d)
		s.pos = (d - watch).Seconds()
	}
	s.watchUntil = s.firstFrame.Add(watch)
	s.truth = &SessionTruth{UserID: s.user, VideoID: s.video.ID, Start: s.start}
	if g.cfg.Realtime != nil {
		s.cmcdSID = uuid(g.rt)
		s.truth.CMCDSessionID = s.cmcdSID
	}
	g.truths = append(g.truths, s.truth)
	return s
}

func (g *Generator) advance(s *session, events []Event) []Event {
	end := g.now.Add(time.Second)
	tr := s.truth
	if !s.started {
		if s.start.After(end) {
			return events
		}
		s.started = true
		// The first segment request goes out with the play event.
		g.segment(s, s.start)
		s.lastSegment = s.start
		events = append(events, g.play(s, "PLAY", s.start))
		if s.failStart {
			// No segment played: the SDK has no request id to send.
			s.trackingID = ""
			events = append(events, g.errorEvent(s, s.start.Add(1500*time.Millisecond)))
			tr.FailedBeforeStart, s.ended = true, true
			return events
		}
		if s.exitEarly {
			tr.ExitBeforeStart, s.ended = true, true
			return events
		}
	}
	if s.firstFrame.Before(end) && s.lastStream.IsZero() {
		ms := s.firstFrame.Sub(s.start).Milliseconds()
		tr.StartupMS = &ms
		// loadeddata: FIRSTFRAME; the rendition switch to the first
		// rendition (from 0, DOWN as the SDK has it); canplaythrough:
		// the first buffer, measured from load start too.
		events = append(events, g.firstFrame(s, s.firstFrame, ms))
		events = append(events, g.step(s, s.firstFrame.Add(5*time.Millisecond), Ladder[s.rung].Bitrate))
		extra := int64(5 + g.rng.IntN(40))
		events = append(events, g.buffer(s, "FirstBuffer", s.firstFrame.Add(time.Duration(extra)*time.Millisecond), ms+extra))
		s.lastStream = s.firstFrame
		return events
	}
	if s.lastStream.IsZero() {
		return events
	}
	t := g.now.Add(time.Duration(g.rng.IntN(1000)) * time.Millisecond)
	if t.Before(s.firstFrame) {
		t = s.firstFrame
	}
	s.pos++
	tr.WatchedS++
	if s.watchToEnd && !t.Before(s.watchUntil) {
		s.pos = float64(s.video.Duration)
		events = append(events, g.stop(s, t))
		tr.Stopped, s.ended = true, true
		return events
	}
	if t.Sub(s.lastSegment) >= 4*time.Second {
		g.segment(s, t)
		s.lastSegment = t
	}
	if t.Sub(s.lastStream) >= 5*time.Second {
		events = append(events, g.stream(s, t))
		s.lastStream = t
	}
	rebuffer := 0.003
	if g.hit(ISPBuffering, s.net.ISP) {
		rebuffer = 0.05
	}
	if g.rng.Float64() < rebuffer {
		stall := int64(400 + g.rng.IntN(3600))
		events = append(events, g.buffer(s, "ScreenFreezedBuffer", t, stall))
		s.starved, s.buffered = true, 0
		tr.StallCount++
		tr.StallMS += stall
		if s.rung > 0 {
			s.rung--
			events = append(events, g.step(s, t.Add(time.Millisecond), Ladder[s.rung].Bitrate))
		}
	} else if g.rng.Float64() < 0.01 && s.rung < len(Ladder)-1 {
		s.rung++
		events = append(events, g.step(s, t, Ladder[s.rung].Bitrate))
	}
	if g.rng.Float64() < 0.002 {
		to := s.pos + float64(g.rng.IntN(60))
		events = append(events, g.seek(s, t, to, int64(150+g.rng.IntN(900))))
		s.pos = to
		tr.Seeks++
	}
	if g.rng.Float64() < 0.002 {
		events = append(events, g.play(s, "PAUSE", t))
		tr.Pauses++
	}
	failure := 0.0002
	if g.hit(AppErrors, s.client.App+"/"+s.client.Device) {
		failure = 0.02
	}
	switch {
	case g.rng.Float64() < failure:
		events = append(events, g.errorEvent(s, t))
		tr.PlaybackFailed, s.ended = true, true
	case !t.Before(s.watchUntil):
		// The viewer leaves: the SDK sends nothing.
		s.ended = true
	}
	return events
}

// Field values as the SDK sends them.

func (s *session) playlistType() string { return strings.ToUpper(s.video.Playlist) }

// duration is the player's duration(): Infinity for live, which
// JSON.stringify writes as null.
func (s *session) duration() any {
	if s.video.Playlist == "live" {
		return nil
	}
	return s.video.Duration
}

// rttValue is the segment request's round-trip time, -1 when the
// connection cannot say.
func (s *session) rttValue() int {
	if s.conn == "not available" {
		return -1
	}
	return s.rtt
}

// fps is the HLS FRAME-RATE attribute: a string, "" where the playlist
// has none.
func (s *session) fps() string { return Ladder[s.rung].FPS }

func (s *session) position() float64 { return math.Round(s.pos*1e6) / 1e6 }

// play is PLAY or PAUSE: the playhead position and the duration.
func (g *Generator) play(s *session, typ string, t time.Time) Event {
	return g.event(s, typ, t, kv{"at", s.position()}, kv{"duration", s.duration()})
}

func (g *Generator) firstFrame(s *session, t time.Time, ms int64) Event {
	r := Ladder[s.rung]
	return g.event(s, "FIRSTFRAME", t, kv{"rtt", s.rttValue()}, kv{"connection_type", s.conn}, kv{"package", "HLS"},
		kv{"resolution", r.Resolution}, kv{"fps", r.FPS}, kv{"avg_bitrate", fmt.Sprint(r.Bitrate)},
		kv{"time_millisecond", ms}, kv{"cdn_tracking_id", s.trackingID})
}

func (g *Generator) buffer(s *session, typ string, t time.Time, ms int64) Event {
	return g.event(s, "BUFFER", t, kv{"buffer_type", typ}, kv{"at", s.position()}, kv{"rtt", s.rttValue()},
		kv{"connection_type", s.conn}, kv{"time_millisecond", ms}, kv{"cdn_tracking_id", s.trackingID})
}

func (g *Generator) stream(s *session, t time.Time) Event {
	r := Ladder[s.rung]
	return g.event(s, "STREAM", t, kv{"at", s.position()}, kv{"rtt", s.rttValue()}, kv{"connection_type", s.conn},
		kv{"package", "HLS"}, kv{"resolution", r.Resolution}, kv{"fps", s.fps()}, kv{"avg_bitrate", s.bitrate},
		kv{"duration", s.duration()}, kv{"cdn_tracking_id", s.trackingID})
}

// step is a rendition switch to bitrate to. The SDK sends DOWN when it
// knew no bitrate yet (as playback starts), else compares the two.
func (g *Generator) step(s *session, t time.Time, to int) Event {
	dir := "UP"
	if s.bitrate == 0 || s.bitrate > to {
		dir = "DOWN"
	}
	if s.bitrate != 0 {
		s.truth.BitrateSwitches++
	}
	r := Ladder[s.rung]
	e := g.event(s, "STEP", t, kv{"at", s.position()}, kv{"bitrate_from", s.bitrate}, kv{"bitrate_to", to},
		kv{"direction", dir}, kv{"package", "HLS"}, kv{"resolution", r.Resolution}, kv{"fps", r.FPS}, kv{"connection_type", s.conn})
	s.bitrate = to
	return e
}

func (g *Generator) seek(s *session, t time.Time, to float64, ms int64) Event {
	return g.event(s, "SEEK", t, kv{"seek_from", s.position()}, kv{"seek_to", math.Round(to*1e6) / 1e6},
		kv{"rtt", s.rttValue()}, kv{"connection_type", s.conn}, kv{"time_millisecond", ms}, kv{"cdn_tracking_id", s.trackingID})
}

func (g *Generator) stop(s *session, t time.Time) Event {
	r := Ladder[s.rung]
	return g.event(s, "STOP", t, kv{"at", s.position()}, kv{"duration", s.duration()}, kv{"connection_type", s.conn},
		kv{"package", "HLS"}, kv{"resolution", r.Resolution}, kv{"fps", r.FPS}, kv{"avg_bitrate", s.bitrate})
}

func (g *Generator) errorEvent(s *session, t time.Time) Event {
	return g.event(s, "ERROR", t, kv{"at", s.position()}, kv{"message", "Error"}, kv{"cdn_tracking_id", s.trackingID})
}

type kv struct {
	k string
	v any
}

// event encodes one event as the SDK does: its type, its fields in the
// SDK's order, the common fields, then TimeStamp; one record is
// JSON.stringify(event)+"\n".
func (g *Generator) event(s *session, typ string, t time.Time, fields ...kv) Event {
	all := append([]kv{{"MetricType", typ}}, fields...)
	all = append(all, kv{"user_id", s.user}, kv{"video_id", s.video.ID}, kv{"playlist_type", s.playlistType()}, kv{"TimeStamp", t.UnixMilli()})
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range all {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.k)
		v, _ := json.Marshal(f.v)
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteString("}\n")
	out := b.Bytes()
	if g.cfg.Form == FormLowercase {
		out = bytes.ToLower(out)
	}
	s.truth.Events++
	return Event{Type: strings.ToLower(typ), PartitionKey: s.user + "/" + s.video.ID, JSON: out, Time: t}
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
	if g.hit(EdgeLatency, s.edge) {
		latency *= 6
	}
	status := "200"
	if g.rng.IntN(500) == 0 {
		status, result, size = "502", "Error", 0
	}
	ttfb := latency * 0.6
	g.edgeTruth(s.edge).add(result, status, size+512, latency, ttfb)
	s.rtt = int(math.Round(latency*1000)) + 20 + g.rng.IntN(60)
	stem := fmt.Sprintf("/vod/%s/%s/seg_%05d.ts", s.video.ID, r.Path, s.segment)
	if s.video.Playlist == "live" {
		stem = fmt.Sprintf("/live/%s/%s/seg_%05d.ts", s.video.ID, r.Path, s.segment)
	}
	csBytes, port := 280+g.rng.IntN(120), 40000+g.rng.IntN(25000)
	fields := []string{
		t.Format("2006-01-02"), t.Format("15:04:05"), s.edge, fmt.Sprint(size + 512), s.ip.String(), "GET",
		"d1qoslakedemo.cloudfront.net", stem, status, "-", encodeUA(s.client.UserAgent), "-", "-", result,
		s.trackingID, "video.example.com", "https", fmt.Sprint(csBytes), fmt.Sprintf("%.3f", latency), "-",
		"TLSv1.3", "TLS_AES_128_GCM_SHA256", result, "HTTP/2.0", "-", "-", fmt.Sprint(port),
		fmt.Sprintf("%.3f", ttfb), result, "video/MP2T", fmt.Sprint(size), "-", "-",
	}
	g.lines = append(g.lines, logLine{t: t, text: strings.Join(fields, "\t")})
	s.truth.Segments++
	if g.cfg.Realtime != nil && g.rt.IntN(100) < g.cfg.SamplingRate {
		g.realtimeRecord(s, t, realtimeValues{stem: stem, status: status, result: result, size: size,
			csBytes: csBytes, port: port, latency: latency, ttfb: ttfb})
		et := g.edgeTruth(s.edge)
		et.Realtime++
		et.RealtimeTimeTakenMS += logged(latency)
	}
	s.starved = false
	s.buffered++
}

// Fields is the #Fields header of the simulated logs: all 33 fields of
// the CloudFront standard log format.
const Fields = "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end"

func (g *Generator) dueLogs(all bool) []LogFile {
	var out []LogFile
	for !g.now.Before(g.periodEnd) || (all && len(g.lines) > 0) {
		if f, ok := g.cut(); ok {
			if g.active[LateCDNLogs] != nil {
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

func (g *Generator) uuid() string { return uuid(g.rng) }

func uuid(rng *rand.Rand) string {
	a, b := rng.Uint64(), rng.Uint64()
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

// idAlphabet is the alphabet of CloudFront's x-edge-request-id: base64url,
// mixed case.
const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

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
