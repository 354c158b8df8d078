package securehttp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/internal/testpki"
	"github.com/securehttp/securehttp/internal/testutil"
)

func TestBlockedReason(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		addr    string
		blocked bool
	}{
		// Public unicast.
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"100.63.255.255", false}, // just below 100.64.0.0/10
		{"100.128.0.0", false},    // just above it
		{"172.15.255.255", false},
		{"172.32.0.0", false},
		{"192.0.1.1", false},
		{"198.17.255.255", false},
		{"198.20.0.0", false},
		{"223.255.255.255", false},
		{"2606:4700:4700::1111", false},
		{"2001:4860:4860::8888", false},
		{"2001:200::1", false}, // just above 2001::/23
		{"64:ff9b::808:808", false},
		{"2002:808:808::1", false},
		// IPv4 special purpose.
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"10.1.2.3", true},
		{"100.64.0.1", true},
		{"100.127.255.254", true},
		{"127.0.0.1", true},
		{"127.255.255.254", true},
		{"169.254.169.254", true}, // cloud metadata
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"192.0.0.9", true},
		{"192.0.0.170", true},
		{"192.0.2.1", true},
		{"192.31.196.1", true},
		{"192.52.193.1", true},
		{"192.88.99.1", true},
		{"192.168.1.1", true},
		{"192.175.48.1", true},
		{"198.18.0.1", true},
		{"198.19.255.255", true},
		{"198.51.100.1", true},
		{"203.0.113.1", true},
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"240.0.0.1", true},
		{"255.255.255.255", true},
		// IPv6 special purpose.
		{"::", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		{"::ffff:8.8.8.8", true}, // a mapped address is refused as written
		{"::127.0.0.1", true},    // IPv4-compatible
		{"::8.8.8.8", true},
		{"64:ff9b::7f00:1", true},    // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", true}, // NAT64 of 169.254.169.254
		{"64:ff9b:1::808:808", true}, // local-use NAT64
		{"100::1", true},
		{"100:0:0:1::1", true},
		{"2001::1", true},             // Teredo
		{"2001:0:4136:e378::1", true}, // Teredo
		{"2001:2::1", true},
		{"2001:3::1", true},      // AMT
		{"2001:4:112::1", true},  // AS112-v6
		{"2001:20::1", true},     // ORCHIDv2
		{"2001:db8::1", true},    // documentation
		{"2002:7f00:1::1", true}, // 6to4 of 127.0.0.1
		{"2002:a00:1::1", true},  // 6to4 of 10.0.0.1
		{"2620:4f:8000::1", true},
		{"3fff::1", true},
		{"5f00::1", true},
		{"fc00::1", true},
		{"fd00:ec2::254", true}, // cloud metadata
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"fec0::1", true},
		{"ff02::1", true},
		{"4000::1", true}, // outside 2000::/3
	} {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			why := blockedReason(netip.MustParseAddr(tt.addr))
			if (why != "") != tt.blocked {
				t.Fatalf("blockedReason(%s) = %q: got blocked %v, want %v", tt.addr, why, why != "", tt.blocked)
			}
		})
	}
}

// TestBlockedListComparedWithAnchors records where the blocked list
// differs from those of doyensec/safeurl (ip.go and client_test.go at
// commit 7600cc1e1f468b7fdd868f71abfe82b7b4fa9aff) and code.dny.dev/ssrf
// (ssrf_gen.go, ssrf.go and ssrf_test.go at commit
// d310348fedf154729a11932b37c4a2b9d9a61e56), and checks our column.
// safeurl matches IPv4 ranges with net.IPNet, which treats an IPv4-mapped
// address as the IPv4 address it holds, and lists IPv6 ranges one by one.
// ssrf denies every IPv6 address outside 2000::/3, and every IPv4-mapped
// address, unless the user allows it. Rows where all three agree are in
// TestBlockedReason.
func TestBlockedListComparedWithAnchors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		addr                string
		ours, safeurl, ssrf bool
		why                 string
	}{
		// We block and safeurl does not.
		{"192.31.196.1", true, false, true, "AS112-v4 (RFC 7535), in the IANA IPv4 registry; safeurl's list predates it"},
		{"192.52.193.1", true, false, true, "AMT (RFC 7450), in the IANA IPv4 registry"},
		{"192.175.48.1", true, false, true, "AS112 direct delegation (RFC 7534)"},
		{"2620:4f:8000::1", true, false, true, "AS112 direct delegation, IPv6 (RFC 7534)"},
		{"::127.0.0.1", true, false, true, "IPv4-compatible loopback: safeurl lists only ::/128 and ::1/128 of ::/96"},
		{"::ffff:8.8.8.8", true, false, true, "IPv4-mapped public address: refused as written, as the mapped form only obfuscates"},
		{"64:ff9b:1::a00:1", true, false, true, "local-use NAT64 (RFC 8215): safeurl lists only 64:ff9b::/96"},
		{"100:0:0:1::1", true, false, true, "dummy prefix (RFC 9780): safeurl lists only 100::/64"},
		{"fec0::1", true, false, true, "deprecated site-local (RFC 3879), still routed inside some networks"},
		{"5f00::1", true, false, true, "SRv6 SIDs (RFC 9602)"},
		{"4000::1", true, false, true, "outside global unicast 2000::/3"},
		// We block and neither does.
		{"3fff::1", true, false, false, "documentation (RFC 9637, 2024), newer than both lists; ssrf allows it as global unicast"},
		// They block and we do not: NAT64 and 6to4 of a public IPv4
		// address reach that public address, so we judge the address they
		// embed instead of refusing them all, which breaks IPv6-only
		// hosts behind DNS64 (ssrf's doc says as much and offers an opt-in).
		{"64:ff9b::808:808", false, true, true, "NAT64 (RFC 6052) of 8.8.8.8"},
		{"2002:808:808::1", false, true, true, "6to4 (RFC 3056) of 8.8.8.8"},
		// All three block; kept for the embedded cases above.
		{"64:ff9b::7f00:1", true, true, true, "NAT64 of 127.0.0.1: ssrf's own test vector"},
		{"2002:a9fe:a9fe::1", true, true, true, "6to4 of 169.254.169.254"},
		{"::ffff:129.144.52.38", true, false, true, "ssrf's test vector: a mapped public address, which safeurl lets through"},
		{"::ffff:192.0.2.1", true, true, true, "safeurl's test vector: a mapped documentation address"},
	} {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			why := blockedReason(netip.MustParseAddr(tt.addr))
			if got := why != ""; got != tt.ours {
				t.Fatalf("blockedReason(%s) = %q: got blocked %v, want %v (%s)", tt.addr, why, got, tt.ours, tt.why)
			}
		})
	}
}

