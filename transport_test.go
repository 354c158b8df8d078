package securehttp

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/securehttp/securehttp/internal/testutil"
)

// refererMux redirects /go?to=URL to URL and answers /land with the Referer
// values it received, quoted, so that none and an empty one differ.
func refererMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/go", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	mux.HandleFunc("/land", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%q", r.Header.Values("Referer"))
	})
	return mux
}

// TestRedirectReferer checks the Referer a redirect hop carries: none to
// another origin (host or port), the previous URL without its query and
// fragment to the same origin, and the caller's own Referer, set on the
// first request, kept as it is. A CheckRedirect of the caller's, even one
// that sets the Referer itself, does not bring the query back, and a hop
// whose CheckRedirect removed the Referer gets none.
func TestRedirectReferer(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	srv := testutil.StartServer(t, p.serverCert(), refererMux())
	other := testutil.StartServer(t, p.serverCert(), refererMux()) // another port
	tr := newTestTransport(t, testConfig(t))

	const secrets = "api_key=QSECRET&X-Amz-Signature=SIGSECRET"
	origin := testutil.HostURL(srv, hostAPI, "")
	// via is a URL on origin, with secrets in its query and fragment, that
	// redirects to to.
	via := func(to string) string {
		return origin + "/go?" + secrets + "&to=" + url.QueryEscape(to) + "#FRAGSECRET"
	}
	none := fmt.Sprintf("%q", []string(nil))
	one := func(v string) string { return fmt.Sprintf("%q", []string{v}) }
	const callers = "https://app.example/page"

	clients := []struct {
		name          string
		checkRedirect func(*http.Request, []*http.Request) error
		removes       bool // every hop then goes without a Referer
	}{
		{"no CheckRedirect", nil, false},
		{"counting CheckRedirect", func(_ *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return fmt.Errorf("stopped after %d redirects", len(via))
			}
			return nil
		}, false},
		{"CheckRedirect setting the previous URL", func(req *http.Request, via []*http.Request) error {
			req.Header.Set("Referer", via[len(via)-1].URL.String())
			return nil
		}, false},
		{"CheckRedirect removing the Referer", func(req *http.Request, _ []*http.Request) error {
			req.Header.Del("Referer")
			return nil
		}, true},
	}
	tests := []struct {
		name    string
		url     string
		referer string // set on the first request when not empty
		want    string
	}{
		{"another host", via(testutil.HostURL(srv, hostOther, "/land")), "", none},
		{"another port", via(testutil.HostURL(other, hostAPI, "/land")), "", none},
		{"same origin", via("/land"), "", one(origin + "/go")},
		{"same origin, then another host", via(via(testutil.HostURL(srv, hostOther, "/land"))), "", none},
		{"caller's Referer, another host", via(testutil.HostURL(srv, hostOther, "/land")), callers, one(callers)},
		{"caller's Referer, same origin", via("/land"), callers, one(callers)},
	}
	for _, c := range clients {
		for _, tt := range tests {
			t.Run(c.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				client := &http.Client{Transport: tr, CheckRedirect: c.checkRedirect}
				req, err := http.NewRequest(http.MethodGet, tt.url, nil)
				if err != nil {
					t.Fatal(err)
				}
				if tt.referer != "" {
					req.Header.Set("Referer", tt.referer)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				want := tt.want
				if c.removes {
					want = none
				}
				if got := string(body); got != want {
					t.Errorf("got Referer %s, want %s", got, want)
				}
			})
		}
	}

	t.Run("the hop's request is left as it was", func(t *testing.T) {
		t.Parallel()
		prev, err := http.NewRequest(http.MethodGet, origin+"/go?"+secrets, nil)
		if err != nil {
			t.Fatal(err)
		}
		hop, err := http.NewRequest(http.MethodGet, testutil.HostURL(srv, hostOther, "/land"), nil)
		if err != nil {
			t.Fatal(err)
		}
		hop.Header.Set("Referer", prev.URL.String())
		hop.Response = &http.Response{StatusCode: http.StatusFound, Request: prev}
		resp, err := tr.RoundTrip(hop)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(body); got != none {
			t.Errorf("got Referer %s, want %s", got, none)
		}
		if got := hop.Header.Get("Referer"); got != prev.URL.String() {
			t.Errorf("after RoundTrip, the request's Referer is %q, want %q as it was", got, prev.URL.String())
		}
		if resp.Request != hop {
			t.Errorf("got resp.Request %p, want the request given to RoundTrip %p", resp.Request, hop)
		}
	})
}

// TestRefererKeptOutsideRedirects checks that a request that is not a
// redirect hop keeps the Referer its caller set, query included: it is the
// caller's own choice.
func TestRefererKeptOutsideRedirects(t *testing.T) {
	t.Parallel()
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), refererMux())
	tr := newTestTransport(t, testConfig(t))
	req, err := http.NewRequest(http.MethodGet, testutil.HostURL(srv, hostAPI, "/land"), nil)
	if err != nil {
		t.Fatal(err)
	}
	const ref = "https://app.example/page?tab=2"
	req.Header.Set("Referer", ref)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(body), fmt.Sprintf("%q", []string{ref}); got != want {
		t.Errorf("got Referer %s, want %s", got, want)
	}
}
