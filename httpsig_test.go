package securehttp

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"github.com/securehttp/securehttp/internal/testutil"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/internal/testpki"
)

// ---------------------------------------------------------------- vectors

// The test vectors of RFC 9421 (Appendix B, and the examples of sections
// 2.4, 3.2 and 4.3 that use an algorithm of ours) and of RFC 9530, kept in
// testdata/rfc9421 as the RFCs print them (see its README).

const vectorDir = "testdata/rfc9421"

func readVector(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// vectorRequest reads an HTTP/1.1 request of the RFC, as a server has it.
func vectorRequest(t *testing.T, name string) *http.Request {
	t.Helper()
	raw := strings.ReplaceAll(readVector(t, name), "\n", "\r\n")
	if !strings.Contains(raw, "\r\n\r\n") {
		raw += "\r\n" // the RFC shows no empty line after a request without content
	}
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return req
}

func vectorResponse(t *testing.T, name string, req *http.Request) *http.Response {
	t.Helper()
	raw := strings.ReplaceAll(readVector(t, name), "\n", "\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), req)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return resp
}

// vectorFields reads a file of "Signature-Input: …" and "Signature: …"
// lines into a header.
func vectorFields(t *testing.T, name string) http.Header {
	t.Helper()
	h := http.Header{}
	for line := range strings.Lines(readVector(t, name)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ": ")
		h.Add(k, v)
	}
	return h
}

// vectorKeys are the public keys of RFC 9421 Appendix B.1 by keyid.
func vectorKeys(t *testing.T) map[string]crypto.PublicKey {
	t.Helper()
	keys := map[string]crypto.PublicKey{}
	for id, file := range map[string]string{
		"test-key-rsa-pss":  "test-key-rsa-pss.pem",
		"test-key-ecc-p256": "test-key-ecc-p256.pem",
		"test-key-ed25519":  "test-key-ed25519.pem",
	} {
		block, _ := pem.Decode([]byte(readVector(t, file)))
		if block == nil || block.Type != "PUBLIC KEY" {
			t.Fatalf("%s: no public key first", file)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		keys[id] = pub
	}
	return keys
}

// vectorEd25519 is test-key-ed25519's private key.
func vectorEd25519(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	rest := []byte(readVector(t, "test-key-ed25519.pem"))
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			t.Fatal("no private key in test-key-ed25519.pem")
		}
		if block.Type == "PRIVATE KEY" {
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			return k.(ed25519.PrivateKey)
		}
	}
}

// verifyMessage verifies every signature of m's target (the response when
// there is one) with keys, as a verifier following RFC 9421 section 3.2
// does, and returns the bases it made, by label.
func verifyMessage(t *testing.T, m message, keys map[string]crypto.PublicKey) (map[string][]byte, error) {
	t.Helper()
	h := m.req.Header
	if m.resp != nil {
		h = m.resp.Header
	}
	sigs, err := parseSignatures(h["Signature-Input"], h["Signature"])
	if err != nil {
		return nil, err
	}
	bases := map[string][]byte{}
	for _, p := range sigs {
		base, err := signatureBase(nil, m, p.comps, p.params)
		if err != nil {
			return bases, err
		}
		bases[p.label] = base
		key, ok := keys[p.keyID]
		if !ok {
			return bases, errors.New("unknown keyid " + p.keyID)
		}
		if err := verifySignature(key, p.alg, base, p.sig); err != nil {
			return bases, err
		}
	}
	return bases, nil
}

// TestSignatureBaseRFC9421AppendixB2 makes the signature base of each
// test case of Appendix B.2 byte for byte and verifies its signature with
// the key of B.1 (B.2.5's HMAC, which this package refuses to use, with
// crypto/hmac here, to prove the base).
func TestSignatureBaseRFC9421AppendixB2(t *testing.T) {
	t.Parallel()
	keys := vectorKeys(t)
	for _, name := range []string{"b21", "b22", "b23", "b24", "b25", "b26"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			req := vectorRequest(t, "test-request.http")
			m := message{req: req}
			fields := vectorFields(t, name+".fields")
			if name == "b24" {
				m.resp = vectorResponse(t, "test-response.http", req)
				m.resp.Header["Signature-Input"], m.resp.Header["Signature"] = fields["Signature-Input"], fields["Signature"]
			} else {
				req.Header["Signature-Input"], req.Header["Signature"] = fields["Signature-Input"], fields["Signature"]
			}
			if name == "b25" {
				sigs, err := parseSignatures(fields["Signature-Input"], fields["Signature"])
				if err != nil {
					t.Fatal(err)
				}
				base, err := signatureBase(nil, m, sigs[0].comps, sigs[0].params)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := string(base), readVector(t, name+".base"); got != want {
					t.Fatalf("signature base:\ngot  %q\nwant %q", got, want)
				}
				secret, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(readVector(t, "test-shared-secret.txt")))
				mac := hmac.New(sha256.New, secret)
				mac.Write(base)
				if !hmac.Equal(mac.Sum(nil), sigs[0].sig) {
					t.Fatal("got an HMAC that differs from the published signature over the base we made, want the same")
				}
				if err := verifySignature(secret, "hmac-sha256", base, sigs[0].sig); err == nil {
					t.Fatal("verifySignature accepted a shared secret, want it refused")
				}
				return
			}
			bases, err := verifyMessage(t, m, keys)
			if err != nil {
				t.Fatalf("verifying the published signature: %v", err)
			}
			label := "sig-" + name
			if got, want := string(bases[label]), readVector(t, name+".base"); got != want {
				t.Fatalf("signature base:\ngot  %q\nwant %q", got, want)
			}
		})
	}
}