// TestHostLiteralForms checks, without any connection, that the host
// forms of safeurl's TestBlockedIP are refused as addresses: resolvers
// (getaddrinfo's inet_aton) and proxies read the numeric forms as IPv4
// addresses without a DNS query, so stage 1 reads them the same way.
func TestHostLiteralForms(t *testing.T) {
	t.Parallel()
	e, err := newEgress(nil, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		host string
		want netip.Addr // the zero Addr: a name, left to the dial check
	}{
		{"127.0.0.1", netip.MustParseAddr("127.0.0.1")},
		{"::1", netip.MustParseAddr("::1")},
		{"2130706433", netip.MustParseAddr("127.0.0.1")},
		{"3232235777", netip.MustParseAddr("192.168.1.1")},
		{"017700000001", netip.MustParseAddr("127.0.0.1")},
		{"0x7f000001", netip.MustParseAddr("127.0.0.1")},
		{"0xc0a80014", netip.MustParseAddr("192.168.0.20")},
		{"0x0000007f.0x00000000.0x00000000.0x00000001", netip.MustParseAddr("127.0.0.1")},
		{"0x7f.0x0.0x00000000.0x01", netip.MustParseAddr("127.0.0.1")},
		{"127.1", netip.MustParseAddr("127.0.0.1")},
		{"0177.0x0.0x0.0x1", netip.MustParseAddr("127.0.0.1")},
		{"0", netip.MustParseAddr("0.0.0.0")},
		{"0.0.0.0", netip.MustParseAddr("0.0.0.0")},
		{"127.127.127.127", netip.MustParseAddr("127.127.127.127")},
		{"::ffff:192.0.2.1", netip.MustParseAddr("::ffff:192.0.2.1")},
		{"::", netip.MustParseAddr("::")},
		{"0000::1", netip.MustParseAddr("::1")},
		{"10.0.0.1.", netip.MustParseAddr("10.0.0.1")},
		{"169.254.43518", netip.MustParseAddr("169.254.169.254")},
		{"localhost", netip.Addr{}},
		{"api.test", netip.Addr{}},
		{"0x.example", netip.Addr{}},
		{"1.2.3.4.5", netip.Addr{}},
		{"256.1.1.1", netip.Addr{}},
		{"1.2.65536", netip.Addr{}},
		{"08.1.1.1", netip.Addr{}},
	} {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()
			got, ok := hostAddr(tt.host)
			if ok != tt.want.IsValid() || got != tt.want {
				t.Fatalf("hostAddr(%q) = (%v, %v), want %v", tt.host, got, ok, tt.want)
			}
			err := e.checkHost(tt.host)
			if tt.want.IsValid() && !errors.Is(err, ErrBlockedAddress) {
				t.Fatalf("checkHost(%q): got %v, want ErrBlockedAddress", tt.host, err)
			}
			if !tt.want.IsValid() && errors.Is(err, ErrBlockedAddress) {
				t.Fatalf("checkHost(%q): got %v, want the name left to the dial check", tt.host, err)
			}
		})
	}
}

func TestEgressConfigErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		hosts []string
		field string
	}{
		{[]string{""}, "AllowHosts[0]"},
		{[]string{"api.test", "https://api.test"}, "AllowHosts[1]"},
		{[]string{"api.test:443"}, "AllowHosts[0]"},
		{[]string{"a.*.test"}, "AllowHosts[0]"},
		{[]string{"*.127.0.0.1"}, "AllowHosts[0]"},
	} {
		t.Run(strings.Join(tt.hosts, ","), func(t *testing.T) {
			t.Parallel()
			_, err := newTransport(Config{AllowHosts: tt.hosts})
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("newTransport(AllowHosts %q): got %v, want a *ConfigError for %s", tt.hosts, err, tt.field)
			}
		})
	}
}

// startCountingServer is testutil.StartServer with a listener that counts the
// connections it accepts, and a handler that counts requests.
func startCountingServer(t *testing.T, network, addr string, h http.Handler) (*httptest.Server, *testutil.CountingListener, *atomic.Int64) {
	t.Helper()
	var requests atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	if network != "" {
		srv.Listener.Close()
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Fatalf("listen %s %s: %v", network, addr, err)
		}
		srv.Listener = ln
	}
	cl := &testutil.CountingListener{Listener: srv.Listener}
	srv.Listener = cl
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = testutil.QuietLog()
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{sharedPKI(t).serverCert()}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, cl, &requests
}

