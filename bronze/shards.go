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
	"github.com/qoslake/qoslake/lake"
)

// Checkpoint key prefixes of the Kinesis intakes, one per stream: the
// shards of two streams have the same ids, and bronze.rejects holds the
// positions of both.
const (
	playerKeys   = "kinesis:"
	realtimeKeys = "realtime:"
)

// CheckpointKey is the checkpoint key of a player-events shard in
// bronze.player_events (and, for rejects, in bronze.rejects).
func CheckpointKey(shard string) string { return playerKeys + shard }

// shardSink commits Kinesis batches to one bronze table, and what cannot
// be read to bronze.rejects, exactly once: the machinery the player-event
// and real-time-log intakes share. decode turns a record into rows and
// rejects.
//
// Order of commits: rejects first, then rows. The rows commit carries the
// shard positions (compare-and-set), so it is the one that decides what is
// done. The rejects table keeps its own per-shard position, the highest
// sequence number whose rejects it holds; after a crash between the two
// commits the records are read again and their rejects, already there, are
// skipped.
type shardSink struct {
	rows, rejects *lake.Table
	// keys prefixes the shard checkpoint keys; source is the intake's name
	// in bronze.rejects and the metrics.
	keys, source string
	// dataColumn is the string column that holds most of a record's bytes:
	// room for them is made once per batch.
	dataColumn string
	// rowOverhead is what each row holds besides its record's bytes (the
	// field list of a real-time log row): it counts towards
	// Batching.MaxBytes, which bounds the memory a batch takes.
	rowOverhead int
	decode      func(out *lake.Rows, r kinesis.Record, now time.Time) (rows int, rejects []Reject)
	batching    Batching
	logger      *slog.Logger
	observer    Observer
	now         func() time.Time

	committed map[string]string // shard → position committed in rows
	rejectsAt map[string]string // shard → position committed in rejects

	out, rejected  *lake.Rows
	nRows, nBytes  int
	pendingRejects []shardReject
	pendingLast    map[string]string
	// unlanded is a batch whose commit failed: the next flush commits it,
	// as it was and under its id, before anything newer.
	unlanded *shardBatch
}

// shardBatch is one rows commit: rows and the shard positions they
// advance.
type shardBatch struct {
	id      string
	rec     arrow.RecordBatch
	last    map[string]string
	rejects []shardReject
}

type shardReject struct {
	shard, seq string
	Reject
}

// positions loads the committed shard positions, to resume reading after.
func (s *shardSink) positions(ctx context.Context) (map[string]string, error) {
	if _, err := s.rows.Refresh(ctx); err != nil {
		return nil, err
	}
	if _, err := s.rejects.Refresh(ctx); err != nil {
		return nil, err
	}
	var err error
	if s.committed, err = shardPositions(s.rows, s.keys); err != nil {
		return nil, err
	}
	if s.rejectsAt, err = shardPositions(s.rejects, s.keys); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(s.committed))
	for k, v := range s.committed {
		out[k] = v
	}
	return out, nil
}