// TestEd25519SignaturesRFC9421ByteForByte signs the bases of B.2.6 and
// B.4 with test-key-ed25519, deterministic, and gets the published
// signatures; and a client configured as B.2.6 sends exactly B.2.6's
// Signature-Input and Signature.
func TestEd25519SignaturesRFC9421ByteForByte(t *testing.T) {
	t.Parallel()
	key := vectorEd25519(t)
	for _, tc := range []struct{ base, fields, header string }{
		{"b26.base", "b26.fields", ""},
		{"b4.base", "", "b4-request.http"},
	} {
		var h http.Header
		if tc.fields != "" {
			h = vectorFields(t, tc.fields)
		} else {
			h = vectorRequest(t, tc.header).Header
		}
		sigs, err := parseSignatures(h["Signature-Input"], h["Signature"])
		if err != nil {
			t.Fatal(err)
		}
		got, err := methodEdDSA.sign(key, []byte(readVector(t, tc.base)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, sigs[0].sig) {
			t.Errorf("%s: got signature %x, want the published %x", tc.base, got, sigs[0].sig)
		}
	}

	s, err := checkSignatures(&MessageSignatures{
		Key: key, KeyID: "test-key-ed25519", Label: "sig-b26", Hosts: []string{"example.com"},
		Components: []string{"date", "@method", "@path", "@authority", "content-type", "content-length"},
	}, nil, func() time.Time { return time.Unix(1618884473, 0) })
	if err != nil {
		t.Fatal(err)
	}
	req := vectorRequest(t, "test-request.http")
	req.URL.Scheme, req.URL.Host = "https", req.Host
	body := []byte(`{"hello": "world"}`)
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	out, signed, err := s.sign(req)
	if err != nil || !signed {
		t.Fatalf("sign: %v, signed %t", err, signed)
	}
	want := vectorFields(t, "b26.fields")
	for _, k := range []string{"Signature-Input", "Signature"} {
		if got := out.Header[k]; len(got) != 1 || got[0] != want.Get(k) {
			t.Errorf("%s: got %q, want %q", k, got, want.Get(k))
		}
	}
}

// TestSignatureRFC9421AppendixB3 verifies the TLS-terminating proxy's
// signature (B.3) over the request it forwards.
func TestSignatureRFC9421AppendixB3(t *testing.T) {
	t.Parallel()
	req := vectorRequest(t, "b3-request.http")
	bases, err := verifyMessage(t, message{req: req}, vectorKeys(t))
	if err != nil {
		t.Fatalf("verifying the published signature: %v", err)
	}
	if got, want := string(bases["ttrp"]), readVector(t, "b3.base"); got != want {
		t.Fatalf("signature base:\ngot  %q\nwant %q", got, want)
	}
}

// TestSignatureRFC9421AppendixB4 verifies B.4's signature over the
// original request and over each change the RFC says keeps it valid, and
// fails it over each change the RFC says breaks it.
func TestSignatureRFC9421AppendixB4(t *testing.T) {
	t.Parallel()
	keys := vectorKeys(t)
	bases, err := verifyMessage(t, message{req: vectorRequest(t, "b4-request.http")}, keys)
	if err != nil {
		t.Fatalf("verifying the published signature: %v", err)
	}
	if got, want := string(bases["transform"]), readVector(t, "b4.base"); got != want {
		t.Fatalf("signature base:\ngot  %q\nwant %q", got, want)
	}
	for _, tc := range []struct {
		file  string
		valid bool
	}{
		{"b4-valid-1.http", true}, {"b4-valid-2.http", true}, {"b4-valid-3.http", true},
		{"b4-invalid-1.http", false}, {"b4-invalid-2.http", false},
	} {
		_, err := verifyMessage(t, message{req: vectorRequest(t, tc.file)}, keys)
		if got := err == nil; got != tc.valid {
			t.Errorf("%s: got valid %t (%v), want %t", tc.file, got, err, tc.valid)
		}
	}
}

// TestSignatureRFC9421ResponsesBoundToRequests verifies section 2.4's two
// responses, whose signatures cover components of their request (req), and
// fails each over a request other than its own.
func TestSignatureRFC9421ResponsesBoundToRequests(t *testing.T) {
	t.Parallel()
	keys := vectorKeys(t)
	for _, n := range []string{"1", "2"} {
		req := vectorRequest(t, "s24-request-"+n+".http")
		resp := vectorResponse(t, "s24-response-"+n+".http", req)
		bases, err := verifyMessage(t, message{req: req, resp: resp}, keys)
		if err != nil {
			t.Fatalf("response %s: verifying the published signature: %v", n, err)
		}
		if got, want := string(bases["reqres"]), readVector(t, "s24-"+n+".base"); got != want {
			t.Fatalf("response %s: signature base:\ngot  %q\nwant %q", n, got, want)
		}
		other := vectorRequest(t, "s24-request-"+n+".http")
		other.URL.Path = "/bar"
		if _, err := verifyMessage(t, message{req: other, resp: resp}, keys); err == nil {
			t.Errorf("response %s: verified against another request's path, want it refused", n)
		}
	}
}

// TestSignatureRFC9421Sections32And43 verifies the rsa-pss-sha512 request
// of section 3.2 (its base is section 2.5's) and the client's
// ecdsa-p256-sha256 signature of section 4.3; once a proxy has changed the
// authority and added its own signature (rsa-v1_5-sha256, refused), the
// client's no longer verifies.
func TestSignatureRFC9421Sections32And43(t *testing.T) {
	t.Parallel()
	keys := vectorKeys(t)
	bases, err := verifyMessage(t, message{req: vectorRequest(t, "s32-request.http")}, keys)
	if err != nil {
		t.Fatalf("section 3.2: %v", err)
	}
	if got, want := string(bases["sig1"]), readVector(t, "s25.base"); got != want {
		t.Fatalf("section 2.5 signature base:\ngot  %q\nwant %q", got, want)
	}
	if _, err := verifyMessage(t, message{req: vectorRequest(t, "s43-request.http")}, keys); err != nil {
		t.Fatalf("section 4.3, the client's request: %v", err)
	}
	req := vectorRequest(t, "s43-forwarded.http")
	sigs, err := parseSignatures(req.Header["Signature-Input"], req.Header["Signature"])
	if err != nil || len(sigs) != 2 {
		t.Fatalf("section 4.3, forwarded: got %d signatures (%v), want 2", len(sigs), err)
	}
	for _, p := range sigs {
		base, err := signatureBase(nil, message{req: req}, p.comps, p.params)
		if err != nil {
			t.Fatal(err)
		}
		if err := verifySignature(keys["test-key-ecc-p256"], p.alg, base, p.sig); err == nil {
			t.Errorf("section 4.3, forwarded: %s verified, want refused", p.label)
		}
	}
}

// TestContentDigestRFC9530Examples computes the digests RFC 9530 prints
// (its Appendix D and the examples of Appendix B) for request bodies, and
// checks them on response bodies, a mismatch failing the read at its end.
func TestContentDigestRFC9530Examples(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ body, field string }{
		{`{"hello": "world"}`, "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"},
		{`{"hello": "world"}` + "\n", "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"},
		{`"world"}` + "\n", "sha-256=:jjcgBDWNAtbYUXI37CVG3gRuGOAjaaDRGpIUFsdyepQ=:"},
		{"", "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"},
	} {
		req, _ := http.NewRequest(http.MethodPost, "https://api.test/", strings.NewReader(tc.body))
		if tc.body == "" {
			req.Body = io.NopCloser(strings.NewReader(""))
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("")), nil }
		}
		got, _, err := digestBody(req)
		if err != nil || got != tc.field {
			t.Errorf("body %q: got %q (%v), want %q", tc.body, got, err, tc.field)
		}
	}
	const sha512Hello = "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"
	const sha512HelloLF = "sha-512=:YMAam51Jz/jOATT6/zvHrLVgOYTGFy1d6GJiOHTohq4yP+pgk4vf2aCsyRZOtw8MjkM7iw7yZ/WkppmM44T3qg==:"
	for _, tc := range []struct {
		body, field string
		ok          bool
	}{
		{`{"hello": "world"}`, sha512Hello, true},
		{`{"hello": "world"}` + "\n", sha512HelloLF, true},
		{`{"hello": "world"}` + "\n", "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:, " + sha512HelloLF, true},
		{`{"hello": "world"}` + "\n", "md5=:Sd/dVLAcvNLSq16eXua5uQ==:, " + sha512HelloLF, true},
		{`{"hello": "World"}`, sha512Hello, false},
		{`{"hello": "world"}` + "\n", "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, " + sha512HelloLF, false},
	} {
		resp := &http.Response{Header: http.Header{"Content-Digest": {tc.field}}, Body: io.NopCloser(strings.NewReader(tc.body))}
		// A small body is checked whole when the response is armed.
		var got []byte
		err := armDigest(resp)
		if err == nil {
			got, err = io.ReadAll(resp.Body)
		}
		if tc.ok && (err != nil || string(got) != tc.body) {
			t.Errorf("body %q, %s: got %q, %v; want the body and no error", tc.body, tc.field, got, err)
		}
		if !tc.ok && !errors.Is(err, ErrResponseSignature) {
			t.Errorf("body %q, %s: got error %v, want ErrResponseSignature", tc.body, tc.field, err)
		}
	}
	for _, field := range []string{"md5=:Sd/dVLAcvNLSq16eXua5uQ==:", "sha-256=:AAAA:", "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"} {
		resp := &http.Response{Header: http.Header{"Content-Digest": {field}}, Body: http.NoBody}
		if err := armDigest(resp); !errors.Is(err, ErrResponseSignature) {
			t.Errorf("Content-Digest %q: got %v, want ErrResponseSignature", field, err)
		}
	}
}

