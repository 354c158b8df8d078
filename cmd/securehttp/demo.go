package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/testpki"
)

// The demo's host names. The client dials them on 127.0.0.1 through its
// DialContext; they never reach a resolver.
const (
	hostAPI   = "api.demo.test"
	hostOther = "other.demo.test"
	hostAuth  = "auth.demo.test"

	apiURL    = "https://" + hostAPI
	otherURL  = "https://" + hostOther
	issuerURL = "https://" + hostAuth
)

const (
	// minLifetime is the shortest life of a token, so that step 5 sees one
	// expire within the demo's few seconds. Tokens live 1.5 to 2.5 s.
	minLifetime = 1500 * time.Millisecond
	// inFlight is how many requests step 5 sends at once.
	inFlight = 50
	// demoLeafLifetime is the demo servers' certificates' validity: longer
	// than a client's expiry warning, so that it has nothing to warn of.
	demoLeafLifetime = 30 * 24 * time.Hour
	// demoTimeout bounds the whole demo, should a step hang.
	demoTimeout = 30 * time.Second
)

// step is one narrated check. run returns what it observed, or why the
// library did not behave as promised.
type step struct {
	title string
	run   func(context.Context) (string, error)
}

type demoFlags struct {
	serve bool
	dur   time.Duration
}

func demoOptions(stdout, stderr io.Writer) *options {
	return demoFlagSet(new(demoFlags), stdout, stderr)
}

func demoFlagSet(f *demoFlags, stdout, stderr io.Writer) *options {
	o := newOptions("demo", "demo [--serve] [--for DURATION]",
		"Runs the library's guarantees end to end, offline, on 127.0.0.1: plain HTTP refused, pins,\n"+
			"token refresh, 401 recovery, redirects. With --serve, keeps an API server and an\n"+
			"authorization server up instead and prints the URL, the root CA file, the pins, the\n"+
			"issuer and the client credentials for README's quick start and get's examples, until\n"+
			"interrupted (Ctrl-C).", stdout, stderr)
	o.boolean(&f.serve, "", "serve", "keep the demo's servers up on 127.0.0.1 until interrupted")
	o.fn("", "for", "DURATION", "with --serve, stop after this long (such as 10m); 0 means until interrupted",
		func(s string) error {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 {
				return errors.New("want a duration such as 90s or 10m")
			}
			f.dur = d
			return nil
		})
	return o
}

