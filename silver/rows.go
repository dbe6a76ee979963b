package silver

import (
	"fmt"
	"time"

	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/lake"
)

// PlayerRowOf types one bronze player event as the stage does, and as
// `qoslake check` shows it: a payload that cannot be typed at all (only a
// bronze written by another tool holds one) keeps its row with what bronze
// knows and reports the problem, so silver never drops a row bronze
// committed.
func (t *Transformer) PlayerRowOf(payload []byte, eventType string, eventTime time.Time) (PlayerRow, []Problem) {
	row, probs, err := t.PlayerEvent(payload, eventType, eventTime)
	if err != nil {
		return PlayerRow{EventID: EventID(payload), EventType: eventType, EventTime: eventTime},
			[]Problem{{Field: "payload", Detail: err.Error()}}
	}
	return row, probs
}

// CDNRowOf types one bronze CloudFront line given its header, as the stage
// does; a nil header (bronze's #Fields did not parse: only a bronze written
// by another tool) keeps the row with its time and reports the problem.
func (t *Transformer) CDNRowOf(h *cloudfront.Header, rawHeader, line string, logTime time.Time, fields []string) (CDNRow, []Problem, []string) {
	if h == nil {
		return CDNRow{EventID: EventID([]byte(line)), LogTime: logTime},
			[]Problem{{Field: "fields", Detail: fmt.Sprintf("bronze #Fields %q does not parse", limit(rawHeader))}}, fields
	}
	return t.CDNLine(h, line, logTime, fields)
}

// AppendPlayer adds a row to silver.player_events rows: the one mapping of
// row fields to columns.
func AppendPlayer(rows *lake.Rows, r *PlayerRow) { appendPlayer(rows, r) }

// AppendCDN adds a row to silver.cdn_logs rows.
func AppendCDN(rows *lake.Rows, r *CDNRow) { appendCDN(rows, r) }