// ---------------------------------------------------------------- the peer

// sigAlgorithms are the algorithms of RFC 9421 this package signs with,
// each with a way to make a key.
var sigAlgorithms = []struct {
	alg string
	gen func() (crypto.Signer, error)
}{
	{"ed25519", func() (crypto.Signer, error) { _, k, err := ed25519.GenerateKey(rand.Reader); return k, err }},
	{"ecdsa-p256-sha256", func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }},
	{"ecdsa-p384-sha384", func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) }},
	{"rsa-pss-sha512", func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) }},
}

func mustKey(t testing.TB, gen func() (crypto.Signer, error)) crypto.Signer {
	t.Helper()
	k, err := gen()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sigPeer is the http-message-signatures peer, with the keys on either
// side and a client that signs for it and verifies its responses.
type sigPeer struct {
	peer      *peers.HTTPSigPeer
	clientKey crypto.Signer
	serverKey crypto.Signer
	cfg       Config
}

// startSigPeer starts the peer for one algorithm: the client signs with a
// key of it, tagged fapi-2-request, and the peer signs its responses with
// another, tagged fapi-2-response.
func startSigPeer(t *testing.T, alg string, gen func() (crypto.Signer, error)) *sigPeer {
	t.Helper()
	p := &sigPeer{clientKey: mustKey(t, gen), serverKey: mustKey(t, gen)}
	spki, err := x509.MarshalPKIXPublicKey(p.clientKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	pki := sharedPKI(t)
	p.peer = peers.StartHTTPSig(t, peers.HTTPSigConfig{
		CertPEM:     testpki.ChainPEM(pki.leaf, pki.inter),
		KeyPEM:      pki.leaf.KeyPEM(),
		ClientKey:   peers.HTTPSigKey{PEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}), Alg: alg, KeyID: "client-key"},
		ServerKey:   peers.HTTPSigKey{PEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), Alg: alg, KeyID: "server-key"},
		RequestTag:  "fapi-2-request",
		ResponseTag: "fapi-2-response",
	})
	serverPub := p.serverKey.Public()
	p.cfg = testConfig(t)
	p.cfg.Bearer = &Bearer{
		Store: NewMemoryStore(Token{Value: "peer-token", Expiry: time.Now().Add(time.Hour)}),
		Hosts: []string{"127.0.0.1"},
	}
	p.cfg.Signatures = &MessageSignatures{
		Key: p.clientKey, KeyID: "client-key", Tag: "fapi-2-request",
		Responses: &ResponseSignatures{
			Keys: func(_ context.Context, keyID string) (crypto.PublicKey, error) {
				if keyID != "server-key" {
					return nil, errors.New("unknown key")
				}
				return serverPub, nil
			},
			Required: true,
			Tag:      "fapi-2-response",
		},
	}
	return p
}

// peerAnswer is the peer's JSON answer.
type peerAnswer struct {
	Verified bool
	Error    string
	Covered  []string
	Tag      string
}

// TestSignaturesInteroperateWithHTTPMessageSignatures has the npm package
// http-message-signatures verify our requests and sign the responses we
// verify, for each algorithm, and each side refuse what the other side
// had altered: a header, the path, the method, the status or the body, a
// response replayed from another request, a stale created, another tag.
func TestSignaturesInteroperateWithHTTPMessageSignatures(t *testing.T) {
	t.Parallel()
	for _, a := range sigAlgorithms {
		t.Run(a.alg, func(t *testing.T) {
			t.Parallel()
			p := startSigPeer(t, a.alg, a.gen)
			client := &http.Client{Transport: newTestTransport(t, p.cfg)}
			url := p.peer.URL + "/accounts/1?view=full"

			t.Run("requests verified, responses verified", func(t *testing.T) {
				for _, tc := range []struct {
					method, body string
					covered      []string
				}{
					{http.MethodGet, "", []string{"@method", "@target-uri", "authorization"}},
					{http.MethodPost, `{"amount": "10.00"}`, []string{"@method", "@target-uri", "authorization", "content-digest"}},
				} {
					var body io.Reader
					if tc.body != "" {
						body = strings.NewReader(tc.body)
					}
					req, _ := http.NewRequest(tc.method, url, body)
					resp, err := client.Do(req)
					if err != nil {
						t.Fatalf("%s: %v", tc.method, err)
					}
					var got peerAnswer
					err = json.NewDecoder(resp.Body).Decode(&got)
					if err == nil {
						_, err = io.Copy(io.Discard, resp.Body)
					}
					resp.Body.Close()
					if err != nil {
						t.Fatalf("%s: reading the verified body: %v", tc.method, err)
					}
					if resp.StatusCode != http.StatusOK || !got.Verified || !slices.Equal(got.Covered, tc.covered) || got.Tag != "fapi-2-request" {
						t.Errorf("%s: got %d %+v, want 200, verified, covering %v, tagged fapi-2-request", tc.method, resp.StatusCode, got, tc.covered)
					}
				}
			})

			t.Run("altered responses refused", func(t *testing.T) {
				for _, tamper := range []string{"header", "status", "replay", "stale", "tag", "unsigned"} {
					req, _ := http.NewRequest(http.MethodGet, url, nil)
					req.Header.Set("X-Peer-Tamper", tamper)
					resp, err := client.Do(req)
					if err == nil {
						resp.Body.Close()
					}
					if !errors.Is(err, ErrResponseSignature) {
						t.Errorf("%s: got %v, want ErrResponseSignature", tamper, err)
					}
					if _, ok := errors.AsType[*neturl.Error](err); !ok {
						t.Errorf("%s: got %T, want a *url.Error", tamper, err)
					}
				}
				// The signature holds, the content does not: a small body
				// is refused before the response is handed on.
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("X-Peer-Tamper", "body")
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if !errors.Is(err, ErrResponseSignature) {
					t.Errorf("body: got %v, want ErrResponseSignature", err)
				}
			})

			t.Run("altered requests refused", func(t *testing.T) {
				tr := newTestTransport(t, p.cfg)
				plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: sharedPKI(t).root.Pool()}}}
				t.Cleanup(plain.CloseIdleConnections)
				signed := func(now time.Time, method, body string) *http.Request {
					t.Helper()
					tr.now = func() time.Time { return now }
					var r io.Reader
					if body != "" {
						r = strings.NewReader(body)
					}
					req, _ := http.NewRequest(method, url, r)
					req.Header.Set("Authorization", "Bearer peer-token")
					out, ok, err := tr.sigs.sign(req)
					if err != nil || !ok {
						t.Fatalf("sign: %v, %t", err, ok)
					}
					return out
				}
				for _, tc := range []struct {
					name  string
					alter func() *http.Request
				}{
					{"none", func() *http.Request { return signed(time.Now(), http.MethodPost, "{}") }},
					{"header", func() *http.Request {
						r := signed(time.Now(), http.MethodGet, "")
						r.Header.Set("Authorization", "Bearer another-token")
						return r
					}},
					{"path", func() *http.Request {
						r := signed(time.Now(), http.MethodGet, "")
						r.URL.Path = "/accounts/2"
						return r
					}},
					{"method", func() *http.Request {
						r := signed(time.Now(), http.MethodGet, "")
						r.Method = http.MethodDelete
						return r
					}},
					{"body", func() *http.Request {
						r := signed(time.Now(), http.MethodPost, `{"amount": "10.00"}`)
						r.Body = io.NopCloser(strings.NewReader(`{"amount": "99.00"}`))
						return r
					}},
					{"stale created", func() *http.Request { return signed(time.Now().Add(-2*time.Minute), http.MethodGet, "") }},
				} {
					resp, err := plain.Do(tc.alter())
					if err != nil {
						t.Fatalf("%s: %v", tc.name, err)
					}
					var got peerAnswer
					_ = json.NewDecoder(resp.Body).Decode(&got)
					resp.Body.Close()
					if want := tc.name == "none"; (resp.StatusCode == http.StatusOK) != want || got.Verified != want {
						t.Errorf("%s: got %d %+v, want accepted %t", tc.name, resp.StatusCode, got, want)
					}
				}
			})
		})
	}
}

