// Package config holds qoslake's settings: their names, defaults, flags and
// QOSLAKE_* environment variables, and their validation. AWS endpoints,
// region and credentials are not here: they come from the AWS SDK's own
// configuration (AWS_REGION, AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>,
// profiles), so one binary talks to AWS, LocalStack or moto unchanged.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/qoslake/qoslake/ingest/cloudfront"
)

// validName keeps derived names valid for S3 buckets, queues, topics and
// streams alike.
var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// Group is a set of settings a subcommand takes.
type Group string

// The setting groups. Each subcommand binds the groups it uses, so --help
// lists only what matters to it.
const (
	Core      Group = "core"
	Tables    Group = "tables"
	Resources Group = "resources"
	Serve     Group = "serve"
	Maintain  Group = "maintenance"
	Ingest    Group = "ingest"
	Silver    Group = "silver"
	Alerts    Group = "alerts"
	// Realtime describes the CloudFront real-time log configuration whose
	// records the real-time stream carries: the intake reads them by it,
	// check reads files by it, the simulator writes by it.
	Realtime Group = "realtime"
)

// Config is every qoslake setting.
type Config struct {
	// LookupEnv reads the QOSLAKE_* variables (default os.LookupEnv): a
	// test gives each in-process run an environment of its own.
	LookupEnv func(string) (string, bool)

	StateDir  string
	LogLevel  string
	LogFormat string

	Catalog    string
	CatalogURI string
	Warehouse  string

	Prefix           string
	Stream           string
	RealtimeStream   string
	StreamShards     int
	StreamOnDemand   bool
	CDNBucket        string
	CDNLogPrefix     string
	Queue            string
	QueueMaxReceives int
	QueueVisibility  time.Duration
	QueueRetry       time.Duration
	NotifyVia        string
	RawDelivery      bool
	AlertsTopic      string
	AlertEmails      []string
	UpdatesTopic     string

	HTTPAddr string

	KinesisStart  string
	KinesisWorker string
	BatchMaxRows  int
	BatchMaxBytes int
	BatchMaxAge   time.Duration

	MaxRecordBytes int
	MaxLineBytes   int

	RealtimeLogFields    string
	RealtimeSamplingRate int

	Demo            bool
	PseudonymKey    string
	PseudonymFile   string
	PseudonymSecret string
	Enrich          bool
	GeoIPCity       string
	GeoIPASN        string
	GeoIPReload     time.Duration
	PlayerLateness  time.Duration
	CDNLateness     time.Duration
	ClockSkew       time.Duration
	DedupMaxIDs     int
	SilverEvery     time.Duration

	AlertRules       string
	AlertGraceCDN    time.Duration
	AlertGracePlayer time.Duration
	AlertCatchUp     time.Duration
	DashboardURL     string
	UpdatesRecent    time.Duration

	MaintainEvery   time.Duration
	SnapshotMaxAge  time.Duration
	SnapshotsRetain int
	BronzeRetention time.Duration
	OrphanMinAge    time.Duration
}

// Default returns the built-in defaults: a local state folder holding the
// SQLite catalog and the warehouse, and resource names under "qoslake".
func Default() *Config {
	return &Config{
		StateDir:         "./var",
		LogLevel:         "info",
		LogFormat:        "text",
		Catalog:          "sql",
		Prefix:           "qoslake",
		StreamShards:     2,
		CDNLogPrefix:     "cloudfront/",
		QueueMaxReceives: 5,
		QueueVisibility:  5 * time.Minute,
		QueueRetry:       30 * time.Second,
		NotifyVia:        "sns",
		RawDelivery:      true,
		HTTPAddr:         "127.0.0.1:9464",
		KinesisStart:     "trim_horizon",
		KinesisWorker:    "0/1",
		BatchMaxRows:     200_000,
		BatchMaxBytes:    64 << 20,
		BatchMaxAge:      time.Second,
		MaxRecordBytes:   1 << 20,
		MaxLineBytes:     64 << 10,
		// Every documented field: what the template's RealtimeLogConfig
		// asks CloudFront for.
		RealtimeLogFields:    strings.Join(cloudfront.RealtimeFields, ","),
		RealtimeSamplingRate: 100,
		Enrich:               true,
		GeoIPReload:          time.Minute,
		PlayerLateness:       10 * time.Minute,
		CDNLateness:          6 * time.Hour,
		ClockSkew:            5 * time.Minute,
		DedupMaxIDs:          10_000_000,
		SilverEvery:          2 * time.Second,
		AlertGraceCDN:        2 * time.Minute,
		AlertGracePlayer:     2 * time.Minute,
		AlertCatchUp:         3 * time.Hour,
		UpdatesRecent:        15 * time.Minute,
		MaintainEvery:        time.Hour,
		SnapshotMaxAge:       6 * time.Hour,
		SnapshotsRetain:      20,
		BronzeRetention:      7 * 24 * time.Hour,
		OrphanMinAge:         time.Hour,
	}
}

