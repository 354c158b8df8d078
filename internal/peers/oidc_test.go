package peers

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/securehttp/securehttp/internal/testpki"
)

const oidcResource = "https://api.test/"

// oidcPKI is a root and a server leaf for 127.0.0.1.
type oidcPKI struct {
	root *testpki.Cert
	leaf *testpki.Cert
}

func newOIDCPKI(t *testing.T) *oidcPKI {
	t.Helper()
	root, err := testpki.NewRoot("oidc test root", testpki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := root.NewLeaf("127.0.0.1", testpki.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	return &oidcPKI{root: root, leaf: leaf}
}

func (p *oidcPKI) config() OIDCConfig {
	return OIDCConfig{CertPEM: testpki.ChainPEM(p.leaf), KeyPEM: p.leaf.KeyPEM()}
}

// oidcClient returns an HTTP client that trusts only the test root.
func oidcClient(t *testing.T, roots *x509.CertPool, certs ...tls.Certificate) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs:      roots,
		MinVersion:   tls.VersionTLS12,
		Certificates: certs,
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func ccClient(id string, extra map[string]any) map[string]any {
	c := map[string]any{
		"client_id":      id,
		"grant_types":    []string{"client_credentials"},
		"response_types": []string{},
		"redirect_uris":  []string{},
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

type tokenResponse struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r tokenResponse) str(k string) string { s, _ := r.body[k].(string); return s }

// postToken sends a token request; basic, when set, is "id:secret" and
// headers are extra request headers.
func postToken(t *testing.T, c *http.Client, endpoint string, form url.Values, basic []string, headers map[string]string) tokenResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		// RFC 6749 section 2.3.1: form-encode id and secret first.
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("POST %s: read body: %v", endpoint, err)
	}
	r := tokenResponse{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("POST %s: %d, body is not JSON: %v: %q", endpoint, resp.StatusCode, err, raw)
	}
	return r
}

func getJSON(t *testing.T, c *http.Client, u string, v any) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func unb64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("base64url %q: %v", s, err)
	}
	return b
}

// jwkPublicKey converts a public JWK (RSA, EC P-256/P-384, OKP Ed25519) to
// a Go public key.
func jwkPublicKey(t *testing.T, k map[string]string) crypto.PublicKey {
	t.Helper()
	switch k["kty"] {
	case "RSA":
		return &rsa.PublicKey{
			N: new(big.Int).SetBytes(unb64(t, k["n"])),
			E: int(new(big.Int).SetBytes(unb64(t, k["e"])).Int64()),
		}
	case "EC":
		var curve elliptic.Curve
		switch k["crv"] {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		default:
			t.Fatalf("unexpected EC curve %q", k["crv"])
		}
		point := append([]byte{4}, append(unb64(t, k["x"]), unb64(t, k["y"])...)...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			t.Fatalf("EC JWK: %v", err)
		}
		return pub
	case "OKP":
		if k["crv"] != "Ed25519" {
			t.Fatalf("unexpected OKP curve %q", k["crv"])
		}
		return ed25519.PublicKey(unb64(t, k["x"]))
	}
	t.Fatalf("unexpected JWK kty %q", k["kty"])
	return nil
}

// verifyAccessToken checks that token is a JWT access token signed with a
// key from the provider's jwks_uri, issued by the provider for
// oidcResource, and returns its claims.
func verifyAccessToken(t *testing.T, c *http.Client, p *OIDCPeer, token string) jwt.MapClaims {
	t.Helper()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	getJSON(t, c, p.JWKSURI, &set)
	keys := map[string]crypto.PublicKey{}
	for _, k := range set.Keys {
		if _, private := k["d"]; private {
			t.Fatalf("jwks_uri publishes a private key (kid %q)", k["kid"])
		}
		keys[k["kid"]] = jwkPublicKey(t, k)
	}
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(token, claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		k, ok := keys[kid]
		if !ok {
			return nil, fmt.Errorf("no key with kid %q in %s", kid, p.JWKSURI)
		}
		return k, nil
	},
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithIssuer(p.Issuer),
		jwt.WithAudience(oidcResource),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(2*time.Second),
	)
	if err != nil {
		t.Fatalf("access token does not verify against %s: %v", p.JWKSURI, err)
	}
	if typ := parsed.Header["typ"]; typ != "at+jwt" {
		t.Errorf("access token typ = %v, want at+jwt (RFC 9068)", typ)
	}
	return claims
}