// ---------------------------------------------------------------- a fake beside the peer

// sigServer is a resource server in the test, beside the real peer above:
// it verifies each request's signature with the client's key as RFC 9421
// says, records what it saw, and signs its responses with its own key
// over the components and parameters the test chooses.
type sigServer struct {
	t         *testing.T
	clientPub crypto.PublicKey
	serverKey crypto.Signer
	url       string

	mu   sync.Mutex
	seen []seenRequest
	// respond, if set, chooses the status, and the covered components
	// and parameters of the response's signature ("" for none); NOW in
	// params is the current Unix time.
	respond func(n int, r *http.Request) (status int, comps, params string)
}

type seenRequest struct {
	path    string
	header  http.Header
	body    []byte
	covered []string
	tag     string
	err     error // the request's signature did not verify
}

func startSigServer(t *testing.T, clientPub crypto.PublicKey) *sigServer {
	t.Helper()
	s := &sigServer{t: t, clientPub: clientPub, serverKey: mustKey(t, sigAlgorithms[0].gen)}
	srv := testutil.StartServer(t, sharedPKI(t).serverCert(), http.HandlerFunc(s.serve))
	s.url = srv.URL
	return s
}

func (s *sigServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	seen := seenRequest{path: r.URL.Path, header: r.Header.Clone(), body: body}
	sigs, err := parseSignatures(r.Header["Signature-Input"], r.Header["Signature"])
	if err == nil {
		var base []byte
		if base, err = signatureBase(nil, message{req: r}, sigs[0].comps, sigs[0].params); err == nil {
			err = verifySignature(s.clientPub, sigs[0].alg, base, sigs[0].sig)
		}
		for _, c := range sigs[0].comps {
			seen.covered = append(seen.covered, c.id)
		}
		seen.tag = sigs[0].tag
	}
	if err == nil && len(body) > 0 {
		var digests []contentDigest
		if digests, err = parseContentDigest(r.Header["Content-Digest"]); err == nil {
			digests[0].h.Write(body)
			if !bytes.Equal(digests[0].h.Sum(nil), digests[0].want) {
				err = errors.New("content-digest mismatch")
			}
		}
	}
	seen.err = err
	s.mu.Lock()
	s.seen = append(s.seen, seen)
	n := len(s.seen)
	s.mu.Unlock()

	status, comps, params := http.StatusOK, `"@status" "content-digest" "@method";req "@target-uri";req`, `;created=NOW;keyid="server"`
	if s.respond != nil {
		status, comps, params = s.respond(n, r)
	}
	out := []byte(`{"ok":true}`)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	sum := sha256.Sum256(out)
	h.Set("Content-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":")
	if comps != "" || params != "" {
		input := "srv=(" + comps + ")" + strings.ReplaceAll(params, "NOW", strconv.FormatInt(time.Now().Unix(), 10))
		p, err := parseSignatures([]string{input}, []string{"srv=:AA==:"})
		if err != nil {
			s.t.Errorf("the test's response signature: %v", err)
			return
		}
		base, err := signatureBase(nil, message{req: r, resp: &http.Response{StatusCode: status, Header: h}}, p[0].comps, p[0].params)
		if err != nil {
			s.t.Errorf("the test's response signature: %v", err)
			return
		}
		sig, _ := methodEdDSA.sign(s.serverKey, base)
		if r.Header.Get("X-Case") == "bad-signature" {
			sig[0] ^= 1
		}
		h.Set("Signature-Input", input)
		h.Set("Signature", "srv=:"+base64.StdEncoding.EncodeToString(sig)+":")
	}
	if r.Header.Get("X-Case") == "cut-body" {
		// The answer's head, then half its body, then no more.
		h.Set("Content-Length", strconv.Itoa(len(out)))
		w.WriteHeader(status)
		w.Write(out[:len(out)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	w.WriteHeader(status)
	w.Write(out)
}

// last returns the last request to path, and how many there were.
func (s *sigServer) last(path string) (seenRequest, int) {
	var out seenRequest
	n := 0
	for _, r := range s.requests() {
		if r.path == path {
			out, n = r, n+1
		}
	}
	return out, n
}

func (s *sigServer) requests() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// sigConfig is a Config that signs with key for 127.0.0.1, with a token,
// and verifies responses with the server's key.
func (s *sigServer) config(t *testing.T, key crypto.Signer) Config {
	cfg := testConfig(t)
	cfg.Bearer = &Bearer{Store: NewMemoryStore(Token{Value: "token-1", Expiry: time.Now().Add(time.Hour)}), Hosts: []string{"127.0.0.1"}}
	pub := s.serverKey.Public()
	cfg.Signatures = &MessageSignatures{Key: key, KeyID: "client", Responses: &ResponseSignatures{
		Keys: func(_ context.Context, keyID string) (crypto.PublicKey, error) {
			if keyID != "server" {
				return nil, errors.New("unknown key")
			}
			return pub, nil
		},
		Required: true,
	}}
	return cfg
}

func do(t *testing.T, client *http.Client, method, url, body string) (*http.Response, []byte, error) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, r)
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// TestSignaturesFollowFAPI2 checks each requirement of FAPI 2.0 HTTP
// Signatures (fapi-2_0-http-signatures) on clients, by its clause: 5.3.1.1
// for the requests a client signs, 5.3.2.2 for the responses it verifies.
func TestSignaturesFollowFAPI2(t *testing.T) {
	t.Parallel()
	key := mustKey(t, sigAlgorithms[0].gen)
	srv := startSigServer(t, key.Public())
	cfg := srv.config(t, key)
	cfg.Signatures.Tag = "fapi-2-request"
	cfg.Signatures.Responses.Tag = "fapi-2-response"
	srv.respond = func(_ int, r *http.Request) (int, string, string) {
		comps := `"@status" "content-digest" "@method";req "@target-uri";req`
		params := `;created=NOW;keyid="server";tag="fapi-2-response"`
		switch r.Header.Get("X-Case") {
		case "no-status":
			comps = `"content-digest" "@method";req "@target-uri";req`
		case "no-created":
			params = `;keyid="server";tag="fapi-2-response"`
		case "no-digest":
			comps = `"@status" "@method";req "@target-uri";req`
		case "other-tag":
			params = `;created=NOW;keyid="server";tag="fapi-2-request"`
		case "other-key":
			params = `;created=NOW;keyid="someone";tag="fapi-2-response"`
		}
		return http.StatusOK, comps, params
	}
	client := &http.Client{Transport: newTestTransport(t, cfg)}

	dpopCfg := srv.config(t, key)
	dpopCfg.Bearer.DPoP = &DPoP{}
	dpopCfg.Signatures.Responses = nil
	dpopClient := &http.Client{Transport: newTestTransport(t, dpopCfg)}

	covered := func(t *testing.T, c *http.Client, method, body, want string) seenRequest {
		t.Helper()
		n := len(srv.requests())
		if _, _, err := do(t, c, method, srv.url+"/payments?x=1", body); err != nil {
			t.Fatal(err)
		}
		seen := srv.requests()[n]
		if seen.err != nil {
			t.Fatalf("the server could not verify the request: %v", seen.err)
		}
		if want != "" && !slices.Contains(seen.covered, want) {
			t.Errorf("got covered %v, want %s among them", seen.covered, want)
		}
		return seen
	}
	refused := func(t *testing.T, xcase string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.url+"/payments", nil)
		req.Header.Set("X-Case", xcase)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		if !errors.Is(err, ErrResponseSignature) {
			t.Errorf("got %v, want ErrResponseSignature", err)
		}
	}

	t.Run("5.3.1.1-1 creates an RFC 9421 signature", func(t *testing.T) { covered(t, client, http.MethodGet, "", "") })
	t.Run("5.3.1.1-2 covers @method", func(t *testing.T) { covered(t, client, http.MethodGet, "", `"@method"`) })
	t.Run("5.3.1.1-3 covers @target-uri", func(t *testing.T) { covered(t, client, http.MethodGet, "", `"@target-uri"`) })
	t.Run("5.3.1.1-4 has created", func(t *testing.T) {
		seen := covered(t, client, http.MethodGet, "", "")
		if in := seen.header.Get("Signature-Input"); !strings.Contains(in, ";created=") {
			t.Errorf("got Signature-Input %q, want created", in)
		}
	})
	t.Run("5.3.1.1-5 tag fapi-2-request", func(t *testing.T) {
		if seen := covered(t, client, http.MethodGet, "", ""); seen.tag != "fapi-2-request" {
			t.Errorf("got tag %q, want fapi-2-request", seen.tag)
		}
	})
	t.Run("5.3.1.1-6 covers authorization", func(t *testing.T) { covered(t, client, http.MethodGet, "", `"authorization"`) })
	t.Run("5.3.1.1-7 covers dpop", func(t *testing.T) {
		seen := covered(t, dpopClient, http.MethodGet, "", `"dpop"`)
		if seen.header.Get("Dpop") == "" {
			t.Error("got no DPoP header, want a proof")
		}
	})
	t.Run("5.3.1.1-8 content-digest with a body, sha-256", func(t *testing.T) {
		seen := covered(t, client, http.MethodPost, `{"amount":"1.00"}`, `"content-digest"`)
		if d := seen.header.Get("Content-Digest"); !strings.HasPrefix(d, "sha-256=:") {
			t.Errorf("got Content-Digest %q, want sha-256", d)
		}
		if seen := covered(t, client, http.MethodGet, "", ""); slices.Contains(seen.covered, `"content-digest"`) {
			t.Errorf("got covered %v without a body, want no content-digest", seen.covered)
		}
	})
	t.Run("5.3.2.2-1 the server's key, by keyid", func(t *testing.T) { refused(t, "other-key") })
	t.Run("5.3.2.2-2 verifies the signature", func(t *testing.T) {
		if _, _, err := do(t, client, http.MethodGet, srv.url+"/payments", ""); err != nil {
			t.Fatalf("got %v for a valid response, want none", err)
		}
		refused(t, "bad-signature")
	})
	t.Run("5.3.2.2-3 @status and created covered", func(t *testing.T) {
		refused(t, "no-status")
		refused(t, "no-created")
	})
	t.Run("5.3.2.2-4 content-digest covered with a body", func(t *testing.T) { refused(t, "no-digest") })
	t.Run("5.3.2.2-5 tag fapi-2-response", func(t *testing.T) { refused(t, "other-tag") })
}

// TestSignatureMadeAfreshForEachAttempt: a retry after a 503 and a replay
// after a 401 are each signed again, the replay over the refreshed token.
func TestSignatureMadeAfreshForEachAttempt(t *testing.T) {
	t.Parallel()
	key := mustKey(t, sigAlgorithms[1].gen)
	srv := startSigServer(t, key.Public())
	srv.respond = func(n int, r *http.Request) (int, string, string) {
		status := http.StatusOK
		switch {
		case r.URL.Path == "/retry" && n == 1:
			status = http.StatusServiceUnavailable
		case r.URL.Path == "/replay" && r.Header.Get("Authorization") == "Bearer token-1":
			status = http.StatusUnauthorized
		}
		return status, `"@status" "content-digest" "@method";req "@target-uri";req`, `;created=NOW;keyid="server"`
	}
	cfg := srv.config(t, key)
	cfg.Bearer.Refresh = func(context.Context) (Token, error) {
		return Token{Value: "token-2", Expiry: time.Now().Add(time.Hour)}, nil
	}
	client := &http.Client{Transport: newTestTransport(t, cfg)}

	if resp, _, err := do(t, client, http.MethodGet, srv.url+"/retry", ""); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("retry: got %v, %v; want 200", resp, err)
	}
	if resp, _, err := do(t, client, http.MethodPut, srv.url+"/replay", `{"a":1}`); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("replay: got %v, %v; want 200", resp, err)
	}
	seen := srv.requests()
	if len(seen) != 4 {
		t.Fatalf("got %d attempts, want 4", len(seen))
	}
	for i, s := range seen {
		if s.err != nil || !slices.Contains(s.covered, `"authorization"`) {
			t.Errorf("attempt %d: got %v covering %v, want a valid signature covering authorization", i+1, s.err, s.covered)
		}
	}
	if got := seen[3].header.Get("Authorization"); got != "Bearer token-2" {
		t.Errorf("replay: got Authorization %q, want the refreshed token, signed", got)
	}
}

