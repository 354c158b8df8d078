package peers

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// OIDC peer: panva's oidc-provider (npm), run by Node.js from
// internal/peers/oidc/server.mjs, as an OAuth 2.0 authorization server on
// https://127.0.0.1:PORT.

const (
	// nodeReadyTimeout bounds how long a node peer may take to print
	// READY. oidc-provider loads and generates an RSA key at start, which
	// takes about a second on an idle machine.
	nodeReadyTimeout = 15 * time.Second
	// npmCITimeout bounds the local "npm ci" that StartOIDC runs when the
	// node_modules directory is missing (never in CI).
	npmCITimeout = 3 * time.Minute
	// minNodeMajor and minNodeMinor: oidc-provider 9 needs crypto.hash,
	// which Node has since 20.12.
	minNodeMajor, minNodeMinor = 20, 12
)

// OIDCNpmCICommand is the command that installs the provider's npm
// dependencies from the lock file, run from the module root. CI must run it
// before the tests (with CI=true StartOIDC fails instead of installing).
const OIDCNpmCICommand = "npm ci --prefix internal/peers/oidc --ignore-scripts --no-audit --no-fund"

// OIDCConfig configures StartOIDC.
type OIDCConfig struct {
	// CertPEM is the server chain for 127.0.0.1, leaf first; KeyPEM is the
	// leaf's private key (make them with internal/testpki, with the IP SAN
	// 127.0.0.1). Required.
	CertPEM, KeyPEM []byte

	// Clients are oidc-provider client metadata objects, passed to the
	// provider as they are. Examples:
	//
	//	{"client_id": "a", "client_secret": "s", "token_endpoint_auth_method": "client_secret_basic",
	//	 "grant_types": []string{"client_credentials"}, "response_types": []string{}, "redirect_uris": []string{}}
	//	{"client_id": "b", "token_endpoint_auth_method": "private_key_jwt",
	//	 "jwks": map[string]any{"keys": []any{publicJWK}}, "grant_types": ..., ...}
	//	{"client_id": "c", "token_endpoint_auth_method": "tls_client_auth",
	//	 "tls_client_auth_subject_dn": "CN=client", "tls_client_certificate_bound_access_tokens": true, ...}
	//
	// Clients that use client_credentials need "grant_types":
	// ["client_credentials"], "response_types": [] and "redirect_uris": [].
	// "dpop_bound_access_tokens": true makes DPoP mandatory for a client.
	Clients []map[string]any

	// AccessTokenTTL is the lifetime of client_credentials access tokens
	// (expires_in and exp - iat). It must be a whole number of seconds;
	// zero means 10 minutes.
	AccessTokenTTL time.Duration

	// Resource is the one resource indicator (RFC 8707) the provider
	// serves, such as "https://api.test/". A client_credentials request
	// with resource=Resource gets a JWT access token (typ at+jwt) with
	// aud = Resource, signed with a key from the provider's jwks_uri; a
	// request without resource gets an opaque token; any other resource
	// gets invalid_target. Only one resource per request is accepted.
	Resource string
	// Scopes are the scopes of that resource server; empty means
	// ["read", "write"]. Requested scopes outside them are dropped from
	// the token.
	Scopes []string
	// AccessTokenAlg is the JWS algorithm of the JWT access tokens: RS256
	// (the default when empty), PS256, ES256 or EdDSA.
	AccessTokenAlg string

	// DPoP enables DPoP (RFC 9449): a token request with a valid DPoP
	// proof gets token_type DPoP and a token bound to the proof's key
	// (cnf.jkt).
	DPoP bool
	// DPoPNonceSecret, 32 bytes, makes the provider require server nonces:
	// a proof without a valid nonce gets 400 use_dpop_nonce with a
	// DPoP-Nonce header. Nonces change every 60 s and are accepted for
	// about ±2 minutes. Requires DPoP.
	DPoPNonceSecret []byte

	// MTLS enables RFC 8705: the tls_client_auth and
	// self_signed_tls_client_auth methods and certificate-bound access
	// tokens (cnf.x5t#S256, for clients registered with
	// "tls_client_certificate_bound_access_tokens": true). The server then
	// asks every connection for a client certificate, optionally.
	MTLS bool
	// ClientCAPEM are the CA certificates that issue tls_client_auth
	// client certificates; the provider sends their names in the TLS
	// CertificateRequest. Without them tls_client_auth always fails
	// ("client certificate was not verified"), while
	// self_signed_tls_client_auth and certificate binding still work.
	// Requires MTLS.
	ClientCAPEM []byte
	// MTLSEndpointAliases serves the token endpoint a second time, on a
	// listener of its own that asks for client certificates, and
	// advertises it in the metadata as mtls_endpoint_aliases.token_endpoint
	// (RFC 8705 section 5). The main listener then asks for none, so that
	// tls_client_auth and certificate binding work at the alias only.
	// Requires MTLS.
	MTLSEndpointAliases bool

	// StrictClock makes the provider refuse a JWT it receives (a client
	// assertion, a DPoP proof) as soon as it expires, without its default
	// 15 s of leeway.
	StrictClock bool
	// FederatedClients are client_ids whose client assertions are made
	// elsewhere, such as projected service account tokens: the provider
	// accepts one again while it lives (RFC 7523 section 3 makes the
	// replay check optional), as Entra ID does, and logs each accepted one
	// as "federated assertion client=ID jti=HASH exp=EXP now=NOW" (see
	// FederatedAssertions).
	FederatedClients []string
}

