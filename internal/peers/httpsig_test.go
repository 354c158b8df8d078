package peers

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"

	"github.com/securehttp/securehttp/internal/testpki"
)

// TestHTTPSigPeerRefusesUnsignedRequest starts the http-message-signatures
// peer and sends it a request without a signature: it answers 401, with a
// response it signed.
func TestHTTPSigPeerRefusesUnsignedRequest(t *testing.T) {
	t.Parallel()
	pki := newOIDCPKI(t)
	pemKey := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	clientPub, _, _ := ed25519.GenerateKey(rand.Reader)
	_, serverKey, _ := ed25519.GenerateKey(rand.Reader)
	spki, err := x509.MarshalPKIXPublicKey(clientPub)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(serverKey)
	if err != nil {
		t.Fatal(err)
	}
	peer := StartHTTPSig(t, HTTPSigConfig{
		CertPEM:   testpki.ChainPEM(pki.leaf),
		KeyPEM:    pki.leaf.KeyPEM(),
		ClientKey: HTTPSigKey{PEM: pemKey("PUBLIC KEY", spki), Alg: "ed25519", KeyID: "client"},
		ServerKey: HTTPSigKey{PEM: pemKey("PRIVATE KEY", pkcs8), Alg: "ed25519", KeyID: "server"},
	})
	resp, err := oidcClient(t, pki.root.Pool()).Get(peer.URL + "/resource")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Error string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnauthorized || out.Error == "" {
		t.Errorf("got %d %q, want 401 with an error", resp.StatusCode, out.Error)
	}
	if in := resp.Header.Get("Signature-Input"); !strings.HasPrefix(in, `sig1=("@status" "content-type" "content-digest" "@method";req "@target-uri";req);created=`) {
		t.Errorf("got Signature-Input %q, want the peer's signature over its response", in)
	}
}
