package securehttp

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// PinSet pins the certificates that hosts matching Host may present: a
// connection passes when any certificate of a chain that crypto/x509
// verified (leaf, intermediate, or a root the server did not send) matches
// any pin of the enforced sets covering the host. Certificates the server
// merely sent never count.
type PinSet struct {
	// Host is a host name without port: "api.example.com" that name only,
	// "*.example.com" one more label, "**.example.com" the name and any
	// below it; or an IP literal. Anything else, or a wildcard over names
	// anyone can register ("*.com", "**.amazonaws.com"), is a *ConfigError.
	Host string

	// Pins are "sha256/<base64>" SPKI pins (RFC 7469) or SHA-256
	// certificate fingerprints in hex, as openssl prints them; curl's and
	// HPKP's forms are read as pasted. Give a backup pin: a set with one
	// pin is warned of.
	Pins []string

	// Expires ends enforcement, with a warning. Zero means never.
	Expires time.Time

	// ReportOnly reports a mismatch (Logger, Hooks.PinFailure) and lets the
	// connection go on.
	ReportOnly bool
}

// PinError reports a verified chain that matched none of the pins that
// apply. It matches ErrPinMismatch.
type PinError struct {
	Host       string   // the server name the client dialled
	Pins       []string // the SPKI pins of the verified chains, leaf first
	Positions  []string // each pin's place: "leaf", "intermediate" or "root"
	Configured []string // the pins of the sets that failed
	ReportOnly bool     // only report-only sets failed: the connection went on
}

func (e *PinError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "securehttp: certificate pin mismatch for %s", e.Host)
	if len(e.Pins) > 0 {
		b.WriteString(": the verified chain has ")
	}
	for i, p := range e.Pins {
		if i > 0 {
			b.WriteString(", ")
		}
		if i < len(e.Positions) {
			b.WriteString(e.Positions[i] + " ")
		}
		b.WriteString(p)
	}
	if len(e.Configured) > 0 {
		fmt.Fprintf(&b, "; configured pins: %s", strings.Join(e.Configured, ", "))
	}
	return b.String()
}

// Is reports whether target is ErrPinMismatch.
func (e *PinError) Is(target error) bool { return target == ErrPinMismatch }

type pinKind uint8

const (
	pinSPKI pinKind = iota + 1
	pinCert
)

type pin struct {
	kind   pinKind
	digest [sha256.Size]byte
}

// Pin input forms, as people paste them.
const (
	pinFormSPKI = `sha256/<base64 of the SHA-256 of the SubjectPublicKeyInfo>, as "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="`
	pinFormCert = `the certificate's SHA-256 fingerprint as 64 hex digits, colons optional, as "openssl x509 -noout -fingerprint -sha256" prints it`
)

