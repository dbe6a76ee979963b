// Package silver turns bronze into the tables analysts and the gold stage
// read: typed, privacy-safe (client IPs truncated, user ids pseudonymised),
// enriched with geo, network and user-agent columns, de-duplicated within
// the watermark, and exactly once with respect to bronze.
package silver

import (
	"slices"

	"github.com/apache/iceberg-go"

	"github.com/qoslake/qoslake/lake"
)

// Namespace of the silver tables.
const Namespace = "silver"

var (
	str  = iceberg.PrimitiveTypes.String
	i32  = iceberg.PrimitiveTypes.Int32
	i64  = iceberg.PrimitiveTypes.Int64
	f64  = iceberg.PrimitiveTypes.Float64
	tstz = iceberg.PrimitiveTypes.TimestampTz
	bln  = iceberg.PrimitiveTypes.Bool
)

// enrichment columns shared by both tables.
var enrichment = []lake.Column{
	{Name: "client_ip", Type: str, Doc: "client address truncated to its network (IPv4 /24, IPv6 /48); the full address never leaves bronze"},
	{Name: "country", Type: str, Doc: "ISO 3166-1 alpha-2 country of the client address"},
	{Name: "subdivision", Type: str, Doc: "ISO 3166-2 subdivision code (without the country)"},
	{Name: "city", Type: str, Doc: "city name (English)"},
	{Name: "asn", Type: i64, Doc: "autonomous system number of the client's network"},
	{Name: "isp", Type: str, Doc: "ISP, or the AS organisation"},
}

// PlayerEventsTable is silver.player_events.
var PlayerEventsTable = lake.TableDef{
	Namespace: Namespace,
	Name:      "player_events",
	Doc:       "Player events: typed, user ids pseudonymised, client IPs truncated, geo and ISP added, de-duplicated.",
	Columns: slices.Concat([]lake.Column{
		{Name: "event_id", Type: str, Required: true, Doc: "stable id: SHA-256 of the event's JSON (duplicates share it)"},
		{Name: "event_type", Type: str, Required: true, Doc: "play, firstframe, seek, buffer, stream, step, pause, error, stop (lower-case whatever the player sent)"},
		{Name: "event_time", Type: tstz, Required: true, Doc: "when the event happened (player clock)"},
		{Name: "session_id", Type: str, Doc: "other SDKs only: the reference SDK sends none (sessions are user and video from play to stop)"},
		{Name: "user_key", Type: str, Doc: "HMAC-SHA-256 pseudonym of the lower-cased user_id (hex)"},
		{Name: "key_id", Type: str, Doc: "id of the key user_key was made with"},
		{Name: "video_id", Type: str, Doc: "lower-cased"},
		{Name: "playlist_type", Type: str, Doc: "live, vod or event (lower-cased)"},
		{Name: "position_s", Type: f64, Doc: "playhead position, seconds (at)"},
		{Name: "response_ms", Type: f64, Doc: "response time of the request behind the event, ms (rt, older notebook form)"},
		{Name: "rtt_ms", Type: f64, Doc: "round-trip time of the segment request, ms (rtt of the reference SDK: firstframe, seek, buffer, stream; -1 is null)"},
		{Name: "connection_type", Type: str, Doc: "wifi, 4g, 3g, ethernet, not available, ... (lower-cased)"},
		{Name: "package", Type: str, Doc: "hls, dash, ... (lower-cased)"},
		{Name: "resolution", Type: str, Doc: "WIDTHxHEIGHT"},
		{Name: "width", Type: i32},
		{Name: "height", Type: i32},
		{Name: "fps", Type: f64},
		{Name: "bitrate_bps", Type: i64, Doc: "average bitrate, bits per second (avg_bitrate)"},
		{Name: "bitrate_from_bps", Type: i64, Doc: "step: bitrate before the switch, bits per second (bitrate_from; 0 at the start of play)"},
		{Name: "bitrate_to_bps", Type: i64, Doc: "step: bitrate after the switch, bits per second (bitrate_to)"},
		{Name: "direction", Type: str, Doc: "step: up or down"},
		{Name: "video_duration_s", Type: f64, Doc: "duration of the video, seconds (duration, except on buffer events)"},
		{Name: "time_to_first_frame_ms", Type: f64, Doc: "firstframe: load start to first frame, ms (time_millisecond); the player's video start time"},
		{Name: "buffer_type", Type: str, Doc: "firstbuffer (start-up) or screenfreezedbuffer (a stall); older forms: rebuffer"},
		{Name: "buffer_duration_ms", Type: f64, Doc: "buffer: how long it buffered, ms (time_millisecond; duration in older forms)"},
		{Name: "seek_time_ms", Type: f64, Doc: "seek: how long the seek took, ms (time_millisecond)"},
		{Name: "seek_from_s", Type: f64, Doc: "seek: playhead position before the seek, seconds (seek_from)"},
		{Name: "seek_to_s", Type: f64, Doc: "seek: playhead position after the seek, seconds (seek_to)"},
		{Name: "cdn_tracking_id", Type: str, Doc: "x-edge-request-id of the CloudFront request that served the segment, lower-cased: join on lower(edge_request_id), never case-sensitively"},
		{Name: "app_type", Type: str, Doc: "app or platform"},
		{Name: "app_version", Type: str},
		{Name: "device_type", Type: str},
		{Name: "os", Type: str},
		{Name: "browser", Type: str},
		{Name: "error_code", Type: str},
		{Name: "error_message", Type: str, Doc: "lower-cased"},
	}, enrichment, []lake.Column{
		{Name: "shard_id", Type: str, Doc: "lineage: Kinesis shard"},
		{Name: "sequence_number", Type: str, Doc: "lineage: Kinesis sequence number"},
		{Name: "ingest_time", Type: tstz, Required: true, Doc: "when bronze read the record"},
	}),
	Partition: []lake.PartitionField{
		{Column: "event_time", Transform: iceberg.DayTransform{}, Name: "event_day"},
		{Column: "event_type", Transform: iceberg.IdentityTransform{}, Name: "event_type"},
	},
}

