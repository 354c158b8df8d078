package main

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Benchmark names, as the _test.go files of the bench module define them.
const (
	benchGet      = "Get"
	benchPaired   = "GetPaired"
	benchHSPaired = "HandshakePaired"
	benchHS       = "Handshake"
	benchUpload   = "Upload"
	benchStampede = "RefreshStampede"

	limit   = "bare"              // the client every ratio divides by
	secure  = "securehttp"        // the client the targets are about
	noPins  = "securehttp-nopins" // securehttp without pins
	mib     = 1 << 20
	missing = "–"
)

func writeMarkdown(w io.Writer, d *results) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }

	cs := checks(d)
	p("### Targets\n\n%s\n\n", summary(cs))
	targetsTable(p, cs)

	if len(d.cases[benchGet]) > 0 {
		p("\n### Keep-alive GET\n\n")
		p("A small JSON reply over a warm connection pool. Medians of %d runs. "+
			"With 64 goroutines, time/op is wall time ÷ requests (the inverse of throughput). "+
			"CPU/op is the CPU time of the client process (the server is another process). "+
			"The *× bare* columns divide medians of separate runs of each client, one after another on a shared machine: "+
			"they can put a client that does more work than bare net/http below 1.000, and are not the figures to quote. "+
			"The paired table below is: it alternates the two clients every few milliseconds. "+
			"B/op and allocs/op are counted, not timed, and load does not disturb them.\n\n", d.runs(benchGet))
		p("| case | client | time/op | × bare (separate runs) | CPU/op | × bare (separate runs) | B/op | allocs/op | allocs − bare |\n")
		p("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, cas := range d.cases[benchGet] {
			for _, cl := range d.clients[benchGet] {
				p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", getCaseLabel(cas), clientLabel(cl),
					dur(d, benchGet, cas, cl, "ns/op"), ratio(d, benchGet, cas, cl, limit, "ns/op"),
					dur(d, benchGet, cas, cl, "cpu-ns/op"), ratio(d, benchGet, cas, cl, limit, "cpu-ns/op"),
					num(d, benchGet, cas, cl, "B/op", "%.0f"), num(d, benchGet, cas, cl, "allocs/op", "%.0f"),
					diff(d, benchGet, cas, cl, limit, "allocs/op"))
			}
		}
	}

	if len(d.cases[benchPaired]) > 0 {
		p("\n### Keep-alive GET, paired\n\n")
		p("The same requests, securehttp and another client in alternating blocks (ABBA order), so that load from "+
			"elsewhere falls on both alike. Paired with *bare* net/http, it is the ratio the time/op target is judged on; "+
			"paired with *bare-token*, bare net/http whose caller sets a bearer token of the same size on each request, "+
			"it is securehttp's own cost, without what carrying a token costs any client (the header's bytes, "+
			"its HPACK encoding over HTTP/2, the server reading it). Medians of %d runs, with their %.0f%% confidence intervals.\n\n",
			d.runs(benchPaired), confidence*100)
		p("| case | paired with | its time/op | securehttp time/op | securehttp ÷ it | CPU, securehttp ÷ it |\n")
		p("| --- | --- | ---: | ---: | ---: | ---: |\n")
		for _, cas := range d.cases[benchPaired] {
			b := benchPaired
			base := "?"
			for _, part := range strings.Split(cas, "/") {
				if v, ok := strings.CutPrefix(part, "base="); ok {
					base = v
				}
			}
			p("| %s | %s | %s | %s | %s | %s |\n", getCaseLabel(cas), base,
				dur(d, b, cas, "", "base-ns/op"), dur(d, b, cas, "", "securehttp-ns/op"),
				ci(d, b, cas, "ratio"), ci(d, b, cas, "cpu-ratio"))
		}
	}

	if len(d.cases[benchHS]) > 0 {
		p("\n### New-connection handshakes\n\n")
		p("One GET per new connection (keep-alives off). *full*: session tickets off, every handshake verifies the chain; "+
			"*resumed*: TLS 1.3 resumption. securehttp-nopins is the same securehttp configuration (bearer, retries) without pins, "+
			"so *× nopins* is the cost of pinning. Medians of %d runs. As for keep-alive GETs, the ratios here divide "+
			"separate runs; the paired table below is the one to quote.\n\n", d.runs(benchHS))
		p("| handshake | client | time/op | × bare (separate) | × nopins (separate) | CPU/op | × nopins (separate) | allocs/op | conns/op | resumed/op |\n")
		p("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, cas := range d.cases[benchHS] {
			for _, cl := range d.clients[benchHS] {
				p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", strings.TrimPrefix(cas, "handshake="), clientLabel(cl),
					dur(d, benchHS, cas, cl, "ns/op"), ratio(d, benchHS, cas, cl, limit, "ns/op"),
					ratio(d, benchHS, cas, cl, noPins, "ns/op"),
					dur(d, benchHS, cas, cl, "cpu-ns/op"), ratio(d, benchHS, cas, cl, noPins, "cpu-ns/op"),
					num(d, benchHS, cas, cl, "allocs/op", "%.0f"),
					num(d, benchHS, cas, cl, "conns/op", "%.2f"), num(d, benchHS, cas, cl, "resumed/op", "%.2f"))
			}
		}
	}

	if len(d.cases[benchHSPaired]) > 0 {
		p("\n### New-connection handshakes, paired\n\n")
		p("securehttp with pins and another client in alternating blocks of 16 connections (ABBA order). Paired with "+
			"*nopins*, the same securehttp configuration without pins, it is the ratio the ±2%% target is judged on; paired "+
			"with *bare* net/http, it is what a new connection costs with everything securehttp adds. Medians of %d runs, "+
			"with their %.0f%% confidence intervals.\n\n", d.runs(benchHSPaired), confidence*100)
		p("| handshake | paired with | its time/op | securehttp time/op | securehttp ÷ it | CPU, securehttp ÷ it |\n")
		p("| --- | --- | ---: | ---: | ---: | ---: |\n")
		for _, cas := range d.cases[benchHSPaired] {
			b := benchHSPaired
			base, hs := "?", "?"
			for _, part := range strings.Split(cas, "/") {
				if v, ok := strings.CutPrefix(part, "base="); ok {
					base = v
				}
				if v, ok := strings.CutPrefix(part, "handshake="); ok {
					hs = v
				}
			}
			p("| %s | %s | %s | %s | %s | %s |\n", hs, base,
				dur(d, b, cas, "", "base-ns/op"), dur(d, b, cas, "", "securehttp-ns/op"),
				ci(d, b, cas, "ratio"), ci(d, b, cas, "cpu-ratio"))
		}
	}

	if len(d.cases[benchUpload]) > 0 {
		p("\n### 128 MiB streaming upload\n\n")
		p("%s Medians of %d runs.\n\n", uploadIntro, d.runs(benchUpload))
		uploadTable(p, d)
	}

	if len(d.cases[benchStampede]) > 0 {
		p("\n### Refresh stampede\n\n")
		p("securehttp (pins, bearer, retries), 1000 concurrent GETs over one HTTP/2 connection, Refresh takes 200 ms. "+
			"*at expiry*: the token expired on an idle client, so every request must wait for a new one; "+
			"*in window*: the burst comes inside the refresh-ahead window. *base* is the same burst on the same client "+
			"with no refresh due; *extra* is the difference; *delayed* counts the requests that waited for the refresh "+
			"(they started before Refresh returned and were sent with the refreshed token). "+
			"Medians of %d runs, with the range over runs where it matters.\n\n", d.runs(benchStampede))
		p("| when | refreshes | delayed | p50 | p99 | base p50 | base p99 | extra p50 | extra p99 |\n")
		p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, cas := range d.cases[benchStampede] {
			b := benchStampede
			p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", stampedeLabel(cas),
				spread(d, b, cas, "", "refreshes"), spread(d, b, cas, "", "delayed"),
				num(d, b, cas, "", "p50-ms", "%.1f ms"), num(d, b, cas, "", "p99-ms", "%.1f ms"),
				num(d, b, cas, "", "base-p50-ms", "%.1f ms"), num(d, b, cas, "", "base-p99-ms", "%.1f ms"),
				num(d, b, cas, "", "extra-p50-ms", "%+.1f ms"), num(d, b, cas, "", "extra-p99-ms", "%+.1f ms"))
		}
	}
	return bw.Flush()
}

