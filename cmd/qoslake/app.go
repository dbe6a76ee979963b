package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/qoslake/qoslake/alerts"
	"github.com/qoslake/qoslake/awsclient"
	"github.com/qoslake/qoslake/bronze"
	"github.com/qoslake/qoslake/config"
	"github.com/qoslake/qoslake/gold"
	"github.com/qoslake/qoslake/lake"
	"github.com/qoslake/qoslake/metrics"
	"github.com/qoslake/qoslake/silver"
)

// Exit codes.
const (
	exitOK             = 0
	exitFailure        = 1
	exitUsage          = 2
	exitNotImplemented = 3
)

// errUsage marks errors in the command line or configuration.
var errUsage = errors.New("usage")

// errNotImplemented marks a subcommand whose issue has not landed yet.
var errNotImplemented = errors.New("not implemented yet")

// Main wires the configuration, AWS clients, catalog and stages together.
// The end-to-end tests drive it the way the binary does.
type Main struct {
	Stdout, Stderr io.Writer
	Config         *config.Config
	Logger         *slog.Logger
	Metrics        *metrics.Metrics

	// aws and lake are opened on first use (under mu) and closed by Close.
	mu   sync.Mutex
	aws  *awsclient.Clients
	lake *lake.Lake
}

// NewMain returns a Main with default configuration.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{Stdout: stdout, Stderr: stderr, Config: config.Default(), Metrics: metrics.New()}
}

type command struct {
	name    string
	summary string
	args    string
	help    string
	groups  []config.Group
	// flags registers the subcommand's own flags; it may be nil.
	flags func(*flag.FlagSet)
	run   func(ctx context.Context, m *Main, fs *flag.FlagSet) error
}

func commands() []*command {
	return []*command{
		runCommand(),
		provisionCommand(),
		tablesCommand(),
		scanCommand(),
		maintainCommand(),
		simulateCommand(),
		notYet("serve", "serve the NOC dashboard", "the dashboard issue"),
		alertsCommand(),
		checkCommand(),
		demoGeoIPCommand(),
		benchCommand(),
		versionCommand(),
	}
}

// notYet is a subcommand that exists so `qoslake help` shows the whole
// product, but says plainly that it does not work yet.
func notYet(name, summary, issue string) *command {
	return &command{
		name:    name,
		summary: summary + " (not implemented yet)",
		help:    "Not implemented yet: arrives with " + issue + ".",
		run: func(context.Context, *Main, *flag.FlagSet) error {
			return fmt.Errorf("%w (arrives with %s)", errNotImplemented, issue)
		},
	}
}

// Run executes one command line and returns the exit code.
func (m *Main) Run(ctx context.Context, args []string) int {
	defer m.Close()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c := findCommand(args[1]); c != nil {
				m.commandUsage(c, m.flagSet(c))
				return exitOK
			}
		}
		m.usage()
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c := findCommand(args[0])
	if c == nil {
		fmt.Fprintf(m.Stderr, "qoslake: unknown command %q\n\n", args[0])
		m.usage()
		return exitUsage
	}
	fs := m.flagSet(c)
	if err := m.Config.Bind(fs, c.groups...); err != nil {
		fmt.Fprintf(m.Stderr, "qoslake %s: %v\n", c.name, err)
		return exitUsage
	}
	if c.flags != nil {
		c.flags(fs)
	}
	positional, err := parseInterleaved(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	_ = fs.Parse(append([]string{"--"}, positional...))
	if err := m.Config.Resolve(c.groups...); err != nil {
		fmt.Fprintf(m.Stderr, "qoslake %s: invalid configuration:\n  %s\n",
			c.name, strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return exitUsage
	}
	if m.Logger == nil {
		m.Logger = newLogger(m.Stderr, m.Config)
	}
	err = c.run(ctx, m, fs)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(m.Stderr, "qoslake %s: %v\n", c.name, err)
		return exitUsage
	case errors.Is(err, errSomeRejected):
		return exitFailure
	case errors.Is(err, errNotImplemented):
		fmt.Fprintf(m.Stderr, "qoslake %s: %v\n", c.name, err)
		return exitNotImplemented
	default:
		fmt.Fprintf(m.Stderr, "qoslake %s: %v\n", c.name, err)
		return exitFailure
	}
}

