package benchload

import (
	"math"
	"math/bits"
	"time"
)

// subBucketBits sets the histogram's precision: every power of two is split
// into 2^subBucketBits equal buckets, so a recorded value is known to within
// 1/64 (about 1.6%) of itself. Values below 64 ns are kept exactly.
const subBucketBits = 6

const (
	subBuckets = 1 << subBucketBits
	// histogramBuckets covers every int64: values below subBuckets get one
	// bucket each, and each of the remaining 63-subBucketBits powers of two
	// gets subBuckets buckets.
	histogramBuckets = subBuckets + (63-subBucketBits)*subBuckets
)

// Histogram records latencies in log-linear buckets: recording is an index
// computation and an increment, and the memory is fixed (about 30 KiB), so
// every client can keep its own without locks and the results are merged at
// the end. The zero value is empty and ready to use. A Histogram is not safe
// for concurrent use.
type Histogram struct {
	counts [histogramBuckets]uint64
	total  uint64
	min    int64
	max    int64
	sum    float64
}

// bucketOf returns the bucket that holds v, which must not be negative.
func bucketOf(v int64) int {
	if v < subBuckets {
		return int(v)
	}
	// shift keeps the top subBucketBits+1 bits of v: v>>shift is in
	// [subBuckets, 2*subBuckets).
	shift := bits.Len64(uint64(v)) - subBucketBits - 1
	return subBuckets + shift*subBuckets + int(v>>shift) - subBuckets
}

// bucketBounds returns the smallest value bucket b holds and the smallest
// value it does not.
func bucketBounds(b int) (low, high int64) {
	if b < subBuckets {
		return int64(b), int64(b) + 1
	}
	shift := (b - subBuckets) / subBuckets
	top := int64(subBuckets + (b-subBuckets)%subBuckets)
	low = top << shift
	return low, low + int64(1)<<shift
}

// Record adds one observation. A negative duration (a clock step) counts
// as zero.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += float64(v)
}

// Merge adds every observation of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.total += o.total
	h.sum += o.sum
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.total }

// Max returns the largest observation exactly, or 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Min returns the smallest observation exactly, or 0 when empty.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Mean returns the exact mean of the observations, or 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.total))
}

// Quantile returns the q-quantile (q in [0, 1]) of the observations: the
// smallest value v such that at least a fraction q of them are ≤ v, to the
// precision of a bucket (the middle of its bucket, kept within the observed
// minimum and maximum). It returns 0 when the histogram is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	if math.IsNaN(q) || q <= 0 {
		return time.Duration(h.min)
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen < rank {
			continue
		}
		low, high := bucketBounds(b)
		mid := low + (high-low-1)/2
		return time.Duration(min(max(mid, h.min), h.max))
	}
	return time.Duration(h.max)
}
