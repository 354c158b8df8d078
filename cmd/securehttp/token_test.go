package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

// noSecrets fails the test if out holds the client secret or anything
// shaped like a JWT: an access token, an assertion or a DPoP proof.
func noSecrets(t *testing.T, out, secret string) {
	t.Helper()
	if secret != "" && strings.Contains(out, secret) {
		t.Errorf("the output holds the client secret:\n%s", out)
	}
	if strings.Contains(out, "eyJ") {
		t.Errorf("the output holds a JWT:\n%s", out)
	}
}

// TestGetClientCredentials: get obtains its own token from demo --serve's
// token endpoint, as a program using the library would: a client secret
// from a file or stdin, or a private key (private_key_jwt); the endpoint
// configured or discovered from the issuer; scopes and resources asked
// for; with --dpop, a token bound to a key made for the run. Nothing
// secret reaches the output, -v included.
func TestGetClientCredentials(t *testing.T) {
	t.Parallel()
	s := startServed(t)
	tests := []struct {
		name      string
		args      []string
		stdin     string
		path      string
		want      int
		wantOut   []string
		wantInErr string
	}{
		{"client secret, token URL", []string{"--client-secret-file", s.secretFile, "--token-url", s.base + "/token"},
			"", "/v1/me", exitOK, []string{`"sub":"demo-user"`}, ""},
		{"client secret, issuer's metadata", []string{"--client-secret-file", s.secretFile, "--issuer", s.base},
			"", "/v1/me", exitOK, []string{`"sub":"demo-user"`}, ""},
		{"client secret from stdin", []string{"--client-secret-file", "-", "--issuer", s.base},
			s.secret + "\n", "/v1/me", exitOK, []string{`"sub":"demo-user"`}, ""},
		{"private_key_jwt", []string{"--client-key", s.keyFile, "--issuer", s.base},
			"", "/v1/me", exitOK, []string{`"sub":"demo-user"`}, ""},
		{"scopes and a resource", []string{"--client-secret-file", s.secretFile, "--token-url", s.base + "/token",
			"--scope", "read write", "--scope", "admin", "--resource", "https://api.example.test/"},
			"", "/v1/echo", exitOK, []string{`"scope":"read write admin"`, `"https://api.example.test/"`, `"authorization":"Bearer"`}, ""},
		{"--dpop", []string{"--client-secret-file", s.secretFile, "--issuer", s.base, "--dpop"},
			"", "/v1/dpop", exitOK, []string{`"jkt":"`, `"sub":"demo-user"`}, ""},
		{"--dpop, bearer API", []string{"--client-key", s.keyFile, "--issuer", s.base, "--dpop"},
			"", "/v1/me", exitOK, []string{`"sub":"demo-user"`}, ""},
		{"a bearer token at the DPoP API", []string{"--client-secret-file", s.secretFile, "--issuer", s.base},
			"", "/v1/dpop", exitHTTP, nil, "HTTP 401"},
		{"wrong secret", []string{"--client-secret-file", writeFile(t, "wrong", []byte("wrong-secret\n"), 0o600), "--issuer", s.base},
			"", "/v1/me", exitToken, nil, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"get", "-v", "--fail", "--cacert", s.rootFile, "--pin", s.pins[0], "--client-id", serveClientID}, tt.args...)
			code, out, errOut := runCmdIn(t, tt.stdin, append(args, s.base+tt.path)...)
			if code != tt.want {
				t.Errorf("got exit code %d, want %d; stdout %q, stderr:\n%s", code, tt.want, out, errOut)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("got stdout %q, want it to hold %s", out, w)
				}
			}
			if !strings.Contains(errOut, tt.wantInErr) {
				t.Errorf("got stderr %q, want it to hold %q", errOut, tt.wantInErr)
			}
			noSecrets(t, out+errOut, s.secret)
		})
	}
}

