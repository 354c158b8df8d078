package securehttptest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/testutil"
	"github.com/securehttp/securehttp/securehttptest"
)

// Each example's t stands in for the *testing.T of a test: the lines
// between it and the printing at the end are a test's, as
// docs/testing.md shows them.

// A test of a client that calls an API with a token from an authorization
// server: the client verifies the API's certificate against the kit's CA
// and pins, obtains a token with the client credentials grant, and sends it
// to the API, which records what it received.
func Example() {
	t := testutil.NewExampleT() // in a test, the test's t
	defer t.Done()

	api := securehttptest.NewServer(t, nil) // answers 200, records every request
	auth := securehttptest.NewAuthServer(t)
	cfg := api.Config() // trusts and pins every server of the kit
	cfg.Bearer = &securehttp.Bearer{ClientCredentials: auth.ClientCredentials(), Hosts: []string{api.Host}}
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(api.URL + "/v1/invoices")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := auth.VerifyRequest(api.Requests()[0]); err != nil {
		t.Errorf("the API got no valid token: %v", err)
	}

	fmt.Println(resp.StatusCode, api.Requests()[0].URL.Path)
	// Output: 200 /v1/invoices
}

// An API handler that refuses what the real API refuses: a token that the
// authorization server did not issue, that expired, that lacks the scope,
// or whose DPoP proof or certificate binding does not hold.
func ExampleAuthServer_VerifyRequest() {
	t := testutil.NewExampleT() // in a test, the test's t
	defer t.Done()

	auth := securehttptest.NewAuthServer(t)
	api := securehttptest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, err := auth.VerifyRequest(r)
		if err != nil || claims.Scope != "invoices:read" {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	creds := auth.ClientCredentials()
	creds.Scopes = []string{"invoices:read"}
	cfg := api.Config()
	cfg.Bearer = &securehttp.Bearer{ClientCredentials: creds, Hosts: []string{api.Host}}
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(api.URL + "/v1/invoices")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("got status %d, want 200", resp.StatusCode)
	}

	fmt.Println(resp.StatusCode)
	// Output: 200
}

// Servers that fail as production servers do, and the errors the client
// returns for them.
func ExampleNewServer_failures() {
	t := testutil.NewExampleT() // in a test, the test's t
	defer t.Done()

	// The Config of any server of the kit trusts every other.
	client, err := securehttp.NewClient(securehttptest.NewServer(t, nil).Config())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		opt  securehttptest.Option
		want error
	}{
		{securehttptest.MisIssued(), securehttp.ErrPinMismatch},
		{securehttptest.StapleRevoked(), securehttp.ErrRevoked},
		{securehttptest.MustStaple(), securehttp.ErrOCSPStaple},
		{securehttptest.WeakKey(), securehttp.ErrWeakKey},
	} {
		srv := securehttptest.NewServer(t, nil, tt.opt)
		if _, err := client.Get(srv.URL); !errors.Is(err, tt.want) {
			t.Errorf("got %v, want %v", err, tt.want)
		}
	}
	expired := securehttptest.NewServer(t, nil, securehttptest.Expired())
	_, err = client.Get(expired.URL)
	var invalid x509.CertificateInvalidError
	if !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Errorf("got %v, want an expired certificate", err)
	}

	fmt.Println(securehttp.ErrorClass(err))
	// Output: certificate
}

// A token endpoint that refuses the client: the request fails with
// ErrNoToken, and the API receives nothing.
func ExampleTokenError() {
	t := testutil.NewExampleT() // in a test, the test's t
	defer t.Done()

	api := securehttptest.NewServer(t, nil)
	auth := securehttptest.NewAuthServer(t, securehttptest.TokenError(http.StatusUnauthorized, "invalid_client"))
	cfg := api.Config()
	cfg.Bearer = &securehttp.Bearer{ClientCredentials: auth.ClientCredentials(), Hosts: []string{api.Host}}
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Get(api.URL + "/v1/invoices")
	var oauthErr *securehttp.OAuthError
	if !errors.Is(err, securehttp.ErrNoToken) || !errors.As(err, &oauthErr) || oauthErr.Code != "invalid_client" {
		t.Errorf("got %v, want ErrNoToken for invalid_client", err)
	}
	if n := len(api.Requests()); n != 0 {
		t.Errorf("the API received %d requests, want none", n)
	}

	fmt.Println(oauthErr.StatusCode, oauthErr.Code)
	// Output: 401 invalid_client
}

