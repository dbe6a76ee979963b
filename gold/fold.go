package gold

import (
	"cmp"
	"maps"
	"slices"
)

// Other is the value a dimension takes in the row that sums its long tail:
// in each one-minute window, the values of a dimension beyond its limit
// (ranked by the window's volume: requests for gold.cdn_minute, events for
// gold.player_minute) are folded into one "other" row. It keeps a gold
// table's rows per minute bounded by the limits, not by how many distinct
// ISPs, videos or app versions the traffic happens to hold.
//
// The cut is made per window, so a small value that ranks inside the limit
// in a quiet minute and outside it in a busy one is counted under its own
// name in the first and under "other" in the second: its sum over an hour is
// then a lower bound, while every total over all values stays exact. Null
// (unknown) is never folded; it is not a value.
const Other = "other"

// DimensionLimits are how many distinct values of each gold dimension one
// minute keeps before folding the rest into Other; a dimension not listed
// is never folded. They are sized so that what a NOC ranks (the worst
// edges, ISPs, videos) is well inside: CloudFront has about 600 edge
// locations, and an alert on a smaller ISP or video would fail its
// minimum volume anyway.
var DimensionLimits = map[string]int{
	"edge_location":   600,
	"pop":             600,
	"country":         100,
	"isp":             100,
	"video_id":        500,
	"connection_type": 20,
	"app_type":        20,
	"app_version":     30,
	"device_type":     30,
	"os":              30,
	"browser":         30,
}

// foldDim is one foldable string field of a group key.
type foldDim[K any] struct {
	name  string
	field func(*K) *string
}

// foldTails folds, per window and per dimension, the values beyond the
// dimension's limit into Other, merging the groups that become equal. It is
// deterministic for a given set of groups (ties rank by value), so a
// recomputed window folds the same way.
func foldTails[K comparable, A any](groups map[K]*A, dims []foldDim[K], limits map[string]int,
	window func(K) int64, volume func(*A) int64, merge func(into, from *A)) map[K]*A {
	for _, d := range dims {
		limit := limits[d.name]
		if limit <= 0 {
			continue
		}
		vol := map[int64]map[string]int64{}
		for k, a := range groups {
			v := *d.field(&k)
			if v == "" {
				continue
			}
			w := window(k)
			if vol[w] == nil {
				vol[w] = map[string]int64{}
			}
			vol[w][v] += volume(a)
		}
		fold := map[int64]map[string]bool{}
		for w, byValue := range vol {
			if len(byValue) > limit {
				fold[w] = tail(byValue, limit)
			}
		}
		if len(fold) == 0 {
			continue
		}
		out := make(map[K]*A, len(groups))
		for k, a := range groups {
			if f := d.field(&k); fold[window(k)][*f] {
				*f = Other
			}
			if into := out[k]; into != nil {
				merge(into, a)
			} else {
				out[k] = a
			}
		}
		groups = out
	}
	return groups
}

// tail returns the values that rank below the first limit by volume, then
// by value.
func tail(byValue map[string]int64, limit int) map[string]bool {
	ranked := slices.SortedFunc(maps.Keys(byValue), func(a, b string) int {
		return cmp.Or(cmp.Compare(byValue[b], byValue[a]), cmp.Compare(a, b))
	})
	out := make(map[string]bool, len(ranked)-limit)
	for _, v := range ranked[limit:] {
		out[v] = true
	}
	return out
}
