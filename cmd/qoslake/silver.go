package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/qoslake/qoslake/anonymize"
	"github.com/qoslake/qoslake/bronze"
	"github.com/qoslake/qoslake/geoip"
	"github.com/qoslake/qoslake/gold"
	"github.com/qoslake/qoslake/lake"
	"github.com/qoslake/qoslake/silver"
)

// Transformer builds the silver transform from the configuration: the
// pseudonymisation key (refusing to go on without one outside demo mode)
// and the GeoIP databases (failing on a missing one unless enrichment is
// off).
func (m *Main) Transformer(ctx context.Context) (*silver.Transformer, *geoip.DB, error) {
	c := m.Config
	src := anonymize.KeySource{Value: c.PseudonymKey, File: c.PseudonymFile, Secret: c.PseudonymSecret}
	if src.Secret != "" {
		a, err := m.AWS(ctx)
		if err != nil {
			return nil, nil, err
		}
		src.SM = secretsmanager.NewFromConfig(a.Config)
	}
	key, err := src.Load(ctx)
	switch {
	case errors.Is(err, anonymize.ErrNoKey) && c.Demo:
		m.Logger.Warn("demo mode: user ids are pseudonymised with the public demo key")
		key = anonymize.DemoKey
	case err != nil:
		return nil, nil, fmt.Errorf("--pseudonym-key: %w", err)
	}
	agents, err := silver.NewAgents(50_000)
	if err != nil {
		return nil, nil, err
	}
	t := &silver.Transformer{Pseudonyms: anonymize.NewPseudonymizer(key), Agents: agents}
	var db *geoip.DB
	if c.Enrich {
		if db, err = geoip.Open(c.GeoIPCity, c.GeoIPASN, m.Logger); err != nil {
			return nil, nil, fmt.Errorf("--geoip-city/--geoip-asn: %w (or --enrich=false)", err)
		}
		t.Geo = db
	}
	return t, db, nil
}

// SilverStages returns the two silver stages over the tables.
func (m *Main) SilverStages(tables map[string]*lake.Table, t *silver.Transformer) []*silver.Stage {
	return []*silver.Stage{
		{
			Kind: silver.Player, Transformer: t, Lateness: m.Config.PlayerLateness, MaxClockSkew: m.Config.ClockSkew, MaxDedupIDs: m.Config.DedupMaxIDs,
			Bronze: tables[bronze.PlayerEventsTable.FullName()], Silver: tables[silver.PlayerEventsTable.FullName()],
			Logger: m.Logger.With("stage", "silver.player_events"), Observer: m.Metrics.Silver,
		},
		{
			Kind: silver.CDN, Transformer: t, Lateness: m.Config.CDNLateness, MaxClockSkew: m.Config.ClockSkew, MaxDedupIDs: m.Config.DedupMaxIDs,
			Bronze: tables[bronze.CDNLogsTable.FullName()], Silver: tables[silver.CDNLogsTable.FullName()],
			Realtime: tables[bronze.CDNRealtimeTable.FullName()], Sightings: tables[silver.CDNSightingsTable.FullName()],
			Logger: m.Logger.With("stage", "silver.cdn_logs"), Observer: m.Metrics.Silver,
		},
	}
}

// goldStage is what the refine loop needs of a gold stage.
type goldStage interface {
	Drain(ctx context.Context) error
}

// GoldStages returns the gold stages over the tables, by gold table name.
func (m *Main) GoldStages(tables map[string]*lake.Table) map[string]goldStage {
	return map[string]goldStage{
		gold.CDNMinuteTable.FullName(): &gold.CDNStage{
			Silver: tables[silver.CDNLogsTable.FullName()], Gold: tables[gold.CDNMinuteTable.FullName()],
			Logger: m.Logger.With("stage", "gold.cdn_minute"), Observer: m.Metrics.Gold,
		},
		gold.PlayerMinuteTable.FullName(): &gold.PlayerStage{
			Silver: tables[silver.PlayerEventsTable.FullName()], Gold: tables[gold.PlayerMinuteTable.FullName()],
			Logger: m.Logger.With("stage", "gold.player_minute"), Observer: m.Metrics.Gold,
		},
	}
}

// refine carries what bronze committed through silver and then gold, each
// stage to the end of its upstream. A stage that fails is logged and the
// others go on: its checkpoint makes the next pass pick up where it was.
func (m *Main) refine(ctx context.Context, stages []*silver.Stage, golds map[string]goldStage) error {
	var errs []error
	for _, s := range stages {
		if err := s.Drain(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Silver.Name(), err))
		}
	}
	for name, g := range golds {
		if err := g.Drain(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// runSilver moves new bronze rows to silver, and silver's to gold, every
// --silver-every until ctx ends. A failed pass is logged and retried at the
// next tick: the checkpoints make that safe.
func (m *Main) runSilver(ctx context.Context, stages []*silver.Stage, golds map[string]goldStage) {
	t := time.NewTicker(m.Config.SilverEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.refine(ctx, stages, golds); err != nil && ctx.Err() == nil {
				m.Logger.Error("refine pass failed; retrying at the next tick", "error", err)
			}
		}
	}
}
