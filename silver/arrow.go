package silver

import (
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/qoslake/qoslake/lake"
)

// cols appends rows to a table's Arrow schema by column name; empty
// strings and nil pointers are nulls.
type cols struct {
	b   *array.RecordBuilder
	idx map[string]int
}

func newCols(t *lake.Table) (*cols, error) {
	sc, err := t.ArrowSchema()
	if err != nil {
		return nil, fmt.Errorf("arrow schema of %s: %w", t.Name(), err)
	}
	c := &cols{b: array.NewRecordBuilder(memory.DefaultAllocator, sc), idx: map[string]int{}}
	for i, f := range sc.Fields() {
		c.idx[f.Name] = i
	}
	return c, nil
}

func (c *cols) field(name string) array.Builder {
	i, ok := c.idx[name]
	if !ok {
		panic("silver: no column " + name) // a programming error: the table definition and the code disagree
	}
	return c.b.Field(i)
}

func (c *cols) str(name, v string) {
	b := c.field(name).(*array.StringBuilder)
	if v == "" {
		b.AppendNull()
	} else {
		b.Append(v)
	}
}

func (c *cols) ts(name string, v time.Time) {
	c.field(name).(*array.TimestampBuilder).Append(arrow.Timestamp(v.UnixMicro()))
}

func (c *cols) f64(name string, v *float64) {
	b := c.field(name).(*array.Float64Builder)
	if v == nil {
		b.AppendNull()
	} else {
		b.Append(*v)
	}
}

func (c *cols) i64(name string, v *int64) {
	b := c.field(name).(*array.Int64Builder)
	if v == nil {
		b.AppendNull()
	} else {
		b.Append(*v)
	}
}

func (c *cols) i32(name string, v *int32) {
	b := c.field(name).(*array.Int32Builder)
	if v == nil {
		b.AppendNull()
	} else {
		b.Append(*v)
	}
}

func (c *cols) bool(name string, v bool) {
	c.field(name).(*array.BooleanBuilder).Append(v)
}

func (c *cols) client(v Client) {
	c.str("client_ip", v.IP)
	c.str("country", v.Country)
	c.str("subdivision", v.Subdivision)
	c.str("city", v.City)
	c.i64("asn", v.ASN)
	c.str("isp", v.ISP)
}

func (c *cols) player(r *PlayerRow) {
	c.str("event_id", r.EventID)
	c.str("event_type", r.EventType)
	c.ts("event_time", r.EventTime)
	c.str("session_id", r.SessionID)
	c.str("user_key", r.UserKey)
	c.str("key_id", r.KeyID)
	c.str("video_id", r.VideoID)
	c.str("playlist_type", r.PlaylistType)
	c.f64("position_s", r.Position)
	c.f64("response_ms", r.Response)
	c.str("connection_type", r.ConnectionType)
	c.str("package", r.Package)
	c.str("resolution", r.Resolution)
	c.i32("width", r.Width)
	c.i32("height", r.Height)
	c.f64("fps", r.FPS)
	c.i64("bitrate_bps", r.Bitrate)
	c.f64("video_duration_s", r.VideoDuration)
	c.str("buffer_type", r.BufferType)
	c.f64("buffer_duration_ms", r.BufferDuration)
	c.str("cdn_tracking_id", r.CDNTrackingID)
	c.str("app_type", r.AppType)
	c.str("app_version", r.AppVersion)
	c.str("device_type", r.Device)
	c.str("os", r.OS)
	c.str("browser", r.Browser)
	c.str("error_code", r.ErrorCode)
	c.str("error_message", r.ErrMessage)
	c.client(r.Client)
	c.str("shard_id", r.ShardID)
	c.str("sequence_number", r.SequenceNumber)
	c.ts("ingest_time", r.IngestTime)
}

func (c *cols) cdn(r *CDNRow) {
	c.str("event_id", r.EventID)
	c.ts("log_time", r.LogTime)
	c.str("edge_location", r.EdgeLocation)
	c.str("pop", r.POP)
	c.i64("sc_bytes", r.SCBytes)
	c.str("method", r.Method)
	c.str("host", r.Host)
	c.str("uri_stem", r.URIStem)
	c.str("uri_query", r.URIQuery)
	c.i32("status", r.Status)
	c.str("referer", r.Referer)
	c.str("user_agent", r.UserAgent)
	c.str("browser", r.Browser)
	c.str("os", r.OS)
	c.str("device_type", r.DeviceType)
	c.bool("is_bot", r.Bot)
	c.str("edge_result_type", r.EdgeResult)
	c.str("edge_response_result_type", r.EdgeResponseResult)
	c.str("edge_detailed_result_type", r.EdgeDetailedResult)
	c.str("edge_request_id", r.EdgeRequestID)
	c.str("host_header", r.HostHeader)
	c.str("protocol", r.Protocol)
	c.str("protocol_version", r.ProtocolVersion)
	c.i64("cs_bytes", r.CSBytes)
	c.f64("time_taken_ms", r.TimeTaken)
	c.f64("ttfb_ms", r.TTFB)
	c.str("forwarded_for", r.ForwardedFor)
	c.str("ssl_protocol", r.SSLProtocol)
	c.str("ssl_cipher", r.SSLCipher)
	c.i32("client_port", r.ClientPort)
	c.str("content_type", r.ContentType)
	c.i64("content_length", r.ContentLength)
	c.i64("range_start", r.RangeStart)
	c.i64("range_end", r.RangeEnd)
	c.bool("cache_hit", r.CacheHit)
	c.bool("error", r.Error)
	c.client(r.Client)
	c.str("object_key", r.ObjectKey)
	c.i64("line_number", &r.LineNumber)
	c.ts("ingest_time", r.IngestTime)
}
