package securehttptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"
	"time"
)

// TestOptionsMisused: an option given where it does not apply, or with a
// value that makes no sense, fails the test instead of being ignored.
func TestOptionsMisused(t *testing.T) {
	t.Parallel()
	ca := NewCA(t)
	srv := NewServer(t, nil)
	iss := NewIssuer(t, "https://cluster.test")
	file := iss.TokenFile(t, "sub", "aud")
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func(t testing.TB)
	}{
		{"an authorization server's option to NewServer", func(t testing.TB) { NewServer(t, nil, TokenLifetime(time.Minute)) }},
		{"a server's option to CA.Issue", func(t testing.TB) { ca.Issue(t, RequireClientCert()) }},
		{"WrongHost to CA.Issue", func(t testing.TB) { ca.Issue(t, WrongHost()) }},
		{"Hosts to Server.Rotate", func(t testing.TB) { srv.Rotate(t, Hosts("api.test")) }},
		{"a zero Option", func(t testing.TB) { NewServer(t, nil, Option{}) }},
		{"no host", func(t testing.TB) { ca.Issue(t, Hosts()) }},
		{"an empty host", func(t testing.TB) { ca.Issue(t, Hosts("")) }},
		{"a URL for a host", func(t testing.TB) { ca.Issue(t, Hosts("https://api.test")) }},
		{"a wildcard first in a server's Hosts", func(t testing.TB) { NewServer(t, nil, Hosts("*.api.test")) }},
		{"a nil key", func(t testing.TB) { ca.Issue(t, Key(nil)) }},
		{"a validity that ends before it begins", func(t testing.TB) { ca.Issue(t, Validity(time.Now(), time.Now().Add(-time.Hour))) }},
		{"a nil CA", func(t testing.TB) { NewServer(t, nil, WithCA(nil)) }},
		{"a lifetime under a second", func(t testing.TB) { NewAuthServer(t, TokenLifetime(time.Millisecond)) }},
		{"an unknown client authentication", func(t testing.TB) { NewAuthServer(t, ClientAuth("client_secret_post")) }},
		{"a TokenError of status 200", func(t testing.TB) { NewAuthServer(t, TokenError(200, "invalid_client")) }},
		{"a TokenError without a code", func(t testing.TB) { NewAuthServer(t, TokenError(400, "")) }},
		{"Slow(0)", func(t testing.TB) { NewAuthServer(t, Slow(0)) }},
		{"TrustIssuer without a name", func(t testing.TB) { NewAuthServer(t, TrustIssuer("", iss.Key().Public())) }},
		{"TrustIssuer with a nil key", func(t testing.TB) { NewAuthServer(t, TrustIssuer(iss.Name, nil)) }},
		{"TrustIssuer with a private key", func(t testing.TB) { NewAuthServer(t, TrustIssuer(iss.Name, iss.Key())) }},
		{"TrustIssuer with a weak RSA key", func(t testing.TB) { NewAuthServer(t, TrustIssuer(iss.Name, &weak.PublicKey)) }},
		{"TrustIssuer with a P-224 key", func(t testing.TB) { NewAuthServer(t, TrustIssuer(iss.Name, &p224.PublicKey)) }},
		{"TrustIssuer to NewServer", func(t testing.TB) { NewServer(t, nil, TrustIssuer(iss.Name, iss.Key().Public())) }},
		{"NewIssuer without a name", func(t testing.TB) { NewIssuer(t, "") }},
		{"a server's option to Issuer.Token", func(t testing.TB) { iss.Token(t, "sub", "aud", RequireClientCert()) }},
		{"a certificate's option to Issuer.TokenFile", func(t testing.TB) { iss.TokenFile(t, "sub", "aud", MustStaple()) }},
		{"Hosts to TokenFile.Rotate", func(t testing.TB) { file.Rotate(t, Hosts("api.test")) }},
	}
	for _, tt := range tests {
		if msg := fails(tt.call); msg == "" {
			t.Errorf("%s: the test went on, want it failed", tt.name)
		}
	}
	// And calls that are right go through.
	for _, call := range []func(t testing.TB){
		func(t testing.TB) { ca.Issue(t, Hosts("api.test", "::1"), Expired()) },
		func(t testing.TB) {
			apply(t, toAuth, "NewAuthServer", []Option{ClientAuth("none"), TrustIssuer(iss.Name, iss.Key().Public())})
		},
		func(t testing.TB) { file.Rotate(t, TokenLifetime(time.Minute), NotYetValid()) },
	} {
		if msg := fails(call); msg != "" {
			t.Errorf("a right call failed: %s", msg)
		}
	}
}
