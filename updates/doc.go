// Package updates owns the gold updates topic: it tells downstream
// applications what gold now says. After each gold commit the pipeline calls
// Publisher.Notify, which returns at once; a background goroutine reads the
// gold tables at one pinned moment (lake.Pin), computes the updates the
// commit may have changed, and publishes them to SNS in batches. Updates are
// state, not events: only the latest pending update of each type is kept, so
// a slow or failing topic never holds the pipeline back or lets memory grow.
//
// # Message format
//
// Every message is a JSON object (UTF-8, at most 256 KiB with its attributes)
// published to the updates topic with these SNS message attributes, on
// which subscribers filter (FilterPolicy {"update_type": ["kpi_summary"]}):
//
//	update_type  String  active_users | recent_views | total_views | kpi_summary
//	update_id    String  one id per update, shared by all its parts
//	part         Number  1-based part of a split update
//	parts        Number  how many parts the update has (1 unless split)
//
// With raw message delivery an SQS subscriber gets these as SQS message
// attributes and the JSON as the message body; without it the body is the
// SNS envelope, whose "Message" is the JSON and "MessageAttributes" holds
// them ({"update_type": {"Type": "String", "Value": "kpi_summary"}}).
//
// Every body starts with the same fields:
//
//	schema_version    1; a change that removes or redefines a field raises it
//	update_type       as the attribute
//	update_id         as the attribute
//	part, parts       as the attributes
//	generated_at      RFC 3339 UTC, when qoslake computed the update (wall clock)
//	as_of_event_time  RFC 3339 UTC or null (no data): the event time the update's
//	                  windows end at, the newest event time of the gold tables it read
//	                  (for the one-minute tables: the end of their newest window)
//	gold_snapshots    {"gold.player_minute": "5981772093164411802", ...}: the Iceberg
//	                  snapshot id of each gold table read, as a string (JavaScript
//	                  numbers lose int64 digits); Athena, Trino and Spark read the
//	                  same state with FOR VERSION AS OF
//
// Then, by update_type. N is Options.Recent (window_minutes); windows are
// [window_start, window_end) in event time; window bounds are null while
// the table they are measured on is empty, and a ratio or percentile with
// nothing to divide or rank is null.
//
// active_users, from gold.sessions (as_of_event_time: its newest session_end
// or session_start):
//
//	window_minutes, window_start, window_end   as_of - N, as_of (both included)
//	active_users         distinct user_key of the sessions active in the window:
//	                     session_end >= window_start, or end_reason "open"
//	active_sessions      distinct session_key of those sessions
//	concurrent_sessions  distinct session_key with end_reason "open": playing now
//	                     as far as gold knows
//
// recent_views, from gold.player_minute (as_of_event_time: the end of its
// newest minute, which may still be filling):
//
//	window_minutes, window_start, window_end   the N newest one-minute windows
//	video_count  videos with at least one view in the window, over all parts
//	views        views (CTA-2066 play attempts: PLAY events) over all videos and parts
//	videos       [{"video_id": "v1", "views": 12}, ...]: this part's videos, by views
//	             descending then video_id; "" counts plays without a video id
//
// total_views, from gold.player_minute: video_count, views and videos as
// recent_views, over all of gold's history (no window fields).
//
// A recent_views or total_views update too large for one message is split
// into parts of whole entries of "videos" (each part repeats every other
// field); a consumer collects the parts of one update_id, and drops an
// update whose parts did not all arrive once a newer one has.
//
// kpi_summary, from gold.player_minute and gold.cdn_minute (as_of_event_time:
// the later of their newest windows' ends):
//
//	last_minute     {"player": {...}, "cdn": {...}}: the last complete minute of each
//	                table, the one before its newest (which may still be filling)
//	last_5_minutes  the same over the five complete minutes before the newest
//
// Either table's block is null while it holds no rows. A player block:
//
//	window_start, window_end
//	play_attempts            PLAY events (CTA-2066 video start attempts)
//	video_start_time_p50_ms  CTA-2066 video start time (play request to first
//	video_start_time_p95_ms  frame), from the summed start_time_le_* buckets
//	error_ratio              errors / play_attempts
//	stall_count              CTA-2066 rebuffering events
//	average_bitrate_bps      CTA-2066 average bitrate: bitrate_bps_sum / bitrate_bps_count
//
// A cdn block:
//
//	window_start, window_end
//	requests            CloudFront requests
//	cache_hit_ratio     cache_hits / requests (Hit or RefreshHit)
//	time_taken_p95_ms   request latency (time-taken) p95 from the summed
//	                    time_taken_le_* buckets
//	status_4xx_share    status_4xx / requests
//	status_5xx_share    status_5xx / requests
//
// Delivery is at least once and unordered (SNS standard topics): keep the
// update with the latest as_of_event_time (then generated_at) per type.
package updates
