// Package metrics defines qoslake's Prometheus metrics, registered on a
// registry of their own (no global state), and adapts them to the
// observer interfaces of the stages.
package metrics

import (
	"slices"
	"sync"
	"time"

	"github.com/qoslake/qoslake/alerts"
	"github.com/qoslake/qoslake/gold"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every collector qoslake exports.
type Metrics struct {
	Registry *prometheus.Registry

	RowsCommitted   *prometheus.CounterVec
	CommitConflicts *prometheus.CounterVec
	MaintenanceRuns *prometheus.CounterVec
	Ingest          *Ingest
	Silver          *Silver
	Gold            *Gold
	Alerts          *Alerts
	Updates         *Updates
}

// New registers the collectors on a fresh registry, with the Go runtime and
// process collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		RowsCommitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "rows_committed_total",
			Help: "Rows committed to a table.",
		}, []string{"table"}),
		CommitConflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "commit_conflicts_total",
			Help: "Commits that found the table changed by another writer and were retried.",
		}, []string{"table"}),
		MaintenanceRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "maintenance_runs_total",
			Help: "Table maintenance passes by outcome (ok, error).",
		}, []string{"table", "outcome"}),
	}
	m.Ingest = newIngest(m.Registry)
	m.Silver = newSilver(m.Registry)
	m.Gold = newGold(m.Registry)
	m.Alerts = newAlerts(m.Registry)
	m.Updates = newUpdates(m.Registry)
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.RowsCommitted, m.CommitConflicts, m.MaintenanceRuns,
	)
	return m
}

// Committed implements lake.Observer.
func (m *Metrics) Committed(table string, rows int64) {
	m.RowsCommitted.WithLabelValues(table).Add(float64(rows))
}

// Conflict implements lake.Observer.
func (m *Metrics) Conflict(table string) {
	m.CommitConflicts.WithLabelValues(table).Inc()
}

// Ingest holds the ingest and bronze collectors.
type Ingest struct {
	RecordsRead  *prometheus.CounterVec
	BytesRead    *prometheus.CounterVec
	ShardLag     *prometheus.GaugeVec
	Throttles    *prometheus.CounterVec
	Rejects      *prometheus.CounterVec
	BatchLatency *prometheus.HistogramVec
	Received     *prometheus.CounterVec
	Restarts     *prometheus.CounterVec
	ShortLinesN  prometheus.Counter
}

func newIngest(reg *prometheus.Registry) *Ingest {
	i := &Ingest{
		ShortLinesN: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "cdn_short_lines_total",
			Help: "CloudFront log lines kept with trailing fields missing (read as empty, as Athena reads them).",
		}),
		RecordsRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "records_read_total", Help: "Input records read: Kinesis records, CDN log lines.",
		}, []string{"source"}),
		BytesRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "bytes_read_total", Help: "Bytes of input read, by source.",
		}, []string{"source"}),
		ShardLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "qoslake", Name: "kinesis_millis_behind_latest", Help: "How far each shard's reader is behind the tip (MillisBehindLatest).",
		}, []string{"shard"}),
		Throttles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "kinesis_throttles_total", Help: "GetRecords calls throttled, by shard.",
		}, []string{"shard"}),
		Rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "rejects_total", Help: "Input kept in bronze.rejects, by source and reason.",
		}, []string{"source", "reason"}),
		BatchLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "qoslake", Name: "batch_commit_seconds", Help: "Time to commit one batch, by table.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}, []string{"table"}),
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "sqs_messages_received_total", Help: "SQS messages received, by queue.",
		}, []string{"queue"}),
	}
	i.Restarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "qoslake", Name: "intake_restarts_total", Help: "Intakes restarted after a failure, by intake (kinesis, cdn, realtime).",
	}, []string{"intake"})
	reg.MustRegister(i.RecordsRead, i.BytesRead, i.ShardLag, i.Throttles, i.Rejects, i.BatchLatency, i.Received, i.Restarts, i.ShortLinesN)
	return i
}

// Read implements kinesis.Observer.
func (i *Ingest) Read(shard string, records, bytes int) {
	i.RecordsRead.WithLabelValues("kinesis").Add(float64(records))
	i.BytesRead.WithLabelValues("kinesis").Add(float64(bytes))
}

