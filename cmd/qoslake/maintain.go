package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/qoslake/qoslake/bronze"
	"github.com/qoslake/qoslake/config"
	"github.com/qoslake/qoslake/lake"
)

func maintainCommand() *command {
	var only string
	var asJSON bool
	return &command{
		name:    "maintain",
		summary: "compact small files, expire snapshots, remove orphans, apply bronze retention",
		help: `One maintenance pass over every table (or --table): bronze rows older
than --bronze-retention are deleted, small data files are compacted,
snapshots older than --snapshot-max-age are expired (keeping
--snapshots-retain, and every snapshot a downstream table has yet to read),
and files no snapshot references are removed. 'qoslake run' does the same
every --maintain-every.`,
		groups: []config.Group{config.Core, config.Tables, config.Maintain},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&only, "table", "", "maintain only this table (namespace.name)")
			fs.BoolVar(&asJSON, "json", false, "print one JSON report per table")
		},
		run: func(ctx context.Context, m *Main, fs *flag.FlagSet) error {
			reps, err := m.MaintainAll(ctx, only, time.Now())
			for _, r := range reps {
				if asJSON {
					_ = json.NewEncoder(m.Stdout).Encode(r)
					continue
				}
				fmt.Fprintf(m.Stdout, "%s: compacted %d files into %d, expired %d snapshots, removed %d orphan files\n",
					r.Table, r.FilesCompacted, r.FilesWritten, r.SnapshotsExpired, r.OrphanFilesRemoved)
			}
			return err
		},
	}
}

// MaintainAll runs one maintenance pass over every table in the catalog,
// or only the named one. The policy (what consumers still need, retention)
// is lake's; this wires the configuration and the metrics.
func (m *Main) MaintainAll(ctx context.Context, only string, now time.Time) ([]lake.MaintainReport, error) {
	l, err := m.Lake(ctx)
	if err != nil {
		return nil, err
	}
	names, err := l.List(ctx)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	if only != "" {
		if !slices.Contains(names, only) {
			return nil, fmt.Errorf("%w: no table %s", errUsage, only)
		}
		names = []string{only}
	}
	tables := make([]*lake.Table, 0, len(names))
	for _, n := range names {
		t, err := l.Load(ctx, n)
		if err != nil {
			return nil, err
		}
		tables = append(tables, t)
	}
	reps, err := lake.MaintainAll(ctx, tables, lake.MaintainPolicy{
		Options: lake.MaintainOptions{
			ExpireOlderThan: m.Config.SnapshotMaxAge,
			RetainLast:      m.Config.SnapshotsRetain,
			OrphanOlderThan: m.Config.OrphanMinAge,
		},
		// Raw client IPs live only in bronze: its rows have an age limit.
		Retention: func(table string) time.Duration {
			if strings.HasPrefix(table, bronze.Namespace+".") {
				return m.Config.BronzeRetention
			}
			return 0
		},
		Now: now,
	})
	for _, r := range reps {
		outcome := "ok"
		if r.Error != "" {
			outcome = "error"
		}
		m.Metrics.MaintenanceRuns.WithLabelValues(r.Table, outcome).Inc()
	}
	return reps, err
}
