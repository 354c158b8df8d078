package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/securehttp/securehttp/internal/peers"
	"github.com/securehttp/securehttp/internal/testpki"
)

// TestGetSignsAndVerifies has get sign its request with --sign-key for the
// http-message-signatures peer, which verifies it, and verify the peer's
// signed response with --verify-key; a response the peer altered after
// signing fails, and so do the flags given without their partners.
func TestGetSignsAndVerifies(t *testing.T) {
	t.Parallel()
	p := sharedChain()
	clientKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serverKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der := func(b []byte, err error) []byte {
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	clientPKCS8 := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der(x509.MarshalPKCS8PrivateKey(clientKey))})
	clientSPKI := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der(x509.MarshalPKIXPublicKey(&clientKey.PublicKey))})
	serverPKCS8 := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der(x509.MarshalPKCS8PrivateKey(serverKey))})
	serverSPKI := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der(x509.MarshalPKIXPublicKey(&serverKey.PublicKey))})
	peer := peers.StartHTTPSig(t, peers.HTTPSigConfig{
		CertPEM:   testpki.ChainPEM(p.leaf, p.inter),
		KeyPEM:    p.leaf.KeyPEM(),
		ClientKey: peers.HTTPSigKey{PEM: clientSPKI, Alg: "ecdsa-p256-sha256", KeyID: "cli"},
		ServerKey: peers.HTTPSigKey{PEM: serverPKCS8, Alg: "ecdsa-p256-sha256", KeyID: "srv"},
	})
	rootPEM := writeFile(t, "root.pem", p.root.CertPEM(), 0o644)
	signKey := writeFile(t, "client.pem", clientPKCS8, 0o600)
	verifyKey := writeFile(t, "server.pem", serverSPKI, 0o644)
	wrongKey := writeFile(t, "wrong.pem", clientSPKI, 0o644)
	url := peer.URL + "/accounts"

	base := []string{"get", "--cacert", rootPEM, "--sign-key", signKey, "--sign-keyid", "cli"}
	code, out, errOut := runCmd(t, append(base, "--verify-key", verifyKey, "-d", `{"a":1}`, url)...)
	var got struct {
		Verified bool
		Covered  []string
	}
	if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil || !got.Verified {
		t.Fatalf("signed POST: got exit %d, %q (stderr %q), want 0 and the peer's verdict verified", code, out, errOut)
	}
	if want := []string{"@method", "@target-uri", "content-digest"}; strings.Join(got.Covered, " ") != strings.Join(want, " ") {
		t.Errorf("got covered %v, want %v", got.Covered, want)
	}

	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"altered status", append(base, "--verify-key", verifyKey, "-H", "X-Peer-Tamper: status", url), exitError},
		{"altered body", append(base, "--verify-key", verifyKey, "-H", "X-Peer-Tamper: body", url), exitError},
		{"another server key", append(base, "--verify-key", wrongKey, url), exitError},
		{"a keyid the peer does not know", []string{"get", "--fail", "--cacert", rootPEM, "--sign-key", signKey, "--sign-keyid", "who", url}, exitHTTP},
		{"--sign-key without --sign-keyid", []string{"get", "--cacert", rootPEM, "--sign-key", signKey, url}, exitUsage},
		{"--sign-keyid without --sign-key", []string{"get", "--cacert", rootPEM, "--sign-keyid", "cli", url}, exitUsage},
		{"--verify-key without --sign-key", []string{"get", "--cacert", rootPEM, "--verify-key", verifyKey, url}, exitUsage},
		{"--sign-key holding a public key", []string{"get", "--cacert", rootPEM, "--sign-key", verifyKey, "--sign-keyid", "cli", url}, exitUsage},
	} {
		code, out, errOut := runCmd(t, tc.args...)
		if code != tc.want || errOut == "" {
			t.Errorf("%s: got exit %d, stdout %q, stderr %q; want %d and an error", tc.name, code, out, errOut, tc.want)
		}
	}
}

// TestGetSignKeyFileCheckedAsClientKey: --sign-key is a private key like
// --client-key, and its file is held to the same rules: one that others
// may read, or a FIFO that no process writes to, is a usage error before
// any connection, never used or waited for.
func TestGetSignKeyFileCheckedAsClientKey(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	open := writeFile(t, "open.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o644)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"readable by others", open, "chmod 600"},
		{"FIFO without a writer", fifo, "FIFO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			var code int
			var errOut string
			go func() {
				defer close(done)
				code, _, errOut = runCmd(t, "get", "--sign-key", tc.path, "--sign-keyid", "k", "https://127.0.0.1:1/")
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				// Let the command go on and end, leaving no goroutine.
				if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
				<-done
				t.Fatalf("get waited for a writer of the FIFO, want a usage error at once")
			}
			if code != exitUsage || !strings.Contains(errOut, "--sign-key") || !strings.Contains(errOut, tc.want) {
				t.Errorf("got exit %d and stderr %q, want %d naming --sign-key and %q", code, errOut, exitUsage, tc.want)
			}
		})
	}
}