// TestSignatureFailedResponseIsNotRetried: a 503 without a signature,
// under Required, is an error classed response_signature, not a retry.
func TestSignatureFailedResponseIsNotRetried(t *testing.T) {
	t.Parallel()
	key := mustKey(t, sigAlgorithms[0].gen)
	srv := startSigServer(t, key.Public())
	srv.respond = func(int, *http.Request) (int, string, string) { return http.StatusServiceUnavailable, "", "" }
	client := &http.Client{Transport: newTestTransport(t, srv.config(t, key))}
	_, _, err := do(t, client, http.MethodGet, srv.url+"/", "")
	if !errors.Is(err, ErrResponseSignature) || ErrorClass(err) != "response_signature" {
		t.Fatalf("got %v (class %q), want ErrResponseSignature, class response_signature", err, ErrorClass(err))
	}
	if n := len(srv.requests()); n != 1 {
		t.Errorf("got %d attempts, want 1", n)
	}
}

// TestResponseSignatureOptionalUnlessRequired: without Required an
// unsigned response passes, and a signed one must still verify.
func TestResponseSignatureOptionalUnlessRequired(t *testing.T) {
	t.Parallel()
	key := mustKey(t, sigAlgorithms[0].gen)
	srv := startSigServer(t, key.Public())
	srv.respond = func(_ int, r *http.Request) (int, string, string) {
		if r.URL.Path == "/unsigned" {
			return http.StatusOK, "", ""
		}
		return http.StatusOK, `"@status" "content-digest" "@method";req "@target-uri";req`, `;created=NOW;keyid="server"`
	}
	cfg := srv.config(t, key)
	cfg.Signatures.Responses.Required = false
	client := &http.Client{Transport: newTestTransport(t, cfg)}
	if _, body, err := do(t, client, http.MethodGet, srv.url+"/unsigned", ""); err != nil || string(body) != `{"ok":true}` {
		t.Errorf("unsigned: got %q, %v; want the body", body, err)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.url+"/signed", nil)
	req.Header.Set("X-Case", "bad-signature")
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, ErrResponseSignature) {
		t.Errorf("bad signature: got %v, want ErrResponseSignature", err)
	}
}

