package gold

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

type updates []Update

func (u *updates) GoldCommitted(x Update) { *u = append(*u, x) }

// TestLateBatchReadsOnlyItsWindows checks what a stage reports of a late
// batch: it replaced only the late rows' minute and read only that minute's
// silver rows, not the table.
func TestLateBatchReadsOnlyItsWindows(t *testing.T) {
	e := open(t, t.TempDir())
	r := rand.New(rand.NewPCG(7, 7))
	ms := minutes(base, 10)
	var seen updates
	e.stage.Observer = &seen
	for _, m := range ms {
		commitSilver(t, e, genRows(r, 10, m))
	}
	drain(t, e)
	seen = nil

	late := genRows(r, 5, ms[3])
	commitSilver(t, e, late)
	drain(t, e)
	if len(seen) != 1 {
		t.Fatalf("late batch made %d gold commits, want 1: %+v", len(seen), seen)
	}
	u := seen[0]
	if !slices.Equal(u.Windows, []time.Time{ms[3]}) || u.Increment != 5 || u.Scanned != 15 || u.Table != "gold.cdn_minute" {
		t.Errorf("late batch update = %+v, want window %s, 5 new rows, 15 read", u, ms[3])
	}
}
