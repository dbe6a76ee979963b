// Package bronze owns the bronze tables: raw input, exactly once, with just
// enough extracted (event type and time, source position) to partition and
// to resume. Bad input is kept in bronze.rejects with its reason.
package bronze

import (
	"github.com/apache/iceberg-go"

	"github.com/qoslake/qoslake/lake"
)

// Namespace of the bronze tables.
const Namespace = "bronze"

var (
	str    = iceberg.PrimitiveTypes.String
	i32    = iceberg.PrimitiveTypes.Int32
	i64    = iceberg.PrimitiveTypes.Int64
	tstz   = iceberg.PrimitiveTypes.TimestampTz
	binary = iceberg.PrimitiveTypes.Binary
	day    = iceberg.DayTransform{}
	ident  = iceberg.IdentityTransform{}
)

// bronzeWrite trades a little compression for speed: bronze is raw input
// with a retention limit, written at the ingest rate.
var bronzeWrite = map[string]string{"write.parquet.compression-level": "1"}

// PlayerEventsTable is bronze.player_events: one row per player event read from
// Kinesis, with its payload exactly as received. A Kinesis record may hold
// one event or a JSON array of events, and a KPL-aggregated record holds
// several user records: (shard_id, sequence_number, sub_sequence,
// event_index) is unique.
var PlayerEventsTable = lake.TableDef{
	Namespace: Namespace,
	Name:      "player_events",
	Doc:       "Raw player events from Kinesis, exactly once. Contains raw client IPs: retention-limited.",
	Columns: []lake.Column{
		{Name: "event_type", Type: str, Required: true, Doc: "metrictype of the event (play, firstframe, stream, buffer, ...)"},
		{Name: "event_time", Type: tstz, Required: true, Doc: "event timestamp from the payload"},
		{Name: "stream", Type: str, Required: true, Doc: "Kinesis stream name"},
		{Name: "shard_id", Type: str, Required: true, Doc: "Kinesis shard id"},
		{Name: "sequence_number", Type: str, Required: true, Doc: "Kinesis sequence number (decimal; compare as a big integer)"},
		{Name: "sub_sequence", Type: i32, Required: true, Doc: "index of the user record in a KPL-aggregated record, 0 otherwise"},
		{Name: "event_index", Type: i32, Required: true, Doc: "index of the event when the record holds a JSON array, 0 otherwise"},
		{Name: "partition_key", Type: str, Doc: "Kinesis partition key"},
		{Name: "arrival_time", Type: tstz, Required: true, Doc: "Kinesis approximate arrival time"},
		{Name: "ingest_time", Type: tstz, Required: true, Doc: "when qoslake read the record"},
		{Name: "payload", Type: str, Required: true, Doc: "the event's JSON exactly as received"},
	},
	Partition: []lake.PartitionField{
		{Column: "event_time", Transform: day, Name: "event_day"},
		{Column: "event_type", Transform: ident, Name: "event_type"},
	},
	Properties: bronzeWrite,
}

// CDNLogsTable is bronze.cdn_logs: one row per CloudFront log line.
// (bucket, object_key, etag, line_number) is unique.
var CDNLogsTable = lake.TableDef{
	Namespace: Namespace,
	Name:      "cdn_logs",
	Doc:       "Raw CloudFront access log lines, exactly once. Contains raw client IPs: retention-limited.",
	Columns: []lake.Column{
		{Name: "log_time", Type: tstz, Required: true, Doc: "date and time fields of the line (UTC)"},
		{Name: "bucket", Type: str, Required: true, Doc: "S3 bucket of the log object"},
		{Name: "object_key", Type: str, Required: true, Doc: "S3 key of the log object (decoded)"},
		{Name: "etag", Type: str, Required: true, Doc: "ETag of the log object"},
		{Name: "line_number", Type: i64, Required: true, Doc: "1-based line number in the decompressed object"},
		{Name: "fields", Type: str, Required: true, Doc: "the object's #Fields header, naming the line's columns"},
		{Name: "line", Type: str, Required: true, Doc: "the log line exactly as written"},
		{Name: "ingest_time", Type: tstz, Required: true, Doc: "when qoslake read the object"},
	},
	Partition: []lake.PartitionField{
		{Column: "log_time", Transform: day, Name: "log_day"},
	},
	Properties: bronzeWrite,
}

