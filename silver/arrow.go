package silver

import "github.com/qoslake/qoslake/lake"

// The appenders write silver rows in the tables' columns; empty strings and
// nil pointers are nulls.

func appendClient(c *lake.Rows, v Client) {
	c.NullableString("client_ip", v.IP)
	c.NullableString("country", v.Country)
	c.NullableString("subdivision", v.Subdivision)
	c.NullableString("city", v.City)
	c.OptInt64("asn", v.ASN)
	c.NullableString("isp", v.ISP)
}

func appendPlayer(c *lake.Rows, r *PlayerRow) {
	c.NullableString("event_id", r.EventID)
	c.NullableString("event_type", r.EventType)
	c.Time("event_time", r.EventTime)
	c.NullableString("session_id", r.SessionID)
	c.NullableString("user_key", r.UserKey)
	c.NullableString("key_id", r.KeyID)
	c.NullableString("video_id", r.VideoID)
	c.NullableString("playlist_type", r.PlaylistType)
	c.OptFloat64("position_s", r.Position)
	c.OptFloat64("response_ms", r.Response)
	c.OptFloat64("rtt_ms", r.RTT)
	c.NullableString("connection_type", r.ConnectionType)
	c.NullableString("package", r.Package)
	c.NullableString("resolution", r.Resolution)
	c.OptInt32("width", r.Width)
	c.OptInt32("height", r.Height)
	c.OptFloat64("fps", r.FPS)
	c.OptInt64("bitrate_bps", r.Bitrate)
	c.OptInt64("bitrate_from_bps", r.BitrateFrom)
	c.OptInt64("bitrate_to_bps", r.BitrateTo)
	c.NullableString("direction", r.Direction)
	c.OptFloat64("video_duration_s", r.VideoDuration)
	c.OptFloat64("time_to_first_frame_ms", r.TimeToFirstFrame)
	c.NullableString("buffer_type", r.BufferType)
	c.OptFloat64("buffer_duration_ms", r.BufferDuration)
	c.OptFloat64("seek_time_ms", r.SeekTime)
	c.OptFloat64("seek_from_s", r.SeekFrom)
	c.OptFloat64("seek_to_s", r.SeekTo)
	c.NullableString("cdn_tracking_id", r.CDNTrackingID)
	c.NullableString("app_type", r.AppType)
	c.NullableString("app_version", r.AppVersion)
	c.NullableString("device_type", r.Device)
	c.NullableString("os", r.OS)
	c.NullableString("browser", r.Browser)
	c.NullableString("error_code", r.ErrorCode)
	c.NullableString("error_message", r.ErrMessage)
	appendClient(c, r.Client)
	c.NullableString("shard_id", r.ShardID)
	c.NullableString("sequence_number", r.SequenceNumber)
	c.Time("ingest_time", r.IngestTime)
}