// endedShards says which shards t (as loaded) holds to their end under the
// key prefix, whoever read them.
func endedShards(t *lake.Table, keys string) (map[string]bool, error) {
	positions, err := shardPositions(t, keys)
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

func shardPositions(t *lake.Table, keys string) (map[string]string, error) {
	// An unreadable checkpoint must stop us: read as empty, every shard
	// would be read again from its start, doubling bronze.
	cp, err := t.Checkpoint()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range cp {
		if shard, ok := strings.CutPrefix(k, keys); ok {
			out[shard] = v
		}
	}
	return out, nil
}

func (s *shardSink) init() error {
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.observer == nil {
		s.observer = nopObserver{}
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.batching = s.batching.withDefaults()
	if s.committed == nil {
		return fmt.Errorf("bronze %s: call Positions before Run", s.rows.Name())
	}
	var err error
	if s.out, err = s.rows.NewRows(); err != nil {
		return err
	}
	if s.rejected, err = s.rejects.NewRows(); err != nil {
		return err
	}
	s.pendingLast = map[string]string{}
	return nil
}

// run commits the batches read from in until in is closed or ctx ends; what
// is buffered then is committed before run returns (with its own deadline,
// so shutdown flushes instead of dropping). It returns
// lake.ErrCheckpointMoved when another writer took over a shard: the caller
// restarts reading from the positions.
func (s *shardSink) run(ctx context.Context, in <-chan kinesis.Batch) error {
	defer s.out.Release()
	defer s.rejected.Release()
	age := time.NewTimer(time.Hour)
	age.Stop()
	defer age.Stop()
	// A flush runs to its end even when shutdown begins during it: a
	// commit cut short would only have to be redone after the restart.
	flush := func() error {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return s.flush(fctx)
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
			wasEmpty := s.empty()
			s.add(b)
			if wasEmpty && !s.empty() {
				age.Reset(s.batching.MaxAge)
			}
			if s.nRows >= s.batching.MaxRows || s.nBytes >= s.batching.MaxBytes {
				if err := flush(); err != nil {
					return err
				}
				age.Stop()
			}
		}
	}
}

func (s *shardSink) empty() bool { return len(s.pendingLast) == 0 }

// add decodes a batch into pending rows.
func (s *shardSink) add(b kinesis.Batch) {
	now := s.now().UTC()
	size := 0
	for _, r := range b.Records {
		size += len(r.Data)
	}
	s.out.Reserve(len(b.Records), s.dataColumn, size)
	for _, r := range b.Records {
		n, rejects := s.decode(s.out, r, now)
		s.nRows += n
		s.nBytes += n * s.rowOverhead
		for _, rj := range rejects {
			rj.At, rj.Source = now, s.source
			s.pendingRejects = append(s.pendingRejects, shardReject{shard: r.Shard, seq: r.Seq, Reject: rj})
			s.observer.Rejected(s.source, rj.Reason)
		}
		s.nBytes += len(r.Data)
	}
	last := b.Last
	if b.End {
		last = kinesis.ShardEnd
	}
	if last != "" {
		s.pendingLast[b.Shard] = last
	}
}

// recordRef is where a record's reject came from: shard/sequence/sub, and
// /index for one item of a record that holds several (-1: the record).
func recordRef(r kinesis.Record, index int) string {
	ref := fmt.Sprintf("%s/%s/%d", r.Shard, r.Seq, r.Sub)
	if index >= 0 {
		ref += fmt.Sprintf("/%d", index)
	}
	return ref
}

// flush commits what is pending: rejects, then rows with the positions.
// A flush that fails keeps its batch, rows and positions together, and the
// next flush commits that batch first: positions never move without their
// rows, and rows never land twice.
func (s *shardSink) flush(ctx context.Context) error {
	if s.unlanded == nil && s.empty() {
		return nil
	}
	if s.unlanded == nil {
		s.unlanded = &shardBatch{id: uuid.NewString(), rec: s.out.Batch(), last: s.pendingLast, rejects: s.pendingRejects}
		s.pendingLast, s.pendingRejects = map[string]string{}, nil
		s.nRows, s.nBytes = 0, 0
	}
	b := s.unlanded
	start := time.Now()
	if err := s.commitRejects(ctx, b); err != nil {
		return err
	}
	var adv []lake.Position
	for shard, last := range b.last {
		if last != s.committed[shard] {
			adv = append(adv, lake.Position{Key: s.keys + shard, From: s.committed[shard], To: last})
		}
	}
	n := int(b.rec.NumRows())
	if n > 0 || len(adv) > 0 {
		if _, err := s.rows.Commit(ctx, lake.Batch{ID: b.id, Records: []arrow.RecordBatch{b.rec}, Advance: adv}); err != nil {
			return fmt.Errorf("commit %s: %w", s.rows.Name(), err)
		}
	}
	for _, a := range adv {
		s.committed[strings.TrimPrefix(a.Key, s.keys)] = a.To
	}
	s.observer.BatchCommitted(s.rows.Name(), n, time.Since(start))
	s.logger.Debug("bronze batch committed", "table", s.rows.Name(), "rows", n, "shards", len(adv), "took", time.Since(start))
	b.rec.Release()
	s.unlanded = nil
	return nil
}

// commitRejects commits the batch's rejects not yet in bronze.rejects;
// those stay with the batch until it lands, so a failed flush loses none.
func (s *shardSink) commitRejects(ctx context.Context, b *shardBatch) error {
	for attempt := 0; ; attempt++ {
		var keep []shardReject
		top := map[string]string{}
		for _, r := range b.rejects {
			at := s.rejectsAt[r.shard]
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
			appendReject(s.rejected, r.Reject)
		}
		rec := s.rejected.Batch()
		var adv []lake.Position
		for shard, seq := range top {
			adv = append(adv, lake.Position{Key: s.keys + shard, From: s.rejectsAt[shard], To: seq})
		}
		_, err := s.rejects.Commit(ctx, lake.Batch{Records: []arrow.RecordBatch{rec}, Advance: adv})
		rec.Release()
		if err == nil {
			for shard, seq := range top {
				s.rejectsAt[shard] = seq
			}
			return nil
		}
		if !errors.Is(err, lake.ErrCheckpointMoved) || attempt > 3 {
			return fmt.Errorf("commit rejects: %w", err)
		}
		// Another writer moved a shard's rejects position: reload and filter
		// again.
		if _, err := s.rejects.Refresh(ctx); err != nil {
			return err
		}
		var perr error
		if s.rejectsAt, perr = shardPositions(s.rejects, s.keys); perr != nil {
			return perr
		}
	}
}