// Setting is one configurable value, its flag and environment variable.
type Setting struct {
	Group Group
	Flag  string
	Env   string
	Usage string
	value flag.Value
}

// Default is the value shown in help and docs.
func (s Setting) Default() string { return s.value.String() }

// Settings lists every setting bound to c's fields, in documentation order.
func (c *Config) Settings() []Setting {
	s := func(g Group, name, usage string, v flag.Value) Setting {
		return Setting{Group: g, Flag: name, Env: "QOSLAKE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")), Usage: usage, value: v}
	}
	return []Setting{
		s(Core, "state-dir", "folder for local state: the SQLite catalog, the local warehouse, the emulator's files", (*stringValue)(&c.StateDir)),
		s(Core, "log-level", "debug, info, warn or error", (*stringValue)(&c.LogLevel)),
		s(Core, "log-format", "text or json", (*stringValue)(&c.LogFormat)),

		s(Tables, "catalog", "Iceberg catalog: sql (SQLite file), glue or rest", (*stringValue)(&c.Catalog)),
		s(Tables, "catalog-uri", "SQLite file for sql (default <state-dir>/catalog.db), server URL for rest", (*stringValue)(&c.CatalogURI)),
		s(Tables, "warehouse", "table data root: file:///path or s3://bucket/prefix (default <state-dir>/warehouse)", (*stringValue)(&c.Warehouse)),

		s(Resources, "prefix", "prefix of every AWS resource name", (*stringValue)(&c.Prefix)),
		s(Resources, "stream", "Kinesis stream of player events (default <prefix>-player-events)", (*stringValue)(&c.Stream)),
		s(Resources, "realtime-stream", "Kinesis stream of CloudFront real-time log records (default <prefix>-cdn-realtime-logs)", (*stringValue)(&c.RealtimeStream)),
		s(Resources, "stream-shards", "shard count of each stream when provisioning it", (*intValue)(&c.StreamShards)),
		s(Resources, "stream-on-demand", "provision the streams in on-demand capacity mode", (*boolValue)(&c.StreamOnDemand)),
		s(Resources, "cdn-bucket", "S3 bucket CloudFront writes its logs to (default <prefix>-cdn-logs)", (*stringValue)(&c.CDNBucket)),
		s(Resources, "cdn-log-prefix", "key prefix of CDN log objects that trigger ingestion", (*stringValue)(&c.CDNLogPrefix)),
		s(Resources, "queue", "SQS queue of S3 object-created events (default <prefix>-cdn-log-events)", (*stringValue)(&c.Queue)),
		s(Resources, "queue-max-receives", "receives before a message moves to the dead-letter queue", (*intValue)(&c.QueueMaxReceives)),
		s(Resources, "queue-visibility", "how long a received message stays hidden from other consumers (extended while a large object is read)", (*durationValue)(&c.QueueVisibility)),
		s(Resources, "queue-retry-backoff", "how long a message whose object could not be read stays hidden before its next try, doubling with each receive", (*durationValue)(&c.QueueRetry)),
		s(Resources, "notify-via", "S3 event route to the queue: sns (topic with the queue subscribed) or sqs (direct)", (*stringValue)(&c.NotifyVia)),
		s(Resources, "raw-delivery", "with notify-via sns, deliver S3 events to the queue without the SNS envelope", (*boolValue)(&c.RawDelivery)),
		s(Resources, "alerts-topic", "SNS topic alerts are published to, a name or an ARN (default <prefix>-alerts)", (*stringValue)(&c.AlertsTopic)),
		s(Resources, "alert-emails", "comma-separated addresses subscribed to the alerts topic: team=address gets only that team's alerts (a filter policy on the team attribute), a bare address gets all", (*listValue)(&c.AlertEmails)),
		s(Resources, "updates-topic", "SNS topic announcing new gold data, a name or an ARN (default <prefix>-updates)", (*stringValue)(&c.UpdatesTopic)),

		s(Serve, "http-addr", "address of the health and metrics endpoints", (*stringValue)(&c.HTTPAddr)),

		s(Ingest, "kinesis-start", "where to start a shard with no checkpoint: trim_horizon, latest, or at_timestamp:<RFC 3339 time>", (*stringValue)(&c.KinesisStart)),
		s(Ingest, "kinesis-worker", "this process's share of the shards when several read one stream: index/count, 0-based (0/2 and 1/2 for two processes)", (*stringValue)(&c.KinesisWorker)),
		s(Ingest, "batch-max-rows", "commit a bronze batch at this many rows", (*intValue)(&c.BatchMaxRows)),
		s(Ingest, "batch-max-bytes", "commit a bronze batch at this many bytes of input", (*intValue)(&c.BatchMaxBytes)),
		s(Ingest, "batch-max-age", "commit a bronze batch this long after its first row", (*durationValue)(&c.BatchMaxAge)),

		s(Ingest, "max-record-bytes", "Kinesis records (or user records) larger than this are rejected as oversized_record", (*intValue)(&c.MaxRecordBytes)),
		s(Ingest, "max-line-bytes", "CDN log lines longer than this are rejected as oversized_line", (*intValue)(&c.MaxLineBytes)),

		s(Realtime, "realtime-log-fields", "the CloudFront real-time log configuration's fields, comma-separated, in the documented order CloudFront writes them (default: every documented field)", (*stringValue)(&c.RealtimeLogFields)),
		s(Realtime, "realtime-sampling-rate", "the real-time log configuration's sampling rate: percent of requests logged, 1-100", (*intValue)(&c.RealtimeSamplingRate)),

		s(Silver, "demo", "demo mode: a public pseudonymisation key when none is configured (never in production)", (*boolValue)(&c.Demo)),
		s(Silver, "pseudonym-key", "user id pseudonymisation key as <key-id>:<base64 secret of 32+ bytes>", (*secretValue)(&c.PseudonymKey)),
		s(Silver, "pseudonym-key-file", "file holding the pseudonymisation key (same form)", (*stringValue)(&c.PseudonymFile)),
		s(Silver, "pseudonym-key-secret", "AWS Secrets Manager secret id or ARN holding the key ({\"key_id\",\"key\"} or the same form)", (*stringValue)(&c.PseudonymSecret)),
		s(Silver, "enrich", "add geo and network columns from the GeoIP databases (false: leave them empty)", (*boolValue)(&c.Enrich)),
		s(Silver, "geoip-city", "MaxMind City (or Country) database, .mmdb", (*stringValue)(&c.GeoIPCity)),
		s(Silver, "geoip-asn", "MaxMind ASN (or ISP) database, .mmdb", (*stringValue)(&c.GeoIPASN)),
		s(Silver, "geoip-reload", "how often the GeoIP files are checked for changes", (*durationValue)(&c.GeoIPReload)),
		s(Silver, "player-lateness", "how late a player event may arrive and still be checked for duplicates (the watermark lag)", (*durationValue)(&c.PlayerLateness)),
		s(Silver, "cdn-lateness", "the same for CDN log lines, which arrive hours late", (*durationValue)(&c.CDNLateness)),
		s(Silver, "clock-skew", "how far ahead of its ingest time an event's own time may move the watermark (caps fast device clocks)", (*durationValue)(&c.ClockSkew)),
		s(Silver, "dedup-max-ids", "event ids the duplicate check holds per table (about 50 bytes each); past it the oldest are forgotten and counted", (*intValue)(&c.DedupMaxIDs)),
		s(Silver, "silver-every", "how often run moves new bronze rows to silver", (*durationValue)(&c.SilverEvery)),

		s(Alerts, "alert-rules", "YAML file of alert rules (default: the built-in rules; see qoslake alerts validate)", (*stringValue)(&c.AlertRules)),
		s(Alerts, "alert-grace-cdn", "how far the newest CDN log time must pass a window's end before CDN rules judge it", (*durationValue)(&c.AlertGraceCDN)),
		s(Alerts, "alert-grace-player", "the same for player events: the player and session rules", (*durationValue)(&c.AlertGracePlayer)),
		s(Alerts, "alert-catch-up", "how far back alert rules judge after a stop, and where a new rule starts (the oldest gold window that recent)", (*durationValue)(&c.AlertCatchUp)),
		s(Resources, "updates-recent", "window of the updates topic's active users and recent views (whole minutes)", (*durationValue)(&c.UpdatesRecent)),
		s(Alerts, "dashboard-url", "base URL of the dashboard, for the drill-down links in alerts (empty: no links)", (*stringValue)(&c.DashboardURL)),

		s(Maintain, "maintain-every", "interval of table maintenance inside run (0 disables)", (*durationValue)(&c.MaintainEvery)),
		s(Maintain, "snapshot-max-age", "snapshots older than this are expired (the last snapshots-retain are kept)", (*durationValue)(&c.SnapshotMaxAge)),
		s(Maintain, "snapshots-retain", "snapshots always kept per table", (*intValue)(&c.SnapshotsRetain)),
		s(Maintain, "orphan-min-age", "files no snapshot references are removed once older than this (protects commits in flight)", (*durationValue)(&c.OrphanMinAge)),
		s(Maintain, "bronze-retention", "age after which bronze rows (raw client IPs) are deleted and their files removed", (*durationValue)(&c.BronzeRetention)),
	}
}

