package updates

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
)

// UpdateType names what an update describes; it is the update_type message
// attribute subscribers filter on.
type UpdateType string

// The update types.
const (
	ActiveUsers UpdateType = "active_users"
	RecentViews UpdateType = "recent_views"
	TotalViews  UpdateType = "total_views"
	KPISummary  UpdateType = "kpi_summary"
)

// UpdateTypes are every update type, in publishing order.
var UpdateTypes = []UpdateType{ActiveUsers, RecentViews, TotalViews, KPISummary}

// SchemaVersion is the schema_version of the message bodies.
const SchemaVersion = 1

// SNS limits (https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html):
// one message, body and attributes, and all the messages of one
// PublishBatch request together, are at most 256 KiB; a request holds at
// most 10 messages.
const (
	MaxMessageBytes = 256 * 1024
	MaxBatchBytes   = 256 * 1024
	MaxBatchEntries = 10
)

// Message attribute names.
const (
	AttrUpdateType = "update_type"
	AttrUpdateID   = "update_id"
	AttrPart       = "part"
	AttrParts      = "parts"
)

// envelope is the head every message body starts with.
type envelope struct {
	SchemaVersion int               `json:"schema_version"`
	UpdateType    UpdateType        `json:"update_type"`
	UpdateID      string            `json:"update_id"`
	Part          int               `json:"part"`
	Parts         int               `json:"parts"`
	GeneratedAt   time.Time         `json:"generated_at"`
	AsOfEventTime *time.Time        `json:"as_of_event_time"`
	GoldSnapshots map[string]string `json:"gold_snapshots"`
}

// window is a window of event time, as in the bodies; its bounds are null
// while the table it is measured on is empty.
type window struct {
	Minutes int        `json:"window_minutes"`
	Start   *time.Time `json:"window_start"`
	End     *time.Time `json:"window_end"`
}

type activeUsersBody struct {
	envelope
	window
	ActiveUsers        int `json:"active_users"`
	ActiveSessions     int `json:"active_sessions"`
	ConcurrentSessions int `json:"concurrent_sessions"`
}

// VideoViews is one entry of the videos list of recent_views and
// total_views.
type VideoViews struct {
	VideoID string `json:"video_id"`
	Views   int64  `json:"views"`
}

type recentViewsBody struct {
	envelope
	window
	VideoCount int             `json:"video_count"`
	Views      int64           `json:"views"`
	Videos     json.RawMessage `json:"videos"`
}

type totalViewsBody struct {
	envelope
	VideoCount int             `json:"video_count"`
	Views      int64           `json:"views"`
	Videos     json.RawMessage `json:"videos"`
}

type kpiBody struct {
	envelope
	LastMinute   kpiWindows `json:"last_minute"`
	Last5Minutes kpiWindows `json:"last_5_minutes"`
}

type kpiWindows struct {
	Player *playerKPIs `json:"player"`
	CDN    *cdnKPIs    `json:"cdn"`
}

type playerKPIs struct {
	WindowStart         time.Time `json:"window_start"`
	WindowEnd           time.Time `json:"window_end"`
	PlayAttempts        int64     `json:"play_attempts"`
	VideoStartTimeP50Ms *float64  `json:"video_start_time_p50_ms"`
	VideoStartTimeP95Ms *float64  `json:"video_start_time_p95_ms"`
	ErrorRatio          *float64  `json:"error_ratio"`
	StallCount          int64     `json:"stall_count"`
	AverageBitrateBps   *float64  `json:"average_bitrate_bps"`
}

type cdnKPIs struct {
	WindowStart    time.Time `json:"window_start"`
	WindowEnd      time.Time `json:"window_end"`
	Requests       int64     `json:"requests"`
	CacheHitRatio  *float64  `json:"cache_hit_ratio"`
	TimeTakenP95Ms *float64  `json:"time_taken_p95_ms"`
	Status4xxShare *float64  `json:"status_4xx_share"`
	Status5xxShare *float64  `json:"status_5xx_share"`
}

// ratio is n/d, or nil (JSON null) when d is 0.
func ratio(n, d int64) *float64 {
	if d == 0 {
		return nil
	}
	v := float64(n) / float64(d)
	return &v
}

