package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// The targets securehttp's benchmarks are held to.
const (
	targetTimeRatio   = 1.03 // keep-alive GET, securehttp ÷ bare, paired
	targetExtraAllocs = 4    // keep-alive GET, securehttp − bare
	targetPinsApart   = 0.02 // handshakes, |with pins ÷ without − 1|, paired
	targetUploadMiB   = 1.0  // allocated per 128 MiB upload
)

// The targets as the tables name them.
var (
	timeTarget       = fmt.Sprintf("keep-alive GET time/op ≤ %.2f × bare (paired)", targetTimeRatio)
	allocTarget      = fmt.Sprintf("keep-alive GET allocs/op ≤ bare + %d", targetExtraAllocs)
	pinsTarget       = fmt.Sprintf("handshake with pins within ±%.0f%% of without (paired)", targetPinsApart*100)
	uploadTarget     = fmt.Sprintf("128 MiB upload allocates < %g MiB", targetUploadMiB)
	oneRefreshTarget = "refresh stampede: 1 refresh"
	noDelayTarget    = "refresh stampede: 0 requests delayed inside the refresh window"
	allTargets       = []string{timeTarget, allocTarget, pinsTarget, uploadTarget, oneRefreshTarget, noDelayTarget}
)

// check is one target judged on one case.
type check struct {
	target   string // what is promised
	cas      string // the case, as the tables label it
	measured string // the figures that decide it
	met      bool
	// unsettled is set when the confidence interval of the deciding
	// figure lies on both sides of the line: the median decides met, but
	// this run cannot tell for sure.
	unsettled bool
}

// verdict is a check's result as the tables show it.
func (c check) verdict() string {
	v := "**missed**"
	if c.met {
		v = "met"
	}
	if c.unsettled {
		v += " (not settled: the CI crosses the line)"
	}
	return v
}

// within judges a ratio whose target is the range [lo, hi]: met when the
// median lies in it, unsettled when the interval reaches both inside and
// outside.
func within(iv interval, lo, hi float64) (met, unsettled bool) {
	met = lo <= iv.center && iv.center <= hi
	if !iv.bounded() {
		return met, false
	}
	inside := iv.lo <= hi && iv.hi >= lo
	outside := iv.lo < lo || iv.hi > hi
	return met, inside && outside
}