// CDNRealtimeTable is bronze.cdn_realtime: one row per CloudFront real-time
// log record read from Kinesis, as CloudFront wrote it. A Kinesis record
// holds one log record (CloudFront's own) or several on lines of their
// own, and a KPL-aggregated record several user records: (shard_id,
// sequence_number, sub_sequence, record_index) is unique.
var CDNRealtimeTable = lake.TableDef{
	Namespace: Namespace,
	Name:      "cdn_realtime",
	Doc:       "Raw CloudFront real-time log records from Kinesis, exactly once. Contains raw client IPs: retention-limited.",
	Columns: []lake.Column{
		{Name: "log_time", Type: tstz, Required: true, Doc: "the record's timestamp (epoch seconds with milliseconds), UTC"},
		{Name: "fields", Type: str, Required: true, Doc: "the real-time log configuration's field list the record was read with (comma-separated), naming its values"},
		{Name: "record", Type: str, Required: true, Doc: "the log record exactly as received, without its line ending"},
		{Name: "sampling_rate", Type: i32, Required: true, Doc: "percent of requests the real-time log configuration logs (its SamplingRate, 1-100), as configured when read"},
		{Name: "stream", Type: str, Required: true, Doc: "Kinesis stream name"},
		{Name: "shard_id", Type: str, Required: true, Doc: "Kinesis shard id"},
		{Name: "sequence_number", Type: str, Required: true, Doc: "Kinesis sequence number (decimal; compare as a big integer)"},
		{Name: "sub_sequence", Type: i32, Required: true, Doc: "index of the user record in a KPL-aggregated record, 0 otherwise"},
		{Name: "record_index", Type: i32, Required: true, Doc: "line of the log record in the Kinesis record, 0 for CloudFront's one record per Kinesis record"},
		{Name: "partition_key", Type: str, Doc: "Kinesis partition key"},
		{Name: "arrival_time", Type: tstz, Required: true, Doc: "Kinesis approximate arrival time"},
		{Name: "ingest_time", Type: tstz, Required: true, Doc: "when qoslake read the record"},
	},
	Partition: []lake.PartitionField{
		{Column: "log_time", Transform: day, Name: "log_day"},
	},
	Properties: bronzeWrite,
}

// RejectsTable is bronze.rejects: input that could not be read, with the reason.
var RejectsTable = lake.TableDef{
	Namespace: Namespace,
	Name:      "rejects",
	Doc:       "Input qoslake could not read, kept for inspection with the reason.",
	Columns: []lake.Column{
		{Name: "rejected_at", Type: tstz, Required: true, Doc: "when the input was rejected"},
		{Name: "source", Type: str, Required: true, Doc: "kinesis (player events), realtime (CloudFront real-time logs) or s3"},
		{Name: "source_ref", Type: str, Required: true, Doc: "shard/sequence[/sub/index] or s3://bucket/key@etag[:line]"},
		{Name: "reason", Type: str, Required: true, Doc: "short machine-readable reason (malformed_json, invalid_utf8, ...)"},
		{Name: "detail", Type: str, Doc: "human-readable explanation"},
		{Name: "raw", Type: binary, Doc: "the input bytes, truncated to 64 KiB"},
		{Name: "raw_size", Type: i64, Required: true, Doc: "size of the input before truncation"},
	},
	Partition: []lake.PartitionField{
		{Column: "rejected_at", Transform: day, Name: "rejected_day"},
	},
}

// Tables are all bronze tables.
var Tables = []lake.TableDef{PlayerEventsTable, CDNLogsTable, CDNRealtimeTable, RejectsTable}