func TestAllowHosts(t *testing.T) {
	t.Parallel()
	srv, accepted, requests := startCountingServer(t, "", "", http.HandlerFunc(okHandler))
	for _, tt := range []struct {
		name    string
		allow   []string
		host    string
		allowed bool
	}{
		{"listed host", []string{hostAPI}, hostAPI, true},
		{"another host", []string{hostAPI}, hostOther, false},
		{"subdomain of a listed host", []string{hostAPI}, hostSub, false},
		{"one-label wildcard", []string{"*." + hostAPI}, hostSub, true},
		{"any-depth wildcard, the name itself", []string{"**." + hostAPI}, hostAPI, true},
		{"case and trailing dot", []string{"API.TEST."}, hostAPI, true},
		{"IP literal", []string{"127.0.0.1"}, "127.0.0.1", true},
		{"IP literal, not listed", []string{hostAPI}, "127.0.0.1", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.AllowHosts = tt.allow
			tr := newTestTransport(t, cfg)
			beforeConns, beforeReqs := accepted.N.Load(), requests.Load()
			req, err := http.NewRequest(http.MethodGet, testutil.HostURL(srv, tt.host, "/p?secret=q1"), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := tr.RoundTrip(req)
			if tt.allowed {
				if err != nil {
					t.Fatalf("got %v, want the request allowed", err)
				}
				resp.Body.Close()
				if n := requests.Load() - beforeReqs; n != 1 {
					t.Fatalf("the server saw %d requests, want 1", n)
				}
				return
			}
			if resp != nil || !errors.Is(err, ErrHostNotAllowed) {
				t.Fatalf("got (%v, %v), want ErrHostNotAllowed", resp, err)
			}
			if !strings.Contains(err.Error(), tt.host) || strings.Contains(err.Error(), "q1") {
				t.Fatalf("error %q: want the host %q named and the query left out", err, tt.host)
			}
			if n := accepted.N.Load() - beforeConns; n != 0 {
				t.Fatalf("the server accepted %d connections, want 0", n)
			}
		})
	}
}

func TestAllowHostsRedirectHop(t *testing.T) {
	t.Parallel()
	target, targetConns, _ := startCountingServer(t, "", "", http.HandlerFunc(okHandler))
	origin, _, originReqs := startCountingServer(t, "", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, testutil.HostURL(target, hostOther, "/next?secret=q2"), http.StatusFound)
	}))
	cfg := testConfig(t)
	cfg.AllowHosts = []string{hostAPI}
	client := &http.Client{Transport: newTestTransport(t, cfg)}
	resp, err := client.Get(testutil.HostURL(origin, hostAPI, "/start"))
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, ErrHostNotAllowed) {
		t.Fatalf("got %v, want ErrHostNotAllowed on the redirect hop", err)
	}
	if n := originReqs.Load(); n != 1 {
		t.Fatalf("the allowed origin saw %d requests, want 1", n)
	}
	if n := targetConns.N.Load(); n != 0 {
		t.Fatalf("the redirect target accepted %d connections, want 0", n)
	}
}

