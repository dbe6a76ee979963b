// Package metrics defines qoslake's Prometheus metrics, registered on a
// registry of their own (no global state), and adapts them to the
// observer interfaces of the stages.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every collector qoslake exports.
type Metrics struct {
	Registry *prometheus.Registry

	RowsCommitted   *prometheus.CounterVec
	CommitConflicts *prometheus.CounterVec
	MaintenanceRuns *prometheus.CounterVec
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