// A client that authenticates with private_key_jwt: the server accepts
// only that, and checks every claim of each assertion.
func ExampleClientAuth() {
	t := testutil.NewExampleT() // in a test, the test's t
	defer t.Done()

	api := securehttptest.NewServer(t, nil)
	auth := securehttptest.NewAuthServer(t, securehttptest.ClientAuth("private_key_jwt"))
	cfg := api.Config()
	cfg.Bearer = &securehttp.Bearer{ClientCredentials: auth.ClientCredentials(), Hosts: []string{api.Host}}
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(api.URL + "/v1/invoices")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := auth.Counts(); got.Tokens != 1 {
		t.Errorf("got %d tokens issued, want 1", got.Tokens)
	}

	tokenRequest := auth.Requests()[1] // after the metadata
	tokenRequest.ParseForm()
	fmt.Println(tokenRequest.PostForm.Get("client_assertion_type"))
	// Output: urn:ietf:params:oauth:client-assertion-type:jwt-bearer
}

// DPoP: the authorization server asks for a nonce first, then binds the
// token to the client's key; VerifyRequest checks the proof that comes
// with the token to the API.
func ExampleDPoPNonce() {
	t := testutil.NewExampleT() // in a test, the test's t
	defer t.Done()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	api := securehttptest.NewServer(t, nil)
	auth := securehttptest.NewAuthServer(t, securehttptest.DPoPNonce())
	cfg := api.Config()
	cfg.Bearer = &securehttp.Bearer{
		ClientCredentials: auth.ClientCredentials(),
		Hosts:             []string{api.Host},
		DPoP:              &securehttp.DPoP{Key: key},
	}
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(api.URL + "/v1/invoices")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	claims, err := auth.VerifyRequest(api.Requests()[0]) // the proof too
	if err != nil {
		t.Fatal(err)
	}
	if jkt, _ := cfg.Bearer.DPoP.Thumbprint(); claims.Cnf.JKT != jkt {
		t.Errorf("got a token bound to %q, want %q", claims.Cnf.JKT, jkt)
	}

	scheme, _, _ := strings.Cut(api.Requests()[0].Header.Get("Authorization"), " ")
	fmt.Println(scheme, auth.Counts().TokenRequests)
	// Output: DPoP 2
}