// Lag implements kinesis.Observer.
func (i *Ingest) Lag(shard string, behind time.Duration) {
	i.ShardLag.WithLabelValues(shard).Set(float64(behind.Milliseconds()))
}

// Throttled implements kinesis.Observer.
func (i *Ingest) Throttled(shard string) { i.Throttles.WithLabelValues(shard).Inc() }

// Stream is the kinesis.Observer of a stream other than the player
// events': its records count under source in records_read_total and
// bytes_read_total, and its shards (whose ids repeat across streams) are
// labelled source/shard.
func (i *Ingest) Stream(source string) StreamObserver {
	return StreamObserver{i: i, source: source}
}

// StreamObserver implements kinesis.Observer for one stream.
type StreamObserver struct {
	i      *Ingest
	source string
}

// Read implements kinesis.Observer.
func (o StreamObserver) Read(shard string, records, bytes int) {
	o.i.RecordsRead.WithLabelValues(o.source).Add(float64(records))
	o.i.BytesRead.WithLabelValues(o.source).Add(float64(bytes))
}

// Lag implements kinesis.Observer.
func (o StreamObserver) Lag(shard string, behind time.Duration) {
	o.i.Lag(o.source+"/"+shard, behind)
}

// Throttled implements kinesis.Observer.
func (o StreamObserver) Throttled(shard string) { o.i.Throttled(o.source + "/" + shard) }

// Rejected implements bronze.Observer.
func (i *Ingest) Rejected(source, reason string) { i.Rejects.WithLabelValues(source, reason).Inc() }

// BatchCommitted implements bronze.Observer.
func (i *Ingest) BatchCommitted(table string, _ int, took time.Duration) {
	i.BatchLatency.WithLabelValues(table).Observe(took.Seconds())
}

// MessagesReceived implements bronze.Observer.
func (i *Ingest) MessagesReceived(queue string, n int) {
	i.Received.WithLabelValues(queue).Add(float64(n))
}

// ShortLines implements bronze.Observer.
func (i *Ingest) ShortLines(n int) { i.ShortLinesN.Add(float64(n)) }

// ObjectRead implements bronze.Observer.
func (i *Ingest) ObjectRead(lines, bytes int) {
	i.RecordsRead.WithLabelValues("s3").Add(float64(lines))
	i.BytesRead.WithLabelValues("s3").Add(float64(bytes))
}

// Silver holds the silver stage's collectors.
type Silver struct {
	Invalid    *prometheus.CounterVec
	Duplicates *prometheus.CounterVec
	Watermarks *prometheus.GaugeVec
	DedupSize  *prometheus.GaugeVec
	DedupEvict *prometheus.CounterVec
}

func newSilver(reg *prometheus.Registry) *Silver {
	s := &Silver{
		Invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "invalid_values_total",
			Help: "Values left empty in silver because they were absurd or malformed, by table and field.",
		}, []string{"table", "field"}),
		Duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "duplicates_dropped_total",
			Help: "Events dropped as duplicates within the watermark, by table.",
		}, []string{"table"}),
		Watermarks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "qoslake", Name: "watermark_seconds",
			Help: "Event-time watermark (newest event time minus allowed lateness), Unix seconds, by table.",
		}, []string{"table"}),
		DedupSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "qoslake", Name: "dedup_ids",
			Help: "Event ids the duplicate check holds (bounded by --dedup-max-ids), by table.",
		}, []string{"table"}),
		DedupEvict: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "dedup_ids_evicted_total",
			Help: "Event ids forgotten before the watermark passed them because --dedup-max-ids was reached, by table: duplicates of these are no longer caught.",
		}, []string{"table"}),
	}
	reg.MustRegister(s.Invalid, s.Duplicates, s.Watermarks, s.DedupSize, s.DedupEvict)
	return s
}

// DedupIDs implements silver.Observer.
func (s *Silver) DedupIDs(table string, ids, evicted int) {
	s.DedupSize.WithLabelValues(table).Set(float64(ids))
	s.DedupEvict.WithLabelValues(table).Add(float64(evicted))
}

// InvalidValue implements silver.Observer.
func (s *Silver) InvalidValue(table, field string) { s.Invalid.WithLabelValues(table, field).Inc() }

// Duplicate implements silver.Observer.
func (s *Silver) Duplicate(table string) { s.Duplicates.WithLabelValues(table).Inc() }