// closeCount counts Close calls.
type closeCount struct {
	io.Reader
	n int
}

func (c *closeCount) Close() error { c.n++; return nil }

// TestSignatureRequestHandling: what signing does and refuses before
// sending, and that the caller's request is left as it was.
func TestSignatureRequestHandling(t *testing.T) {
	t.Parallel()
	key := mustKey(t, sigAlgorithms[0].gen)
	srv := startSigServer(t, key.Public())

	t.Run("the caller's request is not modified", func(t *testing.T) {
		client := &http.Client{Transport: newTestTransport(t, srv.config(t, key))}
		req, _ := http.NewRequest(http.MethodPost, srv.url+"/", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		before := req.Header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if !reflect.DeepEqual(req.Header, before) {
			t.Errorf("got the caller's header %v after sending, want %v", req.Header, before)
		}
	})
	t.Run("a body without GetBody is refused before sending", func(t *testing.T) {
		client := &http.Client{Transport: newTestTransport(t, srv.config(t, key))}
		body := &closeCount{Reader: strings.NewReader("{}")}
		req, _ := http.NewRequest(http.MethodPost, srv.url+"/no-getbody", body)
		_, err := client.Do(req)
		if !errors.Is(err, errNoGetBody) {
			t.Errorf("got %v, want the GetBody error", err)
		}
		if _, got := srv.last("/no-getbody"); got != 0 || body.n == 0 {
			t.Errorf("got %d requests sent and %d closes, want none sent and the body closed", got, body.n)
		}
	})
	t.Run("a body that differs from GetBody's fails", func(t *testing.T) {
		client := &http.Client{Transport: newTestTransport(t, srv.config(t, key))}
		req, _ := http.NewRequest(http.MethodPut, srv.url+"/", strings.NewReader(`{"a":1}`))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(`{"a":2}`)), nil }
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Error("got a response, want the request to fail")
		}
	})
	t.Run("a large body is digested as a stream", func(t *testing.T) {
		client := &http.Client{Transport: newTestTransport(t, srv.config(t, key))}
		const size = 4 << 20
		gen := func() (io.ReadCloser, error) { return io.NopCloser(io.LimitReader(zeros{}, size)), nil }
		body, _ := gen()
		req, _ := http.NewRequest(http.MethodPost, srv.url+"/large", body)
		req.GetBody, req.ContentLength = gen, size
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if seen, _ := srv.last("/large"); seen.err != nil || len(seen.body) != size {
			t.Errorf("got %d bytes, %v; want %d bytes whose digest and signature verify", len(seen.body), seen.err, size)
		}
	})
	t.Run("a configured component the request lacks is an error", func(t *testing.T) {
		cfg := srv.config(t, key)
		cfg.Signatures.Components = []string{"@method", "content-type"}
		client := &http.Client{Transport: newTestTransport(t, cfg)}
		if _, _, err := do(t, client, http.MethodGet, srv.url+"/lacking", ""); err == nil || !strings.Contains(err.Error(), `"content-type"`) {
			t.Errorf("got %v, want an error naming content-type", err)
		}
		if _, got := srv.last("/lacking"); got != 0 {
			t.Errorf("got %d requests sent, want none", got)
		}
	})
	t.Run("headers a hook injects are signed", func(t *testing.T) {
		cfg := srv.config(t, key)
		cfg.Signatures.Components = []string{"@method", "@target-uri", "traceparent"}
		cfg.Hooks = &Hooks{InjectHeader: func(_ context.Context, h http.Header) {
			h.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
		}}
		client := &http.Client{Transport: newTestTransport(t, cfg)}
		if _, _, err := do(t, client, http.MethodGet, srv.url+"/hooked", ""); err != nil {
			t.Fatal(err)
		}
		if seen, _ := srv.last("/hooked"); seen.err != nil || !slices.Contains(seen.covered, `"traceparent"`) {
			t.Errorf("got %v covering %v, want a valid signature covering traceparent", seen.err, seen.covered)
		}
	})
	t.Run("other hosts are not signed", func(t *testing.T) {
		cfg := srv.config(t, key)
		cfg.Bearer.Hosts = []string{hostAPI}
		client := &http.Client{Transport: newTestTransport(t, cfg)}
		if _, _, err := do(t, client, http.MethodGet, strings.Replace(srv.url, "127.0.0.1", hostOther, 1)+"/other", ""); err != nil {
			t.Fatal(err)
		}
		if seen, _ := srv.last("/other"); seen.header.Get("Signature-Input") != "" || seen.header.Get("Signature") != "" {
			t.Errorf("got a signature for %s, want none", hostOther)
		}
	})
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// otherSigner signs with one key and claims another's public key.
type otherSigner struct {
	crypto.Signer
	pub crypto.PublicKey
}

func (o otherSigner) Public() crypto.PublicKey { return o.pub }

