package gold

import "math"

// Quantile estimates the q-quantile (0 <= q <= 1) of a latency histogram
// from its cumulative buckets, one per LatencyBounds entry followed by the
// +inf bucket (the time_taken_le_* or ttfb_le_* columns, summed over any
// number of rows first). As Prometheus' histogram_quantile, it interpolates
// linearly inside the bucket the rank falls in, taking 0 as the lower bound
// of the first bucket; a rank in the +inf bucket returns the highest finite
// bound (the estimate is "at least that"). It returns NaN for an empty
// histogram, a q outside [0, 1] or a bucket count that does not match
// LatencyBounds.
func Quantile(buckets []int64, q float64) float64 {
	return quantileOf(LatencyBounds[:], buckets, q)
}

// quantileOf is Quantile over any ascending finite bounds: buckets holds one
// cumulative count per bound followed by the +inf bucket.
func quantileOf(bounds []float64, buckets []int64, q float64) float64 {
	if len(buckets) != len(bounds)+1 || q < 0 || q > 1 || math.IsNaN(q) {
		return math.NaN()
	}
	total := buckets[len(buckets)-1]
	if total <= 0 {
		return math.NaN()
	}
	rank := q * float64(total)
	var lower float64
	var below int64
	for i, bound := range bounds {
		n := buckets[i]
		if float64(n) >= rank && n > below {
			return lower + (bound-lower)*(rank-float64(below))/float64(n-below)
		}
		lower, below = bound, max(below, n)
	}
	return bounds[len(bounds)-1]
}
