package bronze

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/google/uuid"

	"github.com/qoslake/qoslake/ingest/kinesis"
	"github.com/qoslake/qoslake/ingest/playerevent"
	"github.com/qoslake/qoslake/lake"
)

// CheckpointKey is the checkpoint key of a Kinesis shard in
// bronze.player_events (and, for rejects, in bronze.rejects).
func CheckpointKey(shard string) string { return "kinesis:" + shard }

// PlayerEvents commits Kinesis batches to bronze.player_events, and what
// cannot be read to bronze.rejects, exactly once.
//
// Order of commits: rejects first, then events. The events commit carries
// the shard positions (compare-and-set), so it is the one that decides what
// is done. The rejects table keeps its own per-shard position, the highest
// sequence number whose rejects it holds; after a crash between the two
// commits the records are read again and their rejects, already there, are
// skipped.
type PlayerEvents struct {
	Events, Rejects *lake.Table
	Stream          string
	Limits          playerevent.Limits
	Batching        Batching
	Logger          *slog.Logger
	Observer        Observer
	// Now is the clock for ingest times and timestamp plausibility.
	Now func() time.Time

	committed map[string]string // shard → position committed in Events
	rejectsAt map[string]string // shard → position committed in Rejects

	events, rejects *lake.Rows
	nEvents, nBytes int
	pendingRejects  []shardReject
	pendingLast     map[string]string
	// unlanded is a batch whose commit failed: the next Flush commits it,
	// as it was and under its id, before anything newer.
	unlanded *playerBatch
}

// playerBatch is one events commit: rows and the shard positions they
// advance.
type playerBatch struct {
	id      string
	rec     arrow.RecordBatch
	last    map[string]string
	rejects []shardReject
}

type shardReject struct {
	shard, seq string
	Reject
}

// Positions loads the committed shard positions, to resume reading after.
func (p *PlayerEvents) Positions(ctx context.Context) (map[string]string, error) {
	if _, err := p.Events.Refresh(ctx); err != nil {
		return nil, err
	}
	if _, err := p.Rejects.Refresh(ctx); err != nil {
		return nil, err
	}
	var err error
	if p.committed, err = shardPositions(p.Events); err != nil {
		return nil, err
	}
	if p.rejectsAt, err = shardPositions(p.Rejects); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(p.committed))
	for k, v := range p.committed {
		out[k] = v
	}
	return out, nil
}

// EndedShards says which shards bronze.player_events (as loaded) holds to their end,
// whoever read them: a worker that owns a child shard starts it once the
// parent another worker owns has ended.
func EndedShards(events *lake.Table) (map[string]bool, error) {
	positions, err := shardPositions(events)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for shard, pos := range positions {
		if pos == kinesis.ShardEnd {
			out[shard] = true
		}
	}
	return out, nil
}

func shardPositions(t *lake.Table) (map[string]string, error) {
	// An unreadable checkpoint must stop us: read as empty, every shard
	// would be read again from its start, doubling bronze.
	cp, err := t.Checkpoint()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range cp {
		if shard, ok := strings.CutPrefix(k, "kinesis:"); ok {
			out[shard] = v
		}
	}
	return out, nil
}

