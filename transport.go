package securehttp

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// transport is the http.RoundTripper behind NewClient. A request goes
// through it top to bottom, one stage per step of RoundTrip:
//
//  1. egress: the host must be allowed (egress.go);
//  2. scheme: https only;
//  3. credential: the token of the Bearer whose hosts include the host
//     (tokensource.go);
//  4. attempts (retry.go): each attaches the token and a fresh DPoP proof
//     (dpop.go), goes over a connection of the client identity in use
//     (conn.go) whose handshake verifyConnection checks, below (keys,
//     stapled OCSP, pins), and is judged: one place decides every resend
//     (a retry, a replay after a 401, a DPoP nonce) and pays for it from
//     the host's budget (budget.go);
//  5. hooks see each stage's outcome (hooks.go).
//
// It is safe for concurrent use.
type transport struct {
	conns  *connections // the connection pools (conn.go)
	egress *egress

	pins          []*pinSet
	customRoots   bool // Config.RootCAs is set: the pins command needs --cacert
	requirePins   bool
	requireStaple bool
	expiryWarning time.Duration
	expiryWarned  sync.Map // [sha256.Size]byte of a certificate: warned once

	bearer *tokenSource // nil without Config.Bearer
	dpop   *dpopKey     // nil without Bearer.DPoP
	sigs   *signatures  // nil without Config.Signatures
	retry  retryConfig
	budget *retryBudget // nil when Retry.Budget is negative
	hooks  *Hooks       // nil without Config.Hooks

	logger *slog.Logger // never nil
	now    func() time.Time
	jitter func(n int64) int64

	// Hosts already warned of: not covered by any PinSet, and answering
	// 401 outside Bearer.Hosts.
	unpinned, unauthorized once
}

const (
	defaultExpiryWarning = 14 * 24 * time.Hour
	minRSABits           = 2048
	minECBits            = 256
)

// newTransport checks every entry of cfg first, then builds the transport
// from what the checks produced. It never modifies cfg.
func newTransport(cfg Config) (*transport, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = defaultLogger()
	}
	t := &transport{logger: logger, now: time.Now, jitter: rand.Int64N}

	// Every check first: nothing is built from a Config with an error.
	var err error
	if t.pins, err = compilePinSets(cfg.Pins, logger); err != nil {
		return nil, err
	}
	if t.retry, err = newRetryConfig(cfg.Retry); err != nil {
		return nil, err
	}
	if t.egress, err = newEgress(cfg.AllowHosts, cfg.BlockPrivateNetworks); err != nil {
		return nil, err
	}
	if err := checkConnConfig(cfg); err != nil {
		return nil, err
	}
	var bearer *bearerPlan
	if cfg.Bearer != nil {
		if bearer, err = checkBearer(cfg.Bearer, cfg.GetClientCertificate != nil, t.clock); err != nil {
			return nil, err
		}
	}

	if cfg.Signatures != nil {
		if t.sigs, err = checkSignatures(cfg.Signatures, cfg.Bearer, t.clock); err != nil {
			return nil, err
		}
	}

	// Then the parts, each from what it needs.
	t.customRoots = cfg.RootCAs != nil
	t.requirePins = cfg.RequirePins
	t.requireStaple = cfg.RequireOCSPStaple
	t.expiryWarning = orDefault(cfg.ExpiryWarning, defaultExpiryWarning)
	t.hooks = cfg.Hooks.clone(logger)
	t.budget = newRetryBudget(t.retry.budget, t.clock)
	t.conns = newConnections(cfg, t)
	if bearer != nil {
		t.dpop = bearer.dpop
		t.bearer = newTokenSource(cfg.Bearer, bearer, t)
	}
	return t, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// clock reads t.now at each call, so that a test replacing t.now after
// newTransport moves the token source's clock as well.
func (t *transport) clock() time.Time { return t.now() }

