package securehttp

import (
	"context"
	"github.com/securehttp/securehttp/internal/testutil"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/internal/testpki"
)

// startFederatedOIDC runs oidc-provider with a client that authenticates
// with c's projected tokens (RFC 7523 section 2.2), verified against c's
// keys. RFC 7523 section 3 wants a client assertion's iss and sub to be the
// client_id, which oidc-provider enforces (Entra ID instead matches a
// Kubernetes token's iss and sub to a federated credential): the client is
// registered under the cluster's issuer, and the tests project tokens whose
// subject is that issuer. The client may present a token again while it
// lives, as Entra ID lets a pod do, and the provider allows no clock
// leeway, so that an expired token is refused.
func startFederatedOIDC(t *testing.T, c *cluster, ttl time.Duration) *peers.OIDCPeer {
	t.Helper()
	p := sharedPKI(t)
	return peers.StartOIDC(t, peers.OIDCConfig{
		CertPEM:        testpki.ChainPEM(p.leaf, p.inter),
		KeyPEM:         p.leaf.KeyPEM(),
		AccessTokenTTL: ttl,
		Resource:       oidcResource,
		StrictClock:    true,
		Clients: []map[string]any{oidcClientMeta(c.issuer, map[string]any{
			"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "RS256",
			"jwks": c.jwks()})},
		FederatedClients: []string{c.issuer},
	})
}

// handedOut records the JWTs an Assertion hands out.
type handedOut struct {
	now     func() time.Time
	mu      sync.Mutex
	jtis    map[string]bool
	sigs    []string // the signatures of the distinct JWTs
	expired int      // handed out at or after their exp
}

func (h *handedOut) wrap(t testing.TB, a Assertion) Assertion {
	h.jtis = map[string]bool{}
	return func(ctx context.Context) (string, error) {
		s, err := a(ctx)
		if err != nil {
			return s, err
		}
		claims := claimsOf(t, s)
		exp, _ := claims.GetExpirationTime()
		h.mu.Lock()
		defer h.mu.Unlock()
		if jti := claims["jti"].(string); !h.jtis[jti] {
			h.jtis[jti] = true
			h.sigs = append(h.sigs, s[strings.LastIndexByte(s, '.')+1:])
		}
		if exp == nil || !h.now().Before(exp.Time) {
			h.expired++
		}
		return s, nil
	}
}

func (h *handedOut) distinct() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.jtis)
}

