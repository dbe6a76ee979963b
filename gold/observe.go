package gold

import "time"

// Update is what one gold commit did: the figures the gold metrics, the
// updates topic and the benchmarks are made of.
type Update struct {
	Table string
	// Windows are the one-minute windows whose rows the commit replaced.
	Windows []time.Time
	// Rows are the gold rows it wrote.
	Rows int64
	// Increment are the new silver rows it consumed; Scanned the silver
	// rows it read to recompute the windows those touched (Increment plus
	// the rows already in those windows). Scanned / the silver table's
	// size is the share of silver a late batch costs, against 1 for a full
	// recompute.
	Increment, Scanned int64
	// Took is the time from reading the increment to the commit landing.
	Took time.Duration
}

// Observer is told of each gold commit that replaced windows.
type Observer interface {
	GoldCommitted(Update)
}