// parsePin reads one pin. Besides the two canonical forms it accepts what
// people paste from other tools: curl's "sha256//<base64>", an upper-case
// "SHA256/<base64>", HPKP's `pin-sha256="<base64>"`, and the whole line
// openssl prints, "sha256 Fingerprint=AA:BB:…". Input that matches none
// gets an error naming the form it resembles and showing the right one.
func parsePin(s string) (pin, error) {
	if strings.TrimSpace(s) == "" {
		return pin{}, fmt.Errorf("empty pin (a trailing comma, or an empty entry in the list?): write %s", pinFormSPKI)
	}
	parts := pinParts(s)
	if len(parts) > 1 {
		return pin{}, errors.New(`several pins in one entry, as curl's "sha256//A;sha256//B": give each pin its own entry`)
	}
	switch {
	case len(parts) == 1:
		s = parts[0]
	case strings.TrimSpace(s) != "":
		return pin{}, fmt.Errorf("no pin in this entry, only HPKP directives such as max-age; write %s", pinFormSPKI)
	}
	if name, value, ok := strings.Cut(s, "="); ok && labelled(name) {
		return parseLabelledPin(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	if raw, err := base64.StdEncoding.Strict().DecodeString(s); err == nil && len(raw) == sha256.Size {
		return pin{}, fmt.Errorf("looks like an SPKI digest without its prefix: write sha256/%s", s)
	}
	if alg, b64, ok := strings.Cut(s, "/"); ok {
		if !strings.EqualFold(alg, "sha256") {
			return pin{}, fmt.Errorf("looks like an SPKI pin with algorithm %q: only sha256 is accepted; write %s", alg, pinFormSPKI)
		}
		// curl writes "sha256//<base64>". A digest's base64 may itself start
		// with "/", but it is 44 characters long, so at most one reading of
		// the slashes decodes.
		if strings.HasPrefix(b64, "/") && len(b64) > 44 {
			if p, err := parseSPKIDigest(b64[1:]); err == nil {
				return p, nil
			}
		}
		return parseSPKIDigest(b64)
	}
	return parseFingerprint(s)
}

// parseLabelledPin reads "name=value" input: HPKP's pin-sha256="…" or
// openssl's "sha256 Fingerprint=…".
func parseLabelledPin(name, value string) (pin, error) {
	lower := strings.ToLower(name)
	switch {
	case lower == "pin-sha256":
		v := strings.TrimSuffix(value, ";")
		if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return pin{}, fmt.Errorf(`looks like an HPKP pin: write pin-sha256="<base64>" with the quotes, or %s`, pinFormSPKI)
		}
		return parseSPKIDigest(v[1 : len(v)-1])
	case strings.HasPrefix(lower, "pin-"):
		return pin{}, fmt.Errorf(`looks like an HPKP pin with algorithm %q: only pin-sha256 is accepted; write %s`, strings.TrimPrefix(lower, "pin-"), pinFormSPKI)
	case lower == "sha256 fingerprint":
		return parseFingerprint(value)
	}
	return pin{}, fmt.Errorf("looks like openssl's %s fingerprint: only SHA-256 is accepted; run openssl x509 -noout -fingerprint -sha256, or write %s",
		strings.TrimSpace(name[:len(name)-len("fingerprint")]), pinFormSPKI)
}

// labelled reports whether name, the text before an "=", is the label of
// an HPKP pin ("pin-sha256") or of an openssl fingerprint line
// ("sha256 Fingerprint"), rather than part of a base64 digest.
func labelled(name string) bool {
	name = strings.ToLower(strings.TrimSpace(name))
	return strings.HasPrefix(name, "pin-") || strings.HasSuffix(name, "fingerprint")
}

func parseSPKIDigest(b64 string) (pin, error) {
	raw, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		if _, uerr := base64.URLEncoding.Strict().DecodeString(b64); uerr == nil && strings.ContainsAny(b64, "-_") {
			return pin{}, fmt.Errorf("looks like an SPKI pin in base64url (- and _): pins use standard base64 (+ and /); write %s", pinFormSPKI)
		}
		if _, rerr := base64.RawStdEncoding.Strict().DecodeString(b64); rerr == nil {
			return pin{}, fmt.Errorf("looks like an SPKI pin without its base64 padding: add the trailing =; write %s", pinFormSPKI)
		}
		return pin{}, fmt.Errorf("looks like an SPKI pin, but it is not valid base64 (%w); write %s", err, pinFormSPKI)
	}
	if len(raw) != sha256.Size {
		return pin{}, fmt.Errorf("looks like an SPKI pin, but its digest has %d bytes, want %d (SHA-256); write %s", len(raw), sha256.Size, pinFormSPKI)
	}
	p := pin{kind: pinSPKI}
	copy(p.digest[:], raw)
	return p, nil
}

func parseFingerprint(s string) (pin, error) {
	h := s
	if strings.Contains(h, ":") {
		// Colons, when present, must separate every byte, as openssl prints them.
		parts := strings.Split(h, ":")
		for _, part := range parts {
			if len(part) != 2 {
				return pin{}, fmt.Errorf("looks like a certificate fingerprint, but colons must separate every pair of hex digits; write %s", pinFormCert)
			}
		}
		h = strings.Join(parts, "")
	}
	if len(h) != 2*sha256.Size {
		hint := ""
		if len(h) == 40 {
			hint = " (a SHA-1 fingerprint? run openssl x509 -noout -fingerprint -sha256)"
		}
		return pin{}, fmt.Errorf("looks like a certificate fingerprint, but it has %d hex digits, want %d%s; write %s", len(h), 2*sha256.Size, hint, pinFormCert)
	}
	raw, err := hex.DecodeString(h)
	if err != nil {
		return pin{}, fmt.Errorf("looks like a certificate fingerprint, but it is not valid hex; write %s", pinFormCert)
	}
	p := pin{kind: pinCert}
	copy(p.digest[:], raw)
	return p, nil
}

// String returns the pin in its canonical form, for errors and logs.
func (p pin) String() string {
	if p.kind == pinCert {
		return colonHex(p.digest[:])
	}
	return "sha256/" + base64.StdEncoding.EncodeToString(p.digest[:])
}

// pinParts splits s at semicolons, as curl's --pinnedpubkey list and an
// HPKP header separate their parts, and drops empty parts and HPKP's
// directives (max-age, includeSubDomains, report-uri), which are no pins.
func pinParts(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		name, _, _ := strings.Cut(strings.ToLower(part), "=")
		switch strings.TrimSpace(name) {
		case "", "max-age", "includesubdomains", "report-uri":
			continue
		}
		out = append(out, part)
	}
	return out
}

