package main

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"golang.org/x/sync/errgroup"

	"github.com/qoslake/qoslake/bronze"
	"github.com/qoslake/qoslake/ingest/playerevent"
	"github.com/qoslake/qoslake/ingest/s3sqs"
	"github.com/qoslake/qoslake/lake"
)

// Ingest runs the intakes to bronze: Kinesis player events, CDN logs
// through S3 events on SQS, and CloudFront real-time logs on Kinesis. With
// once, each reads what is available now and returns.
func (m *Main) Ingest(ctx context.Context, tables map[string]*lake.Table, once bool) error {
	intakes := map[string]func(context.Context) error{
		"kinesis": func(ctx context.Context) error { return m.ingestKinesis(ctx, tables, once) },
		"cdn":     func(ctx context.Context) error { return m.ingestCDN(ctx, tables, once) },
		// CloudFront real-time logs: realtime.go.
		"realtime": func(ctx context.Context) error { return m.ingestRealtime(ctx, tables, once) },
	}
	g, gctx := errgroup.WithContext(ctx)
	for name, run := range intakes {
		if once {
			g.Go(func() error { return run(gctx) })
			continue
		}
		// Running continuously, a failed intake (an AWS outage past the
		// SDK's own retries, say) is restarted from its committed
		// checkpoints after a pause, rather than taking the other intake
		// and the process down.
		g.Go(func() error { return m.supervise(gctx, name, run) })
	}
	return g.Wait()
}

// supervise runs an intake until ctx ends, restarting it with capped
// backoff when it fails.
func (m *Main) supervise(ctx context.Context, name string, run func(context.Context) error) error {
	wait := time.Second
	for {
		started := time.Now()
		err := run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > time.Minute {
			wait = time.Second // it had been running fine: start over gently
		}
		m.Metrics.Ingest.Restarts.WithLabelValues(name).Inc()
		m.Logger.Error("intake failed; restarting from the committed checkpoints", "intake", name, "in", wait, "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Minute)
	}
}

func (m *Main) limits() playerevent.Limits {
	lim := playerevent.DefaultLimits
	lim.MaxRecordBytes = m.Config.MaxRecordBytes
	return lim
}

func (m *Main) batching() bronze.Batching {
	return bronze.Batching{MaxRows: m.Config.BatchMaxRows, MaxBytes: m.Config.BatchMaxBytes, MaxAge: m.Config.BatchMaxAge}
}

// ingestKinesis reads the stream into bronze.player_events (readStream,
// in realtime.go, serves both Kinesis intakes).
func (m *Main) ingestKinesis(ctx context.Context, tables map[string]*lake.Table, once bool) error {
	consumer, err := m.streamConsumer(ctx, m.Config.Stream, bronze.PlayerEventsTable.FullName(), bronze.EndedShards)
	if err != nil {
		return err
	}
	consumer.Logger, consumer.Observer = m.Logger.With("stage", "kinesis"), m.Metrics.Ingest
	return m.readStream(ctx, consumer, func() shardSink {
		return &bronze.PlayerEvents{
			Events:   tables[bronze.PlayerEventsTable.FullName()],
			Rejects:  tables[bronze.RejectsTable.FullName()],
			Stream:   m.Config.Stream,
			Limits:   m.limits(),
			Batching: m.batching(),
			Logger:   m.Logger.With("stage", "bronze.player_events"),
			Observer: m.Metrics.Ingest,
		}
	}, once)
}

func (m *Main) ingestCDN(ctx context.Context, tables map[string]*lake.Table, once bool) error {
	a, err := m.AWS(ctx)
	if err != nil {
		return err
	}
	url, err := a.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &m.Config.Queue})
	if err != nil {
		return fmt.Errorf("queue %s (run qoslake provision): %w", m.Config.Queue, err)
	}
	sink := &bronze.CDNLogs{
		Logs:    tables[bronze.CDNLogsTable.FullName()],
		Rejects: tables[bronze.RejectsTable.FullName()],
		Queue: &s3sqs.Queue{
			SQS: a.SQS, S3: a.S3, URL: *url.QueueUrl,
			Wait: 20 * time.Second, Visibility: m.Config.QueueVisibility, RetryBackoff: m.Config.QueueRetry,
		},
		MaxReceives:  m.Config.QueueMaxReceives,
		MaxLineBytes: m.Config.MaxLineBytes,
		Batching:     m.batching(),
		Logger:       m.Logger.With("stage", "bronze.cdn_logs"),
		Observer:     m.Metrics.Ingest,
	}
	return sink.Run(ctx, once)
}