// TestSignaturesConfigErrors: each invalid MessageSignatures entry is a
// *ConfigError naming it, made before any request.
func TestSignaturesConfigErrors(t *testing.T) {
	t.Parallel()
	ed := mustKey(t, sigAlgorithms[0].gen)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	keys := func(context.Context, string) (crypto.PublicKey, error) { return nil, nil }
	bearer := &Bearer{Store: NewMemoryStore(Token{}), Hosts: []string{hostAPI}}
	for _, tc := range []struct {
		field  string
		s      MessageSignatures
		bearer *Bearer
	}{
		{"Signatures.Hosts", MessageSignatures{Key: ed, KeyID: "k"}, nil},
		{"Signatures.Hosts[0]", MessageSignatures{Key: ed, KeyID: "k", Hosts: []string{"*.com"}}, nil},
		{"Signatures.Key", MessageSignatures{KeyID: "k"}, bearer},
		{"Signatures.Key", MessageSignatures{Key: p521, KeyID: "k"}, bearer},
		{"Signatures.Key", MessageSignatures{Key: rsa1024, KeyID: "k"}, bearer},
		{"Signatures.Key", MessageSignatures{Key: otherSigner{ed, mustKey(t, sigAlgorithms[0].gen).Public()}, KeyID: "k"}, bearer},
		{"Signatures.KeyID", MessageSignatures{Key: ed}, bearer},
		{"Signatures.KeyID", MessageSignatures{Key: ed, KeyID: "k\n"}, bearer},
		{"Signatures.Label", MessageSignatures{Key: ed, KeyID: "k", Label: "Sig 1"}, bearer},
		{"Signatures.Tag", MessageSignatures{Key: ed, KeyID: "k", Tag: "é"}, bearer},
		{"Signatures.Components[0]", MessageSignatures{Key: ed, KeyID: "k", Components: []string{"@status"}}, bearer},
		{"Signatures.Components[0]", MessageSignatures{Key: ed, KeyID: "k", Components: []string{"@nonsense"}}, bearer},
		{"Signatures.Components[0]", MessageSignatures{Key: ed, KeyID: "k", Components: []string{`"@method";req`}}, bearer},
		{"Signatures.Components[0]", MessageSignatures{Key: ed, KeyID: "k", Components: []string{`"content-type";sf`}}, bearer},
		{"Signatures.Components[1]", MessageSignatures{Key: ed, KeyID: "k", Components: []string{"@method", "@method"}}, bearer},
		{"Signatures.Components[0]", MessageSignatures{Key: ed, KeyID: "k", Components: []string{"@query-param"}}, bearer},
		{"Signatures.Responses.Keys", MessageSignatures{Key: ed, KeyID: "k", Responses: &ResponseSignatures{}}, bearer},
		{"Signatures.Responses.MaxAge", MessageSignatures{Key: ed, KeyID: "k", Responses: &ResponseSignatures{Keys: keys, MaxAge: -1}}, bearer},
		{"Signatures.Responses.Components[0]", MessageSignatures{Key: ed, KeyID: "k", Responses: &ResponseSignatures{Keys: keys, Components: []string{"@method"}}}, bearer},
	} {
		_, err := NewClient(Config{Bearer: tc.bearer, Signatures: &tc.s})
		cerr, ok := errors.AsType[*ConfigError](err)
		if !ok || cerr.Field != tc.field {
			t.Errorf("%+v: got %v, want a *ConfigError for %s", tc.s, err, tc.field)
		}
	}
	if _, err := NewClient(Config{Bearer: bearer, Signatures: &MessageSignatures{Key: ed, KeyID: "k"}}); err != nil {
		t.Errorf("hosts from Bearer.Hosts: got %v, want none", err)
	}
}

// TestSignatureFieldsParsedStrictly: malformed, duplicated or oversized
// Signature-Input and Signature fields are refused with an error.
func TestSignatureFieldsParsedStrictly(t *testing.T) {
	t.Parallel()
	const in, sig = `sig1=("@method");created=1;keyid="k"`, `sig1=:AAAA:`
	long := `sig1=("@method"` + strings.Repeat(` "x-a"`, 2000) + `)`
	many := `sig1=(` + strings.Repeat(`"@method" `, maxComponents) + `"@path")`
	for _, tc := range []struct {
		name        string
		inputs, sig []string
	}{
		{"label twice", []string{in + `, ` + in}, []string{sig}},
		{"label twice on two lines", []string{in, in}, []string{sig}},
		{"signature twice", []string{in}, []string{sig + ", " + sig}},
		{"parameter twice", []string{`sig1=("@method");created=1;created=2`}, []string{sig}},
		{"component parameter twice", []string{`sig1=("@method";req;req)`}, []string{sig}},
		{"label in one field only", []string{in}, []string{`sig2=:AAAA:`}},
		{"no Signature", []string{in}, nil},
		{"not an inner list", []string{`sig1="@method"`}, []string{sig}},
		{"component not a string", []string{`sig1=(method)`}, []string{sig}},
		{"signature not bytes", []string{in}, []string{`sig1="AAAA"`}},
		{"created not an integer", []string{`sig1=("@method");created="1"`}, []string{sig}},
		{"keyid not a string", []string{`sig1=("@method");keyid=1`}, []string{sig}},
		{"malformed", []string{`sig1=("@method"`}, []string{sig}},
		{"trailing comma", []string{in + ","}, []string{sig}},
		{"empty", []string{""}, []string{sig}},
		{"oversized", []string{long}, []string{sig}},
		{"too many components", []string{many}, []string{sig}},
		{"too many signatures", []string{strings.Repeat(`a=(), `, maxSignatures) + `z=()`}, []string{strings.Repeat(`a=:AAAA:, `, maxSignatures) + `z=:AAAA:`}},
	} {
		if _, err := parseSignatures(tc.inputs, tc.sig); err == nil {
			t.Errorf("%s: got no error, want one", tc.name)
		}
	}
	// A component listed twice, or one not derived here, leaves the
	// signature unverifiable rather than the field malformed.
	for _, input := range []string{`sig1=("@method" "@method")`, `sig1=("content-type";sf)`, `sig1=("@unknown")`} {
		sigs, err := parseSignatures([]string{input}, []string{sig})
		if err != nil || sigs[0].err == nil {
			t.Errorf("%s: got %v, signature error %v; want a parsed signature that cannot verify", input, err, sigs[0].err)
		}
	}
}

// FuzzSignatureInput checks that any Signature-Input field parses or is
// refused without a panic, and that a parsed one keeps its labels when
// serialised and parsed again.
func FuzzSignatureInput(f *testing.F) {
	for _, seed := range []string{
		`sig1=("@method" "@target-uri" "authorization");created=1618884473;keyid="k";tag="fapi-2-request"`,
		`sig-b22=("@authority" "content-digest" "@query-param";name="Pet");created=1618884473;keyid="test-key-rsa-pss";tag="header-example"`,
		`a=(), b=("@status";req "x";bs);expires=1, c=()`,
		`sig1=("@method");created=1;created=2`,
		`reqres=("@status" "content-digest" "content-type" "@authority";req "@method";req "@path";req "content-digest";req)`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		d, err := parseDictionary([]string{input}, "Signature-Input", maxSignatureField, maxSignatures)
		if err != nil {
			return
		}
		var sigs []string
		for _, label := range d.Names() {
			sigs = append(sigs, label+"=:AAAA:")
		}
		parsed, err := parseSignatures([]string{input}, []string{strings.Join(sigs, ", ")})
		if err != nil {
			return
		}
		var again []string
		for _, p := range parsed {
			again = append(again, p.label+"="+string(p.params))
		}
		reparsed, err := parseSignatures([]string{strings.Join(again, ", ")}, []string{strings.Join(sigs, ", ")})
		if err != nil || len(reparsed) != len(parsed) {
			t.Fatalf("%q parsed, but its serialisation %q does not: %v", input, again, err)
		}
		for i := range parsed {
			if reparsed[i].label != parsed[i].label || !bytes.Equal(reparsed[i].params, parsed[i].params) {
				t.Fatalf("%q: got %s=%s after a round trip, want %s=%s", input, reparsed[i].label, reparsed[i].params, parsed[i].label, parsed[i].params)
			}
		}
	})
}

