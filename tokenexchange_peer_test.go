package securehttp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/internal/testpki"
)

const (
	zitadelClient = "workload"
	zitadelSecret = "zitadel client secret"
	// stsAudience is the audience of the projected tokens that the
	// authorization server exchanges, as a pod spec names it.
	stsAudience = "https://sts.test"
)

// startZitadel runs zitadel/oidc's provider with the client
// zitadelClient, taking c's tokens (with stsAudience) as subject tokens
// when c is set, and the service accounts of profileKeys for the JWT
// profile grant.
func startZitadel(t *testing.T, c *cluster, profileKeys map[string]json.RawMessage) *peers.ZitadelPeer {
	t.Helper()
	p := sharedPKI(t)
	cfg := peers.ZitadelConfig{CertPEM: testpki.ChainPEM(p.leaf, p.inter), KeyPEM: p.leaf.KeyPEM(),
		ClientID: zitadelClient, ClientSecret: zitadelSecret, ProfileKeys: profileKeys}
	if c != nil {
		jwks, err := json.Marshal(c.jwks())
		if err != nil {
			t.Fatal(err)
		}
		cfg.SubjectIssuer, cfg.SubjectAudience, cfg.SubjectJWKS = c.issuer, stsAudience, jwks
	}
	return peers.StartZitadel(t, cfg)
}

// zitadel/oidc's provider exchanges a pod's projected token, read by
// AssertionFile and verified against the cluster's keys with no leeway,
// for an access token of the pod's service account; with an actor token,
// for one that the actor obtains; and, asked for an ID token, for one that
// comes with token_type N_A and is sent as a bearer token all the same. A
// JWT it cannot issue, a subject token signed by another key, and an
// expired projected token (never sent) each fail with a typed error.
func TestZitadelTokenExchangeOfProjectedToken(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "https://cluster.test")
	z := startZitadel(t, c, nil)
	const pod = "system:serviceaccount:default:app"
	c.project(t, c.token(t, pod, stsAudience, time.Now(), time.Hour))
	client := &ClientCredentials{ClientID: zitadelClient, ClientSecret: zitadelSecret}
	exchange := func(te TokenExchange) (Config, *atomic.Int64) {
		var tokenRequests atomic.Int64
		te.Issuer, te.Client = z.Issuer, client
		if te.SubjectToken == nil {
			te.SubjectToken = AssertionFile(c.path())
		}
		cfg := testConfig(t)
		cfg.Hooks = &Hooks{TokenRequest: func(context.Context, TokenEvent) { tokenRequests.Add(1) }}
		cfg.Bearer = &Bearer{Hosts: []string{hostAPI}, RefreshTimeout: 10 * time.Second, TokenExchange: &te}
		return cfg, &tokenRequests
	}

	t.Run("access token", func(t *testing.T) {
		t.Parallel()
		api := newPeerAPI(t, z.JWKSURI, z.Issuer)
		cfg, _ := exchange(TokenExchange{Scopes: []string{"openid", "read"}})
		api.callFor(t, cfg, 0)
		seen := api.seen()
		if len(seen) != 1 || seen[0]["sub"] != pod || seen[0]["client_id"] != zitadelClient {
			t.Fatalf("got tokens %v, want one for %s obtained by %s", seen, pod, zitadelClient)
		}
		if subjects := z.SubjectTokens(); len(subjects) == 0 || subjects[len(subjects)-1].Subject != pod {
			t.Fatalf("the provider verified subject tokens %v, want %s's", subjects, pod)
		}
	})
	t.Run("with an actor token", func(t *testing.T) {
		t.Parallel()
		api := newPeerAPI(t, z.JWKSURI, z.Issuer)
		actor := c.token(t, "system:serviceaccount:default:gateway", stsAudience, time.Now(), time.Hour)
		cfg, _ := exchange(TokenExchange{ActorTokenType: tokenTypeJWT,
			ActorToken: func(context.Context) (string, error) { return actor, nil }})
		api.callFor(t, cfg, 0)
		if seen := api.seen(); len(seen) != 1 || seen[0]["sub"] != pod {
			t.Fatalf("got tokens %v, want one for %s", seen, pod)
		}
	})
	t.Run("ID token as N_A", func(t *testing.T) {
		t.Parallel()
		api := newPeerAPI(t, z.JWKSURI, z.Issuer)
		cfg, _ := exchange(TokenExchange{RequestedTokenType: tokenTypeIDToken, Scopes: []string{"openid"}})
		api.callFor(t, cfg, 0)
		seen := api.seen()
		if len(seen) != 1 || seen[0]["sub"] != pod {
			t.Fatalf("got tokens %v, want an ID token for %s", seen, pod)
		}
		if aud, _ := seen[0].GetAudience(); len(aud) == 0 || aud[0] != zitadelClient {
			t.Fatalf("got a token for %v, want an ID token for %s", aud, zitadelClient)
		}
	})
	t.Run("a JWT it cannot issue", func(t *testing.T) {
		t.Parallel()
		cfg, _ := exchange(TokenExchange{RequestedTokenType: tokenTypeJWT})
		_, err := (&http.Client{Transport: newTestTransport(t, cfg), Timeout: 20 * time.Second}).Get("https://" + hostAPI + "/never")
		if oe, ok := errors.AsType[*OAuthError](err); !ok || oe.Code != "invalid_request" {
			t.Fatalf("got %v, want an *OAuthError invalid_request", err)
		}
	})
	t.Run("subject token signed by another key", func(t *testing.T) {
		t.Parallel()
		forged := newCluster(t, c.issuer)
		forged.kid = c.kid
		tok := forged.token(t, pod, stsAudience, time.Now(), time.Hour)
		cfg, _ := exchange(TokenExchange{SubjectToken: func(context.Context) (string, error) { return tok, nil }})
		_, err := (&http.Client{Transport: newTestTransport(t, cfg), Timeout: 20 * time.Second}).Get("https://" + hostAPI + "/never")
		oe, ok := errors.AsType[*OAuthError](err)
		if !ok || oe.Code != "invalid_request" {
			t.Fatalf("got %v, want an *OAuthError invalid_request", err)
		}
		if strings.Contains(err.Error(), tok[strings.LastIndexByte(tok, '.')+1:]) {
			t.Fatal("the error shows the subject token")
		}
	})
	t.Run("expired projected token", func(t *testing.T) {
		t.Parallel()
		stale := newCluster(t, c.issuer)
		stale.key, stale.kid = c.key, c.kid
		stale.project(t, stale.token(t, pod, stsAudience, time.Now().Add(-2*time.Hour), time.Hour))
		cfg, tokenRequests := exchange(TokenExchange{SubjectToken: AssertionFile(stale.path())})
		_, err := (&http.Client{Transport: newTestTransport(t, cfg), Timeout: 20 * time.Second}).Get("https://" + hostAPI + "/never")
		if !errors.Is(err, ErrNoToken) || !errors.Is(err, errAssertionExpired) || !strings.Contains(err.Error(), stale.path()) {
			t.Fatalf("got %v, want ErrNoToken naming %s and its expiry", err, stale.path())
		}
		if n := tokenRequests.Load(); n != 0 {
			t.Fatalf("got %d token requests, want none", n)
		}
	})
}