func runDemo(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	var f demoFlags
	o := demoFlagSet(&f, stdout, stderr)
	positional, code, ok := o.parse(args)
	if !ok {
		return code
	}
	if len(positional) > 0 {
		return o.refuse(positional[0], "demo takes no arguments: it makes its own servers")
	}
	if f.serve {
		return serveDemo(ctx, f.dur, stdout, stderr)
	}
	if f.dur != 0 {
		fmt.Fprintf(stderr, "securehttp demo: --for applies to --serve only\n")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()

	began := time.Now()
	d, err := startDemo()
	if err != nil {
		fmt.Fprintf(stderr, "securehttp demo: %v\n", err)
		return exitError
	}
	d.intro(stdout)
	steps := d.steps()
	var failed []string
	for i, s := range steps {
		outcome, err := s.run(ctx)
		if err != nil {
			fmt.Fprintf(stdout, "✘ %d. %s: FAILED: %v\n", i+1, s.title, err)
			failed = append(failed, fmt.Sprint(i+1))
			continue
		}
		fmt.Fprintf(stdout, "✔ %d. %s: %s\n", i+1, s.title, outcome)
	}
	d.close()

	if len(failed) > 0 {
		fmt.Fprintf(stderr, "securehttp demo: step %s did not behave as expected\n", strings.Join(failed, ", "))
		return exitError
	}
	fmt.Fprintf(stdout, "All %d steps behaved as expected in %.1fs; servers stopped.\n",
		len(steps), time.Since(began).Seconds())
	return exitOK
}

// demo is the running scenery: a PKI, two servers and the clients.
type demo struct {
	root, inter *testpki.Cert
	spare       string // the pin of a spare key, the backup pin

	issuer *issuer
	seen   requestLog // every request the API server answered
	dialer loopback

	servers []*http.Server
	serving sync.WaitGroup
	apiAddr string
	idpAddr string

	pinned   *http.Client // the right pins, no token
	wrongPin *http.Client // a pin of a key not in the chain
	api      *http.Client // the right pins and a Bearer
	idp      *http.Client // calls the issuer for Bearer.Refresh

	refreshes atomic.Int64 // Bearer.Refresh calls
}

func startDemo() (_ *demo, err error) {
	d := &demo{}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	d.root, err = testpki.NewRoot("securehttp demo root", testpki.Options{})
	if err != nil {
		return nil, err
	}
	d.inter, err = d.root.NewIntermediate("securehttp demo intermediate", testpki.Options{})
	if err != nil {
		return nil, err
	}
	leaf, err := d.inter.NewLeaf(hostAPI, testpki.Options{DNSNames: []string{hostAPI, hostOther, hostAuth},
		NotAfter: time.Now().Add(demoLeafLifetime)})
	if err != nil {
		return nil, err
	}
	stranger, err := testpki.NewRoot("some other CA", testpki.Options{})
	if err != nil {
		return nil, err
	}
	if d.spare, err = sparePin(); err != nil {
		return nil, err
	}
	d.issuer, err = newIssuer(minLifetime)
	if err != nil {
		return nil, err
	}

	cert := testpki.TLSCertificate(leaf, d.inter)
	api := http.NewServeMux()
	api.HandleFunc("GET "+hostAPI+"/v1/hello", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "hello\n")
	})
	api.HandleFunc("GET "+hostAPI+"/v1/me", d.me)
	api.HandleFunc("GET "+hostAPI+"/v1/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherURL+"/v1/echo", http.StatusFound)
	})
	api.HandleFunc("GET "+hostOther+"/v1/echo", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "echo\n")
	})
	if d.apiAddr, err = d.serve(d.seen.record(d.issuer, api), cert); err != nil {
		return nil, err
	}
	idp := http.NewServeMux()
	idp.HandleFunc("POST "+hostAuth+"/token", d.issuer.serveToken)
	if d.idpAddr, err = d.serve(idp, cert); err != nil {
		return nil, err
	}
	d.dialer.addrs = map[string]string{
		hostAPI + ":443":   d.apiAddr,
		hostOther + ":443": d.apiAddr,
		hostAuth + ":443":  d.idpAddr,
	}

	base := securehttp.Config{
		RootCAs:     d.root.Pool(), // the demo root only: no system roots
		DialContext: d.dialer.DialContext,
		// HTTPS_PROXY must not take the demo off the machine.
		Proxy: func(*http.Request) (*url.URL, error) { return nil, nil },
	}
	right := base
	right.Pins = []securehttp.PinSet{{Host: hostAPI, Pins: []string{
		securehttp.SPKIPin(d.inter.Cert), // primary: the issuing CA's key
		d.spare,                          // backup: a spare key kept offline
	}}}
	wrong := base
	wrong.Pins = []securehttp.PinSet{{Host: hostAPI, Pins: []string{securehttp.SPKIPin(stranger.Cert)}}}
	withToken := right
	withToken.Bearer = &securehttp.Bearer{
		Store:   securehttp.NewMemoryStore(securehttp.Token{}),
		Refresh: d.refresh,
		Hosts:   []string{hostAPI},
		// A window shorter than the client's clock skew allowance (a tenth
		// of the lifetime) means no background refresh ahead of expiry:
		// every refresh the demo counts is one that a step caused.
		RefreshWindow: time.Millisecond,
	}
	for _, c := range []struct {
		client **http.Client
		cfg    securehttp.Config
	}{{&d.pinned, right}, {&d.wrongPin, wrong}, {&d.api, withToken}, {&d.idp, base}} {
		if *c.client, err = securehttp.NewClient(c.cfg); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// serve starts an HTTPS server for h on a new loopback port.
func (d *demo) serve(h http.Handler, cert tls.Certificate) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 5 * time.Second,
		// Step 3 fails a handshake on purpose; keep the server quiet.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	d.servers = append(d.servers, srv)
	d.serving.Add(1)
	go func() {
		defer d.serving.Done()
		srv.ServeTLS(ln, "", "") // returns http.ErrServerClosed on close
	}()
	return ln.Addr().String(), nil
}

// close stops the clients, including a background refresh, then the
// servers, and waits for them.
func (d *demo) close() {
	for _, c := range []*http.Client{d.api, d.pinned, d.wrongPin, d.idp} {
		if c != nil {
			c.CloseIdleConnections()
		}
	}
	for _, s := range d.servers {
		s.Close()
	}
	d.serving.Wait()
}

