package silver

import (
	"testing"
	"time"
)

func key(i int) [16]byte { return [16]byte{byte(i), byte(i >> 8), 1} }

func TestDedupHoldsAnIncrementApartUntilItsCommit(t *testing.T) {
	d := newDedup(time.Hour, 0, 0)
	d.begin()
	if !d.add(key(1), 100) || d.add(key(1), 100) {
		t.Fatal("within an increment: first copy new, second a duplicate")
	}
	d.abort()
	d.begin()
	if !d.add(key(1), 100) {
		t.Error("an aborted increment's id is remembered")
	}
	d.commit()
	d.begin()
	if d.add(key(1), 100) {
		t.Error("a committed id is not remembered")
	}
	d.abort()
}

// Past its bound the set forgets the oldest ids first and counts them; the
// newest are still caught.
func TestDedupBoundEvictsOldestFirst(t *testing.T) {
	d := newDedup(time.Hour, 0, 10)
	base := time.Now().UnixMicro()
	d.begin()
	for i := range 25 {
		d.add(key(i), base+int64(i))
	}
	d.commit()
	d.prune()
	if len(d.seen) > 10 {
		t.Fatalf("%d ids held, bound 10", len(d.seen))
	}
	if n := d.takeEvicted(); n < 15 {
		t.Errorf("evicted %d, want at least 15 counted", n)
	}
	d.begin()
	defer d.abort()
	if d.add(key(24), base+24) {
		t.Error("the newest id was evicted")
	}
	if !d.add(key(0), base) {
		t.Error("the oldest id was kept past the bound")
	}
}

// Ids are ranked by their capped time: a device clock 20 h fast cannot set
// the eviction floor in the future (found in review).
func TestEvictionFloorIgnoresFastClocks(t *testing.T) {
	d := newDedup(time.Hour, 0, 10)
	base := time.Now().UnixMicro()
	d.begin()
	for i := range 9 {
		d.add(key(1000+i), base) // 20 h fast, capped at its ingest time
	}
	for i := range 20 {
		d.add(key(i), base+int64(i))
	}
	d.commit()
	d.prune()
	d.begin()
	d.add(key(500), base+100)
	d.commit()
	d.prune()
	d.begin()
	defer d.abort()
	if d.add(key(500), base+100) {
		t.Error("a redelivered current event passed")
	}
}