func (p *PlayerEvents) init() error {
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Observer == nil {
		p.Observer = nopObserver{}
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Limits == (playerevent.Limits{}) {
		p.Limits = playerevent.DefaultLimits
	}
	p.Batching = p.Batching.withDefaults()
	if p.committed == nil {
		return errors.New("bronze player events: call Positions before Run")
	}
	var err error
	if p.events, err = p.Events.NewRows(); err != nil {
		return err
	}
	if p.rejects, err = p.Rejects.NewRows(); err != nil {
		return err
	}
	p.pendingLast = map[string]string{}
	return nil
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
	defer p.events.Release()
	defer p.rejects.Release()
	age := time.NewTimer(time.Hour)
	age.Stop()
	defer age.Stop()
	// A flush runs to its end even when shutdown begins during it: a
	// commit cut short would only have to be redone after the restart.
	flush := func() error {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return p.Flush(fctx)
	}
	for {
		select {
		case <-ctx.Done():
			return flush()
		case <-age.C:
			if err := flush(); err != nil {
				return err
			}
		case b, ok := <-in:
			if !ok {
				return flush()
			}
			wasEmpty := p.empty()
			p.Add(b)
			if wasEmpty && !p.empty() {
				age.Reset(p.Batching.MaxAge)
			}
			if p.nEvents >= p.Batching.MaxRows || p.nBytes >= p.Batching.MaxBytes {
				if err := flush(); err != nil {
					return err
				}
				age.Stop()
			}
		}
	}
}

func (p *PlayerEvents) empty() bool { return len(p.pendingLast) == 0 }

// Add decodes a batch into pending rows.
func (p *PlayerEvents) Add(b kinesis.Batch) {
	now := p.Now().UTC()
	size := 0
	for _, r := range b.Records {
		size += len(r.Data)
	}
	p.events.Reserve(len(b.Records), "payload", size)
	for _, r := range b.Records {
		events, rejects := playerevent.Parse(r.Data, now, p.Limits)
		for _, e := range events {
			rb := p.events
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
			p.nEvents++
		}
		for _, rj := range rejects {
			ref := fmt.Sprintf("%s/%s/%d", r.Shard, r.Seq, r.Sub)
			if rj.Index >= 0 {
				ref += fmt.Sprintf("/%d", rj.Index)
			}
			p.pendingRejects = append(p.pendingRejects, shardReject{shard: r.Shard, seq: r.Seq, Reject: Reject{
				At: now, Source: "kinesis", SourceRef: ref, Reason: rj.Reason, Detail: rj.Detail, Raw: rj.Raw,
			}})
			p.Observer.Rejected("kinesis", rj.Reason)
		}
		p.nBytes += len(r.Data)
	}
	last := b.Last
	if b.End {
		last = kinesis.ShardEnd
	}
	if last != "" {
		p.pendingLast[b.Shard] = last
	}
}

// Flush commits what is pending: rejects, then events with the positions.
// A Flush that fails keeps its batch, rows and positions together, and the
// next Flush commits that batch first: positions never move without their
// rows, and rows never land twice.
func (p *PlayerEvents) Flush(ctx context.Context) error {
	if p.unlanded == nil && p.empty() {
		return nil
	}
	if p.unlanded == nil {
		p.unlanded = &playerBatch{id: uuid.NewString(), rec: p.events.Batch(), last: p.pendingLast, rejects: p.pendingRejects}
		p.pendingLast, p.pendingRejects = map[string]string{}, nil
		p.nEvents, p.nBytes = 0, 0
	}
	b := p.unlanded
	start := time.Now()
	if err := p.commitRejects(ctx, b); err != nil {
		return err
	}
	var adv []lake.Position
	for shard, last := range b.last {
		if last != p.committed[shard] {
			adv = append(adv, lake.Position{Key: CheckpointKey(shard), From: p.committed[shard], To: last})
		}
	}
	n := int(b.rec.NumRows())
	if n > 0 || len(adv) > 0 {
		if _, err := p.Events.Commit(ctx, lake.Batch{ID: b.id, Records: []arrow.RecordBatch{b.rec}, Advance: adv}); err != nil {
			return fmt.Errorf("commit player events: %w", err)
		}
	}
	for _, a := range adv {
		p.committed[strings.TrimPrefix(a.Key, "kinesis:")] = a.To
	}
	p.Observer.BatchCommitted(p.Events.Name(), n, time.Since(start))
	p.Logger.Debug("player events committed", "rows", n, "shards", len(adv), "took", time.Since(start))
	b.rec.Release()
	p.unlanded = nil
	return nil
}

// commitRejects commits the batch's rejects not yet in bronze.rejects;
// those stay with the batch until it lands, so a failed Flush loses none.
func (p *PlayerEvents) commitRejects(ctx context.Context, b *playerBatch) error {
	for attempt := 0; ; attempt++ {
		var keep []shardReject
		top := map[string]string{}
		for _, r := range b.rejects {
			at := p.rejectsAt[r.shard]
			if at == kinesis.ShardEnd || (at != "" && kinesis.Compare(r.seq, at) <= 0) {
				continue // committed before a crash; read again since
			}
			keep = append(keep, r)
			if kinesis.Compare(r.seq, top[r.shard]) > 0 {
				top[r.shard] = r.seq
			}
		}
		if len(keep) == 0 {
			return nil
		}
		for _, r := range keep {
			appendReject(p.rejects, r.Reject)
		}
		rec := p.rejects.Batch()
		var adv []lake.Position
		for shard, seq := range top {
			adv = append(adv, lake.Position{Key: CheckpointKey(shard), From: p.rejectsAt[shard], To: seq})
		}
		_, err := p.Rejects.Commit(ctx, lake.Batch{Records: []arrow.RecordBatch{rec}, Advance: adv})
		rec.Release()
		if err == nil {
			for shard, seq := range top {
				p.rejectsAt[shard] = seq
			}
			return nil
		}
		if !errors.Is(err, lake.ErrCheckpointMoved) || attempt > 3 {
			return fmt.Errorf("commit rejects: %w", err)
		}
		// Another writer moved a shard's rejects position: reload and filter
		// again.
		if _, err := p.Rejects.Refresh(ctx); err != nil {
			return err
		}
		var perr error
		if p.rejectsAt, perr = shardPositions(p.Rejects); perr != nil {
			return perr
		}
	}
}