// SPKIPin returns the "sha256/<base64>" pin of cert's public key.
func SPKIPin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256/" + base64.StdEncoding.EncodeToString(sum[:])
}

// colonHex formats b as openssl prints fingerprints: upper-case hex pairs
// separated by colons.
func colonHex(b []byte) string {
	var s strings.Builder
	s.Grow(3*len(b) - 1)
	for i, c := range b {
		if i > 0 {
			s.WriteByte(':')
		}
		fmt.Fprintf(&s, "%02X", c)
	}
	return s.String()
}

// pinSet is a PinSet after validation.
type pinSet struct {
	host       hostPattern
	pins       []pin
	expires    time.Time
	reportOnly bool
	warned     atomic.Bool // the expiry warning has been logged
}

// compilePinSets validates sets. A pin given twice in a set counts once,
// and a set left with a single pin gets a warning on logger: RFC 7469
// section 4.3 asks for a backup pin, so that a lost or rotated key does not
// lock clients out, and TrustKit refuses such a set.
func compilePinSets(sets []PinSet, logger *slog.Logger) ([]*pinSet, error) {
	out := make([]*pinSet, 0, len(sets))
	for i, s := range sets {
		field := fmt.Sprintf("Pins[%d]", i)
		hp, err := parseHostPattern(s.Host)
		if err != nil {
			return nil, &ConfigError{Field: field + ".Host", Value: s.Host, Err: err}
		}
		if len(s.Pins) == 0 {
			return nil, &ConfigError{Field: field + ".Pins", Value: s.Host, Err: errors.New("no pins: a PinSet needs at least one")}
		}
		ps := &pinSet{host: hp, expires: s.Expires, reportOnly: s.ReportOnly}
		for j, raw := range s.Pins {
			p, err := parsePin(strings.TrimSpace(raw))
			if err != nil {
				return nil, &ConfigError{Field: fmt.Sprintf("%s.Pins[%d]", field, j), Value: raw, Err: err}
			}
			if !slices.Contains(ps.pins, p) {
				ps.pins = append(ps.pins, p)
			}
		}
		if len(ps.pins) == 1 {
			logger.Warn("securehttp: pin set has a single pin and no backup: a key rotation or a lost key will lock clients out (RFC 7469 section 4.3 asks for a backup pin)",
				"field", field, "host", hp.String())
		}
		out = append(out, ps)
	}
	return out, nil
}

