package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/qoslake/qoslake/anonymize"
	"github.com/qoslake/qoslake/bronze"
	"github.com/qoslake/qoslake/geoip"
	"github.com/qoslake/qoslake/ingest/cloudfront"
	"github.com/qoslake/qoslake/ingest/kinesis"
	"github.com/qoslake/qoslake/lake"
	"github.com/qoslake/qoslake/silver"
	"github.com/qoslake/qoslake/simulate"
)

func benchCommand() *command {
	var events int
	var keep bool
	return &command{
		name:    "bench",
		summary: "measure the pipeline stages on this machine, in process",
		help: `Generates simulated traffic and runs it through the real stages on a
temporary local lake (SQLite catalog, Parquet files on disk): the bronze
player-event path with its Iceberg commits, CloudFront log parsing, and
bronze to silver (transform, geo and user agent, dedup, commit). Prints rows
per second for each, with the number of cores Go uses (GOMAXPROCS; set it to
1 for a per-core figure). No AWS service is involved.

The Go benchmarks behind BENCHMARKS.md are finer-grained: make bench.`,
		flags: func(fs *flag.FlagSet) {
			fs.IntVar(&events, "events", 200_000, "player events to generate")
			fs.BoolVar(&keep, "keep", false, "keep the temporary lake and print its folder")
		},
		run: func(ctx context.Context, m *Main, fs *flag.FlagSet) error {
			if fs.NArg() > 0 || events < 1000 {
				return fmt.Errorf("%w: bench takes no arguments and at least 1000 --events", errUsage)
			}
			dir, err := os.MkdirTemp("", "qoslake-bench-")
			if err != nil {
				return err
			}
			if keep {
				fmt.Fprintln(m.Stdout, "lake:", dir)
			} else {
				defer os.RemoveAll(dir)
			}
			res, err := runBench(ctx, dir, events)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintf(w, "stage\trows\tseconds\trows/s\t\n")
			for _, r := range res {
				fmt.Fprintf(w, "%s\t%d\t%.2f\t%.0f\t\n", r.stage, r.rows, r.took.Seconds(), float64(r.rows)/r.took.Seconds())
			}
			fmt.Fprintf(w, "GOMAXPROCS\t%d\t\t\t\n", runtime.GOMAXPROCS(0))
			return w.Flush()
		},
	}
}

type benchResult struct {
	stage string
	rows  int
	took  time.Duration
}

func runBench(ctx context.Context, dir string, n int) ([]benchResult, error) {
	l, err := lake.Open(ctx, lake.Options{URI: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse")})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	tables := map[string]*lake.Table{}
	for _, def := range []lake.TableDef{bronze.PlayerEventsTable, bronze.RejectsTable, silver.PlayerEventsTable} {
		t, err := l.Ensure(ctx, def)
		if err != nil {
			return nil, err
		}
		tables[def.FullName()] = t
	}

	// Traffic: an hour ago, so every event is plausible.
	g := simulate.New(simulate.Config{Seed: 1, Start: time.Now().Add(-time.Hour), Rate: 5000})
	var batches []kinesis.Batch
	var logs bytes.Buffer
	total, seq := 0, 0
	for total < n {
		evs, files := g.Tick()
		b := kinesis.Batch{Shard: "shardId-000000000000"}
		for _, e := range evs {
			seq++
			b.Records = append(b.Records, kinesis.Record{Shard: b.Shard, Seq: fmt.Sprint(seq), Data: e.JSON, Arrival: e.Time})
		}
		b.Last = fmt.Sprint(seq)
		batches = append(batches, b)
		total += len(evs)
		for _, f := range files {
			zr, err := gzip.NewReader(bytes.NewReader(f.Body))
			if err != nil {
				return nil, err
			}
			if _, err := io.Copy(&logs, zr); err != nil {
				return nil, err
			}
		}
	}

	var res []benchResult
	// Bronze: parse, Arrow, Parquet, commit, about one commit per 50,000 rows.
	sink := &bronze.PlayerEvents{Events: tables[bronze.PlayerEventsTable.FullName()], Rejects: tables[bronze.RejectsTable.FullName()], Stream: "bench"}
	if _, err := sink.Positions(ctx); err != nil {
		return nil, err
	}
	in := make(chan kinesis.Batch, len(batches))
	for _, b := range batches {
		in <- b
	}
	close(in)
	sink.Batching = bronze.Batching{MaxRows: 50_000, MaxBytes: 256 << 20, MaxAge: time.Hour}
	start := time.Now()
	if err := sink.Run(ctx, in); err != nil {
		return nil, err
	}
	res = append(res, benchResult{"bronze.player_events (with commits)", total, time.Since(start)})

	// CloudFront parsing.
	start = time.Now()
	lines := 0
	rd := cloudfront.NewReader(bytes.NewReader(logs.Bytes()), 64<<10)
	var fields []string
	for {
		l, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		fields = cloudfront.Split(l.Text, fields[:0])
		lines++
	}
	res = append(res, benchResult{"cloudfront parse", lines, time.Since(start)})

	// Silver: read bronze, transform with geo and pseudonyms, dedup, commit.
	city, asn, err := simulate.WriteGeoIP(filepath.Join(dir, "geoip"))
	if err != nil {
		return nil, err
	}
	db, err := geoip.Open(city, asn, nil)
	if err != nil {
		return nil, err
	}
	agents, err := silver.NewAgents(10_000)
	if err != nil {
		return nil, err
	}
	stage := &silver.Stage{
		Kind:        silver.Player,
		Bronze:      tables[bronze.PlayerEventsTable.FullName()],
		Silver:      tables[silver.PlayerEventsTable.FullName()],
		Transformer: &silver.Transformer{Pseudonyms: anonymize.NewPseudonymizer(anonymize.DemoKey), Geo: db, Agents: agents},
		Lateness:    10 * time.Minute,
		MaxRows:     50_000,
	}
	start = time.Now()
	if err := stage.Drain(ctx); err != nil {
		return nil, err
	}
	res = append(res, benchResult{"silver.player_events (with commits)", total, time.Since(start)})
	return res, nil
}
