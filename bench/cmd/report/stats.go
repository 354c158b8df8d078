package main

import (
	"fmt"
	"math"

	"golang.org/x/perf/benchmath"
)

// confidence is the level of every interval the report shows: the one
// benchstat uses.
const confidence = 0.95

// interval is the median of one measure over the runs, with its confidence
// interval, computed as benchstat computes it (no assumption about the
// distribution: the interval is a pair of order statistics). With fewer than
// 6 runs there are too few for a 95% interval, and lo and hi are infinite.
type interval struct {
	center, lo, hi float64
	n              int
	conf           float64 // the interval's actual level, at least confidence
}

// interval returns the median and confidence interval of one measure, and
// false when it was not measured.
func (d *results) interval(bench, cas, client, unit string) (interval, bool) {
	v := d.get(bench, cas, client, unit)
	if len(v) == 0 {
		return interval{}, false
	}
	// NewSample sorts in place: the runs keep their order in d.
	s := benchmath.AssumeNothing.Summary(benchmath.NewSample(append([]float64(nil), v...), &benchmath.DefaultThresholds), confidence)
	return interval{center: s.Center, lo: s.Lo, hi: s.Hi, n: len(v), conf: s.Confidence}, true
}

// bounded reports whether there were runs enough for an interval.
func (iv interval) bounded() bool { return !math.IsInf(iv.lo, 0) && !math.IsInf(iv.hi, 0) }

// times is the median and interval of a ratio: "1.038 × (95% CI
// 1.022–1.043)".
func (iv interval) times() string {
	if !iv.bounded() {
		return fmt.Sprintf("%.3f × (%d runs: too few for a %.0f%% CI)", iv.center, iv.n, confidence*100)
	}
	return fmt.Sprintf("%.3f × (%.0f%% CI %.3f–%.3f)", iv.center, confidence*100, iv.lo, iv.hi)
}

// pct is String for a ratio shown as a percentage difference: "+1.4% (95%
// CI +0.4% to +2.0%)".
func (iv interval) pct() string {
	c := (iv.center - 1) * 100
	if !iv.bounded() {
		return fmt.Sprintf("%+.1f%% (%d runs: too few for a %.0f%% CI)", c, iv.n, confidence*100)
	}
	return fmt.Sprintf("%+.1f%% (%.0f%% CI %+.1f%% to %+.1f%%)", c, confidence*100, (iv.lo-1)*100, (iv.hi-1)*100)
}