// Mutual TLS: the client loads its certificate from files as in
// production, authenticates with it to the authorization server
// (tls_client_auth), and presents it to an API that requires one; the
// token is bound to it (RFC 8705).
func ExampleAuthServer_ClientCert() {
	t := testutil.NewExampleT() // in a test, the test's t
	defer t.Done()

	auth := securehttptest.NewAuthServer(t, securehttptest.ClientAuth("tls_client_auth"))
	api := securehttptest.NewServer(t, nil, securehttptest.RequireClientCert())
	certFile, keyFile := auth.ClientCert(t).Files(t)
	cert, err := securehttp.LoadClientCert(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	defer cert.Close()
	cfg := api.Config()
	cfg.GetClientCertificate = cert.GetClientCertificate
	cfg.Bearer = &securehttp.Bearer{ClientCredentials: auth.ClientCredentials(), Hosts: []string{api.Host}}
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(api.URL + "/v1/invoices")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	claims, err := auth.VerifyRequest(api.Requests()[0]) // the binding too
	if err != nil {
		t.Fatal(err)
	}
	if claims.Cnf.X5TS256 == "" {
		t.Error("got a token bound to no certificate")
	}

	fmt.Println(claims.Cnf.X5TS256 != "", api.Requests()[0].TLS.PeerCertificates[0].Subject.CommonName)
	// Output: true test-client
}

// The JWT bearer grant: a service account's key signs an assertion for
// each token request, which the authorization server verifies against
// the key it trusts, and the token is for the assertion's subject.
func ExampleAuthServer_JWTBearer() {
	t := testutil.NewExampleT() // in a test, the test's t
	defer t.Done()

	account := securehttptest.NewIssuer(t, "reports@accounts.example") // a service account's key
	api := securehttptest.NewServer(t, nil)
	auth := securehttptest.NewAuthServer(t, securehttptest.TrustIssuer(account.Name, account.Key().Public()))
	assertion := securehttp.SignedAssertion(account.Key(), securehttp.AssertionClaims{
		Issuer: account.Name, Subject: account.Name, KeyID: account.KeyID,
	})
	cfg := api.Config()
	cfg.Bearer = &securehttp.Bearer{JWTBearer: auth.JWTBearer(assertion), Hosts: []string{api.Host}}
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(api.URL + "/v1/reports")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	claims, err := auth.VerifyRequest(api.Requests()[0])
	if err != nil {
		t.Fatal(err)
	}
	if claims.Subject != account.Name {
		t.Errorf("got a token for %q, want %q", claims.Subject, account.Name)
	}

	fmt.Println(claims.Subject)
	// Output: reports@accounts.example
}

// Token exchange: a pod's projected service account token, in a file that
// the test rotates as the kubelet does, is traded for an access token for
// the API.
func ExampleAuthServer_TokenExchange() {
	t := testutil.NewExampleT() // in a test, the test's t
	defer t.Done()

	cluster := securehttptest.NewIssuer(t, "https://kubernetes.default.svc")
	api := securehttptest.NewServer(t, nil)
	auth := securehttptest.NewAuthServer(t, securehttptest.TrustIssuer(cluster.Name, cluster.Key().Public()))
	projected := cluster.TokenFile(t, "system:serviceaccount:shop:invoices", auth.Issuer)
	exchange := auth.TokenExchange(securehttp.AssertionFile(projected.Path))
	exchange.Audience = []string{api.URL}
	cfg := api.Config()
	cfg.Bearer = &securehttp.Bearer{TokenExchange: exchange, Hosts: []string{api.Host}}
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	projected.Rotate(t) // the kubelet's swap of ..data
	resp, err := client.Get(api.URL + "/v1/invoices")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	claims, err := auth.VerifyRequest(api.Requests()[0]) // for the API's URL
	if err != nil {
		t.Fatal(err)
	}
	if claims.Subject != "system:serviceaccount:shop:invoices" {
		t.Errorf("got a token for %q, want the pod's service account", claims.Subject)
	}

	fmt.Println(claims.Subject)
	// Output: system:serviceaccount:shop:invoices
}

// An assertion that the authorization server refuses, here an expired
// one: the request fails with ErrNoToken and the server's invalid_grant,
// and the API receives nothing. An issuer that TrustIssuer does not name,
// and a jti used before, are refused alike.
func ExampleIssuer_Token() {
	t := testutil.NewExampleT() // in a test, the test's t
	defer t.Done()

	cluster := securehttptest.NewIssuer(t, "https://kubernetes.default.svc")
	api := securehttptest.NewServer(t, nil)
	auth := securehttptest.NewAuthServer(t, securehttptest.TrustIssuer(cluster.Name, cluster.Key().Public()))
	expired := cluster.Token(t, "system:serviceaccount:shop:invoices", auth.Issuer, securehttptest.Expired())
	cfg := api.Config()
	cfg.Bearer = &securehttp.Bearer{
		JWTBearer: auth.JWTBearer(func(context.Context) (string, error) { return expired, nil }),
		Hosts:     []string{api.Host},
	}
	client, err := securehttp.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Get(api.URL + "/v1/invoices")
	var oauthErr *securehttp.OAuthError
	if !errors.Is(err, securehttp.ErrNoToken) || !errors.As(err, &oauthErr) || oauthErr.Code != "invalid_grant" {
		t.Errorf("got %v, want ErrNoToken for invalid_grant", err)
	}
	if n := len(api.Requests()); n != 0 {
		t.Errorf("the API received %d requests, want none", n)
	}

	fmt.Println(oauthErr.StatusCode, oauthErr.Code)
	// Output: 400 invalid_grant
}

// A server that rotates its certificate: the client follows a rotation
// under the same CA, since Config pins the CA's intermediate, and refuses
// a certificate mis-issued by another.
func ExampleServer_Rotate() {
	t := testutil.NewExampleT() // in a test, the test's t
	defer t.Done()

	srv := securehttptest.NewServer(t, nil)
	client, err := securehttp.NewClient(srv.Config())
	if err != nil {
		t.Fatal(err)
	}
	srv.Rotate(t)
	client.CloseIdleConnections() // rotations show on new connections
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !resp.TLS.PeerCertificates[0].Equal(srv.Certificate().Leaf()) {
		t.Error("the client did not see the new certificate")
	}
	srv.Rotate(t, securehttptest.MisIssued())
	client.CloseIdleConnections()
	_, err = client.Get(srv.URL)
	if !errors.Is(err, securehttp.ErrPinMismatch) {
		t.Errorf("got %v, want ErrPinMismatch", err)
	}

	fmt.Println(securehttp.ErrorClass(err))
	// Output: pin_mismatch
}

// A server of your own, with a certificate from a CA of the kit.
func ExampleCA_Issue() {
	t := testutil.NewExampleT() // in a test, the test's t
	defer t.Done()

	ca := securehttptest.NewCA(t)
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t).TLSCertificate()}} // for 127.0.0.1
	srv.StartTLS()
	defer srv.Close()
	client, err := securehttp.NewClient(securehttp.Config{
		RootCAs: ca.Pool(),
		Pins:    []securehttp.PinSet{{Host: "127.0.0.1", Pins: ca.Pins()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("got status %d, want 404", resp.StatusCode)
	}

	fmt.Println(resp.StatusCode)
	// Output: 404
}
