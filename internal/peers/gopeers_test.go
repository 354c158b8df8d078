package peers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// A Go peer's build is keyed by its module's content: the same module
// gives the same binary, built once.
func TestGoPeerBuildIsCached(t *testing.T) {
	t.Parallel()
	if _, ok := lookup("go"); !ok {
		missingTool(t, "peers: go not found in PATH")
	}
	first := requireGoPeer(t, Zitadel)
	again, err := Zitadel.Build(context.Background())
	if err != nil || again != first || !isExecutable(again) {
		t.Fatalf("got %q, %v, want the cached %q", again, err, first)
	}
	dir, err := peerDir(Zitadel.Name, "go.mod")
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := Zitadel.key(dir)
	tagged := Zitadel
	tagged.Tags = []string{"other"}
	if k2, _ := tagged.key(dir); k1 == k2 {
		t.Fatalf("got the same key %s with other tags, want another", k1)
	}
}

// discover fetches an issuer's OpenID configuration over TLS.
func discover(t *testing.T, p *oidcPKI, issuer string) map[string]any {
	t.Helper()
	resp, err := oidcClient(t, p.root.Pool()).Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	return md
}

// stopped reports whether nothing listens at addr any more.
func stopped(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err != nil
}

// Hydra starts over TLS on 127.0.0.1 with its admin API beside, serves
// its metadata for the issuer, and is gone after Stop.
func TestHydraStartsAndStops(t *testing.T) {
	t.Parallel()
	p := newOIDCPKI(t)
	h := StartHydra(t, HydraConfig{CertPEM: p.config().CertPEM, KeyPEM: p.config().KeyPEM})
	if md := discover(t, p, h.Issuer); md["issuer"] != h.Issuer || md["token_endpoint"] != h.TokenEndpoint {
		t.Fatalf("got issuer %v and token endpoint %v, want %s and %s", md["issuer"], md["token_endpoint"], h.Issuer, h.TokenEndpoint)
	}
	var clients []any
	h.Admin(t, http.MethodGet, "/admin/clients", nil, http.StatusOK, &clients)
	h.Stop()
	if !stopped(h.Addr) {
		t.Fatalf("hydra still listens on %s after Stop", h.Addr)
	}
}

// The zitadel peer starts over TLS on 127.0.0.1, serves its metadata for
// the issuer, and is gone after Stop.
func TestZitadelStartsAndStops(t *testing.T) {
	t.Parallel()
	p := newOIDCPKI(t)
	z := StartZitadel(t, ZitadelConfig{CertPEM: p.config().CertPEM, KeyPEM: p.config().KeyPEM, ClientID: "c", ClientSecret: "s"})
	if md := discover(t, p, z.Issuer); md["issuer"] != z.Issuer || md["token_endpoint"] != z.TokenEndpoint {
		t.Fatalf("got issuer %v and token endpoint %v, want %s and %s", md["issuer"], md["token_endpoint"], z.Issuer, z.TokenEndpoint)
	}
	z.Stop()
	if !stopped(z.Addr) {
		t.Fatalf("zitadel still listens on %s after Stop", z.Addr)
	}
}

// oidc-provider takes a federated client's assertion again while it lives,
// and logs it; another client's assertion only once.
func TestOIDCFederatedClientsMayRepeatAnAssertion(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk := map[string]any{"kty": "EC", "crv": "P-256", "kid": "k",
		"x": base64.RawURLEncoding.EncodeToString(key.X.FillBytes(make([]byte, 32))),
		"y": base64.RawURLEncoding.EncodeToString(key.Y.FillBytes(make([]byte, 32)))}
	auth := map[string]any{"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "ES256",
		"jwks": map[string]any{"keys": []any{jwk}}}
	p := newOIDCPKI(t)
	cfg := p.config()
	cfg.Clients = []map[string]any{ccClient("federated", auth), ccClient("plain", auth)}
	cfg.FederatedClients = []string{"federated"}
	cfg.StrictClock = true
	op := StartOIDC(t, cfg)
	client := oidcClient(t, p.root.Pool())
	post := func(id, assertion string) int {
		resp, err := client.PostForm(op.TokenEndpoint, url.Values{"grant_type": {"client_credentials"}, "client_id": {id},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	sign := func(id string) string {
		now := time.Now()
		s, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": id, "sub": id, "aud": op.Issuer,
			"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": rand.Text()}).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	fed, plain := sign("federated"), sign("plain")
	if a, b := post("federated", fed), post("federated", fed); a != http.StatusOK || b != http.StatusOK {
		t.Fatalf("federated client: got %d then %d for one assertion, want 200 twice", a, b)
	}
	if a, b := post("plain", plain), post("plain", plain); a != http.StatusOK || b != http.StatusUnauthorized {
		t.Fatalf("plain client: got %d then %d for one assertion, want 200 then 401", a, b)
	}
	if got := op.FederatedAssertions(); len(got) != 2 || got[0].Client != "federated" || !got[0].Now.Before(got[0].Exp) {
		t.Fatalf("got logged assertions %+v, want the federated client's two", got)
	}
	// The provider writes its log on its own schedule: wait for the line,
	// for a bounded time.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(op.Output(), "client assertion tokens must only be used once"); {
		if time.Now().After(deadline) {
			t.Fatalf("the provider's log does not say why the plain client's second request was refused:\n%s", op.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