// pinStrings returns pins in canonical form, each once.
func pinStrings(pins []pin) []string {
	out := make([]string, 0, len(pins))
	for _, p := range pins {
		if s := p.String(); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// chainDigests holds the two digests of each certificate of the verified
// chains, computed once per handshake.
type chainDigests struct {
	spki, cert [][sha256.Size]byte
	certs      []*x509.Certificate
	positions  []string // "leaf", "intermediate" or "root", in the chain it was first met
}

func digestChains(chains [][]*x509.Certificate) chainDigests {
	var d chainDigests
	seen := make(map[*x509.Certificate]bool)
	for _, chain := range chains {
		for i, c := range chain {
			if seen[c] {
				continue
			}
			seen[c] = true
			d.certs = append(d.certs, c)
			d.positions = append(d.positions, chainPosition(i, len(chain)))
			d.spki = append(d.spki, sha256.Sum256(c.RawSubjectPublicKeyInfo))
			d.cert = append(d.cert, sha256.Sum256(c.Raw))
		}
	}
	return d
}

func (d *chainDigests) matches(pins []pin) bool {
	for _, p := range pins {
		list := d.spki
		if p.kind == pinCert {
			list = d.cert
		}
		for _, got := range list {
			if got == p.digest {
				return true
			}
		}
	}
	return false
}

func (d *chainDigests) spkiPins() []string {
	out := make([]string, len(d.spki))
	for i, s := range d.spki {
		out[i] = "sha256/" + base64.StdEncoding.EncodeToString(s[:])
	}
	return out
}

// chainPosition names the place of the i-th of n certificates of a verified
// chain, leaf first.
func chainPosition(i, n int) string {
	switch {
	case i == 0:
		return "leaf"
	case i == n-1:
		return "root"
	}
	return "intermediate"
}

// pinsFor returns the pins of the enforced sets in force that cover host,
// and the report-only sets in force that cover it. Expired sets are left
// out, and said so once each. It is the one answer to "which pins apply",
// for the handshake's check and for its hook event alike.
func (t *transport) pinsFor(host string, now time.Time) (enforced []pin, reportOnly []*pinSet) {
	for _, s := range t.pins {
		if !s.host.match(host) {
			continue
		}
		if !s.expires.IsZero() && now.After(s.expires) {
			if s.warned.CompareAndSwap(false, true) {
				t.logger.Warn("securehttp: pin set expired and is no longer enforced",
					"host", s.host.String(), "expired", s.expires)
			}
			continue
		}
		if s.reportOnly {
			reportOnly = append(reportOnly, s)
		} else {
			enforced = append(enforced, s.pins...)
		}
	}
	return enforced, reportOnly
}

// checkPins matches the verified chains against the pin sets that cover
// the host the connection was made for: a report-only mismatch is
// reported, an enforced one refuses the connection.
func (t *transport) checkPins(cs tls.ConnectionState, chains [][]*x509.Certificate) error {
	if len(t.pins) == 0 {
		return nil
	}
	hosts := pinHosts(cs, chains)
	var digests *chainDigests
	now := t.now()
	covered := false
	for _, host := range hosts {
		enforced, reportOnly := t.pinsFor(host, now)
		covered = covered || t.covered(host)
		if enforced == nil && reportOnly == nil {
			continue
		}
		if digests == nil {
			d := digestChains(chains)
			digests = &d
		}
		for _, s := range reportOnly {
			if !digests.matches(s.pins) {
				t.pinFailure(digests.pinError(host, s.pins, true))
			}
		}
		if enforced != nil && !digests.matches(enforced) {
			err := digests.pinError(host, enforced, false)
			t.pinFailure(err)
			return err
		}
	}
	if !covered {
		t.warnUnpinned(strings.Join(hosts, ","))
	}
	return nil
}

// warnUnpinned says, once per host, that pins are configured but none
// covers host: a host reached by its IP address, by an alias, or spelt
// with a typo is not pinned, and must not be so silently.
func (t *transport) warnUnpinned(host string) {
	if !t.unpinned.first(host) {
		return
	}
	args := []any{"host", host}
	if near := closest(host, t.pinHosts()); near != "" {
		args = append(args, "did_you_mean", near)
	}
	t.logger.Warn("securehttp: connection not pinned: no PinSet covers this host", args...)
}

// pinHosts returns the Host of every PinSet, as written in canonical form.
func (t *transport) pinHosts() []string {
	out := make([]string, len(t.pins))
	for i, s := range t.pins {
		out[i] = s.host.String()
	}
	return out
}

// checkPinned refuses, under RequirePins, a host no enforced PinSet in
// force covers, before anything is sent to it.
func (t *transport) checkPinned(host string, u *url.URL) error {
	if enforced, _ := t.pinsFor(host, t.now()); enforced != nil {
		return nil
	}
	return &notPinnedError{addr: hostPort(u), near: closest(host, t.pinHosts())}
}

// notPinnedError is ErrNotPinned for one host.
type notPinnedError struct {
	addr, near string
}

func (e *notPinnedError) Error() string {
	msg := "securehttp: no PinSet covers " + e.addr + ", and Config.RequirePins is set"
	if e.near != "" {
		msg += "; did you mean the PinSet for " + strconv.Quote(e.near) + "?"
	}
	return msg + `; "securehttp pins https://` + e.addr + `/" prints one`
}

func (e *notPinnedError) Is(target error) bool { return target == ErrNotPinned }

// hostPort is u's host and port, the port defaulting to https's.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if strings.Contains(u.Hostname(), ":") {
		return "[" + u.Hostname() + "]:443"
	}
	return u.Hostname() + ":443"
}

// covered reports whether any pin set, expired or not, names host.
func (t *transport) covered(host string) bool {
	for _, s := range t.pins {
		if s.host.match(host) {
			return true
		}
	}
	return false
}

func (d *chainDigests) pinError(host string, configured []pin, reportOnly bool) *PinError {
	return &PinError{
		Host:       host,
		Pins:       d.spkiPins(),
		ReportOnly: reportOnly,
		Positions:  slices.Clone(d.positions),
		Configured: pinStrings(configured),
	}
}

// pinHosts names the host the connection was made for. crypto/tls leaves
// ServerName empty for an IP address, since no SNI is sent for one; the
// verified leaf is then valid for the dialled address, and every address it
// names is held to its pins, which fails closed.
func pinHosts(cs tls.ConnectionState, chains [][]*x509.Certificate) []string {
	if cs.ServerName != "" {
		h, err := normalizeHost(cs.ServerName)
		if err != nil {
			h = strings.ToLower(cs.ServerName)
		}
		return []string{h}
	}
	leaf := chains[0][0]
	hosts := make([]string, 0, len(leaf.IPAddresses))
	for _, ip := range leaf.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	return hosts
}

func (t *transport) pinFailure(err *PinError) {
	t.logger.Warn("securehttp: certificate pin mismatch", "host", err.Host,
		"report_only", err.ReportOnly, "chain_pins", err.Pins)
	t.hooks.pinFailure(err)
}
