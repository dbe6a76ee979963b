package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/qoslake/qoslake/alerts"
	"github.com/qoslake/qoslake/config"
	"github.com/qoslake/qoslake/gold"
	"github.com/qoslake/qoslake/lake"
)

// AlertRules are the configured rules: the --alert-rules file, or the
// built-in defaults.
func (m *Main) AlertRules() ([]alerts.Rule, error) {
	if m.Config.AlertRules == "" {
		return alerts.Defaults(), nil
	}
	rules, err := alerts.Load(m.Config.AlertRules)
	if err != nil {
		return nil, fmt.Errorf("--alert-rules: %w", err)
	}
	return rules, nil
}

// AlertEvaluator judges rules against the gold tables.
func (m *Main) AlertEvaluator(tables map[string]*lake.Table) *alerts.Evaluator {
	return &alerts.Evaluator{
		Tables: map[string]*lake.Table{
			gold.CDNMinuteTable.FullName():     tables[gold.CDNMinuteTable.FullName()],
			gold.PlayerMinuteTable.FullName():  tables[gold.PlayerMinuteTable.FullName()],
			gold.SessionMinuteTable.FullName(): tables[gold.SessionMinuteTable.FullName()],
		},
		// Sessions come from player events: the player's grace.
		Grace: map[string]time.Duration{
			gold.CDNMinuteTable.FullName():     m.Config.AlertGraceCDN,
			gold.PlayerMinuteTable.FullName():  m.Config.AlertGracePlayer,
			gold.SessionMinuteTable.FullName(): m.Config.AlertGracePlayer,
		},
		DashboardURL: m.Config.DashboardURL,
	}
}

// Alerting returns the rules' live runner and the alerts topic's
// publisher.
func (m *Main) Alerting(ctx context.Context, tables map[string]*lake.Table) (*alerts.Runner, *alerts.Publisher, error) {
	rules, err := m.AlertRules()
	if err != nil {
		return nil, nil, err
	}
	a, err := m.AWS(ctx)
	if err != nil {
		return nil, nil, err
	}
	arn, err := topicARN(ctx, a.SNS, m.Config.AlertsTopic)
	if err != nil {
		return nil, nil, fmt.Errorf("--alerts-topic: %w", err)
	}
	host, _ := os.Hostname()
	alertsTable := tables[alerts.AlertsTable.FullName()]
	runner := &alerts.Runner{Rules: rules, Evaluator: m.AlertEvaluator(tables), Alerts: alertsTable,
		CatchUp: m.Config.AlertCatchUp, Logger: m.Logger.With("stage", "alerts")}
	pub := &alerts.Publisher{Alerts: alertsTable, SNS: a.SNS, TopicARN: arn,
		Owner: fmt.Sprintf("%s:%d", host, os.Getpid()), Logger: m.Logger.With("stage", "alerts-publisher"),
		Observer: m.Metrics.Alerts}
	return runner, pub, nil
}

// alert judges the closed windows and publishes what changed. A failure is
// logged by the caller and retried at the next pass: the checkpoints make
// that safe, and unpublished changes wait in gold.alerts.
func (m *Main) alert(ctx context.Context, r *alerts.Runner, p *alerts.Publisher) error {
	var errs []error
	if _, err := r.Evaluate(ctx); err != nil {
		errs = append(errs, fmt.Errorf("evaluate alert rules: %w", err))
	}
	switch _, err := p.Publish(ctx); {
	case errors.Is(err, alerts.ErrNotLeader):
		m.Logger.Debug("another process publishes the alerts")
	case err != nil:
		errs = append(errs, fmt.Errorf("publish alerts: %w", err))
	}
	return errors.Join(errs...)
}

