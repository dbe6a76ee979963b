// Package kinesis reads a Kinesis data stream with GetRecords polling: one
// reader per open shard, children only after their parents are read to the
// end, KPL records de-aggregated. It does not checkpoint: the caller passes
// the positions committed in bronze and commits what it receives.
package kinesis

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/qoslake/qoslake/ingest/kpl"
)

// ShardEnd is the position of a closed shard read to its end.
const ShardEnd = "SHARD_END"

// API is the part of the Kinesis API the consumer calls.
type API interface {
	ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// Record is one user record: a Kinesis record, or one of the user records
// inside a KPL-aggregated record (Sub is its index).
type Record struct {
	Shard        string
	Seq          string
	Sub          int
	PartitionKey string
	Data         []byte
	Arrival      time.Time
}

// Batch is what one GetRecords call returned for a shard.
type Batch struct {
	Shard   string
	Records []Record
	// Last is the sequence number of the last Kinesis record in the batch
	// (the checkpoint after it is committed), or ShardEnd when End is set
	// and the batch is empty.
	Last string
	// End is set on the last batch of a closed shard.
	End bool
	// Behind is how far the shard's reader is behind its tip.
	Behind time.Duration
	// Bytes is the size of the records' data.
	Bytes int
}

// StartAt says where to read a shard that has no committed position.
type StartAt struct {
	// Kind is "trim_horizon" (default), "latest" or "at_timestamp".
	Kind      string
	Timestamp time.Time
}

// Observer is told what the consumer reads, for metrics.
type Observer interface {
	Read(shard string, records, bytes int)
	Lag(shard string, behind time.Duration)
	Throttled(shard string)
}

type nopObserver struct{}

func (nopObserver) Read(string, int, int)     {}
func (nopObserver) Lag(string, time.Duration) {}
func (nopObserver) Throttled(string)          {}

// Consumer reads one stream.
type Consumer struct {
	API    API
	Stream string
	Start  StartAt
	// Limit is the GetRecords record limit (at most 10000).
	Limit int32
	// IdleWait is the pause after an empty GetRecords; each shard allows five
	// reads a second, so it is at least 200ms.
	IdleWait time.Duration
	// Rediscover is how often shards are listed again to follow resharding.
	Rediscover time.Duration
	Logger     *slog.Logger
	Observer   Observer
	// Owns, when set, says which shards this consumer reads; the others are
	// another worker's (see Worker). Nil reads every shard.
	Owns func(shard string) bool
	// Ended, when set, is asked at each discovery which shards have been
	// read to their end by anyone: a child owned here may start once a
	// parent owned by another worker has ended.
	Ended func(ctx context.Context) (map[string]bool, error)
}

// Worker returns an Owns function that splits shards among count workers
// by a hash of the shard id: worker index (0-based) reads its share. Run
// one process per index; every shard has exactly one reader.
func Worker(index, count int) func(string) bool {
	return func(shard string) bool {
		h := fnv.New32a()
		h.Write([]byte(shard))
		return int(h.Sum32()%uint32(count)) == index
	}
}

func (c *Consumer) defaults() {
	if c.Limit <= 0 || c.Limit > 10000 {
		c.Limit = 10000
	}
	if c.IdleWait < 200*time.Millisecond {
		c.IdleWait = time.Second
	}
	if c.Rediscover <= 0 {
		c.Rediscover = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
}

// Run reads every shard from positions (shard → last committed sequence
// number, or ShardEnd) and sends batches to out, in order per shard. With
// once, each shard is read up to its tip as of now and Run returns when all
// are; otherwise Run returns when ctx ends.
func (c *Consumer) Run(ctx context.Context, positions map[string]string, out chan<- Batch, once bool) error {
	c.defaults()
	// Readers are waited for after they are cancelled (defers run in
	// reverse), so Run never returns with a reader still sending.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	done := map[string]bool{}
	for s, p := range positions {
		if p == ShardEnd {
			done[s] = true
		}
	}
	// started holds shards whose reader this Run started and that have not
	// been read to their end; in once mode a reader that reached the tip
	// stays here so it is not started again.
	started := map[string]bool{}
	active := 0
	finished := make(chan readerResult)

	var firstErr error
	discover := time.NewTimer(0)
	defer discover.Stop()
	for {
		select {
		case <-ctx.Done():
			return firstErr
		case r := <-finished:
			active--
			switch {
			case r.err != nil && !errors.Is(r.err, context.Canceled):
				if firstErr == nil {
					firstErr = r.err
				}
				cancel()
				continue
			case r.end:
				done[r.shard] = true
				delete(started, r.shard)
			}
			// A parent finished: its children may start now.
			discover.Reset(0)
		case <-discover.C:
			shards, err := c.listShards(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return firstErr
				}
				return err
			}
			if c.Ended != nil {
				ended, err := c.Ended(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return firstErr
					}
					return err
				}
				for s := range ended {
					done[s] = true
				}
			}
			for _, s := range runnable(shards, done, started) {
				if c.Owns != nil && !c.Owns(s.id) {
					continue
				}
				started[s.id] = true
				active++
				wg.Add(1)
				go func() {
					defer wg.Done()
					end, err := c.readShard(ctx, s.id, positions[s.id], out, once)
					select {
					case finished <- readerResult{shard: s.id, end: end, err: err}:
					case <-ctx.Done():
					}
				}()
			}
			if once && active == 0 {
				return firstErr
			}
			if !once {
				discover.Reset(c.Rediscover)
			}
		}
	}
}

type readerResult struct {
	shard string
	end   bool
	err   error
}

type shardInfo struct {
	id      string
	parents []string
}

