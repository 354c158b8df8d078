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
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	defaultExpiryWarning       = 14 * 24 * time.Hour
	defaultDialTimeout         = 30 * time.Second
	defaultTLSHandshakeTimeout = 10 * time.Second
	defaultIdleConnTimeout     = 90 * time.Second
	defaultMaxIdleConnsPerHost = 64
	sessionCacheSize           = 256

	minRSABits = 2048
	minECBits  = 256
)

// Transport is the hardened http.RoundTripper behind NewClient. It refuses
// plain HTTP, verifies every connection (chain, host name, key sizes, pins,
// stapled OCSP), attaches bearer tokens to their hosts only, and retries
// what is safe to retry.
//
// A Transport is safe for concurrent use. Make it with NewTransport: the zero
// value is not usable. Like http.Transport it keeps a connection pool, so
// make one per configuration and reuse it.
type Transport struct {
	base   *http.Transport
	egress *egress

	pins          []*pinSet
	onPinFailure  func(*PinError)
	requireStaple bool
	expiryWarning time.Duration
	expiryWarned  sync.Map // [sha256.Size]byte of a certificate: warned once

	bearer *tokenSource // nil without Config.Bearer
	dpop   *dpopKey     // nil without Bearer.DPoP
	cert   *certState   // nil without Config.GetClientCertificate
	retry  retryConfig
	budget *retryBudget // nil when Retry.Budget is negative
	hooks  *Hooks       // nil without Config.Hooks

	logger *slog.Logger // never nil: a discarding logger when Config.Logger is nil
	now    func() time.Time
	jitter func(n int64) int64
}