func (c *Config) lookupEnv(key string) (string, bool) {
	if c.LookupEnv != nil {
		return c.LookupEnv(key)
	}
	return os.LookupEnv(key)
}

// Bind registers the settings of groups as flags on fs, with their
// QOSLAKE_* environment values as defaults. Precedence: flag, environment,
// built-in default. A malformed environment value is an error naming it.
func (c *Config) Bind(fs *flag.FlagSet, groups ...Group) error {
	var errs []error
	for _, s := range c.Settings() {
		if !hasGroup(groups, s.Group) {
			continue
		}
		if v, ok := c.lookupEnv(s.Env); ok {
			if err := s.value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", s.Env, v, err))
			}
		}
		fs.Var(s.value, s.Flag, s.Usage+" ($"+s.Env+")")
	}
	return errors.Join(errs...)
}

func hasGroup(groups []Group, g Group) bool {
	for _, x := range groups {
		if x == g {
			return true
		}
	}
	return false
}

// Resolve fills derived defaults (names from the prefix, paths from the
// state folder) and validates the groups a subcommand uses. Errors name the
// flag and the environment variable.
func (c *Config) Resolve(groups ...Group) error {
	var errs []error
	bad := func(flagName, format string, args ...any) {
		env := "QOSLAKE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
		errs = append(errs, fmt.Errorf("--%s ($%s): %s", flagName, env, fmt.Sprintf(format, args...)))
	}
	if c.StateDir == "" {
		bad("state-dir", "must not be empty")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "%q is not debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log-format", "%q is not text or json", c.LogFormat)
	}
	if hasGroup(groups, Tables) {
		switch c.Catalog {
		case "sql":
			if c.CatalogURI == "" {
				c.CatalogURI = filepath.Join(c.StateDir, "catalog.db")
			}
		case "glue":
		case "rest":
			if u, err := url.Parse(c.CatalogURI); c.CatalogURI == "" || err != nil || u.Host == "" {
				bad("catalog-uri", "the rest catalog needs the server URL, got %q", c.CatalogURI)
			}
		default:
			bad("catalog", "%q is not sql, glue or rest", c.Catalog)
		}
		if c.Warehouse == "" {
			if c.Catalog == "glue" {
				bad("warehouse", "the glue catalog needs an s3:// warehouse")
			}
			c.Warehouse = filepath.Join(c.StateDir, "warehouse")
		}
		if u, err := url.Parse(c.Warehouse); err != nil {
			bad("warehouse", "%v", err)
		} else if u.Scheme != "" && u.Scheme != "file" && u.Scheme != "s3" {
			bad("warehouse", "scheme %q is not file or s3", u.Scheme)
		} else if u.Scheme == "s3" && u.Host == "" {
			bad("warehouse", "%q names no bucket", c.Warehouse)
		}
	}
	if hasGroup(groups, Resources) {
		if !validName.MatchString(c.Prefix) {
			bad("prefix", "%q: use 1-40 lower-case letters, digits and hyphens", c.Prefix)
		}
		def := func(p *string, suffix string) {
			if *p == "" {
				*p = c.Prefix + "-" + suffix
			}
		}
		def(&c.Stream, "player-events")
		def(&c.RealtimeStream, "cdn-realtime-logs")
		def(&c.CDNBucket, "cdn-logs")
		def(&c.Queue, "cdn-log-events")
		def(&c.AlertsTopic, "alerts")
		def(&c.UpdatesTopic, "updates")
		if c.StreamShards < 1 || c.StreamShards > 500 {
			bad("stream-shards", "%d is not between 1 and 500", c.StreamShards)
		}
		if c.QueueMaxReceives < 1 || c.QueueMaxReceives > 1000 {
			bad("queue-max-receives", "%d is not between 1 and 1000", c.QueueMaxReceives)
		}
		if c.QueueVisibility < time.Second || c.QueueVisibility > 12*time.Hour {
			bad("queue-visibility", "%s is not between 1s and 12h", c.QueueVisibility)
		}
		if c.QueueRetry < time.Second || c.QueueRetry > 12*time.Hour {
			bad("queue-retry-backoff", "%s is not between 1s and 12h", c.QueueRetry)
		}
		if c.NotifyVia != "sns" && c.NotifyVia != "sqs" {
			bad("notify-via", "%q is not sns or sqs", c.NotifyVia)
		}
		if c.UpdatesRecent < time.Minute || c.UpdatesRecent%time.Minute != 0 || c.UpdatesRecent > 24*time.Hour {
			bad("updates-recent", "%s is not whole minutes between 1m and 24h", c.UpdatesRecent)
		}
		for _, e := range c.AlertEmails {
			team, addr, scoped := strings.Cut(e, "=")
			if !scoped {
				addr = e
			}
			if scoped && !teamName.MatchString(team) {
				bad("alert-emails", "%q: team %q is not lower-case letters, digits and _", e, team)
			}
			if !strings.Contains(addr, "@") {
				bad("alert-emails", "%q is not an email address", addr)
			}
		}
	}
	if hasGroup(groups, Alerts) {
		for _, g := range []struct {
			flag string
			v    time.Duration
		}{{"alert-grace-cdn", c.AlertGraceCDN}, {"alert-grace-player", c.AlertGracePlayer}} {
			if g.v < 0 || g.v > 48*time.Hour {
				bad(g.flag, "%s is not between 0 and 48h", g.v)
			}
		}
		if c.AlertCatchUp < time.Minute || c.AlertCatchUp > 30*24*time.Hour {
			bad("alert-catch-up", "%s is not between 1m and 720h", c.AlertCatchUp)
		}
		if c.DashboardURL != "" && !strings.HasPrefix(c.DashboardURL, "http://") && !strings.HasPrefix(c.DashboardURL, "https://") {
			bad("dashboard-url", "%q is not an http(s) URL", c.DashboardURL)
		}
	}
	if hasGroup(groups, Serve) {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			bad("http-addr", "%v", err)
		}
	}
	if hasGroup(groups, Ingest) {
		if _, err := c.StartAt(); err != nil {
			bad("kinesis-start", "%v", err)
		}
		if _, _, err := c.Worker(); err != nil {
			bad("kinesis-worker", "%v", err)
		}
		if c.BatchMaxRows < 1 {
			bad("batch-max-rows", "must be at least 1")
		}
		if c.BatchMaxBytes < 1<<10 {
			bad("batch-max-bytes", "must be at least 1024")
		}
		if c.MaxRecordBytes < 256 || c.MaxLineBytes < 256 {
			bad("max-record-bytes", "record and line limits must be at least 256 bytes")
		}
		if c.BatchMaxAge < 10*time.Millisecond {
			bad("batch-max-age", "must be at least 10ms")
		}
	}
	if hasGroup(groups, Realtime) {
		if _, err := c.RealtimeLayout(); err != nil {
			bad("realtime-log-fields", "%v", err)
		}
		if c.RealtimeSamplingRate < 1 || c.RealtimeSamplingRate > 100 {
			bad("realtime-sampling-rate", "%d is not a percentage from 1 to 100", c.RealtimeSamplingRate)
		}
	}
	if hasGroup(groups, Silver) {
		if c.PseudonymKey == "" && c.PseudonymFile == "" && c.PseudonymSecret == "" && !c.Demo {
			bad("pseudonym-key", "no pseudonymisation key: set one of --pseudonym-key, --pseudonym-key-file, --pseudonym-key-secret (or --demo to use the public demo key)")
		}
		if c.Enrich && (c.GeoIPCity == "" || c.GeoIPASN == "") {
			bad("geoip-city", "enrichment needs --geoip-city and --geoip-asn (or --enrich=false)")
		}
		if c.PlayerLateness < 0 || c.CDNLateness < 0 {
			bad("player-lateness", "lateness must not be negative")
		}
		if c.Enrich && c.GeoIPReload < time.Second {
			bad("geoip-reload", "%s is under a second", c.GeoIPReload)
		}
		if c.ClockSkew < 0 {
			bad("clock-skew", "must not be negative")
		}
		if c.DedupMaxIDs < 1000 {
			bad("dedup-max-ids", "%d is under 1000", c.DedupMaxIDs)
		}
		if c.SilverEvery < 100*time.Millisecond {
			bad("silver-every", "must be at least 100ms")
		}
	}
	if hasGroup(groups, Maintain) {
		if c.MaintainEvery < 0 {
			bad("maintain-every", "must not be negative")
		}
		if c.OrphanMinAge <= 0 {
			bad("orphan-min-age", "must be positive")
		}
		if c.SnapshotsRetain < 1 {
			bad("snapshots-retain", "must be at least 1")
		}
		if c.BronzeRetention < time.Hour {
			bad("bronze-retention", "%s is under an hour", c.BronzeRetention)
		}
	}
	return errors.Join(errs...)
}

