package securehttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/secrettest"
	"github.com/securehttp/securehttp/internal/testutil"
)

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	good := "sha256/" + strings.Repeat("A", 43) + "="
	tests := []struct {
		name, field string
		cfg         Config
	}{
		{"empty host", "Pins[0].Host", Config{Pins: []PinSet{{Pins: []string{good}}}}},
		{"host with port", "Pins[0].Host", Config{Pins: []PinSet{{Host: "a.test:443", Pins: []string{good}}}}},
		{"wildcard inside", "Pins[0].Host", Config{Pins: []PinSet{{Host: "a.*.test", Pins: []string{good}}}}},
		{"empty pin list", "Pins[1].Pins", Config{Pins: []PinSet{{Host: "a.test", Pins: []string{good}}, {Host: "b.test"}}}},
		{"sha1 pin", "Pins[0].Pins[1]", Config{Pins: []PinSet{{Host: "a.test", Pins: []string{good, "sha1/AAAAAAAAAAAAAAAAAAAAAAAAAAA="}}}}},
		{"bad base64", "Pins[0].Pins[0]", Config{Pins: []PinSet{{Host: "a.test", Pins: []string{"sha256/not*base64"}}}}},
		{"short digest", "Pins[0].Pins[0]", Config{Pins: []PinSet{{Host: "a.test", Pins: []string{"sha256/AAAA"}}}}},
		{"hex too short", "Pins[0].Pins[0]", Config{Pins: []PinSet{{Host: "a.test", Pins: []string{strings.Repeat("ab", 31)}}}}},
		{"hex not hex", "Pins[0].Pins[0]", Config{Pins: []PinSet{{Host: "a.test", Pins: []string{strings.Repeat("zz", 32)}}}}},
		{"ragged colons", "Pins[0].Pins[0]", Config{Pins: []PinSet{{Host: "a.test", Pins: []string{"A" + strings.Repeat(":AB", 31) + "B"}}}}},
		{"empty pin", "Pins[0].Pins[0]", Config{Pins: []PinSet{{Host: "a.test", Pins: []string{""}}}}},
		{"negative MinWait", "Retry.MinWait", Config{Retry: RetryPolicy{MinWait: -time.Second}}},
		{"MaxWait below MinWait", "Retry.MaxWait", Config{Retry: RetryPolicy{MinWait: time.Second, MaxWait: time.Millisecond}}},
		{"bearer without hosts", "Bearer.Hosts", Config{Bearer: &Bearer{Store: NewMemoryStore(Token{Value: "t"})}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := NewClient(tt.cfg)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got (%v, %v), want a *ConfigError", c, err)
			}
			if ce.Field != tt.field {
				t.Fatalf("got field %q, want %q", ce.Field, tt.field)
			}
			if !strings.HasPrefix(err.Error(), "securehttp: ") || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %q should start with securehttp: and name %s", err, tt.field)
			}
		})
	}
}