// exchange is one request on its way through the pipeline: the request as
// admitted, its host, the token it carries, and its attempts so far.
type exchange struct {
	req  *http.Request // the caller's request as admitted; never modified
	host string        // req's host, normalised
	tok  *token        // the token each attempt carries; nil for none

	// tokenRequest marks a token request of the client's own (oauth.go):
	// it may be retried although it is a POST, and its DPoP nonce
	// challenge is a 400 whose body the token client reads (nonceAsked).
	tokenRequest bool
	nonceAsked   bool
	role         string // names the server in errors when it is not the request's own API
	// outside marks a request to a host outside Bearer.Hosts, which got
	// no token: a 401 to it is probably a mistake in Bearer.Hosts.
	outside bool

	tries   int    // attempts sent
	retries int    // of which retries
	replays int    // of which replays after a 401
	nonces  int    // nonce challenges answered for the current token
	next    resend // why the next attempt is sent

	// The outcome of the attempt judged last, when it is sent again: its
	// status, or its error's class.
	lastStatus int
	lastError  string
}

// RoundTrip implements http.RoundTripper: it refuses a host outside
// Config.AllowHosts (ErrHostNotAllowed) and any scheme but https
// (ErrInsecureScheme) before connecting, attaches the Bearer's token to its
// hosts, and sends attempts until one is final. It does not modify req, and
// it closes req.Body on every path.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	x, err := t.admit(req)
	if err == nil {
		err = t.credential(&x)
	}
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.send(&x)
	if err != nil {
		awaitClientTimeout(req)
		return nil, err
	}
	if x.outside && resp.StatusCode == http.StatusUnauthorized {
		t.warnOutside(&x)
	}
	// Our copies carry the token; the caller gets its own request back, so
	// that logging resp.Request leaks nothing.
	resp.Request = req
	return resp, nil
}

// admit runs the stages that refuse a request before any connection,
// egress then scheme, and returns its exchange. The request is sent with
// its host in ASCII and, on a redirect hop, with the Referer of
// redirectReferer.
func (t *transport) admit(req *http.Request) (exchange, error) {
	if req.URL == nil {
		return exchange{}, errors.New("securehttp: request has no URL")
	}
	out, err := asciiHost(req)
	if err != nil {
		return exchange{}, err
	}
	out = redirectReferer(out)
	if err := t.egress.checkHost(out.URL.Hostname()); err != nil {
		return exchange{}, err
	}
	if !strings.EqualFold(out.URL.Scheme, "https") {
		return exchange{}, fmt.Errorf("%w (scheme %q)", ErrInsecureScheme, out.URL.Scheme)
	}
	host, err := normalizeHost(out.URL.Hostname())
	if err != nil {
		return exchange{}, fmt.Errorf("securehttp: bad request host: %w", err)
	}
	if t.requirePins {
		if err := t.checkPinned(host, out.URL); err != nil {
			return exchange{}, err
		}
	}
	t.budget.request(host)
	return exchange{req: out, host: host}, nil
}

// credential gives x the token of the Bearer, when x's host and port are
// among Bearer.Hosts and the request carries no Authorization of its own.
func (t *transport) credential(x *exchange) error {
	req := x.req
	if t.bearer == nil || req.Header.Get("Authorization") != "" || tokenOff(req.Context()) {
		return nil
	}
	if !t.bearer.covers(x.host, req.URL.Port()) || !t.hostHeaderCovered(req) {
		// A host spelt differently from its Bearer.Hosts entry (an IP for
		// a name, another alias, another port) gets no token: a 401 from
		// it is warned of once. Asked first, so that a silent logger costs
		// nothing.
		x.outside = true
		if t.logger.Enabled(req.Context(), slog.LevelDebug) {
			t.logger.Debug("securehttp: no token sent: the host is not in Bearer.Hosts",
				"host", x.host, "method", req.Method, "url", redactURL(req.URL))
		}
		return nil
	}
	// A rotated client certificate drops a token bound to the old one
	// before a token is picked for this request.
	t.conns.pool()
	tok, err := t.bearer.token(req.Context())
	if err != nil {
		return err
	}
	x.tok = tok
	return nil
}

