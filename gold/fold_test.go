package gold

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/qoslake/qoslake/silver"
)

// TestLongTailsFoldIntoOther checks, on real tables, that each minute keeps
// the dimension's top values by volume, sums the rest into "other" without
// losing a request, breaks ties by name, never folds null, and leaves a
// minute within the limit alone.
func TestLongTailsFoldIntoOther(t *testing.T) {
	e := open(t, t.TempDir())
	e.stage.Limits = map[string]int{"isp": 2}
	m1, m2 := base, base.Add(time.Minute)
	var rows []silver.CDNRow
	ids := rand.New(rand.NewPCG(1, 2))
	add := func(at time.Time, isp string, n int) {
		for range n {
			r := silver.CDNRow{EventID: randID(ids), LogTime: at, EdgeLocation: "FRA56-P3", POP: "FRA", IngestTime: base}
			r.Client.ISP = isp
			rows = append(rows, r)
		}
	}
	// Minute 1: A and B are the top two; C (2) and D (2) tie beyond them
	// and fold; the two null rows stay null.
	add(m1, "A", 5)
	add(m1, "B", 3)
	add(m1, "D", 2)
	add(m1, "C", 2)
	add(m1, "", 2)
	// Minute 2 has two values: nothing to fold.
	add(m2, "D", 4)
	add(m2, "C", 1)
	commitSilver(t, e, rows)
	drain(t, e)

	got := map[[2]string]int64{}
	var total int64
	for k, g := range readGold(t, e) {
		got[[2]string{time.UnixMicro(k.window).UTC().Format("15:04"), k.isp}] += g.requests
		total += g.requests
	}
	want := map[[2]string]int64{
		{"12:00", "A"}: 5, {"12:00", "B"}: 3, {"12:00", Other}: 4, {"12:00", ""}: 2,
		{"12:01", "D"}: 4, {"12:01", "C"}: 1,
	}
	if len(got) != len(want) {
		t.Errorf("gold groups %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s isp %q: %d requests, want %d", k[0], k[1], got[k], n)
		}
	}
	if total != int64(len(rows)) {
		t.Errorf("gold counts %d requests, silver holds %d", total, len(rows))
	}
}

// TestTailTiesRankByName checks the ranking that makes folding
// deterministic when volumes tie.
func TestTailTiesRankByName(t *testing.T) {
	got := tail(map[string]int64{"b": 2, "a": 2, "c": 2, "z": 9}, 2)
	if len(got) != 2 || !got["b"] || !got["c"] {
		t.Errorf("tail = %v, want b and c folded (z, then a by name, kept)", got)
	}
}