// A ConfigError that quotes a URL, or a URL typed where a host was
// expected, shows it without userinfo, query or fragment: they may hold a
// password or a key, and configuration errors end up in logs.
func TestConfigErrorHidesURLSecrets(t *testing.T) {
	t.Parallel()
	const (
		password = "Pa55w0rdInURL"
		query    = "qS3cretInURL"
		fragment = "fS3cretInURL"
	)
	u := "https://svc:" + password + "@as.test/token?key=" + query + "#" + fragment
	cc := func(c ClientCredentials) Config {
		c.ClientID, c.ClientSecret = "c", "s"
		if c.Issuer == "" && c.TokenURL == "" {
			c.Issuer = "https://as.test"
		}
		return Config{Bearer: &Bearer{ClientCredentials: &c, Hosts: []string{hostAPI}}}
	}
	for _, tt := range []struct {
		name, field string
		cfg         Config
	}{
		{"TokenURL with userinfo", "Bearer.ClientCredentials.TokenURL", cc(ClientCredentials{TokenURL: u})},
		{"plain-HTTP TokenURL", "Bearer.ClientCredentials.TokenURL", cc(ClientCredentials{TokenURL: "http://svc:" + password + "@as.test/token?key=" + query})},
		{"TokenURL that does not parse", "Bearer.ClientCredentials.TokenURL", cc(ClientCredentials{TokenURL: "https://svc:" + password + "@as.test:port/token?key=" + query})},
		{"Issuer with userinfo", "Bearer.ClientCredentials.Issuer", cc(ClientCredentials{Issuer: u})},
		{"Issuer with a query", "Bearer.ClientCredentials.Issuer", cc(ClientCredentials{Issuer: "https://as.test/?key=" + query + "#" + fragment})},
		{"Resource with a fragment", "Bearer.ClientCredentials.Resource[0]", cc(ClientCredentials{Resource: []string{u}})},
		{"URL in Bearer.Hosts", "Bearer.Hosts[0]", Config{Bearer: &Bearer{Refresh: tokStaticT("t"), Hosts: []string{u}}}},
		{"userinfo in Bearer.Hosts", "Bearer.Hosts[0]", Config{Bearer: &Bearer{Refresh: tokStaticT("t"), Hosts: []string{"svc:" + password + "@as.test"}}}},
		{"URL in PinSet.Host", "Pins[0].Host", Config{Pins: []PinSet{{Host: u, Pins: []string{fakePin('A')}}}}},
		{"URL in AllowHosts", "AllowHosts[0]", Config{AllowHosts: []string{u}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := newTransport(tt.cfg)
			ce, ok := errors.AsType[*ConfigError](err)
			if !ok || ce.Field != tt.field {
				t.Fatalf("got %v, want a *ConfigError for %s", err, tt.field)
			}
			for _, shown := range []string{err.Error(), fmt.Sprintf("%v|%+v|%s|%q", err, err, err, err)} {
				for _, secret := range []string{password, query, fragment} {
					if strings.Contains(shown, secret) {
						t.Fatalf("got %q, want it without %q", shown, secret)
					}
				}
				if !strings.Contains(shown, "as.test") {
					t.Fatalf("got %q, want the host as.test still shown", shown)
				}
			}
		})
	}
}

// A ConfigError hides a URL's userinfo, query and fragment however it is
// printed, not only in its message: %#v, %d, encoding/json and a JSON log
// of a struct holding it show the struct's fields, Value among them.
func TestConfigErrorPrintsNoURLSecret(t *testing.T) {
	t.Parallel()
	var (
		password = secrettest.Canary("config-password", 24)
		query    = secrettest.Canary("config-query", 24)
		fragment = secrettest.Canary("config-fragment", 24)
	)
	_, err := newTransport(Config{Bearer: &Bearer{Hosts: []string{hostAPI}, ClientCredentials: &ClientCredentials{
		ClientID: "c", ClientSecret: "s",
		TokenURL: "http://svc:" + password + "@as.test/token?key=" + query + "#" + fragment,
	}}})
	ce, ok := errors.AsType[*ConfigError](err)
	if !ok {
		t.Fatalf("got %v, want a *ConfigError", err)
	}
	secrettest.Check(t, ce, password, query, fragment)
}