// Log kinds of a CDN request row (log_source).
const (
	LogStandard = "standard" // a line of a standard log file (S3)
	LogRealtime = "realtime" // a real-time log record (Kinesis)
)

// CDNLogsTable is silver.cdn_logs: one row per CloudFront request, from
// standard log files and real-time log records alike. A request both log
// kinds carry (the same x-edge-request-id) is one row, typed from the
// record silver read first (the real-time one when both arrive in one
// increment); the other kind's record of it is a row of
// silver.cdn_sightings (see Stage).
var CDNLogsTable = lake.TableDef{
	Namespace: Namespace,
	Name:      "cdn_logs",
	Doc:       "CloudFront requests from standard and real-time logs, one row each: typed, client IPs truncated, geo, ISP and user agent added, de-duplicated.",
	Columns: slices.Concat([]lake.Column{
		{Name: "event_id", Type: str, Required: true, Doc: "stable id: SHA-256 of the log line or real-time record"},
		{Name: "log_time", Type: tstz, Required: true, Doc: "when the edge finished responding (UTC; second precision from standard logs, millisecond from real-time logs)"},
		{Name: "log_source", Type: str, Doc: "the log kind the row was typed from: standard (a log file line) or realtime (a real-time record); the other kind's record of the same request is in silver.cdn_sightings"},
		{Name: "sampling_rate", Type: i32, Doc: "percent of requests the row's log kind logs: 100 for standard logs, the real-time log configuration's sampling rate for real-time records"},
		{Name: "edge_location", Type: str, Doc: "x-edge-location, e.g. FRA56-P3"},
		{Name: "pop", Type: str, Doc: "the edge location's 3-letter airport code, e.g. FRA"},
		{Name: "sc_bytes", Type: i64, Doc: "bytes served to the viewer"},
		{Name: "method", Type: str},
		{Name: "host", Type: str, Doc: "cs(Host): the distribution's domain"},
		{Name: "uri_stem", Type: str},
		{Name: "uri_query", Type: str},
		{Name: "status", Type: i32, Doc: "HTTP status; 0 when the viewer closed the connection first (000)"},
		{Name: "referer", Type: str},
		{Name: "user_agent", Type: str, Doc: "decoded cs(User-Agent)"},
		{Name: "browser", Type: str, Doc: "browser family from the user agent"},
		{Name: "os", Type: str, Doc: "OS family from the user agent"},
		{Name: "device_type", Type: str, Doc: "mobile, tablet, desktop, tv, bot, other"},
		{Name: "is_bot", Type: bln},
		{Name: "edge_result_type", Type: str, Doc: "Hit, RefreshHit, Miss, Error, ..."},
		{Name: "edge_response_result_type", Type: str},
		{Name: "edge_detailed_result_type", Type: str},
		{Name: "edge_request_id", Type: str, Doc: "x-edge-request-id; equals the player's cdn_tracking_id"},
		{Name: "host_header", Type: str},
		{Name: "protocol", Type: str, Doc: "http, https, ws, wss"},
		{Name: "protocol_version", Type: str, Doc: "HTTP/1.1, HTTP/2.0, HTTP/3.0"},
		{Name: "cs_bytes", Type: i64, Doc: "bytes of the request"},
		{Name: "time_taken_ms", Type: f64, Doc: "time-taken: request received to last byte sent, ms"},
		{Name: "ttfb_ms", Type: f64, Doc: "time-to-first-byte, ms"},
		{Name: "forwarded_for", Type: str, Doc: "x-forwarded-for, each address truncated"},
		{Name: "ssl_protocol", Type: str},
		{Name: "ssl_cipher", Type: str},
		{Name: "client_port", Type: i32},
		{Name: "content_type", Type: str},
		{Name: "content_length", Type: i64},
		{Name: "range_start", Type: i64},
		{Name: "range_end", Type: i64},
		{Name: "cache_hit", Type: bln, Doc: "edge result Hit or RefreshHit"},
		{Name: "error", Type: bln, Doc: "edge result Error, or status 5xx or 000"},
	}, enrichment, []lake.Column{
		{Name: "origin_fbl_ms", Type: f64, Doc: "real-time only: origin first-byte latency, ms (origin-fbl)"},
		{Name: "origin_lbl_ms", Type: f64, Doc: "real-time only: origin last-byte latency, ms (origin-lbl)"},
	}, cmcdColumns, []lake.Column{
		{Name: "object_key", Type: str, Doc: "lineage: the log object (standard logs)"},
		{Name: "line_number", Type: i64, Doc: "lineage: line in the object (standard logs)"},
		{Name: "shard_id", Type: str, Doc: "lineage: Kinesis shard (real-time logs)"},
		{Name: "sequence_number", Type: str, Doc: "lineage: Kinesis sequence number (real-time logs)"},
		{Name: "ingest_time", Type: tstz, Required: true, Doc: "when bronze read the object or record"},
	}),
	Partition: []lake.PartitionField{
		{Column: "log_time", Transform: iceberg.DayTransform{}, Name: "log_day"},
	},
}

