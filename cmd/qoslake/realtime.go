package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/qoslake/qoslake/bronze"
	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/ingest/kinesis"
	"github.com/qoslake/qoslake/lake"
	"github.com/qoslake/qoslake/silver"
)

// The CloudFront real-time log intake: a Kinesis stream of log records,
// into bronze.cdn_realtime exactly once, read by the configured field list.

// realtimeLayout is the configured field list (validated at start); names
// qoslake does not know are kept in bronze and not typed, which is said
// once.
func (m *Main) realtimeLayout() (*cloudfront.RealtimeLayout, error) {
	l, err := m.Config.RealtimeLayout()
	if err != nil {
		return nil, err
	}
	if u := l.Unknown(); len(u) > 0 {
		m.Logger.Warn("--realtime-log-fields names fields qoslake does not know: their values are kept in bronze, not typed in silver", "fields", u)
	}
	if l.Index("x-edge-request-id") < 0 {
		m.Logger.Warn("--realtime-log-fields has no x-edge-request-id: a request in both log kinds cannot be recognised, and silver holds it twice")
	}
	return l, nil
}

// ingestRealtime reads the real-time log stream into bronze.cdn_realtime.
func (m *Main) ingestRealtime(ctx context.Context, tables map[string]*lake.Table, once bool) error {
	layout, err := m.realtimeLayout()
	if err != nil {
		return err
	}
	lim := cloudfront.DefaultRealtimeLimits
	lim.MaxRecordBytes = m.Config.MaxRecordBytes
	consumer, err := m.streamConsumer(ctx, m.Config.RealtimeStream, bronze.CDNRealtimeTable.FullName(), bronze.EndedRealtimeShards)
	if err != nil {
		return err
	}
	consumer.Logger, consumer.Observer = m.Logger.With("stage", "kinesis-realtime"), m.Metrics.Ingest.Stream("realtime")
	return m.readStream(ctx, consumer, func() shardSink {
		return &bronze.RealtimeLogs{
			Logs:         tables[bronze.CDNRealtimeTable.FullName()],
			Rejects:      tables[bronze.RejectsTable.FullName()],
			Stream:       m.Config.RealtimeStream,
			Layout:       layout,
			SamplingRate: m.Config.RealtimeSamplingRate,
			Limits:       lim,
			Batching:     m.batching(),
			Logger:       m.Logger.With("stage", "bronze.cdn_realtime"),
			Observer:     m.Metrics.Ingest,
		}
	}, once)
}

// shardSink is a bronze sink of a Kinesis stream: bronze.PlayerEvents or
// bronze.RealtimeLogs.
type shardSink interface {
	Positions(context.Context) (map[string]string, error)
	Run(context.Context, <-chan kinesis.Batch) error
}

// streamConsumer reads a stream from the configured start, and with
// --kinesis-worker only this worker's share of its shards; ended says which
// shards the bronze table holds to their end, whoever read them.
func (m *Main) streamConsumer(ctx context.Context, stream, table string, ended func(*lake.Table) (map[string]bool, error)) (*kinesis.Consumer, error) {
	a, err := m.AWS(ctx)
	if err != nil {
		return nil, err
	}
	start, _ := m.Config.StartAt() // validated when the configuration was resolved
	c := &kinesis.Consumer{API: a.Kinesis, Stream: stream, Start: kinesis.StartAt{Kind: start.Kind, Timestamp: start.Time}}
	if index, count, _ := m.Config.Worker(); count > 1 { // validated at start
		c.Owns = kinesis.Worker(index, count)
		l, err := m.Lake(ctx)
		if err != nil {
			return nil, err
		}
		c.Ended = func(ctx context.Context) (map[string]bool, error) {
			// A handle of its own: the sink's is busy committing.
			t, err := l.Load(ctx, table)
			if err != nil {
				return nil, err
			}
			return ended(t)
		}
	}
	return c, nil
}

// readStream reads a stream into a sink exactly once. When another writer
// moved a shard's checkpoint (the batch was refused), it starts over with a
// new sink from the committed positions.
func (m *Main) readStream(ctx context.Context, consumer *kinesis.Consumer, newSink func() shardSink, once bool) error {
	for {
		sink := newSink()
		positions, err := sink.Positions(ctx)
		if err != nil {
			return err
		}
		// A small buffer: backpressure reaches GetRecords when commits lag.
		batches := make(chan kinesis.Batch, 8)
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error {
			defer close(batches)
			return consumer.Run(gctx, positions, batches, once)
		})
		g.Go(func() error { return sink.Run(gctx, batches) })
		err = g.Wait()
		if errors.Is(err, lake.ErrCheckpointMoved) && ctx.Err() == nil {
			m.Logger.Warn("another writer advanced a shard; resuming from the committed positions", "stream", consumer.Stream, "error", err)
			continue
		}
		return err
	}
}

// realtime runs real-time log records, one per line, through bronze's
// checks and silver's typing by the configured field list: the calls
// `run` makes.
func (c *checker) realtime(r *bufio.Reader, m *Main) error {
	layout, err := m.realtimeLayout()
	if err != nil {
		return err
	}
	rows, err := lake.NewRowsFor(silver.CDNLogsTable)
	if err != nil {
		return err
	}
	defer rows.Release()
	lim := cloudfront.DefaultRealtimeLimits
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), lim.MaxRecordBytes+1)
	now := time.Now().UTC()
	rate := int32(m.Config.RealtimeSamplingRate)
	var fields []string
	line := 0
	for sc.Scan() {
		line++
		recs, rejects := layout.ParseRealtime(sc.Bytes(), now, lim)
		for _, rj := range rejects {
			if rj.Reason != cloudfront.ReasonEmptyRecord { // a blank line between records
				c.reject(fmt.Sprint(line), rj.Reason, rj.Detail)
			}
		}
		for _, rec := range recs {
			var row silver.CDNRow
			var probs []silver.Problem
			row, probs, fields = c.t.RealtimeRecord(layout, rec.Text, rec.Time, rate, fields)
			row.IngestTime = now
			c.problem(fmt.Sprint(line), probs)
			silver.AppendCDN(rows, &row)
			c.rows++
		}
	}
	if err := sc.Err(); err != nil {
		c.reject(fmt.Sprint(line+1), cloudfront.ReasonOversizedRecord, err.Error())
	}
	return c.print(rows)
}