// TestGetTokenFlagsUsage: a combination of token flags that cannot work,
// or a file that cannot be used, is a usage error naming the flags, given
// before any connection; the secret is never printed.
func TestGetTokenFlagsUsage(t *testing.T) {
	t.Parallel()
	const secret = "file-secret-0123456789"
	secretFile := writeFile(t, "secret", []byte(secret+"\n"), 0o600)
	openSecret := writeFile(t, "open-secret", []byte(secret), 0o644)
	emptySecret := writeFile(t, "empty", []byte("\n"), 0o600)
	notAKey := writeFile(t, "key.pem", []byte(secret), 0o600)
	tokenFile := writeFile(t, "token", []byte("tok"), 0o600)
	missing := filepath.Join(t.TempDir(), "none")
	const tokenURL = "https://127.0.0.1:1/token"
	tests := []struct {
		name string
		args []string
		want []string // what stderr names
	}{
		{"--client-id alone", []string{"--client-id", "c", "--client-secret-file", secretFile}, []string{"--issuer", "--token-url"}},
		{"--issuer without --client-id", []string{"--issuer", "https://127.0.0.1:1"}, []string{"--client-id"}},
		{"--scope without --client-id", []string{"--scope", "read"}, []string{"--client-id"}},
		{"--dpop without --client-id", []string{"--dpop"}, []string{"--client-id"}},
		{"--dpop with --token-file", []string{"--dpop", "--token-file", tokenFile}, []string{"--client-id"}},
		{"no client authentication", []string{"--client-id", "c", "--token-url", tokenURL}, []string{"--client-secret-file", "--client-key", "--cert"}},
		{"secret and key", []string{"--client-id", "c", "--token-url", tokenURL, "--client-secret-file", secretFile, "--client-key", notAKey},
			[]string{"--client-secret-file", "--client-key"}},
		{"--client-id and --token-file", []string{"--client-id", "c", "--token-url", tokenURL, "--client-secret-file", secretFile, "--token-file", tokenFile},
			[]string{"--token-file", "--client-id"}},
		{"--client-key-id without --client-key", []string{"--client-id", "c", "--token-url", tokenURL, "--client-secret-file", secretFile, "--client-key-id", "k1"},
			[]string{"--client-key-id", "--client-key"}},
		{"missing secret file", []string{"--client-id", "c", "--token-url", tokenURL, "--client-secret-file", missing}, []string{"--client-secret-file", missing}},
		{"empty secret file", []string{"--client-id", "c", "--token-url", tokenURL, "--client-secret-file", emptySecret}, []string{"--client-secret-file", "no secret"}},
		{"secret file readable by others", []string{"--client-id", "c", "--token-url", tokenURL, "--client-secret-file", openSecret}, []string{"--client-secret-file", "chmod 600"}},
		{"not a key", []string{"--client-id", "c", "--token-url", tokenURL, "--client-key", notAKey}, []string{"--client-key", "PEM"}},
		{"plain HTTP token URL", []string{"--client-id", "c", "--token-url", "http://127.0.0.1:1/token", "--client-secret-file", secretFile}, []string{"--token-url", "https"}},
		{"issuer with a query", []string{"--client-id", "c", "--issuer", "https://127.0.0.1:1/?x=1", "--client-secret-file", secretFile}, []string{"--issuer"}},
		{"secret and body both from stdin", []string{"--client-id", "c", "--token-url", tokenURL, "--client-secret-file", "-", "-d", "@-"}, []string{"--client-secret-file -", "-d @-"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCmdIn(t, secret, append(append([]string{"get"}, tt.args...), "https://127.0.0.1:1/")...)
			if code != exitUsage || out != "" {
				t.Errorf("got exit code %d and stdout %q, want %d and nothing; stderr %q", code, out, exitUsage, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("got stderr %q, want it to name %s", errOut, w)
				}
			}
			noSecrets(t, out+errOut, secret)
		})
	}
}

