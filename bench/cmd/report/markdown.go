package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
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
	benchDPoP     = "DPoP"

	limit   = "bare"              // the client every ratio divides by
	secure  = "securehttp"        // the client the targets are about
	noPins  = "securehttp-nopins" // securehttp without pins
	mib     = 1 << 20
	missing = "–"
)

// The targets of the benchmark issue.
const (
	targetTimeRatio   = 1.03 // keep-alive GET, securehttp ÷ bare
	targetExtraAllocs = 4    // keep-alive GET, securehttp − bare
	targetPinsApart   = 0.02 // handshakes, |with ÷ without − 1|
	targetUploadMiB   = 1.0  // allocated per 128 MiB upload
	targetDPoPSigns   = 1.25 // DPoP's added time per request ÷ one P-256 signature
	targetDPoPAllocs  = 30   // DPoP's added allocs per request over the bearer path
)

func writeMarkdown(w io.Writer, d *results) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }

	targetsMarkdown(p, d)

	if len(d.cases[benchGet]) > 0 {
		p("\n### Keep-alive GET\n\n")
		p("A small JSON reply over a warm connection pool. Medians of %d runs; ratios are to bare net/http in the same run set. "+
			"With 64 goroutines, time/op is wall time ÷ requests (the inverse of throughput). "+
			"CPU/op is the CPU time of the client process (the server is another process).\n\n", d.runs(benchGet))
		p("| case | client | time/op | × bare | CPU/op | × bare | B/op | allocs/op | allocs − bare |\n")
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
			"its HPACK encoding over HTTP/2, the server reading it). Medians of %d runs, with the range.\n\n",
			d.runs(benchPaired))
		p("| case | paired with | its time/op | securehttp time/op | securehttp ÷ it | CPU ratio |\n")
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
				spreadf(d, b, cas, "", "ratio", "%.3f"), spreadf(d, b, cas, "", "cpu-ratio", "%.3f"))
		}
	}

	if len(d.cases[benchHS]) > 0 {
		p("\n### New-connection handshakes\n\n")
		p("One GET per new connection (keep-alives off). *full*: session tickets off, every handshake verifies the chain; "+
			"*resumed*: TLS 1.3 resumption. securehttp-nopins is the same securehttp configuration (bearer, retries) without pins, "+
			"so *× nopins* is the cost of pinning. Medians of %d runs.\n\n", d.runs(benchHS))
		p("| handshake | client | time/op | × bare | × nopins | CPU/op | × nopins | allocs/op | conns/op | resumed/op |\n")
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
		p("securehttp without pins and with pins in alternating blocks of 16 connections (ABBA order): the ratio "+
			"the ≤ 2%% target is judged on. Medians of %d runs, with the range.\n\n", d.runs(benchHSPaired))
		p("| handshake | without pins | with pins | with ÷ without | CPU ratio |\n")
		p("| --- | ---: | ---: | ---: | ---: |\n")
		for _, cas := range d.cases[benchHSPaired] {
			b := benchHSPaired
			p("| %s | %s | %s | %s | %s |\n", strings.TrimPrefix(cas, "handshake="),
				dur(d, b, cas, "", "nopins-ns/op"), dur(d, b, cas, "", "securehttp-ns/op"),
				spreadf(d, b, cas, "", "ratio", "%.3f"), spreadf(d, b, cas, "", "cpu-ratio", "%.3f"))
		}
	}

	if len(d.cases[benchUpload]) > 0 {
		p("\n### 128 MiB streaming upload\n\n")
		p("PUT over HTTP/1.1 of a generated io.Reader body without GetBody. *allocated/op* is what the client process "+
			"allocated for one upload. Medians of %d runs.\n\n", d.runs(benchUpload))
		p("| client | time/op | MB/s | allocated/op | × bare | allocs/op |\n")
		p("| --- | ---: | ---: | ---: | ---: | ---: |\n")
		for _, cas := range d.cases[benchUpload] {
			for _, cl := range d.clients[benchUpload] {
				alloc := missing
				if v, ok := d.median(benchUpload, cas, cl, "B/op"); ok {
					alloc = bytesLabel(v)
				}
				p("| %s | %s | %s | %s | %s | %s |\n", clientLabel(cl),
					dur(d, benchUpload, cas, cl, "ns/op"), num(d, benchUpload, cas, cl, "MB/s", "%.0f"),
					alloc, ratio(d, benchUpload, cas, cl, limit, "B/op"), num(d, benchUpload, cas, cl, "allocs/op", "%.0f"))
			}
		}
	}

	if len(d.cases[benchDPoP]) > 0 {
		p("\n### DPoP\n\n")
		p("Keep-alive GETs from securehttp with a bearer token and with Bearer.DPoP (P-256), bare net/http with a proof "+
			"built per request with jwt/v5 (*DIY*), and one crypto/ecdsa P-256 signature, in rotating blocks of 64. "+
			"*added* is DPoP − bearer. Medians of %d runs.\n\n", d.runs(benchDPoP))
		p("| case | bearer | DPoP | DIY | one signature | added | added ÷ signature | added allocs | DPoP ÷ DIY |\n")
		p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, cas := range d.cases[benchDPoP] {
			b := benchDPoP
			p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", getCaseLabel(cas),
				dur(d, b, cas, "", "bearer-ns/op"), dur(d, b, cas, "", "dpop-ns/op"), dur(d, b, cas, "", "diy-ns/op"),
				dur(d, b, cas, "", "sign-ns/op"), dur(d, b, cas, "", "added-ns/op"),
				spreadf(d, b, cas, "", "added-÷-sign", "%.2f"), num(d, b, cas, "", "added-allocs/op", "%.0f"),
				spreadf(d, b, cas, "", "dpop-÷-diy", "%.3f"))
		}
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