func numClaim(t *testing.T, claims jwt.MapClaims, name string) int64 {
	t.Helper()
	f, ok := claims[name].(float64)
	if !ok {
		t.Fatalf("claim %s = %v (%T), want a number", name, claims[name], claims[name])
	}
	return int64(f)
}

// clientAssertion returns a private_key_jwt assertion (RFC 7523) signed with
// key.
func clientAssertion(t *testing.T, key *ecdsa.PrivateKey, kid, clientID, aud string) string {
	t.Helper()
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": clientID,
		"sub": clientID,
		"aud": aud,
		"jti": b64(jti),
		"iat": now.Unix(),
		"exp": now.Add(60 * time.Second).Unix(),
	})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ecPublicJWK returns the public JWK of a P-256 key.
func ecPublicJWK(t *testing.T, key *ecdsa.PrivateKey) map[string]any {
	t.Helper()
	pt, err := key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"kty": "EC",
		"crv": "P-256",
		"x":   b64(pt[1:33]),
		"y":   b64(pt[33:]),
	}
}

// jwkThumbprint is the RFC 7638 thumbprint of a P-256 public JWK.
func jwkThumbprint(jwk map[string]any) string {
	s := fmt.Sprintf(`{"crv":%q,"kty":%q,"x":%q,"y":%q}`, jwk["crv"], jwk["kty"], jwk["x"], jwk["y"])
	sum := sha256.Sum256([]byte(s))
	return b64(sum[:])
}

