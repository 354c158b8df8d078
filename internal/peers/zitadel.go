package peers

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// zitadel peer: zitadel/oidc v3.52.0's example OpenID provider (pkg/op),
// run by internal/peers/zitadel/main.go on https://127.0.0.1:PORT.

// ZitadelConfig configures StartZitadel.
type ZitadelConfig struct {
	// CertPEM is the server chain for 127.0.0.1, leaf first; KeyPEM is the
	// leaf's private key. Required.
	CertPEM, KeyPEM []byte
	// ClientID and ClientSecret are a client that authenticates with
	// client_secret_basic, may exchange tokens and gets JWT access tokens.
	// Required.
	ClientID, ClientSecret string
	// SubjectIssuer, SubjectAudience and SubjectJWKS (a JWK Set, as JSON)
	// are what a subject or actor token of the type
	// urn:ietf:params:oauth:token-type:jwt from outside must have: its
	// issuer, an audience, and a signature by one of the keys. Its
	// lifetime is checked with no leeway.
	SubjectIssuer, SubjectAudience string
	SubjectJWKS                    json.RawMessage
	// ProfileKeys are the service accounts of the JWT profile grant (RFC
	// 7523 section 2.1): for each, whose assertions have iss = sub = the
	// name, a JWK Set as JSON.
	ProfileKeys map[string]json.RawMessage
}

// ZitadelPeer is a running zitadel/oidc provider. Access tokens live 5
// minutes (the example's storage fixes it) and are JWTs signed by a key of
// JWKSURI.
type ZitadelPeer struct {
	*Peer
	Issuer        string // https://127.0.0.1:PORT
	TokenEndpoint string // Issuer + "/oauth/token"
	JWKSURI       string // Issuer + "/keys"
}

// StartZitadel builds the peer if needed (see GoPeer.Build), starts it on a
// free port of 127.0.0.1, waits until it listens and registers Stop with
// t.Cleanup.
func StartZitadel(t testing.TB, cfg ZitadelConfig) *ZitadelPeer {
	t.Helper()
	bin := requireGoPeer(t, Zitadel)
	if len(cfg.CertPEM) == 0 || len(cfg.KeyPEM) == 0 || cfg.ClientID == "" || cfg.ClientSecret == "" {
		t.Fatalf("peers: StartZitadel needs CertPEM, KeyPEM, ClientID and ClientSecret")
	}
	tmp := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(tmp, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatalf("peers: write %s: %v", name, err)
		}
		return path
	}
	jwks := cfg.SubjectJWKS
	if len(jwks) == 0 {
		jwks = json.RawMessage(`{"keys":[]}`)
	}
	conf := map[string]any{
		"certFile":        write("cert.pem", cfg.CertPEM),
		"keyFile":         write("key.pem", cfg.KeyPEM),
		"clientID":        cfg.ClientID,
		"clientSecret":    cfg.ClientSecret,
		"subjectIssuer":   cfg.SubjectIssuer,
		"subjectAudience": cfg.SubjectAudience,
		"subjectJWKS":     jwks,
		"profileKeys":     cfg.ProfileKeys,
	}
	confPath := filepath.Join(tmp, "zitadel.json")
	spec := launchSpec{name: "zitadel", bin: bin, dir: tmp, scheme: "https", stopSig: syscall.SIGTERM}
	for attempt := 1; ; attempt++ {
		port := FreePort(t)
		issuer := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		conf["port"], conf["issuer"] = port, issuer
		data, err := json.Marshal(conf)
		if err != nil {
			t.Fatalf("peers: encode the zitadel configuration: %v", err)
		}
		if err := os.WriteFile(confPath, data, 0o600); err != nil {
			t.Fatalf("peers: %v", err)
		}
		p, err := spawn(spec, port, []string{confPath}, "")
		if err != nil {
			t.Fatalf("peers: start zitadel (%s): %v", bin, err)
		}
		err = p.waitOIDCReady()
		if err == nil {
			t.Cleanup(func() {
				p.Stop()
				if t.Failed() {
					t.Logf("peers: zitadel on %s after the failed test:\n%s", p.Addr, p.diagnostics())
				}
			})
			return &ZitadelPeer{Peer: p, Issuer: issuer, TokenEndpoint: issuer + "/oauth/token", JWKSURI: issuer + "/keys"}
		}
		p.Stop()
		if attempt < startAttempts && (errors.Is(err, errAddrInUse) || addrInUse(p)) {
			t.Logf("peers: zitadel: port %d taken, retrying with another port (attempt %d of %d)", port, attempt+1, startAttempts)
			continue
		}
		t.Fatalf("peers: zitadel did not become ready on 127.0.0.1:%d: %v\n%s", port, err, p.diagnostics())
		return nil
	}
}

// SubjectToken is an outside subject token that the peer accepted: its
// subject, its exp and the peer's clock when it was checked.
type SubjectToken struct {
	Subject  string
	Exp, Now time.Time
}

var subjectLine = regexp.MustCompile(`(?m)^zitadel-peer: subject sub=(\S+) exp=(\d+) now=([\d.]+)$`)

// SubjectTokens returns the outside subject tokens accepted so far.
func (p *ZitadelPeer) SubjectTokens() []SubjectToken {
	var out []SubjectToken
	for _, m := range subjectLine.FindAllStringSubmatch(p.Output(), -1) {
		exp, _ := strconv.ParseInt(m[2], 10, 64)
		now, _ := strconv.ParseFloat(m[3], 64)
		out = append(out, SubjectToken{Subject: m[1], Exp: time.Unix(exp, 0), Now: time.Unix(0, int64(now*float64(time.Second)))})
	}
	return out
}