func (d *demo) intro(w io.Writer) {
	fmt.Fprintf(w, "securehttp demo: everything runs in this process on 127.0.0.1; nothing leaves the machine.\n")
	fmt.Fprintf(w, "  CA:         %q → %q → leaf for %s, %s, %s (ECDSA P-256, generated just now)\n",
		d.root.Cert.Subject.CommonName, d.inter.Cert.Subject.CommonName, hostAPI, hostOther, hostAuth)
	fmt.Fprintf(w, "  API server: %s and %s on %s\n", apiURL, otherURL, d.apiAddr)
	fmt.Fprintf(w, "  JWT issuer: %s/token on %s, HS256 tokens that live about 2 s\n", issuerURL, d.idpAddr)
	fmt.Fprintf(w, "  client:     trusts the demo root only; pins %s to the intermediate's key, with a spare key as backup\n", hostAPI)
}

func (d *demo) steps() []step {
	return []step{
		{"plain HTTP refused", d.stepPlainHTTP},
		{"right pin accepted", d.stepRightPin},
		{"wrong pin refused, nothing sent", d.stepWrongPin},
		{"token attached", d.stepToken},
		{"token expired, one refresh", d.stepExpiry},
		{"revoked token recovered", d.stepRevoked},
		{"redirect to another host gets no token", d.stepRedirect},
	}
}

// 1. A plain-HTTP URL is refused before any connection is made.
func (d *demo) stepPlainHTTP(ctx context.Context) (string, error) {
	dials := d.dialer.dials.Load()
	_, _, err := fetch(ctx, d.pinned, "http://"+hostAPI+"/v1/hello")
	if !errors.Is(err, securehttp.ErrInsecureScheme) {
		return "", fmt.Errorf("got error %v, want ErrInsecureScheme", err)
	}
	if n := d.dialer.dials.Load() - dials; n != 0 {
		return "", fmt.Errorf("got %d connection attempts, want none", n)
	}
	return errText(err) + "; no connection was made", nil
}

// 2. A request with the right pin succeeds.
func (d *demo) stepRightPin(ctx context.Context) (string, error) {
	status, _, err := fetch(ctx, d.pinned, apiURL+"/v1/hello")
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("got status %d, want 200", status)
	}
	return fmt.Sprintf("GET %s/v1/hello → 200 OK; the verified chain holds the pinned intermediate key %s",
		apiURL, securehttp.SPKIPin(d.inter.Cert)), nil
}

// 3. A wrong pin is refused, with the PinError text, before any request.
func (d *demo) stepWrongPin(ctx context.Context) (string, error) {
	mark := d.seen.len()
	_, _, err := fetch(ctx, d.wrongPin, apiURL+"/v1/hello")
	pe, ok := errors.AsType[*securehttp.PinError](err)
	if !ok {
		return "", fmt.Errorf("got error %v, want a *securehttp.PinError", err)
	}
	if n := len(d.seen.since(mark)); n != 0 {
		return "", fmt.Errorf("the server got %d requests, want none", n)
	}
	return pe.Error(), nil
}

// 4. The token is attached: the first request fetches one and sends it.
func (d *demo) stepToken(ctx context.Context) (string, error) {
	refreshes, mark := d.refreshes.Load(), d.seen.len()
	status, _, err := fetch(ctx, d.api, apiURL+"/v1/me")
	if err != nil {
		return "", err
	}
	seen := d.seen.since(mark)
	if status != http.StatusOK || len(seen) != 1 || seen[0].token == "" {
		return "", fmt.Errorf("got status %d and server log %v, want one 200 with a token", status, seen)
	}
	n := d.refreshes.Load() - refreshes
	if n != 1 {
		return "", fmt.Errorf("got %d Refresh calls, want 1", n)
	}
	tok := d.issuer.latest()
	return fmt.Sprintf("GET %s/v1/me → 200 OK; the server verified JWT %s (HS256, lives %.1fs), fetched by 1 Refresh call",
		apiURL, seen[0].token, tok.exp.Sub(tok.iat).Seconds()), nil
}

