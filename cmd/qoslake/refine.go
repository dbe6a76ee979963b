package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/qoslake/qoslake/alerts"
	"github.com/qoslake/qoslake/gold"
	"github.com/qoslake/qoslake/lake"
	"github.com/qoslake/qoslake/silver"
	"github.com/qoslake/qoslake/updates"
)

// goldStage is what the refine loop needs of a gold stage.
type goldStage interface {
	Drain(ctx context.Context) error
}

// namedStage is a gold stage and the table it writes.
type namedStage struct {
	table string
	stage goldStage
}

// GoldStages returns the gold stages over the tables, in the order a pass
// runs them: gold.sessions before gold.session_minute, which follows it.
func (m *Main) GoldStages(tables map[string]*lake.Table) []namedStage {
	t := func(def lake.TableDef) *lake.Table { return tables[def.FullName()] }
	log := func(def lake.TableDef) *slog.Logger { return m.Logger.With("stage", def.FullName()) }
	return []namedStage{
		{gold.CDNMinuteTable.FullName(), &gold.CDNStage{Silver: t(silver.CDNLogsTable), Gold: t(gold.CDNMinuteTable),
			Logger: log(gold.CDNMinuteTable), Observer: m.Metrics.Gold}},
		{gold.PlayerMinuteTable.FullName(), &gold.PlayerStage{Silver: t(silver.PlayerEventsTable), Gold: t(gold.PlayerMinuteTable),
			Logger: log(gold.PlayerMinuteTable), Observer: m.Metrics.Gold}},
		{gold.SessionsTable.FullName(), &gold.SessionsStage{Silver: t(silver.PlayerEventsTable), SilverCDN: t(silver.CDNLogsTable),
			Gold: t(gold.SessionsTable), Logger: log(gold.SessionsTable)}},
		{gold.SessionMinuteTable.FullName(), &gold.SessionMinuteStage{Sessions: t(gold.SessionsTable), Gold: t(gold.SessionMinuteTable),
			Logger: log(gold.SessionMinuteTable), Observer: m.Metrics.Gold}},
	}
}

// refinery is what runs after ingestion, in order: the silver stages, the
// gold stages, then the alert rules and the alerts topic. Nil alerting
// parts are skipped (commands that only refine).
type refinery struct {
	silver    []*silver.Stage
	gold      []namedStage
	updates   *updates.Publisher
	alerts    *alerts.Runner
	publisher *alerts.Publisher
}

// Refinery builds the refinery over the tables.
func (m *Main) Refinery(ctx context.Context, tables map[string]*lake.Table, t *silver.Transformer) (*refinery, error) {
	r := &refinery{silver: m.SilverStages(tables, t), gold: m.GoldStages(tables)}
	var err error
	if r.alerts, r.publisher, err = m.Alerting(ctx, tables); err != nil {
		return nil, err
	}
	if r.updates, err = m.Updates(ctx, tables); err != nil {
		return nil, err
	}
	return r, nil
}

// Updates starts the updates topic's publisher over the gold tables.
func (m *Main) Updates(ctx context.Context, tables map[string]*lake.Table) (*updates.Publisher, error) {
	a, err := m.AWS(ctx)
	if err != nil {
		return nil, err
	}
	arn, err := topicARN(ctx, a.SNS, m.Config.UpdatesTopic)
	if err != nil {
		return nil, fmt.Errorf("--updates-topic: %w", err)
	}
	return updates.New(a.SNS, updates.Gold{
		PlayerMinute: tables[gold.PlayerMinuteTable.FullName()],
		CDNMinute:    tables[gold.CDNMinuteTable.FullName()],
		Sessions:     tables[gold.SessionsTable.FullName()],
	}, updates.Options{TopicARN: arn, Recent: m.Config.UpdatesRecent,
		Logger: m.Logger.With("stage", "updates"), Observer: m.Metrics.Updates})
}

// close flushes the updates still pending, within a deadline: an update
// not sent by then is superseded by the next run's anyway.
func (r *refinery) close(ctx context.Context) error {
	if r.updates == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return r.updates.Close(ctx)
}

// refine carries what bronze committed through silver and then gold, each
// stage to the end of its upstream, then judges the windows gold closed and
// publishes the alerts. A stage that fails is logged and the others go on:
// its checkpoint makes the next pass pick up where it was.
func (m *Main) refine(ctx context.Context, r *refinery) error {
	var errs []error
	for _, s := range r.silver {
		if err := s.Drain(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Silver.Name(), err))
		}
	}
	for _, g := range r.gold {
		if err := g.stage.Drain(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", g.table, err))
			continue
		}
		// Returns at once; the publisher finds out whether gold moved.
		if r.updates != nil {
			r.updates.Notify(g.table)
		}
	}
	if r.alerts != nil {
		if err := m.alert(ctx, r.alerts, r.publisher); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// runSilver moves new bronze rows to silver, silver's to gold and gold's
// closed windows through the alert rules, every --silver-every until ctx
// ends. A failed pass is logged and retried at the next tick: the
// checkpoints make that safe.
func (m *Main) runSilver(ctx context.Context, r *refinery) {
	t := time.NewTicker(m.Config.SilverEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.refine(ctx, r); err != nil && ctx.Err() == nil {
				m.Logger.Error("refine pass failed; retrying at the next tick", "error", err)
			}
		}
	}
}