// StartAt parses KinesisStart into a kind and an optional time.
func (c *Config) StartAt() (StartAt, error) {
	kind, ts, _ := strings.Cut(c.KinesisStart, ":")
	switch kind {
	case "trim_horizon", "latest":
		if ts != "" {
			return StartAt{}, fmt.Errorf("%q takes no time", kind)
		}
		return StartAt{Kind: kind}, nil
	case "at_timestamp":
		t, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			return StartAt{}, fmt.Errorf("at_timestamp needs an RFC 3339 time: %v", err)
		}
		return StartAt{Kind: kind, Time: t}, nil
	}
	return StartAt{}, fmt.Errorf("%q is not trim_horizon, latest or at_timestamp:<time>", c.KinesisStart)
}

// Worker parses KinesisWorker ("index/count", 0-based).
func (c *Config) Worker() (index, count int, err error) {
	i, n, ok := strings.Cut(c.KinesisWorker, "/")
	index, err1 := strconv.Atoi(i)
	count, err2 := strconv.Atoi(n)
	if !ok || err1 != nil || err2 != nil || count < 1 || index < 0 || index >= count {
		return 0, 0, fmt.Errorf("%q is not index/count with 0 <= index < count", c.KinesisWorker)
	}
	return index, count, nil
}

// StartAt is where a shard with no checkpoint is read from.
type StartAt struct {
	Kind string
	Time time.Time
}

