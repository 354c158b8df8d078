package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// The chart plots the paired ratios, the ones the targets are judged on,
// each as its median over the runs with the confidence interval of that
// median as a bar, on an axis around 1.00 fine enough to see 1%. It is
// written as SVG directly: a few lines, text and circles.

// series is one measure plotted in every row of a panel.
type series struct {
	label  string // beside each point, on the left
	base   string // the pairing, the first part of the case: "base=bare"
	unit   string // "ratio" (time) or "cpu-ratio"
	color  string
	hollow bool
}

// panel is one benchmark's rows of points, with its target.
type panel struct {
	title  string
	bench  string
	rows   []string // the cases, without the pairing
	label  func(string) string
	series []series
	// The target: ratios in [lo, hi] meet it. The axis is shaded outside.
	lo, hi      float64
	targetLabel string
}

const (
	colorSecure = "#1f4fa8"
	colorOther  = "#777777"
	colorTarget = "#c0392b"
	colorMiss   = "#fbeaea"
)

// chartPanels lists the panels the data in d can fill.
func chartPanels(d *results) []panel {
	get := panel{
		title: "Keep-alive GET: securehttp ÷ bare net/http, paired",
		bench: benchPaired,
		rows:  pairedRows(d, benchPaired, "base="+limit),
		label: getCaseLabel,
		series: []series{
			{"time ÷ bare", "base=" + limit, "ratio", colorSecure, false},
			{"CPU time ÷ bare", "base=" + limit, "cpu-ratio", colorSecure, true},
			{"time ÷ bare sending the same token", "base=bare-token", "ratio", colorOther, false},
		},
		lo: math.Inf(-1), hi: targetTimeRatio,
		targetLabel: fmt.Sprintf("target: time ≤ %.2f × bare", targetTimeRatio),
	}
	hs := panel{
		title: "New-connection handshake, paired",
		bench: benchHSPaired,
		rows:  pairedRows(d, benchHSPaired, "base=nopins"),
		label: func(c string) string { return strings.TrimPrefix(c, "handshake=") + " handshake" },
		series: []series{
			{"time, with pins ÷ without", "base=nopins", "ratio", colorSecure, false},
			{"CPU time, with pins ÷ without", "base=nopins", "cpu-ratio", colorSecure, true},
			{"time, securehttp ÷ bare", "base=" + limit, "ratio", colorOther, false},
		},
		lo: 1 - targetPinsApart, hi: 1 + targetPinsApart,
		targetLabel: fmt.Sprintf("target: with pins within ±%.0f%% of without", targetPinsApart*100),
	}
	var out []panel
	for _, p := range []panel{get, hs} {
		if len(p.rows) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// pairedRows returns the cases of a paired benchmark measured with the
// given pairing, without it: "proto=h1/conc=1" of "base=bare/proto=h1/conc=1".
func pairedRows(d *results, bench, base string) []string {
	var rows []string
	for _, cas := range d.cases[bench] {
		if rest, ok := strings.CutPrefix(cas, base+"/"); ok {
			rows = append(rows, rest)
		}
	}
	return rows
}

// Layout, in pixels.
const (
	chartWidth = 980
	labelX     = 16  // left edge of the labels
	plotX0     = 270 // the axis
	plotX1     = 770
	valueX     = 782 // left edge of the figures
	titleH     = 84
	headH      = 50 // a panel's title and target
	rowLabelH  = 20
	subRowH    = 17
	rowGap     = 8
	axisH      = 48
	panelGap   = 18
	footH      = 40
)

// axisRange returns an axis around 1.00 that holds every point, interval
// and target line, and a tick step that keeps 1% visible.
func axisRange(d *results, panels []panel) (lo, hi, step float64) {
	lo, hi = 1-targetPinsApart, targetTimeRatio
	for _, p := range panels {
		for _, r := range p.rows {
			for _, s := range p.series {
				iv, ok := d.interval(p.bench, s.base+"/"+r, "", s.unit)
				if !ok {
					continue
				}
				lo, hi = math.Min(lo, iv.center), math.Max(hi, iv.center)
				if iv.bounded() {
					lo, hi = math.Min(lo, iv.lo), math.Max(hi, iv.hi)
				}
			}
		}
	}
	// Beyond these, a point is drawn at the edge with an arrow: a
	// wild outlier must not squeeze the rest into a few pixels.
	lo, hi = math.Max(lo-0.005, 0.5), math.Min(hi+0.005, 2)
	switch span := hi - lo; {
	case span <= 0.16:
		step = 0.01
	case span <= 0.32:
		step = 0.02
	case span <= 0.8:
		step = 0.05
	default:
		step = 0.1
	}
	lo = math.Floor(lo/step+1e-9) * step
	hi = math.Ceil(hi/step-1e-9) * step
	return lo, hi, step
}

// writeChart writes the chart of the paired ratios as SVG. about, when set,
// names the run under the title.
func writeChart(path string, d *results, about string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := drawChart(f, d, about); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func drawChart(w io.Writer, d *results, about string) error {
	panels := chartPanels(d)
	lo, hi, step := axisRange(d, panels)
	xOf := func(v float64) float64 {
		v = math.Max(lo, math.Min(hi, v))
		return plotX0 + (v-lo)/(hi-lo)*(plotX1-plotX0)
	}

	height := titleH + footH
	for _, p := range panels {
		height += headH + len(p.rows)*(rowLabelH+len(p.series)*subRowH+rowGap) + axisH + panelGap
	}
	if len(panels) == 0 {
		height += 40
	}

	bw := bufio.NewWriter(w)
	e := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	e(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-size="13">`+"\n",
		chartWidth, height, chartWidth, height)
	e(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	runs := max(d.runs(benchPaired), d.runs(benchHSPaired))
	e(`<text x="%d" y="26" font-size="17" font-weight="bold">%s</text>`+"\n", labelX,
		esc(fmt.Sprintf("securehttp paired with another client: median of %d runs, bar = %.0f%% confidence interval", runs, confidence*100)))
	e(`<text x="%d" y="48" fill="#444">%s</text>`+"\n", labelX,
		esc("1.00: as fast as the client it is paired with; 1.03: 3% slower; lower is faster."))
	if about != "" {
		e(`<text x="%d" y="68" font-size="12" fill="#444">%s</text>`+"\n", labelX, esc("Measured "+about+"."))
	}
	if len(panels) == 0 {
		e(`<text x="%d" y="%d">No paired benchmark in the data.</text>`+"\n", labelX, titleH+20)
	}

	y := titleH
	for _, p := range panels {
		e(`<text x="%d" y="%d" font-size="15" font-weight="bold">%s</text>`+"\n", labelX, y+22, esc(p.title))
		e(`<text x="%d" y="%d" font-size="12" fill="%s">%s</text>`+"\n", labelX, y+40, colorTarget, esc(p.targetLabel+" (dashed line; shaded: missed)"))
		top := y + headH
		bottom := top + len(p.rows)*(rowLabelH+len(p.series)*subRowH+rowGap)

		// The region that misses the target, then the grid over it.
		if p.lo > lo {
			e(`<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", xOf(lo), top, xOf(p.lo)-xOf(lo), bottom-top, colorMiss)
		}
		if p.hi < hi {
			e(`<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", xOf(p.hi), top, xOf(hi)-xOf(p.hi), bottom-top, colorMiss)
		}
		for i := 0; ; i++ {
			v := lo + float64(i)*step
			if v > hi+step/2 {
				break
			}
			x := xOf(v)
			stroke, width := "#e2e2e2", 1.0
			if math.Abs(v-1) < step/2 {
				stroke, width = "#333", 1.5
			}
			e(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="%.1f"/>`+"\n", x, top, x, bottom+4, stroke, width)
			e(`<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%.2f</text>`+"\n", x, bottom+18, v)
		}
		for _, t := range []float64{p.lo, p.hi} {
			if !math.IsInf(t, 0) && t >= lo && t <= hi {
				e(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1.5" stroke-dasharray="5,3"/>`+"\n",
					xOf(t), top, xOf(t), bottom, colorTarget)
			}
		}
		e(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", plotX0, bottom+4, plotX1, bottom+4)
		e(`<text x="%d" y="%d" font-size="12" fill="#444" text-anchor="middle">ratio to the paired client</text>`+"\n",
			(plotX0+plotX1)/2, bottom+36)

		ry := top
		for _, r := range p.rows {
			e(`<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", labelX, ry+15, esc(p.label(r)))
			sy := ry + rowLabelH
			for _, s := range p.series {
				cy := float64(sy) + subRowH/2
				e(`<text x="%d" y="%.1f" font-size="12" fill="%s">%s</text>`+"\n", labelX+12, cy+4, s.color, esc(s.label))
				iv, ok := d.interval(p.bench, s.base+"/"+r, "", s.unit)
				if !ok {
					e(`<text x="%d" y="%.1f" font-size="12" fill="#999">not measured</text>`+"\n", valueX, cy+4)
					sy += subRowH
					continue
				}
				drawPoint(e, iv, s, cy, xOf, lo, hi)
				label := fmt.Sprintf("%.3f [%.3f, %.3f]", iv.center, iv.lo, iv.hi)
				if !iv.bounded() {
					label = fmt.Sprintf("%.3f (no CI: %d runs)", iv.center, iv.n)
				}
				e(`<text x="%d" y="%.1f" font-size="12" fill="%s">%s</text>`+"\n", valueX, cy+4, s.color, esc(label))
				sy += subRowH
			}
			ry += rowLabelH + len(p.series)*subRowH + rowGap
		}
		y = bottom + axisH + panelGap
	}
	e(`<text x="%d" y="%d" font-size="11" fill="#444">%s</text>`+"\n", labelX, height-22, esc(
		"Each run alternates the two clients in blocks of requests (ABBA order), so that load from elsewhere falls on both alike."))
	e(`<text x="%d" y="%d" font-size="11" fill="#444">%s</text>`+"\n", labelX, height-8, esc(
		"Intervals as benchstat computes them (order statistics of the runs); fewer than 6 runs give none. Figures on the right: median [interval]."))
	e("</svg>\n")
	return bw.Flush()
}

// drawPoint draws one median and its interval; a point or bar end off the
// axis is drawn at its edge, with an arrow.
func drawPoint(e func(string, ...any), iv interval, s series, cy float64, xOf func(float64) float64, lo, hi float64) {
	if iv.bounded() {
		x0, x1 := xOf(iv.lo), xOf(iv.hi)
		e(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", x0, cy, x1, cy, s.color)
		for _, x := range []float64{x0, x1} {
			e(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", x, cy-5, x, cy+5, s.color)
		}
		if iv.lo < lo {
			arrow(e, x0, cy, -1, s.color)
		}
		if iv.hi > hi {
			arrow(e, x1, cy, 1, s.color)
		}
	}
	x := xOf(iv.center)
	fill := s.color
	if s.hollow {
		fill = "white"
	}
	e(`<circle cx="%.1f" cy="%.1f" r="4.5" fill="%s" stroke="%s" stroke-width="2"/>`+"\n", x, cy, fill, s.color)
	if iv.center < lo || iv.center > hi {
		arrow(e, x, cy, math.Copysign(1, iv.center-lo), s.color)
	}
}

// arrow marks a value beyond the axis: dir is -1 for the left edge, 1 for
// the right.
func arrow(e func(string, ...any), x, cy, dir float64, color string) {
	e(`<path d="M%.1f %.1f L%.1f %.1f L%.1f %.1f Z" fill="%s"/>`+"\n",
		x+dir*9, cy, x+dir*2, cy-5, x+dir*2, cy+5, color)
}

var svgEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")

func esc(s string) string { return svgEscaper.Replace(s) }