// NewTransport returns a Transport configured by cfg. It reports an invalid
// entry as a *ConfigError and never modifies cfg.
func NewTransport(cfg Config) (*Transport, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pins, err := compilePinSets(cfg.Pins, logger)
	if err != nil {
		return nil, err
	}
	retry, err := newRetryConfig(cfg.Retry)
	if err != nil {
		return nil, err
	}
	egress, err := newEgress(cfg.AllowHosts, cfg.BlockPrivateNetworks)
	if err != nil {
		return nil, err
	}
	t := &Transport{
		egress:        egress,
		pins:          pins,
		onPinFailure:  cfg.OnPinFailure,
		requireStaple: cfg.RequireOCSPStaple,
		expiryWarning: orDefault(cfg.ExpiryWarning, defaultExpiryWarning),
		retry:         retry,
		logger:        logger,
		now:           time.Now,
		jitter:        rand.Int64N,
	}
	t.budget, t.hooks = newRetryBudget(retry.budget, t.clock), cfg.Hooks.clone(logger)
	if cfg.MaxIdleConnsPerHost < 0 {
		return nil, &ConfigError{Field: "MaxIdleConnsPerHost", Err: errors.New("must not be negative")}
	}

	dial := t.egress.dialFunc(cfg.DialContext, &net.Dialer{
		Timeout:   orDefault(cfg.DialTimeout, defaultDialTimeout),
		KeepAlive: 30 * time.Second,
	})
	proxy := cfg.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	perHost := cfg.MaxIdleConnsPerHost
	if perHost == 0 {
		perHost = defaultMaxIdleConnsPerHost
	}
	t.base = &http.Transport{
		Proxy:       t.egress.proxyFunc(proxy),
		DialContext: dial,
		TLSClientConfig: &tls.Config{
			MinVersion:         tls.VersionTLS12,
			RootCAs:            cfg.RootCAs,
			ClientSessionCache: tls.NewLRUClientSessionCache(sessionCacheSize),
			// VerifyConnection runs after Go's own chain verification, on
			// full and resumed handshakes alike.
			VerifyConnection: t.verifyConnection,
		},
		// A custom TLS config turns HTTP/2 off unless it is forced back on.
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0, // no overall limit: the per-host limit governs
		MaxIdleConnsPerHost:   perHost,
		IdleConnTimeout:       orDefault(cfg.IdleConnTimeout, defaultIdleConnTimeout),
		TLSHandshakeTimeout:   orDefault(cfg.TLSHandshakeTimeout, defaultTLSHandshakeTimeout),
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
	if cfg.GetClientCertificate != nil {
		if t.cert, err = newCertState(cfg.GetClientCertificate, t.base, cfg.Logger); err != nil {
			return nil, &ConfigError{Field: "GetClientCertificate", Err: err}
		}
		t.base.TLSClientConfig.GetClientCertificate = t.getClientCertificate
	}
	if cfg.Bearer != nil {
		if t.bearer, err = newTokenSource(cfg.Bearer, t.logger, t.clock); err != nil {
			return nil, err
		}
		if d := cfg.Bearer.DPoP; d != nil {
			if t.dpop, err = newDPoPKey(d, t.clock); err != nil {
				return nil, err
			}
			t.bearer.jkt = t.dpop.jkt
		}
		if t.cert != nil {
			t.bearer.cert = t.cert.thumbprint
			if _, split := cfg.Bearer.Store.(BindingStore); split {
				if _, named := t.cert.thumbprint(); !named {
					t.logger.Warn("securehttp: tokens are kept in this process, not in Bearer.Store, " +
						"while the client certificate cannot be named: Config.GetClientCertificate is not " +
						"a ClientCert's method, and a function of your own may choose a certificate per server")
				}
			}
		}
		t.bearer.hooks = t.hooks
		if cc := cfg.Bearer.ClientCredentials; cc != nil {
			tc, err := newTokenClient(cc, t.direct, t.clock, t.logger, cfg.GetClientCertificate != nil)
			if err != nil {
				return nil, err
			}
			tc.dpop = t.dpop
			t.bearer.refresh = tc.fetch
			tc.hooks, tc.resend = t.hooks, t.allowResend
		}
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
// NewTransport moves the token source's clock as well.
func (t *Transport) clock() time.Time { return t.now() }

// RoundTrip implements http.RoundTripper. It returns an error wrapping
// ErrHostNotAllowed for a host outside Config.AllowHosts, or
// ErrInsecureScheme for any scheme but https, without connecting. It does not
// modify req, and it closes req.Body on every path. On a redirect hop that
// http.Client made, it sends the Referer set on the first request, if any;
// otherwise none to another origin, and the previous URL without its query
// and fragment to the same origin.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	out, err := asciiHost(req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	out = redirectReferer(out)
	resp, err := t.roundTrip(out)
	if err != nil {
		awaitClientTimeout(req)
	}
	if resp != nil {
		resp.Request = req
	}
	return resp, err
}

// asciiHost returns req, or a copy of it whose URL names its host in the
// ASCII form that TLS and DNS use (IDNA). net/http's HTTP/2 pool files a
// new connection under the ASCII name and looks it up under the name as
// given, so a Unicode host would make it dial again and again until the
// request's context ends: a redirect to such a spelling would turn the
// client into a connection flood.
func asciiHost(req *http.Request) (*http.Request, error) {
	if req.URL == nil || isASCII(req.URL.Host) {
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
// Transport sends on a redirect hop. net/http's client sets the previous
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
func (t *Transport) hostHeaderCovered(req *http.Request) bool {
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

// roundTrip is RoundTrip's pipeline.
func (t *Transport) roundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeBody(req)
		return nil, errors.New("securehttp: request has no URL")
	}
	if err := t.admit(req); err != nil {
		closeBody(req)
		return nil, err
	}
	host, err := normalizeHost(req.URL.Hostname())
	if err != nil {
		closeBody(req)
		return nil, fmt.Errorf("securehttp: bad request host: %w", err)
	}
	t.budget.request(host)

	if t.bearer == nil || req.Header.Get("Authorization") != "" || tokenOff(req.Context()) {
		return t.send(req, false)
	}
	if !t.bearer.covers(host, req.URL.Port()) || !t.hostHeaderCovered(req) {
		// Said once per request, so that a host spelt differently from its
		// Bearer.Hosts entry (an IP for a name, another alias, another
		// port) is not a mystery 401. Asked first, so that a silent logger
		// costs nothing.
		if t.logger.Enabled(req.Context(), slog.LevelDebug) {
			t.logger.Debug("securehttp: no token sent: the host is not in Bearer.Hosts",
				"host", host, "method", req.Method, "url", redactURL(req.URL))
		}
		return t.send(req, false)
	}
	// A rotated client certificate drops a token bound to the old one
	// before a token is picked for this request.
	t.pool()
	tok, err := t.bearer.token(req.Context())
	if err != nil {
		closeBody(req)
		return nil, err
	}
	out, err := t.withToken(req, tok)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	out = t.hooks.track(out)
	resp, err := t.send(out, true)
	if err == nil {
		resp, err = t.retryNonce(out, tok, resp)
	}
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		resp, err = t.recoverUnauthorized(out, resp)
	}
	if resp != nil {
		// Our copy carries the token; the caller gets its own request back,
		// as from any RoundTripper, so that logging resp.Request leaks nothing.
		resp.Request = req
	}
	return resp, err
}

// admit runs the stages that refuse a request before any connection:
// egress (AllowHosts, and an address literal under BlockPrivateNetworks),
// then the scheme.
func (t *Transport) admit(req *http.Request) error {
	if err := t.egress.checkHost(req.URL.Hostname()); err != nil {
		return err
	}
	if !strings.EqualFold(req.URL.Scheme, "https") {
		return fmt.Errorf("%w (scheme %q)", ErrInsecureScheme, req.URL.Scheme)
	}
	return nil
}

// direct sends a request of the client's own, such as a token request,
// through every stage that guards where and how it connects, and through
// none that adds a credential.
func (t *Transport) direct(req *http.Request) (*http.Response, error) {
	in := req
	req, err := asciiHost(req)
	if err != nil {
		closeBody(in)
		return nil, err
	}
	if err := t.admit(req); err != nil {
		closeBody(req)
		return nil, err
	}
	t.budget.requestURL(req.URL)
	return t.send(req, false)
}

// withToken returns a shallow copy of req with its own header map, carrying
// tok and, with DPoP, a new proof for this attempt. The caller's request is
// never modified. The value slices are shared with the caller's header, as a
// RoundTripper only reads them; a request with no header of its own shares
// the token's ready-made, read-only map when no proof is needed. Code below
// this point that must change a header clones it first.
func (t *Transport) withToken(req *http.Request, tok *token) (*http.Request, error) {
	out := new(http.Request)
	*out = *req
	extra := 1
	var proof string
	if t.dpop != nil {
		var err error
		if proof, err = t.dpop.proof(req.Method, req.URL, tok.ath); err != nil {
			return nil, err
		}
		extra = 2
	} else if len(req.Header) == 0 {
		out.Header = tok.headers
		return out, nil
	}
	out.Header = make(http.Header, len(req.Header)+extra)
	for k, v := range req.Header {
		out.Header[k] = v
	}
	out.Header["Authorization"] = tok.header
	if proof != "" {
		out.Header["Dpop"] = []string{proof}
	}
	return out, nil
}

// sentToken returns the token req carries, after its scheme (Bearer or
// DPoP).
func sentToken(req *http.Request) string {
	_, tok, _ := strings.Cut(req.Header.Get("Authorization"), " ")
	return tok
}

// recoverUnauthorized handles a 401 to a request that carried our token: it
// invalidates that token, refreshes it and replays the request once, when
// its body can be replayed. Otherwise it returns resp as it is.
func (t *Transport) recoverUnauthorized(req *http.Request, resp *http.Response) (*http.Response, error) {
	rejected := tokenRejected
	if t.dpop != nil {
		rejected = dpopTokenRejected
	}
	if !rejected(resp.Header) {
		return resp, nil
	}
	sent := sentToken(req)
	if !t.bearer.invalidate(sent) || !replayable(req) || !t.allowResend(req, resendUnauthorized) {
		return resp, nil
	}
	tok, err := t.bearer.token(req.Context())
	if err != nil || tok.raw == sent {
		if err != nil {
			t.logger.Warn("securehttp: token refresh after 401 failed", "url", redactURL(req.URL), "error", err)
		}
		return resp, nil
	}
	replay, err := t.withToken(req, tok)
	if err != nil {
		t.logger.Warn("securehttp: no DPoP proof for the replay after 401", "url", redactURL(req.URL), "error", err)
		return resp, nil
	}
	if req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		replay.Body = body
	}
	drainAndClose(resp.Body)
	t.logger.Debug("securehttp: replaying request after 401 with a refreshed token",
		"method", req.Method, "url", redactURL(req.URL))
	resp, err = t.send(replay, true)
	if err != nil {
		return nil, err
	}
	// The replay's own nonce request is answered once too. A retryNonce
	// already spent on the first attempt does not carry over: the refreshed
	// token is a new request's worth of attempts, still bounded.
	return t.retryNonce(replay, tok, resp)
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

// CloseIdleConnections closes idle connections, those made with an earlier
// client certificate included, and stops the token refresh in progress, if
// no request waits for it, waiting for it to end, for at most a second when
// Refresh ignores its context. Like closing an idle connection, stopping a
// refresh fails no request: it leaves no error or backoff behind, and the
// next request that needs a token refreshes at once. A refresh that
// requests wait for is not idle, and goes on. go-retryablehttp calls
// CloseIdleConnections each time it gives up on a request.
func (t *Transport) CloseIdleConnections() {
	t.base.CloseIdleConnections()
	if t.cert != nil {
		t.cert.closeIdle()
	}
	if t.bearer != nil {
		t.bearer.stop()
	}
}

// String describes the transport without any secret.
func (t *Transport) String() string { return "securehttp.Transport" }

// GoString describes the transport without any secret.
func (t *Transport) GoString() string { return "&securehttp.Transport{}" }

// verifyConnection runs after crypto/tls has verified the chain and host
// name, for full and resumed handshakes alike. It enforces the key policy,
// stapled OCSP and pins against the verified chains only.
func (t *Transport) verifyConnection(cs tls.ConnectionState) error {
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

func (t *Transport) checkPins(cs tls.ConnectionState, chains [][]*x509.Certificate) error {
	if len(t.pins) == 0 {
		return nil
	}
	hosts := pinHosts(cs, chains)
	var digests *chainDigests
	now := t.now()
	covered := false
	for _, host := range hosts {
		var enforced []pin
		var reportOnly []*pinSet
		for _, s := range t.pins {
			if !s.host.match(host) {
				continue
			}
			covered = true
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
		// Pins are configured, but for other names: a host reached by its
		// IP address or by an alias is not pinned, and should not be so
		// silently. Once per connection, not per request.
		t.logger.Debug("securehttp: connection not pinned: no PinSet covers this host",
			"host", strings.Join(hosts, ","))
	}
	return nil
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

func (t *Transport) pinFailure(err *PinError) {
	t.logger.Warn("securehttp: certificate pin mismatch", "host", err.Host,
		"report_only", err.ReportOnly, "chain_pins", err.Pins)
	if t.onPinFailure != nil {
		t.onPinFailure(err)
	}
	t.hooks.pinFailure(err)
}

// warnExpiring logs, once per certificate, that a certificate of a verified
// chain expires within the warning window.
func (t *Transport) warnExpiring(chains [][]*x509.Certificate) {
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
