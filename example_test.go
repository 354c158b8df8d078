package securehttp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/testutil"
	"github.com/securehttp/securehttp/securehttptest"
)

// A client for one API: its host is pinned to two keys (the current one and
// a backup) and receives the bearer token, which no other host ever sees.
func ExampleNewClient() {
	client, err := securehttp.NewClient(securehttp.Config{
		Pins: []securehttp.PinSet{{
			Host: "api.example.com",
			Pins: []string{
				"sha256/r/mIkG3eEpVdm+u/ko/cwxzOMo1bk4TyHIlByibiA5E=",
				"sha256/YLh1dUR9y6Kja30RrAn7JKnbQG/uEtLMkBgFF2Fuihg=",
			},
		}},
		Bearer: &securehttp.Bearer{
			Store: securehttp.NewMemoryStore(securehttp.Token{}),
			Refresh: func(ctx context.Context) (securehttp.Token, error) {
				return securehttp.Token{Value: "token-from-your-identity-provider", Expiry: time.Now().Add(time.Hour)}, nil
			},
			Hosts: []string{"api.example.com"},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Plain HTTP is refused before any connection is made.
	_, err = client.Get("http://api.example.com/v1/things")
	fmt.Println(errors.Is(err, securehttp.ErrInsecureScheme))
	// Output: true
}

// A malformed pin is a *ConfigError that names the entry; nothing panics.
func ExampleConfigError() {
	_, err := securehttp.NewClient(securehttp.Config{
		Pins: []securehttp.PinSet{{Host: "api.example.com", Pins: []string{"sha1/AAAA"}}},
	})
	var ce *securehttp.ConfigError
	if errors.As(err, &ce) {
		fmt.Println(ce.Field)
	}
	// Output: Pins[0].Pins[0]
}

// A pin that matches no certificate of the verified chain refuses the
// connection; the *PinError lists the pins the chain does have.
func ExamplePinError() {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate()) // trust the test server's CA, never skip verification

	client, err := securehttp.NewClient(securehttp.Config{
		RootCAs: roots,
		Pins: []securehttp.PinSet{{
			Host: "127.0.0.1",
			Pins: []string{"sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
		}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseIdleConnections()
	_, err = client.Get(srv.URL)
	var pe *securehttp.PinError
	if errors.As(err, &pe) {
		fmt.Println(pe.Host, errors.Is(err, securehttp.ErrPinMismatch))
		fmt.Println(pe.Pins[0] == securehttp.SPKIPin(srv.Certificate()))
	}
	// Output:
	// 127.0.0.1 true
	// true
}

// Tokens from a golang.org/x/oauth2 flow, such as client credentials.
func ExampleOAuth2Refresh() {
	src := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "abc", TokenType: "Bearer"})
	refresh := securehttp.OAuth2Refresh(src)
	tok, err := refresh(context.Background())
	fmt.Println(tok.Value, err)
	_, err = securehttp.NewClient(securehttp.Config{
		Bearer: &securehttp.Bearer{Refresh: refresh, Hosts: []string{"api.example.com"}},
	})
	fmt.Println(err)
	// Output:
	// abc <nil>
	// <nil>
}

// Printing a Bearer or a store never shows the token.
func ExampleToken() {
	tok := securehttp.Token{Value: "s3cr3t", Expiry: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	fmt.Printf("%v\n%#v\n", tok, &securehttp.ClientCredentials{ClientID: "svc", ClientSecret: "s3cr3t"})
	out, _ := json.Marshal(tok)
	fmt.Println(string(out))
	// Output:
	// securehttp.Token{Value: [redacted], Expiry: 2030-01-01T00:00:00Z}
	// securehttp.ClientCredentials{Issuer: "", ClientID: "svc", Auth: client_secret_basic}
	// {"expiry":"2030-01-01T00:00:00Z"}
}

// A service calling an OAuth 2.0-protected API with its own credentials:
// the client discovers the token endpoint from the issuer, obtains a token
// with the client credentials grant, sends it to the API's host only, and
// refreshes it ahead of its expiry. Here the servers of the test kit,
// securehttptest, play the authorization server and the API, which
// verifies the token it receives.
func ExampleClientCredentials() {
	t := testutil.NewExampleT() // the test kit takes a test's t
	defer t.Done()
	auth := securehttptest.NewAuthServer(t)
	api := securehttptest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, err := auth.VerifyRequest(r)
		fmt.Fprintln(w, "authorized:", err == nil && claims.Scope == "reports:read")
	}))
	known := auth.ClientCredentials() // a client the authorization server knows

	cfg := api.Config() // trusts the test kit's CA
	cfg.Bearer = &securehttp.Bearer{
		ClientCredentials: &securehttp.ClientCredentials{
			Issuer:       auth.Issuer,
			ClientID:     known.ClientID,
			ClientSecret: known.ClientSecret, // or Key: a crypto.Signer, for private_key_jwt
			Scopes:       []string{"reports:read"},
		},
		Hosts: []string{api.Host},
	}
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get(api.URL + "/v1/reports")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output: authorized: true
}

// A client that fetches URLs it was given (webhooks, callbacks) and must
// never be steered to the cloud metadata service or the internal network.
// Both refusals below happen before any connection is made.
func ExampleConfig_egress() {
	client, err := securehttp.NewClient(securehttp.Config{
		AllowHosts:           []string{"hooks.example.com", "*.hooks.example.com"},
		BlockPrivateNetworks: true,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = client.Get("https://internal.example.com/admin")
	fmt.Println(errors.Is(err, securehttp.ErrHostNotAllowed))

	client, err = securehttp.NewClient(securehttp.Config{BlockPrivateNetworks: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = client.Get("https://169.254.169.254/latest/meta-data/")
	fmt.Println(errors.Is(err, securehttp.ErrBlockedAddress))
	// Output:
	// true
	// true
}

// Hooks see each attempt, retry and handshake, without secrets: the URL
// has lost its query string here.
func ExampleHooks() {
	var n atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	client, err := securehttp.NewClient(securehttp.Config{
		RootCAs: roots,
		Retry:   securehttp.RetryPolicy{MinWait: time.Millisecond},
		Hooks: &securehttp.Hooks{
			AttemptDone: func(_ context.Context, e securehttp.AttemptEvent) {
				fmt.Println("attempt", e.Attempt, e.Method, e.URL == srv.URL+"/orders", e.StatusCode)
			},
			RetryScheduled: func(_ context.Context, e securehttp.AttemptEvent) {
				fmt.Println("retry after", e.StatusCode)
			},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL + "/orders?api_key=secret")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	// Output:
	// attempt 1 GET true 503
	// retry after 503
	// attempt 2 GET true 200
}

// A request sent once, whatever the RetryPolicy: the caller retries it
// itself, or not at all.
func ExampleWithoutRetries() {
	var n atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	client, err := securehttp.NewClient(securehttp.Config{RootCAs: roots})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseIdleConnections()
	ctx := securehttp.WithoutRetries(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, n.Load())
	// Output: 503 1
}

// A client certificate loaded from files that a tool such as cert-manager
// renews in place: the client presents the new certificate within a
// second of a change, without a restart.
func ExampleLoadClientCert() {
	// Setup, with the test kit: a server that requires a client
	// certificate from its CA and greets its subject, and a certificate
	// of that CA in two files.
	t := testutil.NewExampleT() // the test kit takes a test's t
	defer t.Done()
	srv := securehttptest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s\n", r.TLS.PeerCertificates[0].Subject.CommonName)
	}), securehttptest.RequireClientCert())
	certFile, keyFile := srv.CA().Issue(t, securehttptest.Hosts("reporting-service")).Files(t)

	cert, err := securehttp.LoadClientCert(certFile, keyFile)
	if err != nil {
		fmt.Println(err) // errors.Is(err, securehttp.ErrClientCert)
		return
	}
	defer cert.Close() // stops watching the files
	cfg := srv.Config()
	cfg.GetClientCertificate = cert.GetClientCertificate
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	fmt.Println("valid for more than a day:", time.Until(cert.NotAfter()) > 24*time.Hour)
	// Output:
	// hello, reporting-service
	// valid for more than a day: true
}

// Sender-constrained tokens: with Bearer.DPoP set, the client credentials
// token is bound to a key that never leaves the process, and every request
// proves possession of it. A token stolen from a log or a proxy is useless
// without the key. Here the servers of the test kit play the authorization
// server, which asks for a nonce first as RFC 9449 servers may, and the
// API, which verifies the token and its proof.
func ExampleDPoP() {
	t := testutil.NewExampleT() // the test kit takes a test's t
	defer t.Done()
	auth := securehttptest.NewAuthServer(t, securehttptest.DPoPNonce())
	api := securehttptest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := auth.VerifyRequest(r)
		scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		fmt.Fprintf(w, "scheme %s, proof verified: %t\n", scheme, err == nil)
	}))

	cfg := api.Config() // trusts the test kit's CA
	cfg.Bearer = &securehttp.Bearer{
		ClientCredentials: auth.ClientCredentials(),
		Hosts:             []string{api.Host},
		DPoP:              &securehttp.DPoP{}, // a fresh P-256 key, generated for this client
	}
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get(api.URL + "/v1/reports")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output: scheme DPoP, proof verified: true
}

// A Refresh of your own that obtains bound tokens signs its token requests
// with your DPoP key, and may need the key's RFC 7638 thumbprint, the jkt
// that bound tokens carry in their cnf claim (and the dpop_jkt parameter of
// an authorization request). Set DPoP.Key to know it in advance.
func ExampleDPoP_Thumbprint() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		fmt.Println(err)
		return
	}
	d := &securehttp.DPoP{Key: key}
	jkt, err := d.Thumbprint()
	fmt.Println(len(jkt), err)
	// Output: 43 <nil>
}