func getCaseLabel(cas string) string {
	var proto, conc string
	for _, part := range strings.Split(cas, "/") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "proto":
			proto = map[string]string{"h1": "HTTP/1.1", "h2": "HTTP/2"}[v]
		case "conc":
			conc = v
		}
	}
	if proto == "" || conc == "" {
		return cas
	}
	if conc == "1" {
		return proto + ", 1 goroutine"
	}
	return proto + ", " + conc + " goroutines"
}

func stampedeLabel(cas string) string {
	switch cas {
	case "at=expiry":
		return "at expiry"
	case "at=window":
		return "in window"
	}
	return cas
}

func clientLabel(cl string) string {
	if cl == secure {
		return "**securehttp**"
	}
	return cl
}

func dur(d *results, bench, cas, cl, unit string) string {
	v, ok := d.median(bench, cas, cl, unit)
	if !ok {
		return missing
	}
	return durLabel(v)
}

func durLabel(ns float64) string {
	switch {
	case ns < 1e3:
		return fmt.Sprintf("%.0f ns", ns)
	case ns < 1e6:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	case ns < 1e9:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	}
	return fmt.Sprintf("%.2f s", ns/1e9)
}

func bytesLabel(b float64) string {
	switch {
	case b < 1<<10:
		return fmt.Sprintf("%.0f B", b)
	case b < mib:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", b/mib)
}

func num(d *results, bench, cas, cl, unit, format string) string {
	v, ok := d.median(bench, cas, cl, unit)
	if !ok {
		return missing
	}
	return fmt.Sprintf(format, v)
}

func ratioValue(d *results, bench, cas, cl, base, unit string) (float64, bool) {
	v, ok1 := d.median(bench, cas, cl, unit)
	b, ok2 := d.median(bench, cas, base, unit)
	if !ok1 || !ok2 || b == 0 {
		return 0, false
	}
	return v / b, true
}

func ratio(d *results, bench, cas, cl, base, unit string) string {
	r, ok := ratioValue(d, bench, cas, cl, base, unit)
	if !ok {
		return missing
	}
	return fmt.Sprintf("%.3f", r)
}

func diff(d *results, bench, cas, cl, base, unit string) string {
	v, ok1 := d.median(bench, cas, cl, unit)
	b, ok2 := d.median(bench, cas, base, unit)
	if !ok1 || !ok2 {
		return missing
	}
	return fmt.Sprintf("%+.0f", v-b)
}

// spread is the median with the range over runs.
func spread(d *results, bench, cas, cl, unit string) string {
	v := d.get(bench, cas, cl, unit)
	if len(v) == 0 {
		return missing
	}
	m, _ := d.median(bench, cas, cl, unit)
	return fmt.Sprintf("%g (%s)", m, rangeLabel(v))
}

// ci is the median of a ratio with its confidence interval, for a table.
func ci(d *results, bench, cas, unit string) string {
	iv, ok := d.interval(bench, cas, "", unit)
	if !ok {
		return missing
	}
	if !iv.bounded() {
		return fmt.Sprintf("%.3f (no CI: %d runs)", iv.center, iv.n)
	}
	return fmt.Sprintf("%.3f [%.3f, %.3f]", iv.center, iv.lo, iv.hi)
}

func rangeLabel(v []float64) string {
	lo, hi := slices.Min(v), slices.Max(v)
	if lo == hi {
		return fmt.Sprintf("all %g", lo)
	}
	return fmt.Sprintf("%g–%g", lo, hi)
}