// cmcdColumns are the player's Common Media Client Data (CTA-5004) as
// CloudFront's real-time logs carry them, one per key, in the key's unit.
// CTA-5004 booleans are sent only when true: in a record that carries any
// CMCD value, an absent one reads false; without CMCD they are all null.
var cmcdColumns = []lake.Column{
	{Name: "cmcd_session_id", Type: str, Doc: "CMCD sid: the player's session id (GUID)"},
	{Name: "cmcd_content_id", Type: str, Doc: "CMCD cid: the content being played"},
	{Name: "cmcd_encoded_bitrate_kbps", Type: i64, Doc: "CMCD br: encoded bitrate of the requested object, kbps"},
	{Name: "cmcd_buffer_length_ms", Type: i64, Doc: "CMCD bl: buffer length when the object was requested, ms"},
	{Name: "cmcd_buffer_starvation", Type: bln, Doc: "CMCD bs: the buffer ran empty since the previous request (a stall)"},
	{Name: "cmcd_object_duration_ms", Type: i64, Doc: "CMCD d: playback duration of the requested object, ms"},
	{Name: "cmcd_deadline_ms", Type: i64, Doc: "CMCD dl: time until the buffer would run empty at the playback rate, ms"},
	{Name: "cmcd_measured_throughput_kbps", Type: i64, Doc: "CMCD mtp: throughput the player measured, kbps"},
	{Name: "cmcd_next_object_request", Type: str, Doc: "CMCD nor: relative path of the object the player will request next"},
	{Name: "cmcd_next_range_request", Type: str, Doc: "CMCD nrr: byte range the player will request next"},
	{Name: "cmcd_object_type", Type: str, Doc: "CMCD ot: m manifest, a audio, v video, av muxed, i init segment, c caption, tt timed text, k key, o other"},
	{Name: "cmcd_playback_rate", Type: f64, Doc: "CMCD pr: 1 at real time, 0 when not playing"},
	{Name: "cmcd_requested_max_throughput_kbps", Type: i64, Doc: "CMCD rtp: the throughput the player asks the CDN for, kbps"},
	{Name: "cmcd_streaming_format", Type: str, Doc: "CMCD sf: d DASH, h HLS, s Smooth Streaming, o other"},
	{Name: "cmcd_stream_type", Type: str, Doc: "CMCD st: v VOD, l live"},
	{Name: "cmcd_startup", Type: bln, Doc: "CMCD su: the object is needed urgently for start-up, a seek or recovery from a stall"},
	{Name: "cmcd_top_bitrate_kbps", Type: i64, Doc: "CMCD tb: highest bitrate the player may pick, kbps"},
	{Name: "cmcd_version", Type: i32, Doc: "CMCD v: the CMCD version (absent: 1)"},
}