// finite is v, or nil (JSON null) for NaN and infinities, which JSON
// cannot carry (an empty histogram's quantile is NaN).
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// message is one SNS message of an update: a part of it.
type message struct {
	typ   UpdateType
	part  int
	body  []byte
	attrs map[string]snstypes.MessageAttributeValue
}

// size is what SNS counts against its limits: the body and each
// attribute's name, type and value.
func (m message) size() int {
	n := len(m.body)
	for k, v := range m.attrs {
		n += len(k) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue)) + len(v.BinaryValue)
	}
	return n
}

// entryID names the message inside a PublishBatch request; one round has
// one update per type, so type and part are unique.
func (m message) entryID() string { return fmt.Sprintf("%s-%d", m.typ, m.part) }

func attributes(typ UpdateType, id string, part, parts int) map[string]snstypes.MessageAttributeValue {
	return map[string]snstypes.MessageAttributeValue{
		AttrUpdateType: {DataType: aws.String("String"), StringValue: aws.String(string(typ))},
		AttrUpdateID:   {DataType: aws.String("String"), StringValue: aws.String(id)},
		AttrPart:       {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(part))},
		AttrParts:      {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(parts))},
	}
}

// single encodes an update that is one message.
func single(env *envelope, body any) ([]message, error) {
	env.Part, env.Parts = 1, 1
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", env.UpdateType, err)
	}
	m := message{typ: env.UpdateType, part: 1, body: b, attrs: attributes(env.UpdateType, env.UpdateID, 1, 1)}
	if m.size() > MaxMessageBytes {
		return nil, fmt.Errorf("encode %s: %d bytes, over the %d of a message", env.UpdateType, m.size(), MaxMessageBytes)
	}
	return []message{m}, nil
}

// listed encodes an update carrying a list of videos, split into as many
// messages as it takes to keep each within limit bytes (body and
// attributes). body is called with the part's videos (a JSON array) after
// env's part fields are set, and returns the whole body to encode.
func listed(env *envelope, videos []VideoViews, limit int, body func(videos json.RawMessage) any) ([]message, error) {
	items := make([][]byte, len(videos))
	for i, v := range videos {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", env.UpdateType, err)
		}
		items[i] = b
	}
	// The room a part's list has is the limit less everything else, with
	// the part numbers at their widest.
	env.Part, env.Parts = math.MaxInt32, math.MaxInt32
	head, err := json.Marshal(body(json.RawMessage("[]")))
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", env.UpdateType, err)
	}
	room := limit - len(head) - message{attrs: attributes(env.UpdateType, env.UpdateID, math.MaxInt32, math.MaxInt32)}.size()
	var groups [][][]byte
	var cur [][]byte
	used := 0
	for _, it := range items {
		// Each item costs its bytes and a comma (the first one none).
		if len(it)+1 > room {
			return nil, fmt.Errorf("encode %s: one video entry of %d bytes does not fit a message", env.UpdateType, len(it))
		}
		if len(cur) > 0 && used+len(it)+1 > room {
			groups = append(groups, cur)
			cur, used = nil, 0
		}
		cur = append(cur, it)
		used += len(it) + 1
	}
	groups = append(groups, cur) // an empty list is one part too
	out := make([]message, len(groups))
	buf := make([]byte, 0, limit)
	for i, g := range groups {
		buf = append(buf[:0], '[')
		for j, it := range g {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, it...)
		}
		buf = append(buf, ']')
		env.Part, env.Parts = i+1, len(groups)
		b, err := json.Marshal(body(json.RawMessage(buf)))
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", env.UpdateType, err)
		}
		m := message{typ: env.UpdateType, part: i + 1, body: b, attrs: attributes(env.UpdateType, env.UpdateID, i+1, len(groups))}
		if m.size() > limit {
			// The arithmetic above is wrong if this happens.
			return nil, fmt.Errorf("encode %s: part %d is %d bytes, over %d", env.UpdateType, i+1, m.size(), limit)
		}
		out[i] = m
	}
	return out, nil
}