// OIDCPeer is a running oidc-provider. The embedded Peer gives Port, Addr,
// URL, Log (node's stdout and stderr: warnings and one line per failed
// request, never secrets), Dir, Pid and Stop.
type OIDCPeer struct {
	*Peer
	// Issuer is the issuer identifier, https://127.0.0.1:PORT, without a
	// trailing slash. Discovery is served at Issuer +
	// "/.well-known/openid-configuration" and at Issuer +
	// "/.well-known/oauth-authorization-server".
	Issuer string
	// TokenEndpoint is Issuer + "/token".
	TokenEndpoint string
	// MTLSTokenEndpoint is the mtls_endpoint_aliases.token_endpoint,
	// https://127.0.0.1:PORT2/token, with OIDCConfig.MTLSEndpointAliases;
	// empty otherwise.
	MTLSTokenEndpoint string
	// JWKSURI is Issuer + "/jwks", the provider's public signing keys.
	JWKSURI string
}

// StartOIDC starts oidc-provider (internal/peers/oidc/server.mjs under
// node) on a free port of 127.0.0.1 over HTTPS, waits until it listens, and
// registers Stop with t.Cleanup.
//
// The provider supports client_credentials with client_secret_basic,
// client_secret_post, client_secret_jwt and private_key_jwt (RS256, PS256,
// ES256, ES384, Ed25519/EdDSA; the assertion's aud may be the issuer or the
// token endpoint, and each jti is accepted once), plus what cfg enables. Its
// signing keys are generated at every start and its store is in memory.
//
// When node is missing the test is skipped, or fails when CI is "true", as
// Require does. When internal/peers/oidc/node_modules is missing or stale,
// StartOIDC fails in CI (run OIDCNpmCICommand first) and runs "npm ci" once
// locally, skipping the test if that is not possible.
func StartOIDC(t testing.TB, cfg OIDCConfig) *OIDCPeer {
	t.Helper()
	node := requireNode(t)
	dir := npmPeerDir(t, "oidc")
	ensureNpmModules(t, dir, "oidc-provider", OIDCNpmCICommand)

	if len(cfg.CertPEM) == 0 || len(cfg.KeyPEM) == 0 {
		t.Fatalf("peers: StartOIDC needs CertPEM and KeyPEM")
	}
	ttl := cfg.AccessTokenTTL
	if ttl == 0 {
		ttl = 10 * time.Minute
	}
	if ttl < time.Second || ttl%time.Second != 0 {
		t.Fatalf("peers: OIDCConfig.AccessTokenTTL must be a positive whole number of seconds, got %v", cfg.AccessTokenTTL)
	}
	if len(cfg.DPoPNonceSecret) != 0 {
		if len(cfg.DPoPNonceSecret) != 32 {
			t.Fatalf("peers: OIDCConfig.DPoPNonceSecret must be 32 bytes, got %d", len(cfg.DPoPNonceSecret))
		}
		if !cfg.DPoP {
			t.Fatalf("peers: OIDCConfig.DPoPNonceSecret needs DPoP")
		}
	}
	if len(cfg.ClientCAPEM) != 0 && !cfg.MTLS {
		t.Fatalf("peers: OIDCConfig.ClientCAPEM needs MTLS")
	}
	if cfg.MTLSEndpointAliases && !cfg.MTLS {
		t.Fatalf("peers: OIDCConfig.MTLSEndpointAliases needs MTLS")
	}

	tmp := t.TempDir()
	write := func(name string, data []byte) string { return writeFile(t, tmp, name, data) }
	conf := map[string]any{
		"certFile":         write("cert.pem", cfg.CertPEM),
		"keyFile":          write("key.pem", cfg.KeyPEM),
		"clients":          cfg.Clients,
		"accessTokenTTL":   int64(ttl / time.Second),
		"resource":         cfg.Resource,
		"scopes":           cfg.Scopes,
		"accessTokenAlg":   cfg.AccessTokenAlg,
		"dpop":             cfg.DPoP,
		"mtls":             cfg.MTLS,
		"federatedClients": cfg.FederatedClients,
	}
	if cfg.Clients == nil {
		conf["clients"] = []map[string]any{}
	}
	if cfg.StrictClock {
		conf["clockTolerance"] = 0
	}
	if len(cfg.DPoPNonceSecret) != 0 {
		conf["dpopNonceSecret"] = hex.EncodeToString(cfg.DPoPNonceSecret)
	}
	if len(cfg.ClientCAPEM) != 0 {
		conf["clientCAFile"] = write("client-ca.pem", cfg.ClientCAPEM)
	}
	confPath := filepath.Join(tmp, "oidc.json")
	mtlsTokenEndpoint := "" // of the last attempt
	p := start(t, launchSpec{
		name:    "oidc-provider",
		bin:     node,
		dir:     tmp,
		scheme:  "https",
		stopSig: syscall.SIGTERM,
		build: func(port int) (launch, error) {
			conf["port"] = port
			conf["issuer"] = loopbackURL("https", port)
			mtlsTokenEndpoint = ""
			if cfg.MTLSEndpointAliases {
				aliasPort := FreePort(t)
				conf["mtlsAliasPort"] = aliasPort
				mtlsTokenEndpoint = loopbackURL("https", aliasPort) + "/token"
			}
			return launch{args: []string{filepath.Join(dir, "server.mjs"), confPath}}, writeJSON(confPath, conf)
		},
		wait: waitNode,
	})
	issuer := p.URL("")
	return &OIDCPeer{
		Peer:              p,
		Issuer:            issuer,
		TokenEndpoint:     issuer + "/token",
		MTLSTokenEndpoint: mtlsTokenEndpoint,
		JWKSURI:           issuer + "/jwks",
	}
}