func TestClientCredentialsOutsideAllowHosts(t *testing.T) {
	t.Parallel()
	tokenSrv, tokenConns, tokenReqs := startCountingServer(t, "", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"tok-egress","token_type":"Bearer","expires_in":3600}`)
	}))
	api, apiConns, _ := startCountingServer(t, "", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("Authorization"))
	}))
	for _, tt := range []struct {
		name    string
		cc      ClientCredentials
		allowed bool
	}{
		{"token endpoint allowed", ClientCredentials{TokenURL: testutil.HostURL(tokenSrv, hostOther, "/token")}, true},
		{"token endpoint not allowed", ClientCredentials{TokenURL: testutil.HostURL(tokenSrv, hostSub, "/token")}, false},
		{"issuer not allowed", ClientCredentials{Issuer: testutil.HostURL(tokenSrv, hostSub, "")}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cc := tt.cc
			cc.ClientID, cc.ClientSecret = "client", "s3cret"
			cfg := testConfig(t)
			cfg.AllowHosts = []string{hostAPI, hostOther}
			cfg.Bearer = &Bearer{ClientCredentials: &cc, Hosts: []string{hostAPI}}
			tr := newTestTransport(t, cfg)
			beforeTok, beforeTokReqs, beforeAPI := tokenConns.N.Load(), tokenReqs.Load(), apiConns.N.Load()
			body, err := get(t, tr, testutil.HostURL(api, hostAPI, "/"))
			if tt.allowed {
				if err != nil || body != "Bearer tok-egress" {
					t.Fatalf("got (%q, %v), want the token from the allowed endpoint", body, err)
				}
				if n := tokenReqs.Load() - beforeTokReqs; n != 1 {
					t.Fatalf("the token endpoint saw %d requests, want 1", n)
				}
				return
			}
			if !errors.Is(err, ErrHostNotAllowed) || !errors.Is(err, ErrNoToken) {
				t.Fatalf("got (%q, %v), want ErrNoToken caused by ErrHostNotAllowed", body, err)
			}
			if n := tokenConns.N.Load() - beforeTok; n != 0 {
				t.Fatalf("the token server accepted %d connections, want 0", n)
			}
			if n := apiConns.N.Load() - beforeAPI; n != 0 {
				t.Fatalf("the API accepted %d connections, want 0: no token, nothing sent", n)
			}
		})
	}
}

// fakeDNS serves A and AAAA records on 127.0.0.1 and returns a resolver
// that asks it only. Names are fully qualified and lower case.
func fakeDNS(t *testing.T, records map[string][]netip.Addr) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { pc.Close(); wg.Wait() })
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if msg, ok := dnsAnswer(buf[:n], records); ok {
				pc.WriteTo(msg, from)
			}
		}
	})
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", pc.LocalAddr().String())
		},
	}
}

func dnsAnswer(query []byte, records map[string][]netip.Addr) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	addrs, known := records[strings.ToLower(q.Name.String())]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionAvailable: true}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET}
	for _, a := range addrs {
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			err = b.AResource(hdr, dnsmessage.AResource{A: a.As4()})
		case q.Type == dnsmessage.TypeAAAA && a.Is6():
			err = b.AAAAResource(hdr, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
		if err != nil {
			return nil, false
		}
	}
	msg, err := b.Finish()
	return msg, err == nil
}

// TestBlockPrivateAfterResolution resolves api.test through a DNS server
// of the test's, with the client's own dialer: the check is made on the
// address the name resolves to, and nothing reaches the server. The
// control rows show the same setup connecting when the policy is off.
func TestBlockPrivateAfterResolution(t *testing.T) {
	t.Parallel()
	v4, v4Conns, _ := startCountingServer(t, "", "", http.HandlerFunc(okHandler))
	v6, v6Conns, _ := startCountingServer(t, "tcp", "[::1]:0", http.HandlerFunc(okHandler))
	port := func(s *httptest.Server) string {
		_, p, _ := net.SplitHostPort(s.Listener.Addr().String())
		return p
	}
	for _, tt := range []struct {
		name    string
		answer  string
		srv     *httptest.Server
		conns   *testutil.CountingListener
		block   bool
		blocked string // the address the error must name
	}{
		{"127.0.0.1", "127.0.0.1", v4, v4Conns, true, "127.0.0.1"},
		{"::1", "::1", v6, v6Conns, true, "::1"},
		{"v4-mapped ::ffff:127.0.0.1", "::ffff:127.0.0.1", v4, v4Conns, true, "127.0.0.1"},
		{"control: 127.0.0.1 with the policy off", "127.0.0.1", v4, v4Conns, false, ""},
		{"control: ::1 with the policy off", "::1", v6, v6Conns, false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := fakeDNS(t, map[string][]netip.Addr{hostAPI + ".": {netip.MustParseAddr(tt.answer)}})
			cfg := testConfig(t)
			cfg.DialContext = nil
			cfg.BlockPrivateNetworks = tt.block
			tr := newTestTransport(t, cfg)
			// The same dial function NewTransport made, with a dialer
			// that resolves through the test's DNS server.
			dial := tr.egress.dialFunc(nil, &net.Dialer{Timeout: 5 * time.Second, Resolver: res})
			var dials atomic.Int64
			tr.conns.base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return dial(ctx, network, addr)
			}
			before := tt.conns.N.Load()
			req, err := http.NewRequest(http.MethodGet, "https://"+net.JoinHostPort(hostAPI, port(tt.srv))+"/?secret=q3", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := tr.RoundTrip(req)
			if !tt.block {
				if err != nil {
					t.Fatalf("got %v, want the control request to connect", err)
				}
				resp.Body.Close()
				if n := tt.conns.N.Load() - before; n != 1 {
					t.Fatalf("the server accepted %d connections, want 1", n)
				}
				return
			}
			if resp != nil || !errors.Is(err, ErrBlockedAddress) {
				t.Fatalf("got (%v, %v), want ErrBlockedAddress", resp, err)
			}
			if n := dials.Load(); n != 1 {
				t.Fatalf("dialled %d times, want 1: a blocked address is not retried", n)
			}
			msg := err.Error()
			if !strings.Contains(msg, hostAPI) || !strings.Contains(msg, tt.blocked) || strings.Contains(msg, "q3") {
				t.Fatalf("error %q: want host %s and address %s named, and no query", msg, hostAPI, tt.blocked)
			}
			if n := tt.conns.N.Load() - before; n != 0 {
				t.Fatalf("the server accepted %d connections, want 0", n)
			}
		})
	}
}

// rawListener accepts TCP connections and records how many bytes each
// sent before it closed, so a test can show that nothing was written.
type rawListener struct {
	ln    net.Listener
	wg    sync.WaitGroup
	conns atomic.Int64
	bytes atomic.Int64
}

func startRawListener(t *testing.T, network, addr string) *rawListener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	rl := &rawListener{ln: ln}
	t.Cleanup(func() { ln.Close(); rl.wg.Wait() })
	rl.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			rl.conns.Add(1)
			rl.wg.Go(func() {
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, _ := io.Copy(io.Discard, c)
				rl.bytes.Add(n)
			})
		}
	})
	return rl
}

// TestBlockPrivateUserDial checks connections made by a DialContext of the
// user's: they are judged by their remote address and closed before the
// TLS handshake writes a byte, and they are not retried.
func TestBlockPrivateUserDial(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, network, listen, dialTo string
	}{
		{"127.0.0.1", "tcp", "127.0.0.1:0", "127.0.0.1"},
		{"::1", "tcp", "[::1]:0", "::1"},
		{"v4-mapped ::ffff:127.0.0.1", "tcp", "127.0.0.1:0", "::ffff:127.0.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rl := startRawListener(t, tt.network, tt.listen)
			_, port, _ := net.SplitHostPort(rl.ln.Addr().String())
			var dials atomic.Int64
			cfg := testConfig(t)
			cfg.BlockPrivateNetworks = true
			cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				var d net.Dialer
				return d.DialContext(ctx, network, net.JoinHostPort(tt.dialTo, port))
			}
			tr := newTestTransport(t, cfg)
			_, err := get(t, tr, "https://"+net.JoinHostPort(hostAPI, port)+"/")
			if !errors.Is(err, ErrBlockedAddress) {
				t.Fatalf("got %v, want ErrBlockedAddress", err)
			}
			if !strings.Contains(err.Error(), hostAPI) {
				t.Fatalf("error %q: want host %s named", err, hostAPI)
			}
			if n := dials.Load(); n != 1 {
				t.Fatalf("dialled %d times, want 1: a blocked address is not retried", n)
			}
			tr.CloseIdleConnections()
			// The client closed the connection; wait for the server side
			// to see it end, then count what it received.
			deadline := time.Now().Add(5 * time.Second)
			for rl.conns.Load() != 1 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			rl.ln.Close()
			rl.wg.Wait()
			if c, b := rl.conns.Load(), rl.bytes.Load(); c != 1 || b != 0 {
				t.Fatalf("the server saw %d connections and %d bytes, want 1 and 0", c, b)
			}
		})
	}
}

// pipeConn is a net.Conn whose remote address is not an IP address.
type pipeConn struct{ net.Conn }

func (pipeConn) RemoteAddr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

func TestBlockPrivateUserDialWithoutIP(t *testing.T) {
	t.Parallel()
	var closed atomic.Bool
	cfg := testConfig(t)
	cfg.BlockPrivateNetworks = true
	cfg.Retry.MaxRetries = -1
	cfg.DialContext = func(context.Context, string, string) (net.Conn, error) {
		a, b := net.Pipe()
		b.Close()
		return &closeFlag{Conn: pipeConn{a}, closed: &closed}, nil
	}
	_, err := get(t, newTestTransport(t, cfg), "https://"+hostAPI+"/")
	if !errors.Is(err, ErrBlockedAddress) {
		t.Fatalf("got %v, want ErrBlockedAddress for a connection without an IP address", err)
	}
	if !closed.Load() {
		t.Fatalf("the refused connection was not closed")
	}
}

type closeFlag struct {
	net.Conn
	closed *atomic.Bool
}

func (c *closeFlag) Close() error { c.closed.Store(true); return c.Conn.Close() }

// TestBlockPrivateIPLiteral refuses a URL whose host is a blocked address,
// in any form, before any dial.
func TestBlockPrivateIPLiteral(t *testing.T) {
	t.Parallel()
	srv, conns, _ := startCountingServer(t, "", "", http.HandlerFunc(okHandler))
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, host := range []string{"127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "2130706433", "127.1", "0x7f.1", "[fe80::1%25lo]"} {
		t.Run(host, func(t *testing.T) {
			var dials atomic.Int64
			cfg := testConfig(t)
			cfg.BlockPrivateNetworks = true
			cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return testutil.LoopbackDial(ctx, network, addr)
			}
			before := conns.N.Load()
			_, err := get(t, newTestTransport(t, cfg), "https://"+host+":"+port+"/")
			if !errors.Is(err, ErrBlockedAddress) {
				t.Fatalf("got %v, want ErrBlockedAddress", err)
			}
			if d, n := dials.Load(), conns.N.Load()-before; d != 0 || n != 0 {
				t.Fatalf("dialled %d times and the server accepted %d connections, want 0 and 0", d, n)
			}
		})
	}
}

// TestBlockPrivateThroughProxy: the proxy the user chose is dialled even
// on loopback; a target name is the proxy's to resolve and judge; a target
// IP literal is refused before CONNECT.
func TestBlockPrivateThroughProxy(t *testing.T) {
	t.Parallel()
	srv, _, requests := startCountingServer(t, "", "", http.HandlerFunc(okHandler))
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	proxyURL, tunnels := testutil.ConnectProxy(t)
	for _, ownDialer := range []bool{true, false} {
		t.Run(fmt.Sprintf("own dialer %v", ownDialer), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.BlockPrivateNetworks = true
			cfg.Proxy = http.ProxyURL(proxyURL)
			cfg.Retry.MaxRetries = -1
			if ownDialer {
				cfg.DialContext = nil
			}
			tr := newTestTransport(t, cfg)
			beforeTunnels, beforeReqs := tunnels.Load(), requests.Load()
			body, err := get(t, tr, "https://"+net.JoinHostPort(hostAPI, port)+"/")
			if err != nil || body != "ok" {
				t.Fatalf("through the proxy: got (%q, %v), want ok", body, err)
			}
			if n, r := tunnels.Load()-beforeTunnels, requests.Load()-beforeReqs; n != 1 || r != 1 {
				t.Fatalf("the proxy opened %d tunnels and the server saw %d requests, want 1 and 1", n, r)
			}
			_, err = get(t, tr, "https://127.0.0.1:"+port+"/")
			if !errors.Is(err, ErrBlockedAddress) {
				t.Fatalf("IP literal through the proxy: got %v, want ErrBlockedAddress", err)
			}
			if n := tunnels.Load() - beforeTunnels; n != 1 {
				t.Fatalf("the proxy opened %d tunnels, want still 1: no CONNECT for a blocked literal", n)
			}
		})
	}
}

// TestBlockPrivateDirectDialToProxyAddress: the proxy's address is let
// through only for the dials net/http makes to the proxy for a proxied
// request. A request that Config.Proxy sends direct (net/http never proxies
// localhost) to the proxy's own host and port is judged like any other
// and refused, before and after a proxied request has used that proxy.
func TestBlockPrivateDirectDialToProxyAddress(t *testing.T) {
	t.Parallel()
	srv, _, requests := startCountingServer(t, "", "", http.HandlerFunc(okHandler))
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	connect, tunnels := testutil.ConnectProxy(t)
	_, proxyPort, _ := net.SplitHostPort(connect.Host)
	proxyURL := &url.URL{Scheme: "http", Host: net.JoinHostPort("localhost", proxyPort)}
	for _, ownDialer := range []bool{true, false} {
		t.Run(fmt.Sprintf("own dialer %v", ownDialer), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.BlockPrivateNetworks = true
			cfg.Retry.MaxRetries = -1
			cfg.Proxy = func(req *http.Request) (*url.URL, error) {
				if req.URL.Hostname() == hostAPI {
					return proxyURL, nil
				}
				return nil, nil
			}
			if ownDialer {
				cfg.DialContext = nil
			}
			tr := newTestTransport(t, cfg)
			direct := "https://" + proxyURL.Host + "/"
			if _, err := get(t, tr, direct); !errors.Is(err, ErrBlockedAddress) {
				t.Fatalf("direct to the proxy's address, before any proxied request: got %v, want ErrBlockedAddress", err)
			}
			beforeTunnels, beforeReqs := tunnels.Load(), requests.Load()
			body, err := get(t, tr, "https://"+net.JoinHostPort(hostAPI, port)+"/")
			if err != nil || body != "ok" {
				t.Fatalf("through the proxy: got (%q, %v), want ok", body, err)
			}
			if n, r := tunnels.Load()-beforeTunnels, requests.Load()-beforeReqs; n != 1 || r != 1 {
				t.Fatalf("the proxy opened %d tunnels and the server saw %d requests, want 1 and 1", n, r)
			}
			if _, err := get(t, tr, direct); !errors.Is(err, ErrBlockedAddress) {
				t.Fatalf("direct to the proxy's address, after a proxied request: got %v, want ErrBlockedAddress", err)
			}
		})
	}
}

// TestBlockPrivateTinyproxy: with a real proxy on loopback, a request that
// Config.Proxy sends through it reaches the origin (the proxy resolves the
// name), and a request to the proxy's own address that Config.Proxy sends
// direct is refused.
func TestBlockPrivateTinyproxy(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	leaf, err := p.inter.NewLeaf("localhost", testpki.Options{DNSNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	origin := peers.StartNginx(t, peers.NginxConfig{CertPEM: testpki.ChainPEM(leaf, p.inter), KeyPEM: leaf.KeyPEM()})
	proxy := peers.StartTinyproxy(t, peers.TinyproxyConfig{})
	proxyURL := &url.URL{Scheme: "http", Host: net.JoinHostPort("localhost", strconv.Itoa(proxy.Port))}
	originURL := "https://" + net.JoinHostPort("localhost", strconv.Itoa(origin.Port)) + "/"
	cfg := testConfig(t)
	cfg.DialContext = nil
	cfg.BlockPrivateNetworks = true
	cfg.Retry.MaxRetries = -1
	cfg.Proxy = func(req *http.Request) (*url.URL, error) {
		if req.URL.Port() == strconv.Itoa(origin.Port) {
			return proxyURL, nil
		}
		return nil, nil
	}
	tr := newTestTransport(t, cfg)
	body, err := get(t, tr, originURL)
	if err != nil || body != "ok\n" {
		t.Fatalf("through tinyproxy: got (%q, %v), want \"ok\\n\"", body, err)
	}
	if n := proxy.ConnectCount(); n != 1 {
		t.Fatalf("tinyproxy logged %d CONNECTs, want 1", n)
	}
	if _, err := get(t, tr, "https://"+proxyURL.Host+"/"); !errors.Is(err, ErrBlockedAddress) {
		t.Fatalf("direct to tinyproxy's address: got %v, want ErrBlockedAddress", err)
	}
}

// TestBlockPrivateOffByDefault: the zero Config dials loopback as before.
func TestBlockPrivateOffByDefault(t *testing.T) {
	t.Parallel()
	srv, conns, _ := startCountingServer(t, "", "", http.HandlerFunc(okHandler))
	cfg := testConfig(t)
	cfg.DialContext = nil
	body, err := get(t, newTestTransport(t, cfg), srv.URL+"/")
	if err != nil || body != "ok" || conns.N.Load() != 1 {
		t.Fatalf("got (%q, %v) after %d connections, want ok after 1", body, err, conns.N.Load())
	}
}

// TestProxyDialAddr: a dial is let through as the proxy's only when its
// address is, in http.Transport's form, the proxy Config.Proxy chose for
// the attempt whose context it carries.
func TestProxyDialAddr(t *testing.T) {
	t.Parallel()
	e, err := newEgress(nil, true)
	if err != nil {
		t.Fatal(err)
	}
	choose := func(answers ...*url.URL) context.Context {
		req := e.track(httptest.NewRequest(http.MethodGet, "https://api.example/", nil))
		for _, u := range answers {
			if _, err := e.proxyFunc(func(*http.Request) (*url.URL, error) { return u, nil })(req); err != nil {
				t.Fatal(err)
			}
		}
		return req.Context()
	}
	for _, tt := range []struct{ proxy, dialled string }{
		{"http://Proxy.Example:3128", "proxy.example:3128"},
		{"http://proxy.example", "proxy.example:80"},
		{"https://proxy.example", "proxy.example:443"},
		{"socks5://proxy.example", "proxy.example:1080"},
		{"http://[::1]:8080", "[::1]:8080"},
		{"http://bücher.example:1", "xn--bcher-kva.example:1"},
	} {
		u, err := url.Parse(tt.proxy)
		if err != nil {
			t.Fatal(err)
		}
		ctx := choose(u)
		if !proxyDial(ctx, tt.dialled) {
			t.Errorf("proxy %s: got %s checked, want it let through as the proxy", tt.proxy, tt.dialled)
		}
		if proxyDial(ctx, "proxy.example:8080") {
			t.Errorf("proxy %s: got another port let through, want it checked", tt.proxy)
		}
	}
	proxy := &url.URL{Scheme: "http", Host: "proxy.example:3128"}
	for _, tt := range []struct {
		name string
		ctx  context.Context
	}{
		{"a direct request", choose(nil)},
		{"an attempt that Proxy answered both ways", choose(proxy, nil)},
		{"an attempt that Proxy answered both ways, direct first", choose(nil, proxy)},
		{"an attempt not tracked", context.Background()},
	} {
		if proxyDial(tt.ctx, "proxy.example:3128") {
			t.Errorf("%s: got the proxy's address let through, want it checked", tt.name)
		}
	}
	if !proxyDial(choose(proxy, proxy), "proxy.example:3128") {
		t.Errorf("an attempt that Proxy answered twice alike: got the proxy checked, want it let through")
	}
	off, err := newEgress(nil, false)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "https://api.example/", nil)
	if got := off.track(req); got != req {
		t.Errorf("without BlockPrivateNetworks: got a new request, want the same one")
	}
}

// FuzzEgressAddr checks the address classifier against properties that do
// not depend on its table: net's own classes are always blocked, an
// address embedded by NAT64 or 6to4 is judged as the IPv4 address it
// holds, a zone changes nothing, and inet_aton's forms read canonical
// dotted quads exactly as netip does.
func FuzzEgressAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "8.8.8.8", "::1", "::ffff:10.0.0.1", "64:ff9b::808:808",
		"2002:a00:1::", "fe80::1%eth0", "2130706433", "0x7f.1", "0177.0.0.01", "169.254.169.254", "fd00:ec2::254", "2606:4700::1111"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		loose, looseOK := parseLooseIPv4(s)
		a, err := netip.ParseAddr(s)
		if err != nil {
			if looseOK && !loose.Is4() {
				t.Fatalf("parseLooseIPv4(%q) = %v, not IPv4", s, loose)
			}
			return
		}
		if a.Is4() && (!looseOK || loose != a) {
			t.Fatalf("parseLooseIPv4(%q) = (%v, %v), want %v as netip reads it", s, loose, looseOK, a)
		}
		why := blockedReason(a)
		ip := net.IP(a.AsSlice())
		if (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
			ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified()) && why == "" {
			t.Fatalf("%s is in one of net's non-public classes but not blocked", a)
		}
		if a.Zone() != "" && (why == "") != (blockedReason(a.WithZone("")) == "") {
			t.Fatalf("%s: the zone changed the verdict", a)
		}
		if a.Is6() && !a.Is4In6() && why == "" && !globalUnicastV6.Contains(a.WithZone("")) && !nat64V6.Contains(a.WithZone("")) {
			t.Fatalf("%s is outside 2000::/3 and not NAT64, yet allowed", a)
		}
		if a.Is4() {
			v4 := a.As4()
			nat64 := netip.AddrFrom16([16]byte{0, 0x64, 0xff, 0x9b, 12: v4[0], v4[1], v4[2], v4[3]})
			six := netip.AddrFrom16([16]byte{0x20, 0x02, v4[0], v4[1], v4[2], v4[3], 15: 1})
			for _, e := range []netip.Addr{nat64, six} {
				if (blockedReason(e) == "") != (why == "") {
					t.Fatalf("%s is judged unlike the %s it embeds (%q)", e, a, why)
				}
			}
			if blockedReason(netip.AddrFrom16(a.As16())) == "" {
				t.Fatalf("the v4-mapped form of %s is allowed", a)
			}
			if checkDialled("h", netip.AddrFrom16(a.As16())) == nil != (why == "") {
				t.Fatalf("a dialled v4-mapped %s is judged unlike %s", netip.AddrFrom16(a.As16()), a)
			}
		}
	})
}

func TestCheckRemote(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		remote  net.Addr
		blocked bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("8.8.8.8"), Port: 443}, false}, // 16-byte form, as net reports IPv4
		{&net.TCPAddr{IP: net.IPv4(8, 8, 8, 8).To4(), Port: 443}, false},
		{&net.TCPAddr{IP: net.ParseIP("2606:4700:4700::1111"), Port: 443}, false},
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 443}, true},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 443}, true},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 443, Zone: "eth0"}, true},
		{&net.TCPAddr{}, true}, // no IP at all
		{pipeAddr{}, true},
		{nil, true},
	} {
		err := checkRemote("h.test", tt.remote)
		if errors.Is(err, ErrBlockedAddress) != tt.blocked {
			t.Fatalf("checkRemote(%v): got %v, want blocked %v", tt.remote, err, tt.blocked)
		}
	}
}

func TestConnectProxy(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	srv := testutil.StartServer(t, p.serverCert(), http.HandlerFunc(okHandler))
	proxyURL, tunnels := testutil.ConnectProxy(t)
	for _, tt := range []struct {
		name    string
		pin     string
		wantErr bool
	}{
		{"right pin", p.root.SPKIPin(), false},
		{"wrong pin", fakePin('C'), true},
	} {
		cfg := testConfig(t)
		cfg.Proxy = http.ProxyURL(proxyURL)
		cfg.Retry.MaxRetries = -1
		cfg.Pins = []PinSet{{Host: hostAPI, Pins: []string{tt.pin}}}
		// Only the proxy is dialled; the tunnel reaches the server.
		cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != proxyURL.Host {
				return nil, fmt.Errorf("dialled %s directly, want only the proxy", addr)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
		before := tunnels.Load()
		body, err := get(t, newTestTransport(t, cfg), testutil.HostURL(srv, hostAPI, "/"))
		if tt.wantErr != errors.Is(err, ErrPinMismatch) || (!tt.wantErr && body != "ok") {
			t.Fatalf("%s: got (%q, %v), want pin mismatch %v", tt.name, body, err, tt.wantErr)
		}
		if tunnels.Load() != before+1 {
			t.Fatalf("%s: the proxy opened %d tunnels, want 1", tt.name, tunnels.Load()-before)
		}
	}
}

// An IP literal spelt with Unicode characters that IDNA maps to ASCII
// (full-width digits, ideographic full stops, circled digits) is the same
// literal to net/http, which sends it to the proxy in ASCII: it is refused
// before CONNECT like its ASCII spelling.
func TestBlockPrivateUnicodeIPLiteralThroughProxy(t *testing.T) {
	t.Parallel()
	srv, _, requests := startCountingServer(t, "", "", http.HandlerFunc(okHandler))
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	proxyURL, tunnels := testutil.ConnectProxy(t)
	cfg := testConfig(t)
	cfg.BlockPrivateNetworks = true
	cfg.Proxy = http.ProxyURL(proxyURL)
	cfg.Retry.MaxRetries = -1
	tr := newTestTransport(t, cfg)
	e, err := newEgress(nil, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"１２７.０.０.１", "127。0。0。1", "①②⑦.0.0.1", "１２７。１", "ＬＯＣＡＬＨＯＳＴ"} {
		t.Run(host, func(t *testing.T) {
			if host == "ＬＯＣＡＬＨＯＳＴ" {
				// A name, Unicode or not, is the proxy's to resolve.
				if err := e.checkHost(host); err != nil {
					t.Fatalf("checkHost(%q): got %v, want the name left to the dial check", host, err)
				}
				return
			}
			if err := e.checkHost(host); !errors.Is(err, ErrBlockedAddress) {
				t.Errorf("checkHost(%q): got %v, want ErrBlockedAddress", host, err)
			}
			beforeTunnels, beforeReqs := tunnels.Load(), requests.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+":"+port+"/", nil)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			if !errors.Is(err, ErrBlockedAddress) {
				t.Errorf("through the proxy: got %v, want ErrBlockedAddress", err)
			}
			if n, r := tunnels.Load()-beforeTunnels, requests.Load()-beforeReqs; n != 0 || r != 0 {
				t.Errorf("the proxy opened %d tunnels and the loopback server saw %d requests, want 0 and 0", n, r)
			}
		})
	}
}

// TestConnectProxyTinyproxy tunnels through a real CONNECT proxy.
func TestConnectProxyTinyproxy(t *testing.T) {
	t.Parallel()
	p := sharedPKI(t)
	origin := peers.StartNginx(t, peers.NginxConfig{CertPEM: testpki.ChainPEM(p.leaf, p.inter), KeyPEM: p.leaf.KeyPEM()})
	const user, pass = "proxyuser", "pr0xy-s3cret"
	for _, tt := range []struct {
		name      string
		auth      bool // the proxy requires basic authentication
		withCreds bool // the proxy URL carries them
		pin       string
		wantErr   func(error) bool
	}{
		{name: "pins hold through CONNECT", pin: p.inter.SPKIPin()},
		{name: "wrong pin through CONNECT", pin: fakePin('P'), wantErr: func(err error) bool { return errors.Is(err, ErrPinMismatch) }},
		{name: "proxy basic auth from the URL", auth: true, withCreds: true, pin: p.root.SPKIPin()},
		{name: "proxy basic auth missing", auth: true, pin: p.root.SPKIPin(), wantErr: func(err error) bool { return err != nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pcfg := peers.TinyproxyConfig{}
			if tt.auth {
				pcfg = peers.TinyproxyConfig{BasicAuthUser: user, BasicAuthPass: pass}
			}
			proxy := peers.StartTinyproxy(t, pcfg)
			proxyURL := proxy.ProxyURL()
			if !tt.withCreds {
				proxyURL.User = nil
			}
			logger, logs := testutil.NewLogger()
			cfg := testConfig(t)
			cfg.Logger = logger
			cfg.Proxy = http.ProxyURL(proxyURL)
			// The proxy resolves and dials the target, so it is named by its
			// address, which the shared leaf also covers; only the proxy's
			// own address may be dialled here.
			cfg.Pins = []PinSet{{Host: "127.0.0.1", Pins: []string{tt.pin}}}
			cfg.DialContext = proxyOnlyDial(t, proxy.Addr)
			body, err := peerGet(t, cfg, origin.URL("/"))
			if tt.wantErr == nil {
				if err != nil || body != "ok\n" {
					t.Fatalf("got (%q, %v), want \"ok\\n\"", body, err)
				}
				if n := proxy.ConnectCount(); n != 1 {
					t.Fatalf("the proxy logged %d CONNECTs, want 1", n)
				}
			} else if !tt.wantErr(err) {
				t.Fatalf("got %v, not the expected error", err)
			}
			for _, secret := range []string{pass, "cHJveHl1c2VyOnByMHh5LXMzY3JldA=="} {
				if strings.Contains(logs.String(), secret) || (err != nil && strings.Contains(err.Error(), secret)) {
					t.Fatalf("the proxy password reached a log or an error")
				}
			}
		})
	}
}

// proxyOnlyDial dials only addr, the proxy, and refuses any other address.
func proxyOnlyDial(t *testing.T, addr string) func(ctx context.Context, network, a string) (net.Conn, error) {
	return func(ctx context.Context, network, a string) (net.Conn, error) {
		if a != addr {
			return nil, fmt.Errorf("dialled %s directly, want only the proxy %s", a, addr)
		}
		return testutil.LoopbackDial(ctx, network, a)
	}
}