// RealtimeLayout parses RealtimeLogFields.
func (c *Config) RealtimeLayout() (*cloudfront.RealtimeLayout, error) {
	return cloudfront.ParseRealtimeLayout(c.RealtimeLogFields)
}

// WarehouseBucket returns the bucket of an s3:// warehouse, or "".
func (c *Config) WarehouseBucket() string {
	u, err := url.Parse(c.Warehouse)
	if err != nil || u.Scheme != "s3" {
		return ""
	}
	return u.Host
}

// DeadLetterQueue is the name of the queue's dead-letter queue.
func (c *Config) DeadLetterQueue() string { return c.Queue + "-dlq" }

// S3EventsTopic is the SNS topic S3 events go through when NotifyVia is sns.
func (c *Config) S3EventsTopic() string { return c.Prefix + "-cdn-log-events" }

// UpdatesExampleQueue is the example subscriber of the updates topic.
func (c *Config) UpdatesExampleQueue() string { return c.Prefix + "-updates-example" }

type stringValue string

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not a whole number")
	}
	*v = intValue(n)
	return nil
}

type boolValue bool

func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("not true or false")
	}
	*v = boolValue(b)
	return nil
}

type durationValue time.Duration

func (v *durationValue) String() string { return time.Duration(*v).String() }
func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration such as 90s, 15m or 24h")
	}
	*v = durationValue(d)
	return nil
}

// secretValue never shows its value in help or errors.
type secretValue string

func (v *secretValue) String() string {
	if *v == "" {
		return ""
	}
	return "(set)"
}
func (v *secretValue) Set(s string) error { *v = secretValue(s); return nil }

type listValue []string

func (v *listValue) String() string { return strings.Join(*v, ",") }
func (v *listValue) Set(s string) error {
	*v = nil
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*v = append(*v, part)
		}
	}
	return nil
}

// teamName is the form of an alert team: an SNS attribute value teams
// filter on.
var teamName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
