// Package gold owns the gold tables: time window × dimension aggregates of
// silver that the dashboard and the alert rules read. Every gold value is
// mergeable (a sum, a count or a histogram bucket count), so a coarser grain
// (five minutes, an hour, a whole PoP) is the sum of finer rows, and ratios
// and percentiles are derived after summing, never averaged from averages.
//
// Gold is incremental and exactly once with respect to silver: a stage reads
// what silver appended since the position gold recorded, recomputes every
// window that increment touches from all of silver's rows of that window,
// and replaces those windows' gold rows together with the new position in
// one snapshot.
package gold

import (
	"fmt"
	"slices"

	"github.com/apache/iceberg-go"

	"github.com/qoslake/qoslake/lake"
)

// Namespace of the gold tables.
const Namespace = "gold"

var (
	str  = iceberg.PrimitiveTypes.String
	i64  = iceberg.PrimitiveTypes.Int64
	f64  = iceberg.PrimitiveTypes.Float64
	tstz = iceberg.PrimitiveTypes.TimestampTz
)

// LatencyBounds are the upper bounds, in milliseconds, of the latency
// histogram buckets of gold.cdn_minute, for both time-taken and
// time-to-first-byte. Buckets are cumulative, as Prometheus' "le" buckets:
// the bucket of bound b counts the requests whose value is <= b, and a
// last bucket (+inf, column suffix "inf") counts every request with a value.
// The bounds cover a cache hit served from memory (a few ms) up to a slow
// origin fetch of a large segment (seconds).
var LatencyBounds = [...]float64{5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000}

// BucketColumns are the histogram column names for a metric prefix, in
// bound order, ending with the +inf bucket: prefix_le_5 ... prefix_le_inf.
func BucketColumns(prefix string) []string {
	out := make([]string, 0, len(LatencyBounds)+1)
	for _, b := range LatencyBounds {
		out = append(out, fmt.Sprintf("%s_le_%g", prefix, b))
	}
	return append(out, prefix+"_le_inf")
}

// The histogram column prefixes of gold.cdn_minute.
const (
	timeTakenPrefix = "time_taken"
	ttfbPrefix      = "ttfb"
)

var (
	timeTakenBuckets = BucketColumns(timeTakenPrefix)
	ttfbBuckets      = BucketColumns(ttfbPrefix)
)

func bucketDocs(cols []string, field string) []lake.Column {
	out := make([]lake.Column, len(cols))
	for i, c := range cols {
		bound := "+inf (every request with a value; equals the _count column)"
		if i < len(LatencyBounds) {
			bound = fmt.Sprintf("%g ms", LatencyBounds[i])
		}
		out[i] = lake.Column{Name: c, Type: i64, Required: true,
			Doc: fmt.Sprintf("cumulative histogram bucket: requests whose %s is <= %s", field, bound)}
	}
	return out
}

// CDNDimensions are the grouping columns of gold.cdn_minute besides
// window_start. Each minute keeps at most DimensionLimits values of a
// dimension and folds the rest into Other; a null and an empty value are
// the same group and are stored as null.
var CDNDimensions = []string{"edge_location", "pop", "edge_result_type", "country", "isp"}

// CDNMinuteTable is gold.cdn_minute: CloudFront requests aggregated per
// minute of log time and per (edge_location, pop, edge_result_type,
// country, isp). Only mergeable values are stored; the CDN metrics derive
// from them at any grain by summing first:
//
//   - request latency (CloudFront time-taken): mean = time_taken_ms_sum /
//     time_taken_ms_count, percentiles from the time_taken_le_* buckets
//     (Quantile);
//   - time to first byte (CloudFront time-to-first-byte): ttfb_ms_sum /
//     ttfb_ms_count and the ttfb_le_* buckets;
//   - cache hit ratio = cache_hits / requests (x-edge-result-type Hit or
//     RefreshHit);
//   - error ratio = errors / requests (x-edge-result-type Error, or
//     sc-status 5xx or 000);
//   - bytes served = bytes (sum of sc-bytes), throughput = bytes / seconds.
var CDNMinuteTable = lake.TableDef{
	Namespace: Namespace,
	Name:      "cdn_minute",
	Doc: "CloudFront requests per minute of log time and edge location, PoP, edge result type, country and ISP: " +
		"mergeable counts, sums and cumulative latency histograms (sum rows first, then divide or take quantiles).",
	Columns: slices.Concat([]lake.Column{
		{Name: "window_start", Type: tstz, Required: true, Doc: "start of the one-minute window: silver log_time (CloudFront date and time, UTC) truncated to the minute; the window is [window_start, window_start + 1 minute)"},
		{Name: "edge_location", Type: str, Doc: "x-edge-location, e.g. FRA56-P3"},
		{Name: "pop", Type: str, Doc: "3-letter airport code of the edge location, e.g. FRA"},
		{Name: "edge_result_type", Type: str, Doc: "x-edge-result-type: Hit, RefreshHit, Miss, Error, ..."},
		{Name: "country", Type: str, Doc: "ISO 3166-1 alpha-2 country of the client (silver geo lookup of c-ip)"},
		{Name: "isp", Type: str, Doc: "ISP or AS organisation of the client (silver lookup of c-ip)"},
		{Name: "requests", Type: i64, Required: true, Doc: "requests (log lines) in the group; the denominator of the cache hit and error ratios"},
		{Name: "bytes", Type: i64, Required: true, Doc: "bytes served: sum of sc-bytes (bytes sent to the viewer, headers included)"},
		{Name: "cache_hits", Type: i64, Required: true, Doc: "requests whose x-edge-result-type is Hit or RefreshHit; cache hit ratio = cache_hits / requests"},
		{Name: "errors", Type: i64, Required: true, Doc: "requests whose x-edge-result-type is Error or whose sc-status is 5xx or 000; error ratio = errors / requests"},
		{Name: "status_4xx", Type: i64, Required: true, Doc: "requests with sc-status 400-499"},
		{Name: "status_5xx", Type: i64, Required: true, Doc: "requests with sc-status 500-599"},
		{Name: "status_000", Type: i64, Required: true, Doc: "requests with sc-status 000: the viewer closed the connection before the response"},
		{Name: "time_taken_ms_sum", Type: f64, Required: true, Doc: "request latency: sum of time-taken (request received to last byte sent), ms; mean = time_taken_ms_sum / time_taken_ms_count"},
		{Name: "time_taken_ms_count", Type: i64, Required: true, Doc: "requests with a time-taken value"},
		{Name: "ttfb_ms_sum", Type: f64, Required: true, Doc: "sum of time-to-first-byte (request received to first byte sent), ms; mean = ttfb_ms_sum / ttfb_ms_count"},
		{Name: "ttfb_ms_count", Type: i64, Required: true, Doc: "requests with a time-to-first-byte value"},
	}, bucketDocs(timeTakenBuckets, "time-taken"), bucketDocs(ttfbBuckets, "time-to-first-byte")),
	Partition: []lake.PartitionField{
		{Column: "window_start", Transform: iceberg.DayTransform{}, Name: "window_day"},
	},
	SortOrder: []lake.SortKey{{Column: "window_start"}, {Column: "edge_location"}},
}

// Tables are all gold tables.
var Tables = []lake.TableDef{CDNMinuteTable, PlayerMinuteTable, SessionsTable, SessionMinuteTable}