func alertsCommand() *command {
	var (
		rulesFile string
		since     time.Duration
		limit     int
	)
	return &command{
		name:    "alerts",
		args:    "list | defaults | validate FILE | backtest",
		summary: "list alerts, print or validate rules, backtest rules over gold",
		help: `alerts list              active alerts, then the most recent state changes
                         (--limit, default 20) from gold.alerts
alerts defaults          print the built-in rules: a starting point for
                         your own --alert-rules file
alerts validate FILE     check a rules file: every problem with its line
alerts backtest          when each rule (--rules FILE, default the
                         configured rules) would have fired and resolved
                         over gold's history (--since, default 24h); the
                         same evaluation the pipeline runs, publishing
                         nothing`,
		groups: []config.Group{config.Core, config.Tables, config.Alerts},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&rulesFile, "rules", "", "backtest: rules file (default: --alert-rules or the built-in rules)")
			fs.DurationVar(&since, "since", 24*time.Hour, "backtest: how far back")
			fs.IntVar(&limit, "limit", 20, "list: recent state changes shown")
		},
		run: func(ctx context.Context, m *Main, fs *flag.FlagSet) error {
			switch fs.Arg(0) {
			case "defaults":
				if fs.NArg() != 1 {
					return fmt.Errorf("%w: alerts defaults takes no argument", errUsage)
				}
				_, err := m.Stdout.Write(alerts.DefaultRulesYAML())
				return err
			case "validate":
				if fs.NArg() != 2 {
					return fmt.Errorf("%w: alerts validate takes one file", errUsage)
				}
				rules, err := alerts.Load(fs.Arg(1))
				if err != nil {
					return err
				}
				fmt.Fprintf(m.Stdout, "%s: %d rules, valid\n", fs.Arg(1), len(rules))
				return nil
			case "list":
				if fs.NArg() != 1 {
					return fmt.Errorf("%w: alerts list takes no argument", errUsage)
				}
				return m.listAlerts(ctx, limit)
			case "backtest":
				if fs.NArg() != 1 {
					return fmt.Errorf("%w: alerts backtest takes no argument (--rules FILE, --since)", errUsage)
				}
				if rulesFile != "" {
					m.Config.AlertRules = rulesFile
				}
				return m.backtest(ctx, since)
			}
			return fmt.Errorf("%w: alerts takes list, validate FILE or backtest", errUsage)
		},
	}
}

// goldTables loads the tables the alert commands read; it creates nothing,
// so a wrong --state-dir or catalog is an error, not an empty lake.
func (m *Main) goldTables(ctx context.Context) (map[string]*lake.Table, error) {
	l, err := m.Lake(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]*lake.Table{}
	for _, def := range []lake.TableDef{gold.CDNMinuteTable, gold.PlayerMinuteTable, gold.SessionMinuteTable, alerts.AlertsTable} {
		t, err := l.Load(ctx, def.FullName())
		if err != nil {
			return nil, fmt.Errorf("%w (run qoslake provision or run first, or check --state-dir and --catalog)", err)
		}
		out[def.FullName()] = t
	}
	return out, nil
}

func (m *Main) listAlerts(ctx context.Context, limit int) error {
	tables, err := m.goldTables(ctx)
	if err != nil {
		return err
	}
	recorded, err := alerts.ReadAlerts(ctx, tables[alerts.AlertsTable.FullName()], 0, 0)
	if err != nil {
		return err
	}
	active := alerts.Active(recorded)
	fmt.Fprintf(m.Stdout, "active (%d):\n", len(active))
	for _, a := range active {
		fmt.Fprintln(m.Stdout, "  "+a.Line())
	}
	fmt.Fprintf(m.Stdout, "recent state changes (%d of %d):\n", min(limit, len(recorded)), len(recorded))
	for _, r := range recorded[max(0, len(recorded)-limit):] {
		fmt.Fprintln(m.Stdout, "  "+r.Alert.Line())
	}
	return nil
}

func (m *Main) backtest(ctx context.Context, since time.Duration) error {
	rules, err := m.AlertRules()
	if err != nil {
		return err
	}
	tables, err := m.goldTables(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	got, err := alerts.Backtest(ctx, m.AlertEvaluator(tables), rules, now.Add(-since), now)
	if err != nil {
		return err
	}
	names := make([]string, len(rules))
	for i, r := range rules {
		names[i] = r.Name
	}
	fmt.Fprintf(m.Stdout, "backtest of %s over the last %s: %d state changes\n", strings.Join(names, ", "), since, len(got))
	for _, a := range got {
		fmt.Fprintln(m.Stdout, "  "+a.Line())
	}
	return nil
}
