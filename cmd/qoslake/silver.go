package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/qoslake/qoslake/anonymize"
	"github.com/qoslake/qoslake/bronze"
	"github.com/qoslake/qoslake/geoip"
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