// warnOutside says, once per host, that a host outside Bearer.Hosts
// answered 401: it got no token, and Bearer.Hosts probably misses it.
func (t *transport) warnOutside(x *exchange) {
	addr := hostPort(x.req.URL)
	if !t.unauthorized.first(addr) {
		return
	}
	args := []any{"host", addr}
	if near := closest(addr, t.bearer.hostNames()); near != "" {
		args = append(args, "did_you_mean", near)
	} else if near := closest(x.host, t.bearer.hostNames()); near != "" {
		args = append(args, "did_you_mean", near)
	}
	t.logger.Warn("securehttp: a host outside Bearer.Hosts answered 401: no token was sent to it", args...)
}

// attach returns the request of x's next attempt: req with x's token and,
// with DPoP, a new proof, for this attempt only. req is never modified. The
// header's value slices are shared with req's, as a RoundTripper only reads
// them; a request with no header of its own shares the token's ready-made,
// read-only map when no proof is needed. Code below this point that must
// change a header clones it first.
func (t *transport) attach(x *exchange, req *http.Request) (*http.Request, error) {
	if x.tok == nil {
		return req, nil
	}
	out := new(http.Request)
	*out = *req
	extra := 1
	var proof string
	if t.dpop != nil {
		var err error
		if proof, err = t.dpop.proof(req.Method, req.URL, x.tok.ath); err != nil {
			return nil, err
		}
		extra = 2
	} else if len(x.req.Header) == 0 {
		out.Header = x.tok.headers
		return out, nil
	}
	out.Header = make(http.Header, len(x.req.Header)+extra)
	for k, v := range x.req.Header {
		out.Header[k] = v
	}
	out.Header["Authorization"] = x.tok.header
	if proof != "" {
		out.Header["Dpop"] = []string{proof}
	}
	return out, nil
}

// attempt sends one attempt of x over the wire, with the hooks around it.
// Every attempt, the first and each resend, goes through here, and so does
// every response, whose DPoP nonce is learnt (RFC 9449 section 8.2: any
// response may carry one).
func (t *transport) attempt(x *exchange, req *http.Request) (*http.Response, error) {
	x.tries++
	var resp *http.Response
	var err error
	if t.hooks == nil {
		resp, err = t.wire(req)
	} else {
		resp, err = t.hooks.send(t, x, req)
	}
	if err != nil {
		return nil, err
	}
	if t.dpop != nil {
		t.dpop.observe(req.URL, resp.Header)
	}
	resp.Request = x.req
	return resp, nil
}

// wire signs req, last, for the signing hosts (httpsig.go), and hands it
// to the connection pool of the client identity in use, under a context in
// which a trace sees no credential and, with BlockPrivateNetworks, the
// dialer knows the proxy chosen for it. A signed request's response is
// verified before it goes on.
func (t *transport) wire(req *http.Request) (*http.Response, error) {
	req, signed, err := t.sigs.sign(req)
	if err != nil {
		return nil, err
	}
	req = t.egress.track(req)
	if ctx, rctx := req.Context(), redactTrace(req.Context()); rctx != ctx {
		req = req.WithContext(rctx)
	}
	resp, err := t.conns.pool().RoundTrip(req)
	return t.sigs.verify(signed, req, resp, err)
}

