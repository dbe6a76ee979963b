package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Updates holds the gold updates publisher's collectors.
type Updates struct {
	PublishedN    *prometheus.CounterVec
	FailedN       *prometheus.CounterVec
	RetriedN      *prometheus.CounterVec
	SupersededN   *prometheus.CounterVec
	LastPublished *prometheus.GaugeVec
	BuildErrors   prometheus.Counter
}

func newUpdates(reg *prometheus.Registry) *Updates {
	u := &Updates{
		PublishedN: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "updates_published_total",
			Help: "Messages SNS accepted on the updates topic, by update type.",
		}, []string{"update_type"}),
		FailedN: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "updates_failed_total",
			Help: "Updates topic messages given up on (refused, retries exhausted, cut off at shutdown), by update type.",
		}, []string{"update_type"}),
		RetriedN: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "updates_retried_total",
			Help: "Updates topic messages sent again after throttling or a transient error, by update type.",
		}, []string{"update_type"}),
		SupersededN: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "updates_superseded_total",
			Help: "Pending updates replaced by a newer one of their type before they were published, by update type.",
		}, []string{"update_type"}),
		LastPublished: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "qoslake", Name: "updates_last_published_timestamp_seconds",
			Help: "When SNS last accepted a message of the update type, Unix seconds.",
		}, []string{"update_type"}),
		BuildErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "qoslake", Name: "updates_build_errors_total",
			Help: "Failed reads of gold for the updates topic.",
		}),
	}
	reg.MustRegister(u.PublishedN, u.FailedN, u.RetriedN, u.SupersededN, u.LastPublished, u.BuildErrors)
	return u
}

// Published implements updates.Observer.
func (u *Updates) Published(updateType string, messages int, at time.Time) {
	u.PublishedN.WithLabelValues(updateType).Add(float64(messages))
	u.LastPublished.WithLabelValues(updateType).Set(float64(at.UnixMilli()) / 1000)
}

// Failed implements updates.Observer.
func (u *Updates) Failed(updateType string, messages int) {
	u.FailedN.WithLabelValues(updateType).Add(float64(messages))
}

// Retried implements updates.Observer.
func (u *Updates) Retried(updateType string, messages int) {
	u.RetriedN.WithLabelValues(updateType).Add(float64(messages))
}

// Superseded implements updates.Observer.
func (u *Updates) Superseded(updateType string) { u.SupersededN.WithLabelValues(updateType).Inc() }

// BuildFailed implements updates.Observer.
func (u *Updates) BuildFailed() { u.BuildErrors.Inc() }
