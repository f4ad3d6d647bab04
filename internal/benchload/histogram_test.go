//go:build go1.25

package benchload

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHistogramBucketsCoverEveryValueInOrder(t *testing.T) {
	values := []int64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 1 << 20, (1 << 20) + 12345, 1 << 40, math.MaxInt64}
	previous := -1
	for _, v := range values {
		b := bucketOf(v)
		require.Less(t, b, histogramBuckets, "value %d", v)
		require.GreaterOrEqual(t, b, previous, "buckets must not decrease: value %d", v)
		low, high := bucketBounds(b)
		require.LessOrEqual(t, low, v, "value %d below its bucket [%d, %d)", v, low, high)
		if high > low { // the last bucket's bound overflows int64
			require.Less(t, v, high, "value %d above its bucket [%d, %d)", v, low, high)
		}
		previous = b
	}
	require.Equal(t, histogramBuckets-1, bucketOf(math.MaxInt64))
}

func TestHistogramBucketBoundsAreContiguous(t *testing.T) {
	for b := 0; b < histogramBuckets-1; b++ {
		_, high := bucketBounds(b)
		low, _ := bucketBounds(b + 1)
		require.Equal(t, high, low, "gap or overlap between buckets %d and %d", b, b+1)
		require.Equal(t, b, bucketOf(low-1), "value %d", low-1)
		require.Equal(t, b+1, bucketOf(low), "value %d", low)
	}
}

func TestHistogramEmpty(t *testing.T) {
	var h Histogram
	require.Zero(t, h.Count())
	require.Zero(t, h.Quantile(0.5))
	require.Zero(t, h.Max())
	require.Zero(t, h.Min())
	require.Zero(t, h.Mean())
}

func TestHistogramSmallValuesAreExact(t *testing.T) {
	var h Histogram
	for v := range 10 {
		h.Record(time.Duration(v))
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0, 0}, {0.1, 0}, {0.11, 1}, {0.5, 4}, {0.9, 8}, {0.95, 9}, {1, 9},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, h.Quantile(tt.q), "quantile %v", tt.q)
	}
	require.Equal(t, time.Duration(9), h.Max())
	require.Equal(t, time.Duration(0), h.Min())
	require.Equal(t, uint64(10), h.Count())
}

// TestHistogramQuantilesWithinPrecision compares the histogram with exact
// quantiles of the same random sample: every answer must be within one
// bucket's width (1/64 of the value).
func TestHistogramQuantilesWithinPrecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	samples := make([]time.Duration, 100_000)
	for i := range samples {
		// Log-uniform between 1 µs and 1 s, like latencies.
		samples[i] = time.Duration(math.Exp(rng.Float64()*math.Log(1e6)) * 1e3)
		h.Record(samples[i])
	}
	slices.Sort(samples)
	for _, q := range []float64{0.01, 0.25, 0.5, 0.9, 0.99, 0.999} {
		exact := samples[int(math.Ceil(q*float64(len(samples))))-1]
		got := h.Quantile(q)
		require.InEpsilon(t, float64(exact), float64(got), 1.0/64, "quantile %v: exact %v, histogram %v", q, exact, got)
	}
	require.Equal(t, samples[len(samples)-1], h.Max())
	require.Equal(t, samples[0], h.Min())
}

func TestHistogramMergeEqualsRecordingEverything(t *testing.T) {
	var a, b, all Histogram
	for i := range 1000 {
		d := time.Duration(i*i) * time.Microsecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var merged Histogram
	merged.Merge(&a)
	merged.Merge(&b)
	merged.Merge(&Histogram{}) // an empty one changes nothing
	require.Equal(t, all, merged)
}

func TestHistogramNegativeDurationCountsAsZero(t *testing.T) {
	var h Histogram
	h.Record(-time.Second)
	require.Equal(t, uint64(1), h.Count())
	require.Zero(t, h.Max())
	require.Zero(t, h.Quantile(1))
}
