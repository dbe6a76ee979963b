package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qoslake/qoslake/config"
	"github.com/qoslake/qoslake/geoip"
	"github.com/qoslake/qoslake/lake"
)

func runCommand() *command {
	var once bool
	return &command{
		name:    "run",
		summary: "run the pipeline: ingest, refine, maintain (until stopped, or --once)",
		help: `Runs the pipeline stages until SIGINT or SIGTERM, then stops intake,
commits what is in flight and exits. With --once, processes what is
available at start, commits and exits 0.

Stages in this version: Kinesis player events, CDN logs (S3 events on
SQS) and CloudFront real-time logs (Kinesis) into the bronze tables,
exactly once; bronze to silver (typed, anonymised, enriched,
de-duplicated); silver to the gold tables (one-minute aggregates,
sessions, late data corrected); then the alert rules on every window
gold's sources have closed (--alert-grace-*), publishing state changes to
the alerts topic, and the updates topic; all every --silver-every. Table
maintenance every --maintain-every.

Health and metrics are served on --http-addr: /healthz (alive), /readyz
(tables ready, stages started) and /metrics (Prometheus).`,
		groups: []config.Group{config.Core, config.Tables, config.Resources, config.Serve, config.Maintain, config.Ingest, config.Realtime, config.Silver, config.Alerts},
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&once, "once", false, "process what is available now, then exit")
		},
		run: func(ctx context.Context, m *Main, fs *flag.FlagSet) error {
			if fs.NArg() > 0 {
				return fmt.Errorf("%w: run takes no arguments", errUsage)
			}
			if once {
				tables, err := m.EnsureTables(ctx)
				if err != nil {
					return err
				}
				t, _, err := m.Transformer(ctx)
				if err != nil {
					return err
				}
				r, err := m.Refinery(ctx, tables, t)
				if err != nil {
					return err
				}
				if err := m.Ingest(ctx, tables, true); err != nil {
					return errors.Join(err, r.close(ctx))
				}
				return errors.Join(m.refine(ctx, r), r.close(ctx))
			}
			return m.RunPipeline(ctx)
		},
	}
}

// RunPipeline runs until ctx is done: ops endpoints, then the stages.
// Shutdown is ordered: stages stop first, then the HTTP server with a
// deadline.
func (m *Main) RunPipeline(ctx context.Context) error {
	var ready atomic.Bool
	srv, addr, err := m.serveOps(&ready)
	if err != nil {
		return err
	}
	m.Logger.Info("ops endpoints listening", "addr", addr)
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			m.Logger.Warn("ops server shutdown", "error", err)
		}
	}()

	tables, geo, r, err := m.startPipeline(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting: nothing was taken in
		}
		return err
	}
	if geo != nil {
		go geo.Watch(ctx, m.Config.GeoIPReload)
	}
	silverDone := make(chan struct{})
	go func() {
		defer close(silverDone)
		m.runSilver(ctx, r)
		if err := r.close(ctx); err != nil {
			m.Logger.Warn("updates not all published at shutdown", "error", err)
		}
	}()
	// Whatever way this returns, the silver pass in flight finishes first:
	// the catalog closes after it.
	defer func() { <-silverDone }()
	ingest := make(chan error, 1)
	go func() { ingest <- m.Ingest(ctx, tables, false) }()
	ready.Store(true)
	m.Logger.Info("pipeline running", "maintain_every", m.Config.MaintainEvery)

	var tick <-chan time.Time
	if m.Config.MaintainEvery > 0 {
		t := time.NewTicker(m.Config.MaintainEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			m.Logger.Info("pipeline stopping: intake stopped, committing what is in flight")
			err := <-ingest
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				err = nil // the shutdown itself, not a failure
			}
			m.Logger.Info("pipeline stopped")
			return err
		case err := <-ingest:
			// Intakes restart themselves; this is reached only when one
			// returns for good.
			return fmt.Errorf("ingest: %w", err)
		case <-tick:
			if _, err := m.MaintainAll(ctx, "", time.Now()); err != nil && !errors.Is(err, context.Canceled) {
				// A failed pass is retried at the next tick; it must not
				// stop ingestion.
				m.Logger.Error("maintenance failed", "error", err)
			}
		}
	}
}

// startPipeline makes what the stages need: the tables, the silver
// transform (and its GeoIP databases) and the refinery.
func (m *Main) startPipeline(ctx context.Context) (map[string]*lake.Table, *geoip.DB, *refinery, error) {
	tables, err := m.EnsureTables(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	t, geo, err := m.Transformer(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	r, err := m.Refinery(ctx, tables, t)
	if err != nil {
		return nil, nil, nil, err
	}
	return tables, geo, r, nil
}

// serveOps starts /healthz, /readyz and /metrics on the configured address.
func (m *Main) serveOps(ready *atomic.Bool) (*http.Server, string, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Metrics.Registry, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", m.Config.HTTPAddr)
	if err != nil {
		return nil, "", fmt.Errorf("listen on --http-addr %s: %w", m.Config.HTTPAddr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("ops server", "error", err)
		}
	}()
	return srv, ln.Addr().String(), nil
}