func appendCDN(c *lake.Rows, r *CDNRow) {
	c.NullableString("event_id", r.EventID)
	c.Time("log_time", r.LogTime)
	c.NullableString("log_source", r.LogSource)
	c.OptInt32("sampling_rate", rate(r.SamplingRate))
	c.NullableString("edge_location", r.EdgeLocation)
	c.NullableString("pop", r.POP)
	c.OptInt64("sc_bytes", r.SCBytes)
	c.NullableString("method", r.Method)
	c.NullableString("host", r.Host)
	c.NullableString("uri_stem", r.URIStem)
	c.NullableString("uri_query", r.URIQuery)
	c.OptInt32("status", r.Status)
	c.NullableString("referer", r.Referer)
	c.NullableString("user_agent", r.UserAgent)
	c.NullableString("browser", r.Browser)
	c.NullableString("os", r.OS)
	c.NullableString("device_type", r.DeviceType)
	c.Bool("is_bot", r.Bot)
	c.NullableString("edge_result_type", r.EdgeResult)
	c.NullableString("edge_response_result_type", r.EdgeResponseResult)
	c.NullableString("edge_detailed_result_type", r.EdgeDetailedResult)
	c.NullableString("edge_request_id", r.EdgeRequestID)
	c.NullableString("host_header", r.HostHeader)
	c.NullableString("protocol", r.Protocol)
	c.NullableString("protocol_version", r.ProtocolVersion)
	c.OptInt64("cs_bytes", r.CSBytes)
	c.OptFloat64("time_taken_ms", r.TimeTaken)
	c.OptFloat64("ttfb_ms", r.TTFB)
	c.NullableString("forwarded_for", r.ForwardedFor)
	c.NullableString("ssl_protocol", r.SSLProtocol)
	c.NullableString("ssl_cipher", r.SSLCipher)
	c.OptInt32("client_port", r.ClientPort)
	c.NullableString("content_type", r.ContentType)
	c.OptInt64("content_length", r.ContentLength)
	c.OptInt64("range_start", r.RangeStart)
	c.OptInt64("range_end", r.RangeEnd)
	c.Bool("cache_hit", r.CacheHit)
	c.Bool("error", r.Error)
	appendClient(c, r.Client)
	c.OptFloat64("origin_fbl_ms", r.OriginFBL)
	c.OptFloat64("origin_lbl_ms", r.OriginLBL)
	appendCMCD(c, &r.CMCD)
	c.NullableString("object_key", r.ObjectKey)
	c.OptInt64("line_number", lineNumber(r.LineNumber))
	c.NullableString("shard_id", r.ShardID)
	c.NullableString("sequence_number", r.SequenceNumber)
	c.Time("ingest_time", r.IngestTime)
}

func appendCMCD(c *lake.Rows, m *CMCD) {
	c.NullableString("cmcd_session_id", m.SessionID)
	c.NullableString("cmcd_content_id", m.ContentID)
	c.OptInt64("cmcd_encoded_bitrate_kbps", m.EncodedBitrate)
	c.OptInt64("cmcd_buffer_length_ms", m.BufferLength)
	c.OptBool("cmcd_buffer_starvation", m.BufferStarvation)
	c.OptInt64("cmcd_object_duration_ms", m.ObjectDuration)
	c.OptInt64("cmcd_deadline_ms", m.Deadline)
	c.OptInt64("cmcd_measured_throughput_kbps", m.MeasuredThroughput)
	c.NullableString("cmcd_next_object_request", m.NextObjectRequest)
	c.NullableString("cmcd_next_range_request", m.NextRangeRequest)
	c.NullableString("cmcd_object_type", m.ObjectType)
	c.OptFloat64("cmcd_playback_rate", m.PlaybackRate)
	c.OptInt64("cmcd_requested_max_throughput_kbps", m.RequestedMaxThroughput)
	c.NullableString("cmcd_streaming_format", m.StreamFormat)
	c.NullableString("cmcd_stream_type", m.StreamType)
	c.OptBool("cmcd_startup", m.Startup)
	c.OptInt64("cmcd_top_bitrate_kbps", m.TopBitrate)
	c.OptInt32("cmcd_version", m.Version)
}

// appendSighting adds a request's record from the second log kind to
// silver.cdn_sightings.
func appendSighting(c *lake.Rows, r *CDNRow) {
	c.String("edge_request_id", r.EdgeRequestID)
	c.String("log_source", r.LogSource)
	c.Time("log_time", r.LogTime)
	c.String("event_id", r.EventID)
	c.OptInt32("sampling_rate", rate(r.SamplingRate))
	c.NullableString("object_key", r.ObjectKey)
	c.OptInt64("line_number", lineNumber(r.LineNumber))
	c.NullableString("shard_id", r.ShardID)
	c.NullableString("sequence_number", r.SequenceNumber)
	c.Time("ingest_time", r.IngestTime)
}

// rate is a sampling rate, or nil (null) for 0: not known.
func rate(v int32) *int32 {
	if v == 0 {
		return nil
	}
	return &v
}

// lineNumber is a standard log's line number, or nil (null) for 0: a
// real-time record has none.
func lineNumber(v int64) *int64 {
	if v == 0 {
		return nil
	}
	return &v
}