// TestGetClientCredentialsOIDCProvider: get's token flags work with a real
// authorization server, oidc-provider: discovery from the issuer,
// client_secret_basic and private_key_jwt, and DPoP with the server's
// nonces. The resource server beside it checks what the token endpoint
// bound: the proof's key is the token's cnf.jkt.
func TestGetClientCredentialsOIDCProvider(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	clientKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writeFile(t, "client.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	pt, _ := clientKey.PublicKey.Bytes() // 0x04 || X || Y
	b64 := base64.RawURLEncoding.EncodeToString
	pubJWK := map[string]any{"kty": "EC", "crv": "P-256", "x": b64(pt[1:33]), "y": b64(pt[33:]), "kid": "k1", "alg": "ES256", "use": "sig"}
	const secret = "oidc-client-secret-0123456789"
	secretFile := writeFile(t, "secret", []byte(secret+"\n"), 0o600)
	const resource = "https://api.cmd.test/"
	client := func(id string, extra map[string]any) map[string]any {
		c := map[string]any{"client_id": id, "grant_types": []string{"client_credentials"},
			"response_types": []string{}, "redirect_uris": []string{}}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	nonceSecret := make([]byte, 32)
	rand.Read(nonceSecret)
	op := peers.StartOIDC(t, peers.OIDCConfig{
		CertPEM:  testpki.ChainPEM(p.leaf, p.inter),
		KeyPEM:   p.leaf.KeyPEM(),
		Resource: resource,
		Clients: []map[string]any{
			client("cmd-basic", map[string]any{"token_endpoint_auth_method": "client_secret_basic", "client_secret": secret}),
			client("cmd-pkjwt", map[string]any{"token_endpoint_auth_method": "private_key_jwt",
				"token_endpoint_auth_signing_alg": "ES256", "jwks": map[string]any{"keys": []any{pubJWK}}}),
		},
		DPoP:            true,
		DPoPNonceSecret: nonceSecret,
	})

	// The resource server: it reports the scheme, and for DPoP checks the
	// proof and that its key is the one the token is bound to.
	var dpopChecked atomic.Int64
	var apiURL string
	checker := newDPoPChecker()
	api := testutil.StartServer(t, testpki.TLSCertificate(p.leaf, p.inter), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, raw, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		claims := jwt.MapClaims{}
		if _, _, err := jwt.NewParser().ParseUnverified(raw, claims); err != nil {
			http.Error(w, "not a JWT", http.StatusUnauthorized)
			return
		}
		cnf, _ := claims["cnf"].(map[string]any)
		boundTo, _ := cnf["jkt"].(string)
		switch scheme {
		case "Bearer":
			if boundTo != "" {
				http.Error(w, "a DPoP-bound token sent as a bearer token", http.StatusUnauthorized)
				return
			}
		case "DPoP":
			jkt, err := checker.check(r, apiURL+r.URL.Path, raw)
			if err != nil || jkt != boundTo {
				http.Error(w, fmt.Sprintf("proof refused (%v) or not the token's key", err), http.StatusUnauthorized)
				return
			}
			dpopChecked.Add(1)
		default:
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "scheme=%s aud=%v\n", scheme, claims["aud"])
	}))
	apiURL = api.URL
	rootPEM := writeFile(t, "root.pem", p.root.CertPEM(), 0o644)

	tests := []struct {
		name    string
		args    []string
		wantOut string
	}{
		{"client_secret_basic, discovery", []string{"--client-id", "cmd-basic", "--client-secret-file", secretFile}, "scheme=Bearer aud=" + resource},
		{"private_key_jwt, discovery", []string{"--client-id", "cmd-pkjwt", "--client-key", keyFile, "--client-key-id", "k1"}, "scheme=Bearer aud=" + resource},
		{"client_secret_basic, DPoP with nonces", []string{"--client-id", "cmd-basic", "--client-secret-file", secretFile, "--dpop"}, "scheme=DPoP aud=" + resource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"get", "-v", "--fail", "--cacert", rootPEM, "--issuer", op.Issuer, "--resource", resource, "--scope", "read"}, tt.args...)
			code, out, errOut := runCmd(t, append(args, api.URL+"/orders")...)
			if code != exitOK || !strings.Contains(out, tt.wantOut) {
				t.Errorf("got exit code %d and stdout %q, want 0 and %q; stderr:\n%s\nprovider log:\n%s", code, out, tt.wantOut, errOut, op.Log())
			}
			noSecrets(t, out+errOut, secret)
		})
	}
	t.Cleanup(func() {
		if n := dpopChecked.Load(); n != 1 {
			t.Errorf("the resource server checked %d DPoP proofs, want 1", n)
		}
	})
}

// TestGetSecretFileFIFOWithoutWriterRefused: a --client-secret-file or
// --client-key that is a FIFO no process writes to is a usage error at
// once, as -o's FIFO with no reader is, rather than a wait that neither
// --max-time nor Ctrl-C (which only cancels the context) can end.
func TestGetSecretFileFIFOWithoutWriterRefused(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"--client-secret-file", "--client-key"} {
		t.Run(flag, func(t *testing.T) {
			t.Parallel()
			fifo := filepath.Join(t.TempDir(), "fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			done := make(chan int, 1)
			var errOut string
			go func() {
				code, _, e := runCmd(t, "get", "-m", "1", "--client-id", "c", "--token-url", "https://127.0.0.1:1/token", flag, fifo, "https://127.0.0.1:1/")
				errOut = e
				done <- code
			}()
			select {
			case code := <-done:
				if code != exitUsage || !strings.Contains(errOut, flag) {
					t.Errorf("got exit code %d and stderr %q, want %d naming %s", code, errOut, exitUsage, flag)
				}
			case <-time.After(10 * time.Second):
				// Open the FIFO for writing, which lets the command go on
				// and end, so that no goroutine is left behind.
				if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
				<-done
				t.Fatalf("get waited for a writer of the FIFO %s, want a usage error at once", flag)
			}
		})
	}
}