func newP256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestOIDCClientCredentials(t *testing.T) {
	t.Parallel()
	pki := newOIDCPKI(t)
	pkjwtKey := newP256(t)
	pub := ecPublicJWK(t, pkjwtKey)
	pub["kid"] = "client-key-1"
	pub["alg"] = "ES256"
	pub["use"] = "sig"

	cfg := pki.config()
	cfg.Resource = oidcResource
	cfg.AccessTokenTTL = 120 * time.Second
	cfg.Clients = []map[string]any{
		ccClient("basic-client", map[string]any{
			"token_endpoint_auth_method": "client_secret_basic",
			"client_secret":              "s3cret: with spaces & symbols",
		}),
		ccClient("pkjwt-client", map[string]any{
			"token_endpoint_auth_method": "private_key_jwt",
			"jwks":                       map[string]any{"keys": []any{pub}},
		}),
	}
	p := StartOIDC(t, cfg)
	c := oidcClient(t, pki.root.Pool())

	if !strings.HasPrefix(p.Issuer, "https://127.0.0.1:") || p.Issuer != p.URL("") {
		t.Fatalf("Issuer = %q, URL(\"\") = %q", p.Issuer, p.URL(""))
	}

	t.Run("discovery", func(t *testing.T) {
		for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
			var meta struct {
				Issuer          string   `json:"issuer"`
				TokenEndpoint   string   `json:"token_endpoint"`
				JWKSURI         string   `json:"jwks_uri"`
				AuthMethods     []string `json:"token_endpoint_auth_methods_supported"`
				AuthSigningAlgs []string `json:"token_endpoint_auth_signing_alg_values_supported"`
				GrantTypes      []string `json:"grant_types_supported"`
			}
			getJSON(t, c, p.Issuer+path, &meta)
			if meta.Issuer != p.Issuer || meta.TokenEndpoint != p.TokenEndpoint || meta.JWKSURI != p.JWKSURI {
				t.Errorf("%s: issuer %q token_endpoint %q jwks_uri %q; want %q %q %q", path,
					meta.Issuer, meta.TokenEndpoint, meta.JWKSURI, p.Issuer, p.TokenEndpoint, p.JWKSURI)
			}
			for _, want := range []struct {
				list []string
				item string
			}{
				{meta.AuthMethods, "private_key_jwt"}, {meta.AuthMethods, "client_secret_basic"},
				{meta.AuthSigningAlgs, "ES256"}, {meta.AuthSigningAlgs, "EdDSA"}, {meta.AuthSigningAlgs, "PS256"},
				{meta.GrantTypes, "client_credentials"},
			} {
				if !slices.Contains(want.list, want.item) {
					t.Errorf("%s: %q missing from %v", path, want.item, want.list)
				}
			}
		}
	})

	t.Run("client_secret_basic", func(t *testing.T) {
		before := time.Now().Unix()
		r := postToken(t, c, p.TokenEndpoint, url.Values{
			"grant_type": {"client_credentials"},
			"resource":   {oidcResource},
			"scope":      {"read"},
		}, []string{"basic-client", "s3cret: with spaces & symbols"}, nil)
		if r.status != http.StatusOK {
			t.Fatalf("token request: %d %s", r.status, r.raw)
		}
		if r.str("token_type") != "Bearer" || r.body["expires_in"] != float64(120) || r.str("scope") != "read" {
			t.Errorf("token response: %s; want token_type Bearer, expires_in 120, scope read", r.raw)
		}
		claims := verifyAccessToken(t, c, p, r.str("access_token"))
		if claims["client_id"] != "basic-client" || claims["sub"] != "basic-client" || claims["scope"] != "read" {
			t.Errorf("claims = %v", claims)
		}
		iat, exp := numClaim(t, claims, "iat"), numClaim(t, claims, "exp")
		if exp-iat != 120 || iat < before-1 || iat > time.Now().Unix()+1 {
			t.Errorf("iat %d exp %d, want exp-iat = 120 and iat about now", iat, exp)
		}
	})

	t.Run("client_secret_basic wrong secret", func(t *testing.T) {
		r := postToken(t, c, p.TokenEndpoint, url.Values{"grant_type": {"client_credentials"}},
			[]string{"basic-client", "wrong"}, nil)
		if r.status != http.StatusUnauthorized || r.str("error") != "invalid_client" {
			t.Errorf("got %d %s, want 401 invalid_client", r.status, r.raw)
		}
	})

	t.Run("unknown resource", func(t *testing.T) {
		r := postToken(t, c, p.TokenEndpoint, url.Values{
			"grant_type": {"client_credentials"},
			"resource":   {"https://other.test/"},
		}, []string{"basic-client", "s3cret: with spaces & symbols"}, nil)
		if r.status != http.StatusBadRequest || r.str("error") != "invalid_target" {
			t.Errorf("got %d %s, want 400 invalid_target", r.status, r.raw)
		}
	})

	t.Run("private_key_jwt", func(t *testing.T) {
		for _, aud := range []string{p.Issuer, p.TokenEndpoint} {
			assertion := clientAssertion(t, pkjwtKey, "client-key-1", "pkjwt-client", aud)
			form := url.Values{
				"grant_type":            {"client_credentials"},
				"resource":              {oidcResource},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
				"client_assertion":      {assertion},
			}
			r := postToken(t, c, p.TokenEndpoint, form, nil, nil)
			if r.status != http.StatusOK {
				t.Fatalf("aud %s: token request: %d %s", aud, r.status, r.raw)
			}
			if r.str("token_type") != "Bearer" || r.body["expires_in"] != float64(120) {
				t.Errorf("aud %s: token response: %s", aud, r.raw)
			}
			claims := verifyAccessToken(t, c, p, r.str("access_token"))
			if claims["client_id"] != "pkjwt-client" {
				t.Errorf("aud %s: claims = %v", aud, claims)
			}
			// The same assertion (same jti) is refused the second time.
			r = postToken(t, c, p.TokenEndpoint, form, nil, nil)
			if r.status != http.StatusUnauthorized || r.str("error") != "invalid_client" {
				t.Errorf("aud %s: replayed assertion: got %d %s, want 401 invalid_client", aud, r.status, r.raw)
			}
		}
		// An assertion signed by another key is refused.
		r := postToken(t, c, p.TokenEndpoint, url.Values{
			"grant_type":            {"client_credentials"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {clientAssertion(t, newP256(t), "client-key-1", "pkjwt-client", p.Issuer)},
		}, nil, nil)
		if r.status != http.StatusUnauthorized || r.str("error") != "invalid_client" {
			t.Errorf("foreign key: got %d %s, want 401 invalid_client", r.status, r.raw)
		}
	})

	if strings.Contains(p.Log(), "s3cret") {
		t.Errorf("the provider's log contains the client secret:\n%s", p.Log())
	}
}

