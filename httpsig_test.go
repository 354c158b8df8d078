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
	"crypto/x509"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
		if err := armDigest(resp); err != nil {
			t.Fatalf("%q: %v", tc.field, err)
		}
		got, err := io.ReadAll(resp.Body)
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
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("X-Peer-Tamper", "body")
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("body: %v: the signature holds, the content does not", err)
				}
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if !errors.Is(err, ErrResponseSignature) {
					t.Errorf("body: got read error %v, want ErrResponseSignature", err)
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
