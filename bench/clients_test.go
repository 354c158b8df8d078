package bench

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-resty/resty/v2"
	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/oauth2"

	"github.com/securehttp/securehttp"
)

// client is one way of sending requests, written as its users would write it.
type client struct {
	name   string
	get    func(ctx context.Context, url string) error
	upload func(ctx context.Context, url string, body io.Reader, size int64) error
	// uploadReplayable sends a body that newBody can make again, for a
	// retry, as the client's users would give it one that streams: nil
	// when the client has no such way.
	uploadReplayable func(ctx context.Context, url string, newBody func() io.Reader, size int64) error
	close            func()
}

// maker builds a fresh client, with its own connection pool.
type maker struct {
	name string
	new  func(b *testing.B, f *fixture) *client
}

// comparators lists the clients compared in every case, the limit first:
// the tables give each one's ratio to the first.
func comparators() []maker {
	return []maker{
		{"bare", func(_ *testing.B, f *fixture) *client {
			return stdClient("bare", &http.Client{Transport: f.baseTransport()})
		}},
		{"oauth2", func(_ *testing.B, f *fixture) *client {
			src := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: longJWT(time.Now()), TokenType: "Bearer"})
			return stdClient("oauth2", &http.Client{Transport: &oauth2.Transport{Source: src, Base: f.baseTransport()}})
		}},
		{"retryablehttp", func(_ *testing.B, f *fixture) *client {
			rc := retryablehttp.NewClient()
			rc.HTTPClient = &http.Client{Transport: f.baseTransport()}
			rc.Logger = nil // the default logger prints every request to stderr
			c := stdClient("retryablehttp", rc.StandardClient())
			// Its own API takes a ReaderFunc, which it calls again for
			// each attempt: the one way it streams a body. Through
			// StandardClient, which sees only an io.Reader, it reads the
			// whole body into memory first.
			c.uploadReplayable = func(ctx context.Context, url string, newBody func() io.Reader, size int64) error {
				req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPut, url,
					retryablehttp.ReaderFunc(func() (io.Reader, error) { return newBody(), nil }))
				if err != nil {
					return err
				}
				req.ContentLength = size
				req.Header["X-Size"] = []string{strconv.FormatInt(size, 10)}
				resp, err := rc.Do(req)
				if err != nil {
					return err
				}
				return drain(resp)
			}
			return c
		}},
		{"resty", func(_ *testing.B, f *fixture) *client {
			return restyClient(resty.New().SetTransport(f.baseTransport()).SetLogger(quietResty{}))
		}},
		{"securehttp", func(b *testing.B, f *fixture) *client {
			var refreshes atomic.Int64
			hc := f.secureClient(b, secureOptions{
				pins:  true,
				token: longJWT(time.Now()),
				refresh: func(context.Context) (string, error) {
					refreshes.Add(1)
					return longJWT(time.Now()), nil
				},
			})
			c := stdClient("securehttp", hc)
			c.close = func() {
				hc.CloseIdleConnections()
				// The token is valid for a day: a refresh here would be a
				// bug, and would cost the measured requests.
				if n := refreshes.Load(); n != 0 {
					b.Errorf("got %d refreshes of a day-long token, want 0", n)
				}
			}
			return c
		}},
	}
}

// comparator returns the maker of the named client: one of comparators(),
// or "bare-token", bare net/http whose caller sets the same kind of bearer
// token on each request as securehttp sends: the limit for an authenticated
// request, which pays for the header's bytes (and, over HTTP/2, its HPACK
// encoding) as securehttp does.
func comparator(name string) maker {
	if name == "bare-token" {
		return maker{name, func(_ *testing.B, f *fixture) *client {
			return authClient(name, &http.Client{Transport: f.baseTransport()}, "Bearer "+longJWT(time.Now()))
		}}
	}
	for _, m := range comparators() {
		if m.name == name {
			return m
		}
	}
	panic("no client named " + name)
}

