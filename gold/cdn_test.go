package gold

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/qoslake/qoslake/lake"
	"github.com/qoslake/qoslake/silver"
)

// env is one process's view of a lake: its own catalog connection.
type env struct {
	dir          string
	silver, gold *lake.Table
	stage        *CDNStage
}

func open(t testing.TB, dir string) env {
	t.Helper()
	ctx := context.Background()
	l, err := lake.Open(ctx, lake.Options{URI: filepath.Join(dir, "c.db"), Warehouse: filepath.Join(dir, "w")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s, err := l.Ensure(ctx, silver.CDNLogsTable)
	if err != nil {
		t.Fatal(err)
	}
	g, err := l.Ensure(ctx, CDNMinuteTable)
	if err != nil {
		t.Fatal(err)
	}
	return env{dir, s, g, &CDNStage{Silver: s, Gold: g, MaxRows: 500}}
}

var base = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

// genRows makes n silver rows spread over the given minutes, with a few
// nulls in every column gold reads.
func genRows(r *rand.Rand, n int, minutes ...time.Time) []silver.CDNRow {
	edges := [][2]string{{"FRA56-P3", "FRA"}, {"FRA60-C1", "FRA"}, {"LHR61-C2", "LHR"}, {"", ""}}
	results := []string{"Hit", "RefreshHit", "Miss", "Error", ""}
	countries := []string{"DE", "GB", "FR", ""}
	isps := []string{"Deutsche Telekom", "BT", "Orange", ""}
	statuses := []int32{200, 200, 200, 206, 304, 403, 404, 500, 503, 0}
	out := make([]silver.CDNRow, n)
	for i := range out {
		e := edges[r.IntN(len(edges))]
		row := silver.CDNRow{
			EventID:      randID(r),
			LogTime:      minutes[r.IntN(len(minutes))].Add(time.Duration(r.IntN(60)) * time.Second),
			EdgeLocation: e[0], POP: e[1],
			EdgeResult: results[r.IntN(len(results))],
			IngestTime: base,
		}
		row.Client.Country = countries[r.IntN(len(countries))]
		row.Client.ISP = isps[r.IntN(len(isps))]
		if r.IntN(20) != 0 {
			b := int64(r.IntN(2_000_000))
			row.SCBytes = &b
		}
		if r.IntN(20) != 0 {
			s := statuses[r.IntN(len(statuses))]
			row.Status = &s
		}
		if r.IntN(10) != 0 {
			// Quarter milliseconds add up exactly in float64.
			v := float64(r.IntN(24_000)) / 4
			row.TimeTaken = &v
		}
		if r.IntN(10) != 0 {
			v := float64(r.IntN(8_000)) / 4
			row.TTFB = &v
		}
		row.CacheHit = row.EdgeResult == "Hit" || row.EdgeResult == "RefreshHit"
		row.Error = row.EdgeResult == "Error" || (row.Status != nil && (*row.Status == 0 || *row.Status >= 500))
		out[i] = row
	}
	return out
}

func randID(r *rand.Rand) string {
	const hex = "0123456789abcdef"
	b := make([]byte, 32)
	for i := range b {
		b[i] = hex[r.IntN(16)]
	}
	return string(b)
}

func commitSilver(t testing.TB, e env, rows []silver.CDNRow) {
	t.Helper()
	out, err := e.silver.NewRows()
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	for i := range rows {
		silver.AppendCDN(out, &rows[i])
	}
	rec := out.Batch()
	defer rec.Release()
	if _, err := e.silver.Commit(context.Background(), lake.Batch{Records: []arrow.RecordBatch{rec}}); err != nil {
		t.Fatal(err)
	}
}

// goldRow is a gold.cdn_minute row as the test compares it.
type goldRow struct {
	requests, bytes, hits, errors   int64
	status4xx, status5xx, status000 int64
	timeTakenSum, ttfbSum           float64
	timeTakenCount, ttfbCount       int64
	timeTaken, ttfb                 [11]int64
}

// expected computes gold from silver rows independently of the stage: per
// row, per column, straight from the definitions in the column docs.
func expected(rows []silver.CDNRow) map[cdnKey]goldRow {
	bounds := []float64{5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000}
	out := map[cdnKey]goldRow{}
	for _, r := range rows {
		k := cdnKey{window: r.LogTime.Truncate(time.Minute).UnixMicro(), edge: r.EdgeLocation, pop: r.POP,
			result: r.EdgeResult, country: r.Client.Country, isp: r.Client.ISP}
		g := out[k]
		g.requests++
		if r.SCBytes != nil {
			g.bytes += *r.SCBytes
		}
		if r.CacheHit {
			g.hits++
		}
		if r.Error {
			g.errors++
		}
		if r.Status != nil {
			s := *r.Status
			if s == 0 {
				g.status000++
			}
			if s/100 == 4 {
				g.status4xx++
			}
			if s/100 == 5 {
				g.status5xx++
			}
		}
		if r.TimeTaken != nil {
			g.timeTakenSum += *r.TimeTaken
			g.timeTakenCount++
			for i, b := range bounds {
				if *r.TimeTaken <= b {
					g.timeTaken[i]++
				}
			}
			g.timeTaken[10]++
		}
		if r.TTFB != nil {
			g.ttfbSum += *r.TTFB
			g.ttfbCount++
			for i, b := range bounds {
				if *r.TTFB <= b {
					g.ttfb[i]++
				}
			}
			g.ttfb[10]++
		}
		out[k] = g
	}
	return out
}

// readGold reads the whole gold table; a key seen twice fails the test.
func readGold(t testing.TB, e env) map[cdnKey]goldRow {
	t.Helper()
	ctx := context.Background()
	if _, err := e.gold.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	out := map[cdnKey]goldRow{}
	err := e.gold.Scan(ctx, lake.ScanOptions{}, func(r arrow.RecordBatch) error {
		i64 := func(name string) *array.Int64 { return column[*array.Int64](r, name) }
		f64 := func(name string) *array.Float64 { return column[*array.Float64](r, name) }
		ws := column[*array.Timestamp](r, "window_start")
		strs := map[string]*array.String{}
		for _, d := range CDNDimensions {
			strs[d] = column[*array.String](r, d)
		}
		for i := range int(r.NumRows()) {
			k := cdnKey{window: int64(ws.Value(i)), edge: valueOf(strs["edge_location"], i), pop: valueOf(strs["pop"], i),
				result: valueOf(strs["edge_result_type"], i), country: valueOf(strs["country"], i), isp: valueOf(strs["isp"], i)}
			k.edge, k.pop, k.result, k.country, k.isp = clone(k.edge), clone(k.pop), clone(k.result), clone(k.country), clone(k.isp)
			if _, dup := out[k]; dup {
				t.Errorf("gold holds %+v twice", k)
			}
			g := goldRow{
				requests: i64("requests").Value(i), bytes: i64("bytes").Value(i),
				hits: i64("cache_hits").Value(i), errors: i64("errors").Value(i),
				status4xx: i64("status_4xx").Value(i), status5xx: i64("status_5xx").Value(i), status000: i64("status_000").Value(i),
				timeTakenSum: f64("time_taken_ms_sum").Value(i), timeTakenCount: i64("time_taken_ms_count").Value(i),
				ttfbSum: f64("ttfb_ms_sum").Value(i), ttfbCount: i64("ttfb_ms_count").Value(i),
			}
			for j, c := range BucketColumns("time_taken") {
				g.timeTaken[j] = i64(c).Value(i)
			}
			for j, c := range BucketColumns("ttfb") {
				g.ttfb[j] = i64(c).Value(i)
			}
			out[k] = g
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func clone(s string) string { return string([]byte(s)) }

func assertGold(t testing.TB, got, want map[cdnKey]goldRow) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("gold lacks %+v", k)
		} else if g != w {
			t.Errorf("gold %+v:\n got %+v\nwant %+v", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("gold has unexpected %+v: %+v", k, got[k])
		}
	}
}

func minutes(from time.Time, n int) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = from.Add(time.Duration(i) * time.Minute)
	}
	return out
}

func drain(t testing.TB, e env) {
	t.Helper()
	if err := e.stage.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestCDNStageAggregates checks every gold value against an independent
// computation from the input rows, over several windows, edges and silver
// commits (MaxRows makes the stage take several increments, some sharing
// windows).
func TestCDNStageAggregates(t *testing.T) {
	e := open(t, t.TempDir())
	r := rand.New(rand.NewPCG(1, 2))
	var all []silver.CDNRow
	for range 4 {
		rows := genRows(r, 300, minutes(base, 5)...)
		commitSilver(t, e, rows)
		all = append(all, rows...)
	}
	drain(t, e)
	want := expected(all)
	if len(want) < 100 {
		t.Fatalf("test data too uniform: %d groups", len(want))
	}
	assertGold(t, readGold(t, e), want)

	// Gold's position is silver's current snapshot; nothing is left to do.
	cp, err := e.gold.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cp[lake.UpstreamKey(e.silver.Name())], e.silver.Position().String(); got != want {
		t.Fatalf("gold upstream position %q, want silver's %q", got, want)
	}
	if _, err := e.stage.RunOnce(context.Background()); !errors.Is(err, lake.ErrNoChange) {
		t.Fatalf("RunOnce after drain: %v, want ErrNoChange", err)
	}
}

// TestCDNStageLateData commits rows for a window three hours back after
// the later windows are done: only that window's gold rows change, in one
// snapshot, and gold equals an on-time computation in a fresh lake.
func TestCDNStageLateData(t *testing.T) {
	e := open(t, t.TempDir())
	r := rand.New(rand.NewPCG(3, 4))
	old := base.Add(-3 * time.Hour)
	onTime := slices.Concat(genRows(r, 200, old), genRows(r, 400, minutes(base, 4)...))
	commitSilver(t, e, onTime)
	drain(t, e)
	before := readGold(t, e)
	goldAt := e.gold.Position()

	late := genRows(r, 150, old)
	commitSilver(t, e, late)
	drain(t, e)
	after := readGold(t, e)

	changes, err := e.gold.Changes(context.Background(), goldAt)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Operation != "overwrite" {
		t.Fatalf("late data made %d gold snapshots (%+v), want one overwrite", len(changes), changes)
	}
	oldW := old.UnixMicro()
	changed := 0
	for k, g := range after {
		if k.window != oldW {
			if before[k] != g {
				t.Errorf("window %v not touched by late data changed: %+v -> %+v", time.UnixMicro(k.window).UTC(), before[k], g)
			}
		} else if before[k] != g {
			changed++
		}
	}
	if changed == 0 {
		t.Fatal("late data changed no row of its window")
	}
	for k := range before {
		if _, ok := after[k]; !ok && k.window != oldW {
			t.Errorf("row %+v disappeared", k)
		}
	}

	// The same rows all on time, in a fresh lake.
	fresh := open(t, t.TempDir())
	commitSilver(t, fresh, slices.Concat(onTime, late))
	drain(t, fresh)
	assertGold(t, after, readGold(t, fresh))
	assertGold(t, after, expected(slices.Concat(onTime, late)))
}

// TestCDNStageCrash stops the stage between reading and committing, and
// after committing before it learnt the outcome: the next run gives what an
// uninterrupted run gives, nothing doubled.
func TestCDNStageCrash(t *testing.T) {
	ctx := context.Background()
	e := open(t, t.TempDir())
	r := rand.New(rand.NewPCG(5, 6))
	first := genRows(r, 400, minutes(base, 3)...)
	commitSilver(t, e, first)

	// Read and recomputed, then the process dies: nothing written.
	if _, err := e.stage.plan(ctx); err != nil {
		t.Fatal(err)
	}
	if e.gold.Position() != (lake.SnapshotPos{}) {
		t.Fatal("plan wrote to gold")
	}
	// A context cancelled mid-run fails the run and writes nothing.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.stage.RunOnce(cancelled); err == nil {
		t.Fatal("RunOnce with a cancelled context succeeded")
	}
	if _, err := e.gold.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if e.gold.Position() != (lake.SnapshotPos{}) {
		t.Fatal("a cancelled run wrote to gold")
	}
	drain(t, e)

	// Committed, but the process died before it knew: the restart plans
	// the same increment and commits it again.
	second := genRows(r, 300, minutes(base.Add(2*time.Minute), 3)...)
	commitSilver(t, e, second)
	p, err := e.stage.plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.stage.commit(ctx, p); err != nil {
		t.Fatal(err)
	}
	landed := e.gold.Position()
	if err := e.stage.commit(ctx, p); err != nil {
		t.Fatalf("committing the same increment again: %v", err)
	}
	if _, err := e.gold.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if e.gold.Position() != landed {
		t.Fatal("the same increment committed twice made a second snapshot")
	}
	// A plan made before another process moved on is refused.
	third := genRows(r, 100, base)
	commitSilver(t, e, third)
	stale, err := e.stage.plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	commitSilver(t, e, genRows(r, 0, base)) // an empty append: a new silver snapshot
	other := open(t, e.dir)
	drain(t, other)
	if err := e.stage.commit(ctx, stale); !errors.Is(err, lake.ErrCheckpointMoved) {
		t.Fatalf("stale plan committed: %v, want ErrCheckpointMoved", err)
	}
	drain(t, e)

	want := expected(slices.Concat(first, second, third))
	assertGold(t, readGold(t, e), want)

	uninterrupted := open(t, t.TempDir())
	commitSilver(t, uninterrupted, first)
	commitSilver(t, uninterrupted, second)
	commitSilver(t, uninterrupted, third)
	drain(t, uninterrupted)
	assertGold(t, readGold(t, e), readGold(t, uninterrupted))
}

// TestCDNStageConcurrent drains with two processes (two catalog
// connections on one lake) at once, while silver grows: gold equals a
// single-stage run. Their increments are bounded differently, so one often
// finds the position moved to where it did not plan, and starts over.
func TestCDNStageConcurrent(t *testing.T) {
	dir := t.TempDir()
	a, b := open(t, dir), open(t, dir)
	a.stage.MaxRows, b.stage.MaxRows = 200, 350
	r := rand.New(rand.NewPCG(7, 8))
	var all []silver.CDNRow
	for i := range 4 {
		rows := genRows(r, 150, minutes(base.Add(time.Duration(i)*time.Minute), 3)...)
		commitSilver(t, a, rows)
		all = append(all, rows...)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, e := range []env{a, b} {
		wg.Go(func() { errs[i] = e.stage.Drain(context.Background()) })
	}
	// More silver while they run; the final drains pick up what is left.
	for i := range 2 {
		rows := genRows(r, 100, minutes(base.Add(time.Duration(i)*time.Minute), 2)...)
		commitSilver(t, b, rows)
		all = append(all, rows...)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	drain(t, a)
	drain(t, b)

	single := open(t, t.TempDir())
	commitSilver(t, single, all)
	drain(t, single)
	got := readGold(t, a)
	assertGold(t, got, readGold(t, single))
	assertGold(t, got, expected(all))
	if n := len(slices.Collect(maps.Keys(got))); n == 0 {
		t.Fatal("gold is empty")
	}
}