// dpopProof returns a DPoP proof (RFC 9449) for a POST to htu.
func dpopProof(t *testing.T, key *ecdsa.PrivateKey, htu, nonce string) string {
	t.Helper()
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{"htm": http.MethodPost, "htu": htu, "iat": time.Now().Unix(), "jti": b64(jti)}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["typ"] = "dpop+jwt"
	tok.Header["jwk"] = ecPublicJWK(t, key)
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOIDCDPoPNonce(t *testing.T) {
	t.Parallel()
	pki := newOIDCPKI(t)
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	cfg := pki.config()
	cfg.Resource = oidcResource
	cfg.AccessTokenTTL = 60 * time.Second
	cfg.DPoP = true
	cfg.DPoPNonceSecret = secret
	cfg.Clients = []map[string]any{ccClient("dpop-client", map[string]any{
		"token_endpoint_auth_method": "client_secret_basic",
		"client_secret":              "dpop-secret",
	})}
	p := StartOIDC(t, cfg)
	c := oidcClient(t, pki.root.Pool())

	var meta struct {
		DPoPAlgs []string `json:"dpop_signing_alg_values_supported"`
	}
	getJSON(t, c, p.Issuer+"/.well-known/openid-configuration", &meta)
	for _, alg := range []string{"ES256", "EdDSA", "PS256"} {
		if !slices.Contains(meta.DPoPAlgs, alg) {
			t.Errorf("dpop_signing_alg_values_supported = %v, missing %s", meta.DPoPAlgs, alg)
		}
	}

	key := newP256(t)
	form := url.Values{"grant_type": {"client_credentials"}, "resource": {oidcResource}}
	basic := []string{"dpop-client", "dpop-secret"}

	r := postToken(t, c, p.TokenEndpoint, form, basic, map[string]string{"DPoP": dpopProof(t, key, p.TokenEndpoint, "")})
	nonce := r.header.Get("DPoP-Nonce")
	if r.status != http.StatusBadRequest || r.str("error") != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("first DPoP request: %d DPoP-Nonce %q %s; want 400 use_dpop_nonce with a DPoP-Nonce header", r.status, nonce, r.raw)
	}

	r = postToken(t, c, p.TokenEndpoint, form, basic, map[string]string{"DPoP": dpopProof(t, key, p.TokenEndpoint, nonce)})
	if r.status != http.StatusOK || r.str("token_type") != "DPoP" {
		t.Fatalf("DPoP request with the nonce: %d %s; want 200 token_type DPoP", r.status, r.raw)
	}
	claims := verifyAccessToken(t, c, p, r.str("access_token"))
	cnf, _ := claims["cnf"].(map[string]any)
	if want := jwkThumbprint(ecPublicJWK(t, key)); cnf["jkt"] != want {
		t.Errorf("cnf = %v, want jkt %s", claims["cnf"], want)
	}

	// A made-up nonce is refused with a fresh one.
	r = postToken(t, c, p.TokenEndpoint, form, basic, map[string]string{"DPoP": dpopProof(t, key, p.TokenEndpoint, "bogus")})
	if r.status != http.StatusBadRequest || r.str("error") != "use_dpop_nonce" || r.header.Get("DPoP-Nonce") == "" {
		t.Errorf("bogus nonce: %d DPoP-Nonce %q %s; want 400 use_dpop_nonce", r.status, r.header.Get("DPoP-Nonce"), r.raw)
	}

	// Stop sends SIGTERM; the provider exits with status 0.
	p.Stop()
	if p.waitErr != nil {
		t.Errorf("provider exit after SIGTERM: %v\n%s", p.waitErr, p.Log())
	}
	if err := syscall.Kill(p.Pid(), 0); err == nil {
		t.Errorf("process %d still exists after Stop", p.Pid())
	}
}