// targetsMarkdown lists the targets of the issue, each met or missed, with
// the figures that decide it.
func targetsMarkdown(p func(string, ...any), d *results) {
	p("### Targets\n\n")
	p("| target | case | measured | result |\n| --- | --- | --- | --- |\n")
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	for _, cas := range d.cases[benchGet] {
		// The paired ratio decides when it was measured: separate runs
		// of each client are more exposed to load from elsewhere.
		sep, okSep := ratioValue(d, benchGet, cas, secure, limit, "ns/op")
		pcas := "base=" + limit + "/" + cas
		paired, okPaired := d.median(benchPaired, pcas, "", "ratio")
		pairedCPU, _ := d.median(benchPaired, pcas, "", "cpu-ratio")
		switch {
		case okPaired:
			runs := d.get(benchPaired, pcas, "", "ratio")
			also := ""
			if r, ok := d.median(benchPaired, "base=bare-token/"+cas, "", "ratio"); ok {
				also = fmt.Sprintf("; vs bare sending the same token %.3f ×", r)
			}
			p("| GET time/op ≤ 1.03 × bare | %s | paired %.3f × (runs %.3f–%.3f; CPU %.3f ×); separate runs %.3f ×%s | %s |\n",
				getCaseLabel(cas), paired, slices.Min(runs), slices.Max(runs), pairedCPU, sep, also,
				verdict(paired <= targetTimeRatio))
		case okSep:
			c, _ := ratioValue(d, benchGet, cas, secure, limit, "cpu-ns/op")
			p("| GET time/op ≤ 1.03 × bare | %s | %.3f × (CPU %.3f ×) | %s |\n", getCaseLabel(cas), sep, c, verdict(sep <= targetTimeRatio))
		}
	}
	for _, cas := range d.cases[benchGet] {
		a, ok1 := d.median(benchGet, cas, secure, "allocs/op")
		b, ok2 := d.median(benchGet, cas, limit, "allocs/op")
		if ok1 && ok2 {
			p("| GET allocs/op ≤ bare + 4 | %s | %.0f vs %.0f (%+.0f) | %s |\n", getCaseLabel(cas), a, b, a-b, verdict(a-b <= targetExtraAllocs))
		}
	}
	for _, cas := range d.cases[benchHS] {
		sep, okSep := ratioValue(d, benchHS, cas, secure, noPins, "ns/op")
		paired, okPaired := d.median(benchHSPaired, cas, "", "ratio")
		pairedCPU, _ := d.median(benchHSPaired, cas, "", "cpu-ratio")
		switch {
		case okPaired:
			runs := d.get(benchHSPaired, cas, "", "ratio")
			p("| handshake pins vs no pins ≤ 2%% apart | %s | paired %+.1f%% (runs %+.1f%% to %+.1f%%; CPU %+.1f%%); separate runs %+.1f%% | %s |\n",
				strings.TrimPrefix(cas, "handshake="), (paired-1)*100, (slices.Min(runs)-1)*100, (slices.Max(runs)-1)*100,
				(pairedCPU-1)*100, (sep-1)*100, verdict(math.Abs(paired-1) <= targetPinsApart))
		case okSep:
			c, _ := ratioValue(d, benchHS, cas, secure, noPins, "cpu-ns/op")
			p("| handshake pins vs no pins ≤ 2%% apart | %s | %+.1f%% (CPU %+.1f%%) | %s |\n",
				strings.TrimPrefix(cas, "handshake="), (sep-1)*100, (c-1)*100, verdict(math.Abs(sep-1) <= targetPinsApart))
		}
	}
	for _, cas := range d.cases[benchUpload] {
		if v, ok := d.median(benchUpload, cas, secure, "B/op"); ok {
			vals := d.get(benchUpload, cas, secure, "B/op")
			p("| upload allocates < 1 MiB | 128 MiB PUT | %s (max %s) | %s |\n", bytesLabel(v), bytesLabel(slices.Max(vals)),
				verdict(slices.Max(vals) < targetUploadMiB*mib))
		}
	}
	for _, cas := range d.cases[benchDPoP] {
		if r, ok := d.median(benchDPoP, cas, "", "added-÷-sign"); ok {
			p("| DPoP added time ≤ 1.25 × one P-256 signature | %s | %.2f × | %s |\n", getCaseLabel(cas), r, verdict(r <= targetDPoPSigns))
		}
		if a, ok := d.median(benchDPoP, cas, "", "added-allocs/op"); ok {
			p("| DPoP allocs/op ≤ bearer + 30 | %s | %+.0f | %s |\n", getCaseLabel(cas), a, verdict(a <= targetDPoPAllocs))
		}
	}
	for _, cas := range d.cases[benchStampede] {
		ref := d.get(benchStampede, cas, "", "refreshes")
		del := d.get(benchStampede, cas, "", "delayed")
		if len(ref) == 0 {
			continue
		}
		okRef := slices.Min(ref) == 1 && slices.Max(ref) == 1
		p("| stampede: 1 refresh | %s | %s in %d runs | %s |\n", stampedeLabel(cas), rangeLabel(ref), len(ref), verdict(okRef))
		if strings.HasSuffix(cas, "window") && len(del) > 0 {
			p("| stampede: 0 requests delayed in the window | %s | %s in %d runs | %s |\n", stampedeLabel(cas),
				rangeLabel(del), len(del), verdict(slices.Max(del) == 0))
		}
	}
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

// spreadf is spread with the numbers in format.
func spreadf(d *results, bench, cas, cl, unit, format string) string {
	v := d.get(bench, cas, cl, unit)
	if len(v) == 0 {
		return missing
	}
	m, _ := d.median(bench, cas, cl, unit)
	return fmt.Sprintf(format+" ("+format+"–"+format+")", m, slices.Min(v), slices.Max(v))
}

func rangeLabel(v []float64) string {
	lo, hi := slices.Min(v), slices.Max(v)
	if lo == hi {
		return fmt.Sprintf("all %g", lo)
	}
	return fmt.Sprintf("%g–%g", lo, hi)
}