// 5. The token expires, and requests in flight share exactly one refresh.
func (d *demo) stepExpiry(ctx context.Context) (string, error) {
	old := d.issuer.latest()
	if err := sleepUntil(ctx, old.exp.Add(10*time.Millisecond)); err != nil {
		return "", err
	}
	refreshes, mark := d.refreshes.Load(), d.seen.len()
	var wg sync.WaitGroup
	errs := make([]error, inFlight)
	for i := range inFlight {
		wg.Go(func() {
			status, _, err := fetch(ctx, d.api, apiURL+"/v1/me")
			if err == nil && status != http.StatusOK {
				err = fmt.Errorf("got status %d, want 200", status)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if failed := slices.DeleteFunc(errs, func(err error) bool { return err == nil }); len(failed) > 0 {
		return "", fmt.Errorf("%d of %d requests failed, the first with: %w", len(failed), inFlight, failed[0])
	}
	if n := d.refreshes.Load() - refreshes; n != 1 {
		return "", fmt.Errorf("got %d Refresh calls for %d requests, want exactly 1", n, inFlight)
	}
	seen := d.seen.since(mark)
	tokens := map[string]int{}
	for _, s := range seen {
		tokens[s.token]++
	}
	fresh := d.issuer.latest().id
	if len(seen) != inFlight || tokens[fresh] != inFlight || fresh == old.id {
		return "", fmt.Errorf("the server saw tokens %v, want %d requests with the new token", tokens, inFlight)
	}
	return fmt.Sprintf("%s expired; %d concurrent requests → %d × 200 OK after exactly 1 Refresh call, all with the new %s",
		old.id, inFlight, inFlight, fresh), nil
}

// 6. A revoked token gets a 401, and the client recovers.
func (d *demo) stepRevoked(ctx context.Context) (string, error) {
	revoked := d.issuer.latest().id
	d.issuer.revoke(revoked)
	refreshes, mark := d.refreshes.Load(), d.seen.len()
	status, _, err := fetch(ctx, d.api, apiURL+"/v1/me")
	if err != nil {
		return "", err
	}
	seen := d.seen.since(mark)
	if status != http.StatusOK || len(seen) != 2 ||
		seen[0].status != http.StatusUnauthorized || seen[0].token != revoked ||
		seen[1].status != http.StatusOK || seen[1].token == revoked {
		return "", fmt.Errorf("got status %d and server log %v, want a 401 for %s, then a 200 with a new token", status, seen, revoked)
	}
	if n := d.refreshes.Load() - refreshes; n != 1 {
		return "", fmt.Errorf("got %d Refresh calls, want 1", n)
	}
	return fmt.Sprintf("the server revoked %s and answered 401 invalid_token; the client refreshed once and replayed: 200 OK with %s",
		revoked, seen[1].token), nil
}

// 7. A redirect to another host gets no token.
func (d *demo) stepRedirect(ctx context.Context) (string, error) {
	mark := d.seen.len()
	status, _, err := fetch(ctx, d.api, apiURL+"/v1/moved")
	if err != nil {
		return "", err
	}
	seen := d.seen.since(mark)
	if status != http.StatusOK || len(seen) != 2 ||
		seen[0].host != hostAPI || !seen[0].auth || seen[0].status != http.StatusFound ||
		seen[1].host != hostOther || seen[1].auth {
		return "", fmt.Errorf("got status %d and server log %v, want a 302 from %s with the token, then %s without", status, seen, hostAPI, hostOther)
	}
	return fmt.Sprintf("%s/v1/moved got the token and answered 302 → %s/v1/echo, which got no Authorization header (200 OK)",
		hostAPI, otherURL), nil
}

// fetch GETs u and reads the whole body.
func fetch(ctx context.Context, c *http.Client, u string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func sleepUntil(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sparePin returns the pin of a freshly generated key that is in no
// certificate: the backup key an operator keeps offline for a rotation.
func sparePin() (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(spki)
	return "sha256/" + base64.StdEncoding.EncodeToString(sum[:]), nil
}

func (d *demo) refresh(ctx context.Context) (securehttp.Token, error) {
	d.refreshes.Add(1)
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, issuerURL+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return securehttp.Token{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := d.idp.Do(req)
	if err != nil {
		return securehttp.Token{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return securehttp.Token{}, fmt.Errorf("token endpoint answered %s", resp.Status)
	}
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return securehttp.Token{}, fmt.Errorf("token endpoint: %w", err)
	}
	return securehttp.Token{Value: body.AccessToken}, nil
}