// ------------------------------------------------------------------ node

// waitNode waits, for at most nodeReadyTimeout, until a node peer has
// printed "READY <port>" and listens.
func waitNode(p *Peer) error {
	marker := fmt.Sprintf("READY %d\n", p.Port)
	return p.waitReady(func(p *Peer) bool { return strings.Contains(p.out.String(), marker) }, nodeReadyTimeout)
}

var (
	nodeVersions sync.Map // binary path -> version
	nodeVerRE    = regexp.MustCompile(`^v(\d+)\.(\d+)\.(\d+)`)
)

// requireNode returns the path of node (or nodejs), skipping the test, or
// failing it when CI is "true", when it is missing or older than 20.12.
func requireNode(t testing.TB) string {
	t.Helper()
	bin, ok := lookup("node")
	if !ok {
		bin, ok = lookup("nodejs")
	}
	if !ok {
		missingTool(t, "peers: node (Node.js >= 20.12) not found in PATH or /usr/bin, /usr/local/bin; install Node.js 20.12 or later (22 LTS preferred) and npm")
		return ""
	}
	v, err := nodeVersion(bin)
	if err != nil {
		t.Fatalf("peers: %v", err)
	}
	if v[0] < minNodeMajor || (v[0] == minNodeMajor && v[1] < minNodeMinor) {
		missingTool(t, fmt.Sprintf("peers: %s is Node.js %s; oidc-provider needs %d.%d or later (22 LTS preferred)", bin, v, minNodeMajor, minNodeMinor))
		return ""
	}
	return bin
}

// missingTool skips the test, or fails it when CI is "true".
func missingTool(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: a missing peer in CI is a failure)", msg)
		return
	}
	t.Skip(msg)
}

// nodeVersion runs "node --version" once per binary.
func nodeVersion(bin string) (version, error) {
	if v, ok := nodeVersions.Load(bin); ok {
		return v.(version), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return version{}, fmt.Errorf("%s --version: %v", bin, err)
	}
	m := nodeVerRE.FindSubmatch(bytes.TrimSpace(out))
	if m == nil {
		return version{}, fmt.Errorf("%s --version: no version in %q", bin, out)
	}
	var v version
	for i := range v {
		v[i], _ = strconv.Atoi(string(m[i+1]))
	}
	nodeVersions.Store(bin, v)
	return v, nil
}

// FederatedAssertion is a client assertion of a FederatedClients client
// that the provider accepted: which client, a hash of its jti, its exp and
// the provider's clock when it was checked.
type FederatedAssertion struct {
	Client   string
	JTI      string
	Exp, Now time.Time
}

var federatedLine = regexp.MustCompile(`(?m)^oidc-peer: federated assertion client=(\S+) jti=(\S+) exp=(\d+) now=([\d.]+)$`)

// FederatedAssertions returns the client assertions of FederatedClients
// that the provider accepted so far, in order.
func (p *OIDCPeer) FederatedAssertions() []FederatedAssertion {
	var out []FederatedAssertion
	for _, m := range federatedLine.FindAllStringSubmatch(p.Output(), -1) {
		exp, _ := strconv.ParseInt(m[3], 10, 64)
		now, _ := strconv.ParseFloat(m[4], 64)
		out = append(out, FederatedAssertion{Client: m[1], JTI: m[2], Exp: time.Unix(exp, 0),
			Now: time.Unix(0, int64(now*float64(time.Second)))})
	}
	return out
}
