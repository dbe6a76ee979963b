package gold

import (
	"math"
	"strings"
	"testing"
	"time"
)

// cumulative turns per-bucket counts into the cumulative columns gold stores.
func cumulative(counts ...int64) []int64 {
	out := make([]int64, len(counts))
	var sum int64
	for i, c := range counts {
		sum += c
		out[i] = sum
	}
	return out
}

func TestQuantile(t *testing.T) {
	//                bounds: 5 10 25 50 100 250 500 1000 2500 5000 +inf
	tests := []struct {
		name    string
		buckets []int64
		q       float64
		want    float64
	}{
		{"median inside one bucket", cumulative(0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0), 0.5, 75},
		{"p0 of first bucket is its lower bound", cumulative(4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, 0},
		{"p100 is the upper bound", cumulative(0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0), 1, 10},
		{"interpolates across buckets", cumulative(50, 50, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0.75, 7.5},
		{"skips empty buckets", cumulative(10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10), 0.5, 5},
		{"p95 in a tail", cumulative(90, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0), 0.95, 1000 + 1500*0.5},
		{"+inf bucket returns highest finite bound", cumulative(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9), 0.99, 5000},
		{"empty histogram", make([]int64, 11), 0.5, math.NaN()},
		{"wrong bucket count", []int64{1, 2}, 0.5, math.NaN()},
		{"q out of range", cumulative(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 1.5, math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Quantile(tt.buckets, tt.q)
			if math.IsNaN(tt.want) {
				if !math.IsNaN(got) {
					t.Fatalf("Quantile = %v, want NaN", got)
				}
				return
			}
			if math.Abs(got-tt.want) > 1e-9 {
				t.Fatalf("Quantile = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestQuantileOfObserved checks that the stage's histogram and Quantile
// agree: the estimate lies within the bucket of the true quantile.
func TestQuantileOfObserved(t *testing.T) {
	var h histogram
	var values []float64
	for i := range 1000 {
		v := float64(i%400) + 0.5 // uniform over [0.5, 399.5]
		values = append(values, v)
		observe(&h, v)
	}
	if h[len(h)-1] != int64(len(values)) {
		t.Fatalf("+inf bucket = %d, want %d", h[len(h)-1], len(values))
	}
	p95 := Quantile(h[:], 0.95)
	if p95 < 250 || p95 > 500 { // true p95 is about 380, in the (250, 500] bucket
		t.Fatalf("p95 = %v, want within (250, 500]", p95)
	}
	if got := BucketColumns("ttfb"); got[0] != "ttfb_le_5" || got[len(got)-1] != "ttfb_le_inf" || len(got) != len(h) {
		t.Fatalf("BucketColumns = %v", got)
	}
}

// TestWindowsFilter checks that consecutive windows make one range and
// that a range ends where its last window does.
func TestWindowsFilter(t *testing.T) {
	w := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	tests := []struct {
		name        string
		windows     []time.Time
		ranges      int
		mustContain []string
	}{
		{"none", nil, 0, []string{"AlwaysFalse"}},
		{"one run", []time.Time{w(0), w(1), w(2)}, 1, []string{"12:00:00", "12:03:00"}},
		{"three runs", []time.Time{w(-180), w(0), w(5), w(6)}, 3, []string{"09:00:00", "09:01:00", "12:01:00", "12:05:00", "12:07:00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := windowsFilter("log_time", tt.windows).String()
			if n := strings.Count(got, "GreaterThanEqual"); n != tt.ranges {
				t.Errorf("%d ranges, want %d: %s", n, tt.ranges, got)
			}
			for _, s := range tt.mustContain {
				if !strings.Contains(got, s) {
					t.Errorf("filter lacks %q: %s", s, got)
				}
			}
		})
	}
}
