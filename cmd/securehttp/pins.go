package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/securehttp/securehttp"
)

// pinsTimeout bounds the whole connection: dial, handshake and response.
const pinsTimeout = 30 * time.Second

type pinsFlags struct {
	cacert  string
	json    bool
	refused refusedFlags
}

func pinsOptions(f *pinsFlags, stdout, stderr io.Writer) *options {
	o := newOptions("pins", "pins [--cacert FILE] [--json] https://host[:port]/",
		"Connects with full validation and prints every certificate of the verified chain with its\n"+
			"SPKI pin and SHA-256 fingerprint, then a recommended PinSet (a primary and a backup pin)\n"+
			"in Go and in JSON. The server is an https URL, or host[:port] for short.", stdout, stderr)
	o.str(&f.cacert, "", "cacert", "FILE", "trust the roots in this PEM file instead of the system roots")
	f.refused.addInsecure(o)
	o.boolean(&f.json, "", "json", "print only the recommended []securehttp.PinSet, as JSON")
	return o
}

func runPins(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	var f pinsFlags
	o := pinsOptions(&f, stdout, stderr)
	positional, code, ok := o.parse(args)
	if !ok {
		return code
	}
	if code, refused := f.refused.check(o); refused {
		return code
	}
	switch len(positional) {
	case 0:
		fmt.Fprintf(stderr, "securehttp pins: missing the URL of the server\nusage: securehttp %s\n", o.usage)
		return exitUsage
	case 1:
	default:
		return o.refuse(positional[1], "pins takes one URL; put flags before or after it")
	}
	target := positional[0]
	if !strings.Contains(target, "://") {
		// host[:port], as people type it: https is the only scheme pins
		// speaks.
		target = "https://" + target
	}
	u, err := parseAbsoluteURL(target)
	if err != nil {
		fmt.Fprintf(stderr, "securehttp pins: %v\n", err)
		return exitUsage
	}
	roots, err := loadRoots(f.cacert)
	if err != nil {
		fmt.Fprintf(stderr, "securehttp pins: %v\n", err)
		return exitUsage
	}

	cs, err := verifiedState(ctx, u, roots)
	if err != nil {
		code := exitCode(err)
		what := "cannot connect"
		switch code {
		case exitCertificate, exitCertStatus:
			what = "the certificate chain does not validate"
		case exitHandshake:
			what = "the TLS handshake failed"
		}
		fmt.Fprintf(stderr, "securehttp pins: %s: %s: %s\n", u.Host, what, errText(err))
		return code
	}
	if f.json {
		fmt.Fprintln(stdout, recommendedJSON(u.Hostname(), cs.VerifiedChains[0]))
		return exitOK
	}
	printChains(stdout, u.Hostname(), cs, roots == nil, time.Now())
	return exitOK
}