// parseInterleaved parses flags wherever they stand, so both
// `scan --limit 5 bronze.rejects` and `scan bronze.rejects --limit 5` work.
// "--" ends flag parsing.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func findCommand(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (m *Main) flagSet(c *command) *flag.FlagSet {
	fs := flag.NewFlagSet("qoslake "+c.name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() { m.commandUsage(c, fs) }
	return fs
}

func (m *Main) usage() {
	w := tabwriter.NewWriter(m.Stderr, 0, 4, 2, ' ', 0)
	fmt.Fprint(w, `qoslake: video Quality-of-Service analytics on Apache Iceberg.

Player events (Kinesis) and CloudFront logs (S3 via SQS) flow through bronze,
silver and gold tables to a live NOC dashboard and SNS alerts.

Usage:
  qoslake <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %s\t%s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'qoslake help <command>' for a command's flags.

Every flag can also be set with its QOSLAKE_* environment variable.
AWS region, credentials and endpoints come from the AWS SDK's standard
configuration: AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL and
AWS_ENDPOINT_URL_<SERVICE> (for example http://127.0.0.1:5055 for moto).
`)
	_ = w.Flush()
}

func (m *Main) commandUsage(c *command, fs *flag.FlagSet) {
	if !fs.Parsed() {
		_ = m.Config.Bind(fs, c.groups...)
		if c.flags != nil {
			c.flags(fs)
		}
	}
	fmt.Fprintf(m.Stderr, "Usage: qoslake %s [flags]%s\n\n%s\n", c.name, prefixed(" ", c.args), c.summary)
	if c.help != "" {
		fmt.Fprintf(m.Stderr, "\n%s\n", c.help)
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if len(names) == 0 {
		return
	}
	sort.Strings(names)
	fmt.Fprint(m.Stderr, "\nFlags:\n")
	w := tabwriter.NewWriter(m.Stderr, 0, 4, 2, ' ', 0)
	for _, n := range names {
		f := fs.Lookup(n)
		def := ""
		if f.DefValue != "" && f.DefValue != "false" {
			def = " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(w, "  --%s\t%s%s\n", f.Name, f.Usage, def)
	}
	_ = w.Flush()
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func newLogger(w io.Writer, c *config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// AWS returns the AWS clients, loading the SDK configuration once.
func (m *Main) AWS(ctx context.Context) (*awsclient.Clients, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.aws == nil {
		c, err := awsclient.Load(ctx)
		if err != nil {
			return nil, err
		}
		m.aws = c
	}
	return m.aws, nil
}

// Lake opens the configured catalog once.
func (m *Main) Lake(ctx context.Context) (*lake.Lake, error) {
	var a *awsclient.Clients
	if m.Config.Catalog == lake.KindGlue || m.Config.WarehouseBucket() != "" {
		var err error
		if a, err = m.AWS(ctx); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lake != nil {
		return m.lake, nil
	}
	c := m.Config
	opts := lake.Options{
		Kind:      c.Catalog,
		URI:       c.CatalogURI,
		Warehouse: c.Warehouse,
		Logger:    m.Logger,
		Observer:  m.Metrics,
	}
	if a != nil {
		opts.AWS = &a.Config
		opts.S3Endpoint = awsclient.S3Endpoint(a.Config)
	}
	l, err := lake.Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	m.lake = l
	return l, nil
}

// EnsureTables creates or evolves every table the pipeline writes.
func (m *Main) EnsureTables(ctx context.Context) (map[string]*lake.Table, error) {
	l, err := m.Lake(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]*lake.Table{}
	for _, def := range slices.Concat(bronze.Tables, silver.Tables, gold.Tables, []lake.TableDef{alerts.AlertsTable}) {
		t, err := l.Ensure(ctx, def)
		if err != nil {
			return nil, err
		}
		out[def.FullName()] = t
	}
	return out, nil
}

// Close releases the catalog. It is safe to call more than once.
func (m *Main) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lake != nil {
		if err := m.lake.Close(); err != nil && m.Logger != nil {
			m.Logger.Warn("close catalog", "error", err)
		}
		m.lake = nil
	}
}
