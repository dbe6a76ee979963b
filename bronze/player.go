package bronze

import (
	"context"
	"log/slog"
	"time"

	"github.com/qoslake/qoslake/ingest/kinesis"
	"github.com/qoslake/qoslake/ingest/playerevent"
	"github.com/qoslake/qoslake/lake"
)

// PlayerEvents commits Kinesis batches to bronze.player_events, and what
// cannot be read to bronze.rejects, exactly once (see shardSink).
type PlayerEvents struct {
	Events, Rejects *lake.Table
	Stream          string
	Limits          playerevent.Limits
	Batching        Batching
	Logger          *slog.Logger
	Observer        Observer
	// Now is the clock for ingest times and timestamp plausibility.
	Now func() time.Time

	sink shardSink
}

// shards is the sink, set up from the settings.
func (p *PlayerEvents) shards() *shardSink {
	s := &p.sink
	s.rows, s.rejects, s.keys, s.source, s.dataColumn = p.Events, p.Rejects, playerKeys, "kinesis", "payload"
	s.decode = p.decode
	s.batching, s.logger, s.observer, s.now = p.Batching, p.Logger, p.Observer, p.Now
	return s
}

// Positions loads the committed shard positions, to resume reading after.
func (p *PlayerEvents) Positions(ctx context.Context) (map[string]string, error) {
	return p.shards().positions(ctx)
}

// EndedShards says which shards bronze.player_events (as loaded) holds to their end,
// whoever read them: a worker that owns a child shard starts it once the
// parent another worker owns has ended.
func EndedShards(events *lake.Table) (map[string]bool, error) { return endedShards(events, playerKeys) }

func (p *PlayerEvents) init() error {
	if p.Limits == (playerevent.Limits{}) {
		p.Limits = playerevent.DefaultLimits
	}
	return p.shards().init()
}

// Run commits the batches read from in until in is closed or ctx ends; what
// is buffered then is committed before Run returns (with its own deadline,
// so shutdown flushes instead of dropping). Run returns
// lake.ErrCheckpointMoved when another writer took over a shard: the caller
// restarts reading from Positions.
func (p *PlayerEvents) Run(ctx context.Context, in <-chan kinesis.Batch) error {
	if err := p.init(); err != nil {
		return err
	}
	return p.sink.run(ctx, in)
}

// Add decodes a batch into pending rows.
func (p *PlayerEvents) Add(b kinesis.Batch) { p.sink.add(b) }

// Flush commits what is pending: rejects, then events with the positions.
// A Flush that fails keeps its batch, rows and positions together, and the
// next Flush commits that batch first: positions never move without their
// rows, and rows never land twice.
func (p *PlayerEvents) Flush(ctx context.Context) error { return p.sink.flush(ctx) }

// decode adds the events of one record, and returns its rejects.
func (p *PlayerEvents) decode(rb *lake.Rows, r kinesis.Record, now time.Time) (int, []Reject) {
	events, rejects := playerevent.Parse(r.Data, now, p.Limits)
	for _, e := range events {
		rb.String("event_type", e.Type)
		rb.Time("event_time", e.Time)
		rb.String("stream", p.Stream)
		rb.String("shard_id", r.Shard)
		rb.String("sequence_number", r.Seq)
		rb.Int32("sub_sequence", int32(r.Sub))
		rb.Int32("event_index", int32(e.Index))
		rb.NullableString("partition_key", r.PartitionKey)
		rb.Time("arrival_time", r.Arrival)
		rb.Time("ingest_time", now)
		rb.StringBytes("payload", e.Payload)
	}
	out := make([]Reject, 0, len(rejects))
	for _, rj := range rejects {
		out = append(out, Reject{SourceRef: recordRef(r, rj.Index), Reason: rj.Reason, Detail: rj.Detail, Raw: rj.Raw})
	}
	return len(events), out
}
