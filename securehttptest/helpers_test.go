package securehttptest

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fatalTB records the failure of a call that fails its test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper()             {}
func (f *fatalTB) Cleanup(func())      {}
func (f *fatalTB) Logf(string, ...any) {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fails runs f, and returns the message with which it failed its test, or
// "" when it did not.
func fails(f func(t testing.TB)) string {
	tb := &fatalTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(tb)
	}()
	<-done
	return tb.msg
}

// signJWT signs claims with key as alg, with the header fields of header.
func signJWT(t *testing.T, alg jwt.SigningMethod, key crypto.Signer, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(alg, claims)
	maps.Copy(tok.Header, header)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tokenRequest returns a token request to a's endpoint with form.
func tokenRequest(a *authServer, form url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, a.tokenURL, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// withCert makes r arrive over a connection on which the client presented
// cert.
func withCert(r *http.Request, cert *x509.Certificate) *http.Request {
	tls := *r.TLS
	tls.PeerCertificates = []*x509.Certificate{cert}
	r.TLS = &tls
	return r
}

// check returns the check a refusal names, or "" for none.
func check(ref *refusal) string {
	if ref == nil {
		return ""
	}
	return ref.check
}

// fixedClock returns a clock stopped at now.
func fixedClock(now time.Time) func() time.Time { return func() time.Time { return now } }