func TestOIDCMTLS(t *testing.T) {
	t.Parallel()
	pki := newOIDCPKI(t)
	clientRoot, err := testpki.NewRoot("oidc client root", testpki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clientLeaf, err := clientRoot.NewLeaf("mtls-client", testpki.Options{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The RFC 4514 string of the subject as it is encoded (pkix.Name's
	// String regroups attributes by type).
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(clientLeaf.Cert.RawSubject, &rdns); err != nil {
		t.Fatal(err)
	}
	dn := rdns.String()

	cfg := pki.config()
	cfg.Resource = oidcResource
	cfg.MTLS = true
	cfg.ClientCAPEM = clientRoot.CertPEM()
	cfg.Clients = []map[string]any{
		ccClient("mtls-client", map[string]any{
			"token_endpoint_auth_method":                 "tls_client_auth",
			"tls_client_auth_subject_dn":                 dn,
			"tls_client_certificate_bound_access_tokens": true,
		}),
		ccClient("other-dn", map[string]any{
			"token_endpoint_auth_method": "tls_client_auth",
			"tls_client_auth_subject_dn": "CN=someone else",
		}),
	}
	p := StartOIDC(t, cfg)
	withCert := oidcClient(t, pki.root.Pool(), testpki.TLSCertificate(clientLeaf))
	without := oidcClient(t, pki.root.Pool())

	form := func(id string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "resource": {oidcResource}}
	}
	r := postToken(t, withCert, p.TokenEndpoint, form("mtls-client"), nil, nil)
	if r.status != http.StatusOK || r.str("token_type") != "Bearer" {
		t.Fatalf("tls_client_auth: %d %s\n%s", r.status, r.raw, p.Log())
	}
	claims := verifyAccessToken(t, without, p, r.str("access_token"))
	sum := sha256.Sum256(clientLeaf.Cert.Raw)
	cnf, _ := claims["cnf"].(map[string]any)
	if cnf["x5t#S256"] != b64(sum[:]) {
		t.Errorf("cnf = %v, want x5t#S256 %s", claims["cnf"], b64(sum[:]))
	}

	r = postToken(t, without, p.TokenEndpoint, form("mtls-client"), nil, nil)
	if r.status != http.StatusUnauthorized || r.str("error") != "invalid_client" {
		t.Errorf("no certificate: %d %s, want 401 invalid_client", r.status, r.raw)
	}
	r = postToken(t, withCert, p.TokenEndpoint, form("other-dn"), nil, nil)
	if r.status != http.StatusUnauthorized || r.str("error") != "invalid_client" {
		t.Errorf("subject DN mismatch: %d %s, want 401 invalid_client", r.status, r.raw)
	}
	// The reasons reach the log through node's stderr pipe, a moment later.
	deadline := time.Now().Add(3 * time.Second)
	for {
		log := p.Log()
		if strings.Contains(log, "client certificate was not provided") &&
			strings.Contains(log, "certificate subject value does not match") {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the provider's log lacks the failure reasons:\n%s", log)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// With MTLSEndpointAliases the provider advertises a second token endpoint
// (RFC 8705 section 5) on a listener of its own that asks for client
// certificates, while the main listener no longer does: tls_client_auth
// then works at the alias only.
func TestOIDCMTLSEndpointAliases(t *testing.T) {
	t.Parallel()
	pki := newOIDCPKI(t)
	clientRoot, err := testpki.NewRoot("oidc client root", testpki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clientLeaf, err := clientRoot.NewLeaf("mtls-client", testpki.Options{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := pki.config()
	cfg.MTLS = true
	cfg.MTLSEndpointAliases = true
	cfg.ClientCAPEM = clientRoot.CertPEM()
	cfg.Clients = []map[string]any{ccClient("mtls-client", map[string]any{
		"token_endpoint_auth_method": "tls_client_auth",
		"tls_client_auth_subject_dn": "CN=mtls-client",
	})}
	p := StartOIDC(t, cfg)
	if p.MTLSTokenEndpoint == "" || p.MTLSTokenEndpoint == p.TokenEndpoint {
		t.Fatalf("got MTLSTokenEndpoint %q, want an alias of its own (the token endpoint is %q)", p.MTLSTokenEndpoint, p.TokenEndpoint)
	}
	withCert := oidcClient(t, pki.root.Pool(), testpki.TLSCertificate(clientLeaf))

	var md struct {
		TokenEndpoint string            `json:"token_endpoint"`
		Aliases       map[string]string `json:"mtls_endpoint_aliases"`
	}
	getJSON(t, withCert, p.Issuer+"/.well-known/openid-configuration", &md)
	if md.TokenEndpoint != p.TokenEndpoint || md.Aliases["token_endpoint"] != p.MTLSTokenEndpoint {
		t.Fatalf("got token_endpoint %q and mtls_endpoint_aliases %v, want %q and token_endpoint %q",
			md.TokenEndpoint, md.Aliases, p.TokenEndpoint, p.MTLSTokenEndpoint)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"mtls-client"}}
	if r := postToken(t, withCert, p.MTLSTokenEndpoint, form, nil, nil); r.status != http.StatusOK {
		t.Fatalf("tls_client_auth at the alias: got %d %s, want 200\n%s", r.status, r.raw, p.Log())
	}
	if r := postToken(t, withCert, p.TokenEndpoint, form, nil, nil); r.status != http.StatusUnauthorized || r.str("error") != "invalid_client" {
		t.Fatalf("tls_client_auth at the plain endpoint: got %d %s, want 401 invalid_client", r.status, r.raw)
	}
}
