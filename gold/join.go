package gold

import (
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/qoslake/qoslake/silver"
)

// The player ↔ CDN join: a player event's cdn_tracking_id names the
// CloudFront request (x-edge-request-id, silver.cdn_logs edge_request_id)
// that served the segment it reports on, compared without regard to case
// (silver.JoinKey: silver lower-cases the player's id, and keeps
// CloudFront's as logged, so gold lower-cases that side).
//
// Request ids are unique, but to keep the join local in time (a CDN row
// arriving hours late must find its player events without a scan of all
// of silver) an event joins only a request logged from
// requestBeforeEvent before it to requestAfterEvent after it: the player
// names the last segment it fetched, a few seconds earlier, and device
// clocks run a little ahead or behind CloudFront's.
const (
	requestBeforeEvent = 10 * time.Minute
	requestAfterEvent  = 2 * time.Minute
)

// cdnJoinFields are the silver.cdn_logs columns the join reads.
var cdnJoinFields = []string{"log_time", "edge_request_id", "edge_location", "pop", "edge_result_type",
	"device_type", "os", "browser", "country", "isp"}

// cdnRequest is one silver.cdn_logs row as the join reads it.
type cdnRequest struct {
	logTime                   int64 // Unix microseconds
	edgeLocation, pop, result string
	device, os, browser       string
	country, isp              string
}

func (r *cdnRequest) hasAgent() bool { return r.device != "" || r.os != "" || r.browser != "" }

// joins reports whether a request logged at logTime may be the one an
// event at t names.
func joins(t, logTime int64) bool {
	return logTime >= t-requestBeforeEvent.Microseconds() && logTime <= t+requestAfterEvent.Microseconds()
}

// cdnIndex holds the CDN requests a set of sessions may join, by
// lower-cased request id.
type cdnIndex map[string][]cdnRequest

// add reads the requests of r whose ids are wanted.
func (x cdnIndex) add(r arrow.RecordBatch, wanted map[string]bool, in *interner) {
	ts := column[*array.Timestamp](r, "log_time")
	ids := column[*array.String](r, "edge_request_id")
	edge := column[*array.String](r, "edge_location")
	pop := column[*array.String](r, "pop")
	result := column[*array.String](r, "edge_result_type")
	device := column[*array.String](r, "device_type")
	os := column[*array.String](r, "os")
	browser := column[*array.String](r, "browser")
	country := column[*array.String](r, "country")
	isp := column[*array.String](r, "isp")
	for i := range int(r.NumRows()) {
		id := silver.JoinKey(valueOf(ids, i))
		if id == "" || !wanted[id] {
			continue
		}
		id = strings.Clone(id)
		x[id] = append(x[id], cdnRequest{
			logTime:      int64(ts.Value(i)),
			edgeLocation: in.str(edge, i), pop: in.str(pop, i), result: in.str(result, i),
			device: in.str(device, i), os: in.str(os, i), browser: in.str(browser, i),
			country: in.str(country, i), isp: in.str(isp, i),
		})
	}
}

// lookup is the request id names for an event at t: the earliest logged
// if several qualify (ids are unique, so that is a safeguard), or nil.
func (x cdnIndex) lookup(id string, t int64) *cdnRequest {
	var best *cdnRequest
	for i := range x[id] {
		r := &x[id][i]
		if joins(t, r.logTime) && (best == nil || r.logTime < best.logTime) {
			best = r
		}
	}
	return best
}

// joinCDN fills the session's CDN columns. The edge columns are those of
// the request its FIRSTFRAME names: time to first frame per edge location
// and cache result. Device, OS and browser are the player's when it sent
// any of them; otherwise they come from the user agent of a request the
// session's events name: the FIRSTFRAME's, else the earliest logged.
func joinCDN(s *session, x cdnIndex) {
	var ff *cdnRequest
	if s.started && s.ffTrack != "" {
		if ff = x.lookup(s.ffTrack, s.ff); ff != nil {
			s.edgeLocation, s.pop, s.edgeResult = ff.edgeLocation, ff.pop, ff.result
		}
	}
	// The reference SDK sends no client address, so its sessions have no
	// country or ISP of their own: the client of the CDN requests they
	// name is the same viewer (silver truncated and looked up its address).
	if s.country == "" && s.isp == "" {
		if r := s.firstJoined(ff, x); r != nil {
			s.country, s.isp, s.networkSource = r.country, r.isp, DeviceFromCDN
		}
	} else {
		s.networkSource = DeviceFromPlayer
	}
	if s.device != "" || s.os != "" || s.browser != "" {
		s.deviceSource = DeviceFromPlayer
		return
	}
	agent := ff
	if agent == nil || !agent.hasAgent() {
		agent = nil
		for _, n := range s.requests {
			r := x.lookup(n.id, n.t)
			if r != nil && r.hasAgent() && (agent == nil || r.logTime < agent.logTime) {
				agent = r
			}
		}
	}
	if agent != nil && agent.hasAgent() {
		s.device, s.os, s.browser, s.deviceSource = agent.device, agent.os, agent.browser, DeviceFromCDN
	}
}

// firstJoined is the FIRSTFRAME's request, else the earliest logged of the
// requests the session's events name, that has a client country or ISP.
func (s *session) firstJoined(ff *cdnRequest, x cdnIndex) *cdnRequest {
	if ff != nil && (ff.country != "" || ff.isp != "") {
		return ff
	}
	var best *cdnRequest
	for _, n := range s.requests {
		r := x.lookup(n.id, n.t)
		if r != nil && (r.country != "" || r.isp != "") && (best == nil || r.logTime < best.logTime) {
			best = r
		}
	}
	return best
}

// interner keeps one copy of each string read from Arrow buffers (which
// are released after each batch): dimensions repeat across events.
type interner map[string]string

func (in *interner) str(a *array.String, i int) string {
	if a.IsNull(i) {
		return ""
	}
	v := a.Value(i)
	if v == "" {
		return ""
	}
	if s, ok := (*in)[v]; ok {
		return s
	}
	s := strings.Clone(v)
	(*in)[s] = s
	return s
}