func (c *Consumer) listShards(ctx context.Context) ([]shardInfo, error) {
	var out []shardInfo
	in := &kinesis.ListShardsInput{StreamName: aws.String(c.Stream)}
	for {
		res, err := c.API.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", c.Stream, err)
		}
		for _, s := range res.Shards {
			si := shardInfo{id: aws.ToString(s.ShardId)}
			for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
				if aws.ToString(p) != "" {
					si.parents = append(si.parents, *p)
				}
			}
			out = append(out, si)
		}
		if res.NextToken == nil {
			return out, nil
		}
		// With a NextToken the stream name must be left out.
		in = &kinesis.ListShardsInput{NextToken: res.NextToken}
	}
}

// runnable returns the shards to start: not done, not running, and whose
// listed parents are done. A parent no longer listed has aged out of the
// stream's retention and holds nothing to read.
func runnable(shards []shardInfo, done, running map[string]bool) []shardInfo {
	listed := map[string]bool{}
	for _, s := range shards {
		listed[s.id] = true
	}
	var out []shardInfo
	for _, s := range shards {
		if done[s.id] || running[s.id] {
			continue
		}
		ready := true
		for _, p := range s.parents {
			if listed[p] && !done[p] {
				ready = false
			}
		}
		if ready {
			out = append(out, s)
		}
	}
	return out
}

// readShard reads one shard until it ends (returns true), ctx ends, or
// with once, it reaches the tip.
func (c *Consumer) readShard(ctx context.Context, shard, after string, out chan<- Batch, once bool) (bool, error) {
	log := c.Logger.With("shard", shard)
	iter, err := c.iterator(ctx, shard, after)
	if err != nil {
		return false, err
	}
	last := after
	wait := newBackoff()
	for {
		res, err := c.API.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(c.Limit)})
		if err != nil {
			var throttled *types.ProvisionedThroughputExceededException
			var limit *types.LimitExceededException
			var expired *types.ExpiredIteratorException
			switch {
			case ctx.Err() != nil:
				return false, ctx.Err()
			case errors.As(err, &throttled), errors.As(err, &limit):
				c.Observer.Throttled(shard)
				log.Debug("throttled", "error", err)
				if err := sleep(ctx, wait.next()); err != nil {
					return false, err
				}
				continue
			case errors.As(err, &expired):
				log.Info("iterator expired, renewing", "after", last)
				if iter, err = c.iterator(ctx, shard, last); err != nil {
					return false, err
				}
				continue
			default:
				return false, fmt.Errorf("get records from %s: %w", shard, err)
			}
		}
		wait.reset()
		behind := time.Duration(aws.ToInt64(res.MillisBehindLatest)) * time.Millisecond
		c.Observer.Lag(shard, behind)
		b := Batch{Shard: shard, Behind: behind, Last: last}
		for _, r := range res.Records {
			seq := aws.ToString(r.SequenceNumber)
			arrival := aws.ToTime(r.ApproximateArrivalTimestamp)
			b.Bytes += len(r.Data)
			if users, ok := kpl.Deaggregate(r.Data); ok {
				for i, u := range users {
					b.Records = append(b.Records, Record{Shard: shard, Seq: seq, Sub: i, PartitionKey: u.PartitionKey, Data: u.Data, Arrival: arrival})
				}
			} else {
				b.Records = append(b.Records, Record{Shard: shard, Seq: seq, PartitionKey: aws.ToString(r.PartitionKey), Data: r.Data, Arrival: arrival})
			}
			b.Last = seq
		}
		c.Observer.Read(shard, len(res.Records), b.Bytes)
		if res.NextShardIterator == nil {
			b.End = true
			if len(b.Records) == 0 {
				b.Last = ShardEnd
			}
		}
		if len(b.Records) > 0 || b.End {
			select {
			case out <- b:
			case <-ctx.Done():
				return false, ctx.Err()
			}
			last = b.Last
		}
		if b.End {
			log.Info("shard read to its end")
			return true, nil
		}
		iter = res.NextShardIterator
		if len(res.Records) == 0 {
			if once && behind == 0 {
				return false, nil
			}
			if err := sleep(ctx, c.IdleWait); err != nil {
				return false, err
			}
		} else if err := sleep(ctx, 200*time.Millisecond); err != nil { // five reads a second per shard
			return false, err
		}
	}
}

func (c *Consumer) iterator(ctx context.Context, shard, after string) (*string, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(c.Stream), ShardId: aws.String(shard)}
	switch {
	case after != "" && after != ShardEnd:
		in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = aws.String(after)
	case c.Start.Kind == "latest":
		in.ShardIteratorType = types.ShardIteratorTypeLatest
	case c.Start.Kind == "at_timestamp":
		in.ShardIteratorType = types.ShardIteratorTypeAtTimestamp
		in.Timestamp = aws.Time(c.Start.Timestamp)
	default:
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	}
	res, err := c.API.GetShardIterator(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("get iterator for %s: %w", shard, err)
	}
	return res.ShardIterator, nil
}

// Compare orders Kinesis sequence numbers. They are decimal strings of
// varying length (moto's are short), so they compare as big integers,
// never as strings. An unparsable number sorts first.
func Compare(a, b string) int {
	x, okx := new(big.Int).SetString(a, 10)
	y, oky := new(big.Int).SetString(b, 10)
	switch {
	case !okx && !oky:
		return 0
	case !okx:
		return -1
	case !oky:
		return 1
	}
	return x.Cmp(y)
}

type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{} }
func (b *backoff) reset()  { b.d = 0 }
func (b *backoff) next() time.Duration {
	switch {
	case b.d == 0:
		b.d = 500 * time.Millisecond
	case b.d < 10*time.Second:
		b.d *= 2
	}
	return b.d/2 + rand.N(b.d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