// verifiedState connects to u the way a securehttp client does and returns
// the state of the verified TLS connection.
//
// It goes through securehttp.NewClient rather than tls.Dial with our own
// checks: the pins printed then come from the very chains the library
// verifies and matches pins against, under its whole policy (TLS 1.2 floor,
// key sizes, stapled OCSP) and with the same roots and proxy settings as the
// clients that will enforce them. The price is one HEAD request, whose
// status does not matter. A redirect is not followed: the pins are those of
// the host named.
func verifiedState(ctx context.Context, u *url.URL, roots *x509.CertPool) (*tls.ConnectionState, error) {
	client, err := securehttp.NewClient(securehttp.Config{
		RootCAs:       roots,
		Retry:         securehttp.RetryPolicy{MaxRetries: -1}, // a diagnostic tool answers at once
		ExpiryWarning: -1,                                     // days left are printed instead
	})
	if err != nil {
		return nil, err
	}
	defer client.CloseIdleConnections()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	ctx, cancel := context.WithTimeout(ctx, pinsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.TLS == nil || len(resp.TLS.VerifiedChains) == 0 {
		// Unreachable: the client only speaks verified TLS.
		return nil, errors.New("securehttp pins: no verified TLS connection")
	}
	return resp.TLS, nil
}

// printChains writes every certificate of the verified chains, then the
// recommended PinSet in Go and in JSON.
func printChains(w io.Writer, host string, cs *tls.ConnectionState, systemRoots bool, now time.Time) {
	trust := "the --cacert roots"
	if systemRoots {
		trust = "the system roots"
	}
	chains := cs.VerifiedChains
	fmt.Fprintf(w, "%s: %s, verified against %s; the server sent %d certificate(s).\n",
		host, tls.VersionName(cs.Version), trust, len(cs.PeerCertificates))
	for i, chain := range chains {
		if len(chains) > 1 {
			fmt.Fprintf(w, "\nVerified chain %d of %d:\n", i+1, len(chains))
		}
		for j, c := range chain {
			fmt.Fprintln(w)
			printCert(w, j, chain, sentBy(cs, c), now)
		}
	}
	if extra := outsideChains(cs); len(extra) > 0 {
		fmt.Fprintf(w, "\nThe server also sent %d certificate(s) outside every verified chain; pins are never matched against them:\n", len(extra))
		for _, c := range extra {
			fmt.Fprintf(w, "    %s\n", printable(c.Subject.String()))
		}
	}
	fmt.Fprintln(w)
	printRecommendation(w, host, chains[0])
}

func printCert(w io.Writer, i int, chain []*x509.Certificate, sent bool, now time.Time) {
	c := chain[i]
	role := "intermediate"
	switch {
	case len(chain) == 1:
		role = "leaf, trusted directly"
	case i == 0:
		role = "leaf"
	case i == len(chain)-1:
		role = "root"
	}
	origin := "not sent by the server (from the trust store)"
	if sent {
		origin = "sent by the server"
	}
	fmt.Fprintf(w, "[%d] %s, %s\n", i, role, origin)
	fmt.Fprintf(w, "    subject      %s\n", printable(c.Subject.String()))
	fmt.Fprintf(w, "    issuer       %s\n", printable(c.Issuer.String()))
	fmt.Fprintf(w, "    not after    %s (%s)\n", c.NotAfter.UTC().Format("2006-01-02 15:04:05 MST"), timeLeft(c.NotAfter.Sub(now)))
	fmt.Fprintf(w, "    SPKI pin     %s\n", securehttp.SPKIPin(c))
	fmt.Fprintf(w, "    fingerprint  %s\n", fingerprint(c))
}

// sentBy reports whether the server sent c itself, as opposed to the
// verifier finding it in the trust store.
func sentBy(cs *tls.ConnectionState, c *x509.Certificate) bool {
	for _, p := range cs.PeerCertificates {
		if bytes.Equal(p.Raw, c.Raw) {
			return true
		}
	}
	return false
}

// outsideChains returns the certificates the server sent that belong to no
// verified chain: junk, or a cross-sign the verifier did not need.
func outsideChains(cs *tls.ConnectionState) []*x509.Certificate {
	var out []*x509.Certificate
	for _, p := range cs.PeerCertificates {
		found := false
		for _, chain := range cs.VerifiedChains {
			for _, c := range chain {
				found = found || bytes.Equal(p.Raw, c.Raw)
			}
		}
		if !found {
			out = append(out, p)
		}
	}
	return out
}

func timeLeft(d time.Duration) string {
	days := int(d.Hours() / 24)
	switch {
	case d < 0:
		return "expired"
	case days == 1:
		return "1 day left"
	case days == 0:
		return fmt.Sprintf("less than a day left: %dh", int(d.Hours()))
	}
	return fmt.Sprintf("%d days left", days)
}

// printable keeps a certificate's text, which the server chose, from
// writing control characters to the terminal.
func printable(s string) string {
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

// pinChoice is a recommended pin and why.
type pinChoice struct {
	cert *x509.Certificate
	role string
	why  string
}

// recommend picks a primary and a backup pin from a verified chain. Pins
// are alternatives, so the pair is meant to survive the changes that happen
// often (a renewed leaf with a new key) while leaving out the rest of the
// public PKI.
func recommend(chain []*x509.Certificate) (primary pinChoice, backup *pinChoice) {
	switch n := len(chain); {
	case n >= 3:
		return pinChoice{chain[1], "intermediate",
				"the key of the CA that issued the leaf: it survives certificate renewals and new leaf keys " +
					"(certbot makes a new key at every renewal) as long as the site stays with this CA."},
			&pinChoice{chain[n-1], "root",
				"the root's key: it keeps clients working when the CA moves the site to another intermediate."}
	case n == 2:
		return pinChoice{chain[0], "leaf",
				"the leaf's key: only this server's key passes, so a renewal must keep the key."},
			&pinChoice{chain[1], "root",
				"the root's key: it keeps clients working when the leaf is renewed with a new key."}
	default:
		return pinChoice{chain[0], "leaf", "the key of the certificate you trust directly."}, nil
	}
}

const spareKeyHowTo = `  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout spare.key -subj /CN=spare -out spare.csr
  openssl pkey -in spare.key -pubout -outform der | openssl dgst -sha256 -binary | base64
`

func printRecommendation(w io.Writer, host string, chain []*x509.Certificate) {
	primary, backup := recommend(chain)
	fmt.Fprintf(w, "Recommended pins for %s:\n", host)
	fmt.Fprintf(w, "  primary: %s\n", primary.why)
	if backup != nil {
		fmt.Fprintf(w, "  backup:  %s\n", backup.why)
	} else {
		fmt.Fprintf(w, "  backup:  none in this chain: add the pin of a spare key you keep offline:\n%s", spareKeyHowTo)
	}
	fmt.Fprint(w, `Keep at least two pins: TrustKit refuses a pin set with a single pin, because a
key rotation or a lost key would then lock every client out until it is updated.
Pins are alternatives (any match passes), so a set is only as strict as its
broadest pin. For a stricter set, pin the leaf key and, as the backup, a spare
key you keep offline:
`+spareKeyHowTo)

	picks := []pinChoice{primary}
	if backup != nil {
		picks = append(picks, *backup)
	}
	fmt.Fprint(w, "\nGo:\n\nsecurehttp.PinSet{\n")
	fmt.Fprintf(w, "\tHost: %q,\n\tPins: []string{\n", host)
	labels := []string{"primary", "backup"}
	for i, p := range picks {
		fmt.Fprintf(w, "\t\t%q, // %s: %s %s, until %s\n", securehttp.SPKIPin(p.cert), labels[i], p.role,
			printable(p.cert.Subject.String()), p.cert.NotAfter.UTC().Format(time.DateOnly))
	}
	if backup == nil {
		fmt.Fprint(w, "\t\t// backup: the pin of a spare key you keep offline\n")
	}
	fmt.Fprint(w, "\t},\n}\n")

	fmt.Fprintf(w, "\nJSON, for []securehttp.PinSet:\n\n%s\n", recommendedJSON(host, chain))
}

// recommendedJSON returns the recommended pins as a JSON []securehttp.PinSet.
func recommendedJSON(host string, chain []*x509.Certificate) string {
	primary, backup := recommend(chain)
	picks := []pinChoice{primary}
	if backup != nil {
		picks = append(picks, *backup)
	}
	// The exported field names of PinSet, so that this unmarshals into
	// []securehttp.PinSet with encoding/json.
	type jsonPinSet struct {
		Host string
		Pins []string
	}
	set := jsonPinSet{Host: host}
	for _, p := range picks {
		set.Pins = append(set.Pins, securehttp.SPKIPin(p.cert))
	}
	out, err := json.MarshalIndent([]jsonPinSet{set}, "", "  ")
	if err != nil {
		panic(err) // strings only: cannot fail
	}
	return string(out)
}

// fingerprint is the SHA-256 fingerprint of cert as openssl prints it:
// upper-case hex pairs separated by colons.
func fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}