func TestDropIn(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", okHandler)
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	mux.HandleFunc("/set-cookie", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "s1", Secure: true, Path: "/"})
		http.SetCookie(w, &http.Cookie{Name: "insecure", Value: "i1", Path: "/"})
	})
	mux.HandleFunc("/cookies", func(w http.ResponseWriter, r *http.Request) {
		var names []string
		for _, c := range r.Cookies() {
			names = append(names, c.Name+"="+c.Value)
		}
		io.WriteString(w, strings.Join(names, ";"))
	})
	srv := testutil.StartServer(t, p.serverCert(), mux)

	t.Run("context cancellation", func(t *testing.T) {
		t.Parallel()
		client, err := NewClient(testConfig(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(client.CloseIdleConnections)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, testutil.HostURL(srv, hostAPI, "/block"), nil)
		start := time.Now()
		resp, err := client.Do(req)
		if resp != nil {
			resp.Body.Close()
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("cancellation took %v", d)
		}
	})

	t.Run("CheckRedirect", func(t *testing.T) {
		t.Parallel()
		client, err := NewClient(testConfig(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(client.CloseIdleConnections)
		var hops atomic.Int64
		client.CheckRedirect = func(*http.Request, []*http.Request) error {
			hops.Add(1)
			return http.ErrUseLastResponse
		}
		resp, err := client.Get(testutil.HostURL(srv, hostAPI, "/redirect"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || hops.Load() != 1 {
			t.Fatalf("got status %d after %d CheckRedirect calls, want 302 after 1", resp.StatusCode, hops.Load())
		}
	})

	t.Run("cookie jar", func(t *testing.T) {
		t.Parallel()
		client, err := NewClient(testConfig(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(client.CloseIdleConnections)
		if client.Jar != nil {
			t.Fatalf("NewClient set a cookie jar, want none")
		}
		client.Jar = NewCookieJar()
		resp, err := client.Get(testutil.HostURL(srv, hostAPI, "/set-cookie"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		body, err := get(t, clientTransport{client}, testutil.HostURL(srv, hostAPI, "/cookies"))
		if err != nil || body != "session=s1" {
			t.Fatalf("got cookies %q (%v), want only the Secure one, session=s1", body, err)
		}
	})

	t.Run("CloseIdleConnections", func(t *testing.T) {
		t.Parallel()
		var conns atomic.Int64
		cfg := testConfig(t)
		cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conns.Add(1)
			return testutil.LoopbackDial(ctx, network, addr)
		}
		client, err := NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := get(t, clientTransport{client}, testutil.HostURL(srv, hostAPI, "/ok")); err != nil {
				t.Fatal(err)
			}
		}
		client.CloseIdleConnections()
		if _, err := get(t, clientTransport{client}, testutil.HostURL(srv, hostAPI, "/ok")); err != nil {
			t.Fatal(err)
		}
		client.CloseIdleConnections()
		if got := conns.Load(); got != 2 {
			t.Fatalf("got %d dials, want 2 (one reused, one after CloseIdleConnections)", got)
		}
	})
}

// clientTransport lets get use a whole *http.Client, jar and all.
type clientTransport struct{ c *http.Client }

func (ct clientTransport) RoundTrip(r *http.Request) (*http.Response, error) { return ct.c.Do(r) }

// TestRedactedHidesTheQuery: http.Client quotes the URL, query and all, in
// its *url.Error; Redacted prints the error without the query, userinfo or
// fragment, and errors.Is and errors.As still see what it wraps.
func TestRedactedHidesTheQuery(t *testing.T) {
	t.Parallel()
	c, err := NewClient(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get("http://user:PWSECRET@api.test/orders?api_key=QSECRET#FSECRET")
	if !strings.Contains(err.Error(), "QSECRET") {
		t.Fatalf("got %q, want http.Client to quote the query (else this test proves nothing)", err)
	}
	red := Redacted(err)
	for _, secret := range []string{"PWSECRET", "QSECRET", "FSECRET", "api_key"} {
		if strings.Contains(red.Error(), secret) {
			t.Errorf("got %q, want no %s", red, secret)
		}
	}
	if !strings.Contains(red.Error(), "api.test/orders") || !strings.Contains(red.Error(), "plain-HTTP") {
		t.Errorf("got %q, want the host, path and cause kept", red)
	}
	if _, ok := errors.AsType[*url.Error](red); !ok || !errors.Is(red, ErrInsecureScheme) {
		t.Errorf("got %v, want errors.Is and errors.As to see the *url.Error and its cause", red)
	}
	if Redacted(nil) != nil {
		t.Error("Redacted(nil) is not nil")
	}
}

// TestRedactedHidesTheQueryOfAWrappedError: a program that wraps the
// client's error before printing it, or joins it with others, still gets
// every URL of a *url.Error in it printed without query, userinfo or
// fragment.
func TestRedactedHidesTheQueryOfAWrappedError(t *testing.T) {
	t.Parallel()
	c, err := NewClient(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get("http://USERNAME:PWSECRET@api.test/orders?api_key=QSECRET#FSECRET")
	if err == nil {
		t.Fatal("got no error for plain HTTP")
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"wrapped with %w", fmt.Errorf("fetching orders: %w", err)},
		{"wrapped twice", fmt.Errorf("sync: %w", fmt.Errorf("fetching orders: %w", err))},
		{"joined", errors.Join(errors.New("first failure"), err)},
	} {
		if !strings.Contains(tc.err.Error(), "QSECRET") {
			t.Fatalf("%s: got %q, want the query quoted unredacted (else this test proves nothing)", tc.name, tc.err)
		}
		red := Redacted(tc.err).Error()
		for _, secret := range []string{"USERNAME", "PWSECRET", "QSECRET", "FSECRET", "api_key"} {
			if strings.Contains(red, secret) {
				t.Errorf("%s: got %q, want no %s", tc.name, red, secret)
			}
		}
		if !strings.Contains(red, "api.test/orders") || !strings.Contains(red, "plain-HTTP") {
			t.Errorf("%s: got %q, want the host, path and cause kept", tc.name, red)
		}
		if !errors.Is(Redacted(tc.err), ErrInsecureScheme) {
			t.Errorf("%s: got %v, want errors.Is to see the cause", tc.name, red)
		}
	}
}