// direct sends a request of the client's own (a metadata document) through
// every stage that guards where and how it connects, and through none that
// adds a credential. role names the server in errors, as "the
// authorization server".
func (t *transport) direct(req *http.Request, role string) (*http.Response, error) {
	x, err := t.admit(req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	x.role = role
	return t.send(&x)
}

// CloseIdleConnections closes idle connections, those made with an earlier
// client certificate included, and stops the token refresh in progress if
// no request waits for it, waiting for it to end for at most a second when
// Refresh ignores its context. Like closing an idle connection, stopping a
// refresh fails no request: it leaves no error or backoff behind, and a
// refresh that requests wait for is not idle, and goes on. go-retryablehttp
// calls CloseIdleConnections each time it gives up on a request.
func (t *transport) CloseIdleConnections() {
	t.conns.closeIdle()
	if t.bearer != nil {
		t.bearer.stop()
	}
}

// asciiHost returns req, or a copy of it whose URL names its host in the
// ASCII form that TLS and DNS use (IDNA). net/http's HTTP/2 pool files a
// new connection under the ASCII name and looks it up under the name as
// given, so a Unicode host would make it dial again and again until the
// request's context ends: a redirect to such a spelling would turn the
// client into a connection flood.
func asciiHost(req *http.Request) (*http.Request, error) {
	if isASCII(req.URL.Host) {
		return req, nil
	}
	host, err := normalizeHost(req.URL.Hostname())
	if err != nil {
		return nil, fmt.Errorf("securehttp: bad request host: %w", err)
	}
	u := *req.URL
	u.Host = host
	if port := req.URL.Port(); port != "" {
		u.Host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	}
	out := new(http.Request)
	*out = *req
	out.URL = &u
	return out, nil
}

// maxRefererHops bounds redirectReferer's walk back to the first request,
// in case a chain of requests and responses loops.
const maxRefererHops = 100

// redirectReferer returns req, or a copy of it with the Referer this
// client sends on a redirect hop. net/http's client sets the previous
// URL, query and fragment included, on every hop, whatever its origin: a
// signed URL or an api_key would reach another host. A hop's Referer is
// instead the one the caller set on the first request, if any; otherwise
// none to another origin, and the previous URL without userinfo, query and
// fragment to the same origin, which served that path itself. A hop
// without a Referer (a CheckRedirect removed it) is sent without one. It is
// decided here rather than in CheckRedirect so that a caller's own
// CheckRedirect cannot bring the query back. A request is a redirect hop
// when http.Client made it: its Response is the redirect, whose Request is
// the previous hop.
func redirectReferer(req *http.Request) *http.Request {
	if req.Response == nil || req.Response.Request == nil || len(req.Header["Referer"]) == 0 {
		return req // nothing to do, and nothing allocated
	}
	prev := req.Response.Request
	first := prev
	for i := 0; first.Response != nil && first.Response.Request != nil; i++ {
		if i == maxRefererHops {
			first = nil
			break
		}
		first = first.Response.Request
	}
	var want string
	if first != nil {
		want = first.Header.Get("Referer")
	}
	if want == "" && prev.URL != nil && sameOrigin(prev.URL, req.URL) {
		u := *prev.URL
		u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
		want = u.String()
	}
	if vs := req.Header["Referer"]; len(vs) == 1 && vs[0] == want {
		return req
	}
	out := new(http.Request)
	*out = *req
	out.Header = req.Header.Clone()
	if want == "" {
		delete(out.Header, "Referer")
	} else {
		out.Header["Referer"] = []string{want}
	}
	return out
}

// sameOrigin reports whether a and b name the same scheme, host and port.
func sameOrigin(a, b *url.URL) bool {
	if !strings.EqualFold(a.Scheme, b.Scheme) || schemePort(a) != schemePort(b) {
		return false
	}
	ha, err := normalizeHost(a.Hostname())
	if err != nil {
		return false
	}
	hb, err := normalizeHost(b.Hostname())
	return err == nil && ha == hb
}

// schemePort is u's port, or its scheme's default port when it names none.
func schemePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "http") {
		return "80"
	}
	return "443"
}

// hostHeaderCovered reports whether the Host header, when it names another
// host than the URL, is covered by Bearer.Hosts too: a front end that
// routes by Host would otherwise hand the token to the host it names.
func (t *transport) hostHeaderCovered(req *http.Request) bool {
	if req.Host == "" || req.Host == req.URL.Host {
		return true
	}
	name, port, err := net.SplitHostPort(req.Host)
	if err != nil {
		name, port = req.Host, req.URL.Port()
	}
	host, err := normalizeHost(name)
	return err == nil && t.bearer.covers(host, port)
}

// clientTimeoutGrace bounds awaitClientTimeout's wait.
const clientTimeoutGrace = 100 * time.Millisecond