// checks judges every target the data in d can decide, from the data alone.
func checks(d *results) []check {
	var out []check
	// Keep-alive GET time: the paired ratio decides, since separate runs
	// of each client, one after the other, meet different loads.
	for _, cas := range pairedRows(d, benchPaired, "base="+limit) {
		pcas := "base=" + limit + "/" + cas
		iv, ok := d.interval(benchPaired, pcas, "", "ratio")
		if !ok {
			continue
		}
		measured := iv.times()
		if cpu, ok := d.interval(benchPaired, pcas, "", "cpu-ratio"); ok {
			measured += fmt.Sprintf("; CPU %.3f ×", cpu.center)
		}
		if tok, ok := d.interval(benchPaired, "base=bare-token/"+cas, "", "ratio"); ok {
			measured += fmt.Sprintf("; vs bare sending the same token %.3f ×", tok.center)
		}
		met, unsettled := within(iv, math.Inf(-1), targetTimeRatio)
		out = append(out, check{timeTarget, getCaseLabel(cas), measured, met, unsettled})
	}
	// Allocations are counted, not timed: the same in every run.
	for _, cas := range d.cases[benchGet] {
		a, ok1 := d.median(benchGet, cas, secure, "allocs/op")
		b, ok2 := d.median(benchGet, cas, limit, "allocs/op")
		if ok1 && ok2 {
			out = append(out, check{allocTarget, getCaseLabel(cas),
				fmt.Sprintf("%.0f vs %.0f (%+.0f)", a, b, a-b), a-b <= targetExtraAllocs, false})
		}
	}
	for _, cas := range d.cases[benchHSPaired] {
		hs, ok := strings.CutPrefix(cas, "base=nopins/")
		if !ok {
			continue
		}
		iv, ok := d.interval(benchHSPaired, cas, "", "ratio")
		if !ok {
			continue
		}
		measured := iv.pct()
		if cpu, ok := d.interval(benchHSPaired, cas, "", "cpu-ratio"); ok {
			measured += fmt.Sprintf("; CPU %+.1f%%", (cpu.center-1)*100)
		}
		met, unsettled := within(iv, 1-targetPinsApart, 1+targetPinsApart)
		out = append(out, check{pinsTarget, strings.TrimPrefix(hs, "handshake="), measured, met, unsettled})
	}
	// Every run must stay under the line, not only the median.
	for _, cas := range d.cases[benchUpload] {
		vals := d.get(benchUpload, cas, secure, "B/op")
		if len(vals) == 0 {
			continue
		}
		m, _ := d.median(benchUpload, cas, secure, "B/op")
		worst := slices.Max(vals)
		out = append(out, check{uploadTarget, uploadCaseLabel(cas),
			fmt.Sprintf("%s (most in %d runs: %s)", bytesLabel(m), len(vals), bytesLabel(worst)),
			worst < targetUploadMiB*mib, false})
	}
	// The stampede counts events: every run must show exactly the target.
	for _, cas := range d.cases[benchStampede] {
		ref := d.get(benchStampede, cas, "", "refreshes")
		if len(ref) == 0 {
			continue
		}
		out = append(out, check{oneRefreshTarget, stampedeLabel(cas),
			fmt.Sprintf("%s in %d runs", rangeLabel(ref), len(ref)),
			slices.Min(ref) == 1 && slices.Max(ref) == 1, false})
		if del := d.get(benchStampede, cas, "", "delayed"); cas == "at=window" && len(del) > 0 {
			out = append(out, check{noDelayTarget, stampedeLabel(cas),
				fmt.Sprintf("%s in %d runs", rangeLabel(del), len(del)), slices.Max(del) == 0, false})
		}
	}
	return out
}

// summary is one paragraph that says which targets were met and which
// missed, with the deciding figures of those missed or not settled.
func summary(cs []check) string {
	var unjudged []string
	for _, t := range allTargets {
		if !slices.ContainsFunc(cs, func(c check) bool { return c.target == t }) {
			unjudged = append(unjudged, t)
		}
	}
	notMeasured := ""
	if len(unjudged) > 0 {
		notMeasured = "\n\nNot judged, for want of the benchmark that measures it in this run: " + strings.Join(unjudged, "; ") + "."
	}
	if len(cs) == 0 {
		return "No target could be judged: the run measured none of the cases they are about." + notMeasured
	}
	met := 0
	var missed, unsettled []string
	for _, c := range cs {
		if c.met {
			met++
		} else {
			missed = append(missed, fmt.Sprintf("%s, %s: %s", c.target, c.cas, c.measured))
		}
		if c.unsettled {
			unsettled = append(unsettled, fmt.Sprintf("%s, %s", c.target, c.cas))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**%d of %d targets met", met, len(cs))
	if len(missed) == 0 {
		b.WriteString(", none missed.**")
	} else {
		fmt.Fprintf(&b, "; %d missed:**\n\n", len(missed))
		for _, m := range missed {
			fmt.Fprintf(&b, "- %s\n", m)
		}
	}
	if len(unsettled) > 0 {
		if len(missed) == 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\nNot settled by this run, whatever the median says (the %.0f%% confidence interval lies on both sides of "+
			"the line; more passes, `./run.sh -count 10`, may settle them):\n\n", confidence*100)
		for _, u := range unsettled {
			fmt.Fprintf(&b, "- %s\n", u)
		}
	}
	return strings.TrimRight(b.String(), "\n") + notMeasured
}

// targetsTable is the table of every check.
func targetsTable(p func(string, ...any), cs []check) {
	p("| target | case | measured (median of the runs) | result |\n| --- | --- | --- | --- |\n")
	for _, c := range cs {
		p("| %s | %s | %s | %s |\n", c.target, c.cas, c.measured, c.verdict())
	}
}
