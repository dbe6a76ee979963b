package bronze

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/ingest/kinesis"
	"github.com/qoslake/qoslake/lake"
)

// RealtimeLogs commits batches of the CloudFront real-time log stream to
// bronze.cdn_realtime, and what cannot be read to bronze.rejects (source
// realtime), exactly once (see shardSink). Each row keeps the field list
// and sampling rate it was read with: records carry neither.
type RealtimeLogs struct {
	Logs, Rejects *lake.Table
	Stream        string
	// Layout is the real-time log configuration's field list.
	Layout *cloudfront.RealtimeLayout
	// SamplingRate is the configuration's percent of requests logged.
	SamplingRate int
	Limits       cloudfront.RealtimeLimits
	Batching     Batching
	Logger       *slog.Logger
	Observer     Observer
	// Now is the clock for ingest times and timestamp plausibility.
	Now func() time.Time

	sink   shardSink
	fields string
}

func (r *RealtimeLogs) shards() *shardSink {
	s := &r.sink
	s.rows, s.rejects, s.keys, s.source, s.dataColumn = r.Logs, r.Rejects, realtimeKeys, "realtime", "record"
	s.decode, s.rowOverhead = r.decode, len(r.fields)
	s.batching, s.logger, s.observer, s.now = r.Batching, r.Logger, r.Observer, r.Now
	return s
}

// Positions loads the committed shard positions, to resume reading after.
func (r *RealtimeLogs) Positions(ctx context.Context) (map[string]string, error) {
	return r.shards().positions(ctx)
}

// EndedRealtimeShards says which shards of the real-time log stream
// bronze.cdn_realtime (as loaded) holds to their end, whoever read them.
func EndedRealtimeShards(logs *lake.Table) (map[string]bool, error) {
	return endedShards(logs, realtimeKeys)
}

func (r *RealtimeLogs) init() error {
	if r.Layout == nil {
		return errors.New("bronze real-time logs: no field list")
	}
	if r.Limits == (cloudfront.RealtimeLimits{}) {
		r.Limits = cloudfront.DefaultRealtimeLimits
	}
	if r.SamplingRate == 0 {
		r.SamplingRate = 100
	}
	r.fields = r.Layout.String()
	return r.shards().init()
}

// Run commits the batches read from in until in is closed or ctx ends, as
// PlayerEvents.Run does.
func (r *RealtimeLogs) Run(ctx context.Context, in <-chan kinesis.Batch) error {
	if err := r.init(); err != nil {
		return err
	}
	return r.sink.run(ctx, in)
}

// Add decodes a batch into pending rows.
func (r *RealtimeLogs) Add(b kinesis.Batch) { r.sink.add(b) }

// Flush commits what is pending, as PlayerEvents.Flush does.
func (r *RealtimeLogs) Flush(ctx context.Context) error { return r.sink.flush(ctx) }

// decode adds the log records of one Kinesis record, and returns its
// rejects.
func (r *RealtimeLogs) decode(rb *lake.Rows, kr kinesis.Record, now time.Time) (int, []Reject) {
	recs, rejects := r.Layout.ParseRealtime(kr.Data, now, r.Limits)
	for _, l := range recs {
		rb.Time("log_time", l.Time)
		rb.String("fields", r.fields)
		rb.String("record", l.Text)
		rb.Int32("sampling_rate", int32(r.SamplingRate))
		rb.String("stream", r.Stream)
		rb.String("shard_id", kr.Shard)
		rb.String("sequence_number", kr.Seq)
		rb.Int32("sub_sequence", int32(kr.Sub))
		rb.Int32("record_index", int32(l.Index))
		rb.NullableString("partition_key", kr.PartitionKey)
		rb.Time("arrival_time", kr.Arrival)
		rb.Time("ingest_time", now)
	}
	out := make([]Reject, 0, len(rejects))
	for _, rj := range rejects {
		out = append(out, Reject{SourceRef: recordRef(kr, rj.Index), Reason: rj.Reason, Detail: rj.Detail, Raw: rj.Raw})
	}
	return len(recs), out
}