// TestTamperedBodyRefusedToJSONDecoder: a reader that stops at the end of a
// JSON value never makes the read that reports a mismatch at EOF, so a body
// that does not match its Content-Digest is refused before the response is
// handed on.
func TestTamperedBodyRefusedToJSONDecoder(t *testing.T) {
	t.Parallel()
	a := sigAlgorithms[0]
	p := startSigPeer(t, a.alg, a.gen)
	client := &http.Client{Transport: newTestTransport(t, p.cfg)}
	req, _ := http.NewRequest(http.MethodGet, p.peer.URL+"/accounts/1", nil)
	req.Header.Set("X-Peer-Tamper", "body")
	resp, err := client.Do(req)
	if err == nil {
		defer resp.Body.Close()
		var got struct{ Tampered bool }
		err = json.NewDecoder(resp.Body).Decode(&got)
		if err == nil && got.Tampered {
			t.Fatalf("got the altered body decoded without error (%+v), want ErrResponseSignature", got)
		}
	}
	if !errors.Is(err, ErrResponseSignature) {
		t.Fatalf("got %v, want ErrResponseSignature", err)
	}
}

// TestLargeBodyCheckedAsItIsRead: a body larger than what is checked whole
// is checked as it is read: a match reads through, a mismatch fails the
// read that reaches the end.
func TestLargeBodyCheckedAsItIsRead(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("x", maxEagerDigest+4096)
	sum := sha256.Sum256([]byte(body))
	field := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{{"match", body, true}, {"mismatch", body[:len(body)-1] + "y", false}} {
		resp := &http.Response{Header: http.Header{"Content-Digest": {field}}, Body: io.NopCloser(strings.NewReader(tc.body))}
		if err := armDigest(resp); err != nil {
			t.Fatalf("%s: armDigest: %v, want the check left to the reads", tc.name, err)
		}
		got, err := io.ReadAll(resp.Body)
		if tc.ok && (err != nil || string(got) != tc.body) {
			t.Errorf("%s: got %d bytes, %v; want the body and no error", tc.name, len(got), err)
		}
		if !tc.ok && !errors.Is(err, ErrResponseSignature) {
			t.Errorf("%s: got %d of %d bytes and %v, want ErrResponseSignature", tc.name, len(got), len(tc.body), err)
		}
	}
}

// TestContentDigestOfResponsesWithoutContent: a HEAD or 304 response may
// carry the Content-Digest of the content a GET or 200 would have (RFC 9110
// lets it carry their header fields), and a response without content has
// nothing to check against it: each is handed on, signature verified.
func TestContentDigestOfResponsesWithoutContent(t *testing.T) {
	t.Parallel()
	key := mustKey(t, sigAlgorithms[0].gen)
	srv := startSigServer(t, key.Public())
	srv.respond = func(_ int, r *http.Request) (int, string, string) {
		status, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		return status, `"@status" "content-digest" "@method";req "@target-uri";req`, `;created=NOW;keyid="server"`
	}
	client := &http.Client{Transport: newTestTransport(t, srv.config(t, key))}
	for _, tc := range []struct {
		method string
		status int
	}{{http.MethodHead, http.StatusOK}, {http.MethodGet, http.StatusNotModified}, {http.MethodGet, http.StatusNoContent}} {
		resp, _, err := do(t, client, tc.method, srv.url+"/"+strconv.Itoa(tc.status), "")
		if err != nil || resp.StatusCode != tc.status {
			t.Errorf("%s answered %d: got %v, %v; want the response", tc.method, tc.status, resp, err)
		}
	}
}

// TestResponseSignatureErrorHidesAnEchoedToken: a response whose signature
// parameters quote the token the request carried (as keyid, tag or alg)
// fails without the token in the error, which callers log.
func TestResponseSignatureErrorHidesAnEchoedToken(t *testing.T) {
	t.Parallel()
	key := mustKey(t, sigAlgorithms[0].gen)
	srv := startSigServer(t, key.Public())
	srv.respond = func(_ int, r *http.Request) (int, string, string) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		params := map[string]string{
			"/keyid": `;created=NOW;keyid="` + tok + `";tag="api"`,
			"/tag":   `;created=NOW;keyid="server";tag="` + tok + `"`,
			"/alg":   `;created=NOW;keyid="server";tag="api";alg="` + tok + `"`,
		}[r.URL.Path]
		return http.StatusOK, `"@status" "content-digest" "@method";req "@target-uri";req`, params
	}
	cfg := srv.config(t, key)
	tok := tokOpaque("echoed")
	cfg.Bearer.Store = NewMemoryStore(Token{Value: tok, Expiry: time.Now().Add(time.Hour)})
	cfg.Signatures.Responses.Tag = "api"
	client := &http.Client{Transport: newTestTransport(t, cfg)}
	for _, path := range []string{"/keyid", "/tag", "/alg"} {
		_, _, err := do(t, client, http.MethodGet, srv.url+path, "")
		if !errors.Is(err, ErrResponseSignature) {
			t.Errorf("%s: got %v, want ErrResponseSignature", path, err)
			continue
		}
		if strings.Contains(err.Error(), tok) {
			t.Errorf("%s: got %q, want an error without the token", path, err)
		}
	}
}

// TestBodyCutBeforeItsDigestIsCheckedSaysTheServerAnswered: a body that
// is cut off while it is read for its Content-Digest fails the request as
// response_body, not as a stream or connection that got no answer: the
// server did answer, and a POST must not look safe to send again. It is
// not retried, as the failed read of a larger body is not.
func TestBodyCutBeforeItsDigestIsCheckedSaysTheServerAnswered(t *testing.T) {
	t.Parallel()
	key := mustKey(t, sigAlgorithms[0].gen)
	srv := startSigServer(t, key.Public())
	client := &http.Client{Transport: newTestTransport(t, srv.config(t, key))}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		path := "/cut-" + strings.ToLower(method)
		req, _ := http.NewRequest(method, srv.url+path, strings.NewReader("{}"))
		req.Header.Set("X-Case", "cut-body")
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: got %d, want an error", method, resp.StatusCode)
			continue
		}
		if got := ErrorClass(err); got != "response_body" {
			t.Errorf("%s: ErrorClass(%v) = %q, want response_body", method, err, got)
		}
		if !strings.Contains(err.Error(), "answered 200") {
			t.Errorf("%s: got %q, want it to say the server answered 200", method, err)
		}
		if _, n := srv.last(path); n != 1 {
			t.Errorf("%s: the server got %d requests, want 1", method, n)
		}
	}
}
