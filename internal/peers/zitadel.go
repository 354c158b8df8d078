package peers

import (
	"encoding/json"
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
	jwks := cfg.SubjectJWKS
	if len(jwks) == 0 {
		jwks = json.RawMessage(`{"keys":[]}`)
	}
	conf := map[string]any{
		"certFile":        writeFile(t, tmp, "cert.pem", cfg.CertPEM),
		"keyFile":         writeFile(t, tmp, "key.pem", cfg.KeyPEM),
		"clientID":        cfg.ClientID,
		"clientSecret":    cfg.ClientSecret,
		"subjectIssuer":   cfg.SubjectIssuer,
		"subjectAudience": cfg.SubjectAudience,
		"subjectJWKS":     jwks,
		"profileKeys":     cfg.ProfileKeys,
	}
	confPath := filepath.Join(tmp, "zitadel.json")
	p := start(t, launchSpec{
		name:    "zitadel",
		bin:     bin,
		dir:     tmp,
		scheme:  "https",
		stopSig: syscall.SIGTERM,
		build: func(port int) (launch, error) {
			conf["port"], conf["issuer"] = port, loopbackURL("https", port)
			return launch{args: []string{confPath}}, writeJSON(confPath, conf)
		},
		wait: waitNode, // main.go prints READY <port> as server.mjs does
	})
	issuer := p.URL("")
	return &ZitadelPeer{Peer: p, Issuer: issuer, TokenEndpoint: issuer + "/oauth/token", JWKSURI: issuer + "/keys"}
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