// A pod's projected token, 10 s long and rewritten every 8 s by a swap of
// "..data", authenticates the client at oidc-provider while 8 workers call
// an API that verifies every access token against the provider's keys: no
// request fails, no expired token reaches the provider (which allows no
// leeway and would refuse it), and each new file is read once. The run
// lasts 20 s; SECUREHTTP_ROTATION_DURATION lengthens it (60s for the
// figures).
func TestClientAssertionFromRotatingProjectedToken(t *testing.T) {
	t.Parallel()
	duration := soakSetting(t, "SECUREHTTP_ROTATION_DURATION", 20*time.Second)
	const (
		lifetime = 10 * time.Second
		every    = 8 * time.Second
		workers  = 8
	)
	c := newCluster(t, "https://cluster.test")
	op := startFederatedOIDC(t, c, 5*time.Second)
	verifier := newJWKSVerifier(t, op)
	sub := c.issuer
	c.project(t, c.token(t, sub, op.Issuer, time.Now(), lifetime))

	stop := make(chan struct{})
	var writer sync.WaitGroup
	writer.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				c.project(t, c.token(t, sub, op.Issuer, time.Now(), lifetime))
			}
		}
	})
	defer writer.Wait()
	defer close(stop)

	var (
		served, refused, tokenRequests atomic.Int64
		firstRefusal                   atomic.Value
	)
	api := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := verifier.verify(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), time.Now()); err != nil {
			refused.Add(1)
			firstRefusal.CompareAndSwap(nil, err.Error())
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		served.Add(1)
	}))
	file := newAssertionFile(c.path(), time.Now)
	seen := &handedOut{now: time.Now}
	cfg := testConfig(t)
	logger, logs := testutil.NewLogger()
	cfg.Logger = logger
	cfg.Hooks = &Hooks{TokenRequest: func(context.Context, TokenEvent) { tokenRequests.Add(1) }}
	cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, RefreshTimeout: 10 * time.Second,
		ClientCredentials: &ClientCredentials{Issuer: op.Issuer, ClientID: c.issuer,
			Assertion: seen.wrap(t, file.get), Resource: []string{oidcResource}}}
	client := &http.Client{Transport: newTestTransport(t, cfg), Timeout: 20 * time.Second}

	var (
		requests, failed atomic.Int64
		firstFailure     atomic.Value
		wg               sync.WaitGroup
	)
	deadline := time.Now().Add(duration)
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				requests.Add(1)
				resp, err := client.Get(testutil.HostURL(api, hostAPI, "/v1"))
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = &OAuthError{StatusCode: resp.StatusCode, Code: "(API refused)"}
					}
				}
				if err != nil {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
				}
				time.Sleep(25 * time.Millisecond)
			}
		})
	}
	wg.Wait()

	if n := failed.Load(); n != 0 {
		t.Errorf("got %d failed requests of %d (first: %v; API: %v), want 0", n, requests.Load(), firstFailure.Load(), firstRefusal.Load())
	}
	seen.mu.Lock()
	expired := seen.expired
	seen.mu.Unlock()
	if expired != 0 {
		t.Errorf("got %d expired tokens handed out, want 0", expired)
	}
	accepted := op.FederatedAssertions()
	late := 0
	for _, a := range accepted {
		if !a.Now.Before(a.Exp) {
			late++
		}
	}
	if late != 0 || strings.Contains(op.Output(), "grant.error") {
		t.Errorf("got %d expired assertions accepted and refusals in the provider's log:\n%s\nwant none", late, op.Output())
	}
	if got, want := int64(len(accepted)), tokenRequests.Load(); got != want {
		t.Errorf("the provider accepted %d client assertions for %d token requests, want one each", got, want)
	}
	files := int(duration / every)
	if d := seen.distinct(); file.reads != d || d < files {
		t.Errorf("got %d file reads for %d distinct tokens sent, want one read per token, and at least %d tokens over %v",
			file.reads, d, files, duration)
	}
	seen.mu.Lock()
	for _, sig := range seen.sigs {
		if strings.Contains(logs.String(), sig) {
			t.Error("a projected token's signature appears in the log")
		}
	}
	seen.mu.Unlock()
	t.Logf("%v: %d requests (%d failed), %d token requests, %d files written, %d read, %d distinct tokens sent, %d expired sent",
		duration, requests.Load(), failed.Load(), tokenRequests.Load(), c.written, file.reads, seen.distinct(), expired)
}

// Once the client holds a usable access token, a request costs neither a
// read of the token file nor a token request.
func TestWarmRequestCostsNoFileReadNorTokenRequest(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "https://cluster.test")
	op := startFederatedOIDC(t, c, 10*time.Minute)
	c.project(t, c.token(t, c.issuer, op.Issuer, time.Now(), time.Hour))
	api := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	file := newAssertionFile(c.path(), time.Now)
	var tokenRequests, calls atomic.Int64
	cfg := testConfig(t)
	cfg.Hooks = &Hooks{TokenRequest: func(context.Context, TokenEvent) { tokenRequests.Add(1) }}
	cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, ClientCredentials: &ClientCredentials{Issuer: op.Issuer, ClientID: c.issuer,
		Assertion: func(ctx context.Context) (string, error) { calls.Add(1); return file.get(ctx) }, Resource: []string{oidcResource}}}
	client := &http.Client{Transport: newTestTransport(t, cfg), Timeout: 20 * time.Second}
	get := func() {
		t.Helper()
		resp, err := client.Get(testutil.HostURL(api, hostAPI, "/v1"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got status %d, want 200", resp.StatusCode)
		}
	}
	get() // cold: one token request, one read
	if tokenRequests.Load() != 1 || file.reads != 1 || calls.Load() != 1 {
		t.Fatalf("cold request: got %d token requests, %d reads and %d assertion calls, want 1 each",
			tokenRequests.Load(), file.reads, calls.Load())
	}
	const warm = 100
	for range warm {
		get()
	}
	if tokenRequests.Load() != 1 || file.reads != 1 || calls.Load() != 1 {
		t.Fatalf("after %d warm requests: got %d token requests, %d reads and %d assertion calls, want still 1 each",
			warm, tokenRequests.Load(), file.reads, calls.Load())
	}
}