// baseTransport is the tuned http.Transport under every comparator: the same
// settings as securehttp's own (roots, TLS 1.2 floor, session cache, HTTP/2,
// pool size, timeouts, dialer, no proxy), without its checks.
func (f *fixture) baseTransport() *http.Transport {
	return &http.Transport{
		Proxy:       noProxy,
		DialContext: f.dial,
		TLSClientConfig: &tls.Config{
			MinVersion:         tls.VersionTLS12,
			RootCAs:            f.roots,
			ClientSessionCache: tls.NewLRUClientSessionCache(256),
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   poolSize,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// noProxy keeps a proxy set in the environment out of the measurements.
func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

// secureOptions are the parts of a securehttp.Config a benchmark varies.
type secureOptions struct {
	pins    bool   // pin the leaf's key (with a backup pin)
	token   string // the token in the MemoryStore at the start
	refresh func(context.Context) (string, error)
	window  time.Duration         // Bearer.RefreshWindow
	hooks   *securehttp.Hooks     // Config.Hooks
	store   securehttp.TokenStore // replaces the MemoryStore of token when set
}

// secureClient returns securehttp with bearer tokens and retries (the
// default policy: up to 3 retries) enabled, and pins when o.pins is set.
func (f *fixture) secureClient(b *testing.B, o secureOptions) *http.Client {
	b.Helper()
	cfg := securehttp.Config{
		RootCAs: f.roots,
		Bearer: &securehttp.Bearer{
			Store:         securehttp.NewMemoryStore(securehttp.Token{Value: o.token}),
			Refresh:       valueRefresh(o.refresh),
			Hosts:         []string{hostH1, hostH2, hostFull},
			RefreshWindow: o.window,
		},
		Retry:               securehttp.RetryPolicy{},
		Proxy:               noProxy,
		DialContext:         f.dial,
		MaxIdleConnsPerHost: poolSize,
		Hooks:               o.hooks,
	}
	if o.store != nil {
		cfg.Bearer.Store = o.store
	}
	if o.pins {
		backup := sha256.Sum256([]byte("a backup key kept offline"))
		cfg.Pins = []securehttp.PinSet{{
			Host: "*.bench.test",
			Pins: []string{f.leafPin, "sha256/" + base64.StdEncoding.EncodeToString(backup[:])},
		}}
	}
	hc, err := securehttp.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return hc
}

// stdClient sends requests through an *http.Client.
func stdClient(name string, hc *http.Client) *client { return authClient(name, hc, "") }

// authClient is stdClient setting Authorization to auth on each GET, as a
// caller that adds its own token does, unless auth is "".
func authClient(name string, hc *http.Client, auth string) *client {
	return &client{
		name: name,
		get: func(ctx context.Context, url string) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			return drain(resp)
		},
		upload: func(ctx context.Context, url string, body io.Reader, size int64) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, body)
			if err != nil {
				return err
			}
			req.ContentLength = size
			req.Header["X-Size"] = []string{strconv.FormatInt(size, 10)}
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			return drain(resp)
		},
		uploadReplayable: func(ctx context.Context, url string, newBody func() io.Reader, size int64) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, newBody())
			if err != nil {
				return err
			}
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(newBody()), nil }
			req.ContentLength = size
			req.Header["X-Size"] = []string{strconv.FormatInt(size, 10)}
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			return drain(resp)
		},
		close: hc.CloseIdleConnections,
	}
}

// drain reads and closes resp's body, so that its connection is reused, and
// fails unless the status is 200.
func drain(resp *http.Response) error {
	_, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("got status %d, want 200", resp.StatusCode)
	}
	return nil
}

// restyClient sends requests as resty's users do: resty reads the response
// body itself. resty v2 reads an io.Reader body whole into memory, whatever
// its settings (retries are off by default), to give the request a GetBody:
// it has no way to stream a body, so it has no uploadReplayable.
func restyClient(rc *resty.Client) *client {
	check := func(resp *resty.Response, err error) error {
		if err != nil {
			return err
		}
		if resp.StatusCode() != http.StatusOK {
			return fmt.Errorf("got status %d, want 200", resp.StatusCode())
		}
		return nil
	}
	return &client{
		name: "resty",
		get: func(ctx context.Context, url string) error {
			return check(rc.R().SetContext(ctx).Get(url))
		},
		upload: func(ctx context.Context, url string, body io.Reader, size int64) error {
			return check(rc.R().SetContext(ctx).SetHeader("X-Size", strconv.FormatInt(size, 10)).SetBody(body).Put(url))
		},
		close: func() { rc.GetClient().CloseIdleConnections() },
	}
}

// quietResty drops resty's log lines.
type quietResty struct{}

func (quietResty) Errorf(string, ...any) {}
func (quietResty) Warnf(string, ...any)  {}
func (quietResty) Debugf(string, ...any) {}

// mintJWT returns an HS256 JWT with the given iat and exp, signed with a key
// nobody checks: securehttp only decodes a JWT (no Bearer.Keyfunc) to read
// its expiry. Claims are whole seconds, as JWTs have them.
func mintJWT(iat, exp time.Time) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims := enc.EncodeToString(fmt.Appendf(nil, `{"sub":"bench","aud":"api","iat":%d,"exp":%d}`, iat.Unix(), exp.Unix()))
	mac := hmac.New(sha256.New, []byte("bench signing key"))
	mac.Write([]byte(header + "." + claims))
	return header + "." + claims + "." + enc.EncodeToString(mac.Sum(nil))
}

// longJWT is a token valid for a day from now: far outside any refresh
// window for the length of a benchmark.
func longJWT(now time.Time) string { return mintJWT(now, now.Add(24*time.Hour)) }

// valueRefresh adapts a refresh that returns only the token's value, whose
// expiry the JWT itself carries.
func valueRefresh(fn func(context.Context) (string, error)) func(context.Context) (securehttp.Token, error) {
	if fn == nil {
		return nil
	}
	return func(ctx context.Context) (securehttp.Token, error) {
		v, err := fn(ctx)
		return securehttp.Token{Value: v}, err
	}
}