// awaitClientTimeout lets net/http see its own Client.Timeout. For a
// RoundTripper it does not know, http.Client enforces Timeout twice: a
// context deadline, and a timer that marks the timeout and then closes
// req.Cancel. Both fire at the deadline, and when the context wins the race
// and the error comes back before the timer has marked it, the client drops
// its "Client.Timeout exceeded" wording. When the request's deadline has
// passed and req.Cancel is set, wait briefly for it to close, which happens
// after the mark.
func awaitClientTimeout(req *http.Request) {
	//lint:ignore SA1019 http.Client sets Cancel for its Timeout; it is read, never set.
	cancel := req.Cancel
	if cancel == nil || !errors.Is(req.Context().Err(), context.DeadlineExceeded) {
		return
	}
	timer := time.NewTimer(clientTimeoutGrace)
	defer timer.Stop()
	select {
	case <-cancel:
	case <-timer.C:
	}
}

// replayable reports whether req's body can be sent again.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// maxDrain bounds how much of a discarded response body is read so that its
// connection can be reused.
const maxDrain = 64 << 10

func drainAndClose(body io.ReadCloser) {
	if body == nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	body.Close()
}

// redactURL renders u for logs: scheme, host and path, without userinfo,
// query or fragment, which may carry secrets.
func redactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

// verifyConnection runs after crypto/tls has verified the chain and host
// name, for full and resumed handshakes alike: the key policy, stapled
// OCSP (ocsp.go) and pins (pinning.go), against the verified chains only.
func (t *transport) verifyConnection(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 {
		// Unreachable while verification is on, which it always is; kept so
		// that a future change cannot turn pins into a no-op.
		return errors.New("securehttp: no verified certificate chain")
	}
	chains, err := strongChains(cs.VerifiedChains)
	if err != nil {
		return err
	}
	if err := t.checkStaple(cs, chains); err != nil {
		return err
	}
	if err := t.checkPins(cs, chains); err != nil {
		return err
	}
	t.warnExpiring(chains)
	return nil
}

// strongChains keeps the verified chains whose every key meets the minimum
// sizes, and fails when none does.
func strongChains(chains [][]*x509.Certificate) ([][]*x509.Certificate, error) {
	var out [][]*x509.Certificate
	var weak error
	for _, chain := range chains {
		if err := checkKeys(chain); err != nil {
			weak = err
			continue
		}
		out = append(out, chain)
	}
	if len(out) == 0 {
		return nil, weak
	}
	return out, nil
}

func checkKeys(chain []*x509.Certificate) error {
	for _, c := range chain {
		switch k := c.PublicKey.(type) {
		case *rsa.PublicKey:
			if n := k.N.BitLen(); n < minRSABits {
				return fmt.Errorf("%w: RSA key of %d bits in %q, want at least %d", ErrWeakKey, n, c.Subject.CommonName, minRSABits)
			}
		case *ecdsa.PublicKey:
			if n := k.Curve.Params().BitSize; n < minECBits {
				return fmt.Errorf("%w: EC key of %d bits in %q, want at least %d", ErrWeakKey, n, c.Subject.CommonName, minECBits)
			}
		case ed25519.PublicKey:
		default:
			return fmt.Errorf("%w: unsupported %T key in %q", ErrWeakKey, k, c.Subject.CommonName)
		}
	}
	return nil
}

// warnExpiring logs, once per certificate, that a certificate of a verified
// chain expires within the warning window.
func (t *transport) warnExpiring(chains [][]*x509.Certificate) {
	if t.expiryWarning < 0 {
		return
	}
	limit := t.now().Add(t.expiryWarning)
	for _, chain := range chains {
		for _, c := range chain {
			if c.NotAfter.After(limit) {
				continue
			}
			key := sha256.Sum256(c.Raw)
			if _, loaded := t.expiryWarned.LoadOrStore(key, struct{}{}); loaded {
				continue
			}
			t.logger.Warn("securehttp: certificate expires soon", "subject", c.Subject.String(),
				"not_after", c.NotAfter, "spki_pin", SPKIPin(c))
			t.hooks.certificateExpiring(c)
		}
	}
}