// CDNSightingsTable is silver.cdn_sightings: one row per further record of
// a request silver.cdn_logs holds a row of, from the other log kind (the
// same x-edge-request-id). The log kinds that saw a request are the row's
// log_source and the log_source of its sightings. Both tables are
// append-only; see Stage for how they stay exactly once.
var CDNSightingsTable = lake.TableDef{
	Namespace: Namespace,
	Name:      "cdn_sightings",
	Doc:       "Further records of CloudFront requests silver.cdn_logs holds, from the other log kind: which log kinds saw each request.",
	Columns: []lake.Column{
		{Name: "edge_request_id", Type: str, Required: true, Doc: "x-edge-request-id of the request: its row in silver.cdn_logs has the same"},
		{Name: "log_source", Type: str, Required: true, Doc: "the log kind of this record: standard or realtime"},
		{Name: "log_time", Type: tstz, Required: true, Doc: "when the edge finished responding, as this record says"},
		{Name: "event_id", Type: str, Required: true, Doc: "stable id of this record: SHA-256 of the log line or real-time record"},
		{Name: "sampling_rate", Type: i32, Doc: "percent of requests this record's log kind logs"},
		{Name: "object_key", Type: str, Doc: "lineage: the log object (standard logs)"},
		{Name: "line_number", Type: i64, Doc: "lineage: line in the object (standard logs)"},
		{Name: "shard_id", Type: str, Doc: "lineage: Kinesis shard (real-time logs)"},
		{Name: "sequence_number", Type: str, Doc: "lineage: Kinesis sequence number (real-time logs)"},
		{Name: "ingest_time", Type: tstz, Required: true, Doc: "when bronze read the object or record"},
	},
	Partition: []lake.PartitionField{
		{Column: "log_time", Transform: iceberg.DayTransform{}, Name: "log_day"},
	},
}

// Tables are all silver tables.
var Tables = []lake.TableDef{PlayerEventsTable, CDNLogsTable, CDNSightingsTable}
