package main

import (
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A large CloudFront object is committed in many small batches while silver
// moves what lands. The real binary is stopped by SIGTERM (graceful) and by
// SIGKILL (no cleanup) at random points, mid-object and mid-increment, and
// restarted; in the end bronze holds every line of the object once and
// every player event once, silver every bronze row once, and gold counts
// every silver request once.
func TestSignalsMidLargeObjectAndMidSilverLoseNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	s := newStack(t, "QOSLAKE_BATCH_MAX_ROWS", "1000", "QOSLAKE_SILVER_EVERY", "100ms")
	bin := builtBinary(t)
	const n = 60_000
	var b strings.Builder
	b.WriteString(logHeader)
	for i := range n {
		b.WriteString(logLine(i))
	}
	s.putObject("big.log.gz", gz(t, b.String()))
	sum := s.simulate("--rate", "200", "--duration", "5s", "--seed", "77")

	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 3))
	t.Logf("random seed %d", seed)
	for i, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL, syscall.SIGTERM, syscall.SIGKILL} {
		cmd, stderr := s.startBinary(bin, "run", "--http-addr", "127.0.0.1:0")
		time.Sleep(time.Duration(800+rng.IntN(1500)) * time.Millisecond)
		_ = cmd.Process.Signal(sig)
		err := cmd.Wait()
		if sig == syscall.SIGTERM && err != nil {
			t.Errorf("round %d: SIGTERM: %v\n%s", i, err, stderr.String())
		}
		if strings.Contains(stderr.String(), "level=ERROR") {
			t.Errorf("round %d: run logged an error before the %s:\n%s", i, sig, stderr.String())
		}
		got := len(s.keys("bronze.cdn_logs", "line_number"))
		t.Logf("after %s: %d of %d lines in bronze", sig, got, n)
	}
	s.mustRun("run", "--once")
	s.checkExactlyOnce(sum.EventsTotal, n+sum.LogLines)

	// Silver: each bronze row once (rows are distinct, so none is a duplicate).
	for _, table := range []string{"player_events", "cdn_logs"} {
		bronzeRows := len(s.keys("bronze."+table, "ingest_time"))
		ids := s.keys("silver."+table, "event_id")
		if dup := firstDuplicate(ids); dup != "" {
			t.Errorf("silver.%s holds %s twice", table, dup)
		}
		if len(ids) != bronzeRows {
			t.Errorf("silver.%s holds %d rows, bronze %d", table, len(ids), bronzeRows)
		}
	}
	s.checkGoldMatchesSilver()
}