// Watermark implements silver.Observer.
func (s *Silver) Watermark(table string, t time.Time) {
	s.Watermarks.WithLabelValues(table).Set(float64(t.Unix()))
}

// Gold holds the gold stages' collectors.
type Gold struct {
	Windows   *prometheus.CounterVec
	SilverRow *prometheus.CounterVec
	Took      *prometheus.HistogramVec
	Newest    *prometheus.GaugeVec

	mu     sync.Mutex
	newest map[string]time.Time
}

func newGold(reg *prometheus.Registry) *Gold {
	g := &Gold{
		Windows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "gold_windows_replaced_total",
			Help: "One-minute windows whose gold rows a commit recomputed and replaced, by table.",
		}, []string{"table"}),
		SilverRow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "gold_silver_rows_total",
			Help: "Silver rows gold consumed (kind=increment: new rows) and read to recompute their windows (kind=scanned), by table.",
		}, []string{"table", "kind"}),
		Took: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "qoslake", Name: "gold_update_seconds",
			Help:    "Time from reading a silver increment to its gold commit landing, by table.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}, []string{"table"}),
		Newest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "qoslake", Name: "gold_newest_window_seconds",
			Help: "Start of the newest one-minute window gold has committed, Unix seconds, by table.",
		}, []string{"table"}),
		newest: map[string]time.Time{},
	}
	reg.MustRegister(g.Windows, g.SilverRow, g.Took, g.Newest)
	return g
}

// GoldCommitted implements gold.Observer.
func (g *Gold) GoldCommitted(u gold.Update) {
	g.Windows.WithLabelValues(u.Table).Add(float64(len(u.Windows)))
	g.SilverRow.WithLabelValues(u.Table, "increment").Add(float64(u.Increment))
	g.SilverRow.WithLabelValues(u.Table, "scanned").Add(float64(u.Scanned))
	g.Took.WithLabelValues(u.Table).Observe(u.Took.Seconds())
	if len(u.Windows) == 0 {
		return
	}
	// A late batch replaces old windows: the gauge only moves forward.
	last := slices.MaxFunc(u.Windows, time.Time.Compare)
	g.mu.Lock()
	defer g.mu.Unlock()
	if last.After(g.newest[u.Table]) {
		g.newest[u.Table] = last
		g.Newest.WithLabelValues(u.Table).Set(float64(last.Unix()))
	}
}

// Alerts holds the alert rules' and publisher's collectors.
type Alerts struct {
	States    *prometheus.GaugeVec
	Published *prometheus.CounterVec
	Failed    *prometheus.CounterVec
	Pending   prometheus.Gauge
}

func newAlerts(reg *prometheus.Registry) *Alerts {
	a := &Alerts{
		States: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "qoslake", Name: "alert_groups",
			Help: "Groups of each rule in each alert life cycle state (pending, firing, cooldown), as of the last evaluation.",
		}, []string{"rule", "state"}),
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "alerts_published_total",
			Help: "Alert state changes SNS accepted, by rule and state (fired, resolved).",
		}, []string{"rule", "state"}),
		Failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "alert_publish_failures_total",
			Help: "Publish attempts SNS refused or that failed, by rule; the change waits in gold.alerts and is retried.",
		}, []string{"rule"}),
		Pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "qoslake", Name: "alerts_unpublished",
			Help: "Alert state changes committed to gold.alerts and not yet accepted by SNS.",
		}),
	}
	reg.MustRegister(a.States, a.Published, a.Failed, a.Pending)
	return a
}

// AlertStates implements alerts.Observer.
func (a *Alerts) AlertStates(rule string, byState map[string]int) {
	for st, n := range byState {
		a.States.WithLabelValues(rule, st).Set(float64(n))
	}
}

// AlertPublished implements alerts.Observer.
func (a *Alerts) AlertPublished(x alerts.Alert) { a.Published.WithLabelValues(x.Rule, x.State).Inc() }

// AlertPublishFailed implements alerts.Observer.
func (a *Alerts) AlertPublishFailed(rule string) { a.Failed.WithLabelValues(rule).Inc() }

// AlertsPending implements alerts.Observer.
func (a *Alerts) AlertsPending(n int) { a.Pending.Set(float64(n)) }
