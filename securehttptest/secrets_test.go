package securehttptest

import (
	"crypto/ecdsa"
	"os"
	"testing"

	"github.com/securehttp/securehttp/internal/secrettest"
)

// TestExportedTypesPrintNoSecret checks every exported struct type of the
// package: none prints a private key, the client's secret or a JWT of a
// token file through fmt, slog or encoding/json, alone or held in another
// struct.
func TestExportedTypesPrintNoSecret(t *testing.T) {
	t.Parallel()
	keyBytes := func(t *testing.T, k any) string {
		t.Helper()
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			t.Fatalf("got a %T key, want ECDSA", k)
		}
		b, err := ec.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	caSecrets := func(t *testing.T, ca *CA) []string {
		return []string{keyBytes(t, ca.root.Key), keyBytes(t, ca.inter.Key), keyBytes(t, ca.other.Key)}
	}
	serverSecrets := func(t *testing.T, s *Server) []string {
		return append(caSecrets(t, s.s.ca), keyBytes(t, s.s.cert.Load().leaf.Key))
	}
	secrettest.Package{
		Dir: ".",
		Samples: map[string]func(t *testing.T) secrettest.Sample{
			"CA": func(t *testing.T) secrettest.Sample {
				ca := NewCA(t)
				return secrettest.Sample{Value: ca, Secrets: caSecrets(t, ca)}
			},
			"Cert": func(t *testing.T) secrettest.Sample {
				c := NewCA(t).Issue(t, StapleOCSP())
				return secrettest.Sample{Value: c, Secrets: []string{keyBytes(t, c.leaf.Key), keyBytes(t, c.issuer.Key)}}
			},
			"Server": func(t *testing.T) secrettest.Sample {
				s := NewServer(t, nil, WithCA(NewCA(t)))
				return secrettest.Sample{Value: s, Secrets: serverSecrets(t, s)}
			},
			"AuthServer": func(t *testing.T) secrettest.Sample {
				as := NewAuthServer(t, WithCA(NewCA(t)))
				return secrettest.Sample{Value: as, Secrets: append(serverSecrets(t, as.Server),
					keyBytes(t, as.a.key), keyBytes(t, as.a.client.key), as.a.client.secret)}
			},
			"Issuer": func(t *testing.T) secrettest.Sample {
				iss := NewIssuer(t, "https://issuer.test")
				return secrettest.Sample{Value: iss, Secrets: []string{keyBytes(t, iss.key)}}
			},
			"TokenFile": func(t *testing.T) secrettest.Sample {
				iss := NewIssuer(t, "https://issuer.test")
				f := iss.TokenFile(t, "system:serviceaccount:default:app", "https://auth.test")
				token, err := os.ReadFile(f.Path)
				if err != nil {
					t.Fatal(err)
				}
				return secrettest.Sample{Value: f, Secrets: []string{keyBytes(t, iss.key), string(token)}}
			},
		},
		NoSecret: map[string]string{
			"Claims": "the claims of a token, which are not the token: its signature is not among them",
			"Counts": "counts of requests",
			"Option": "a name and a function, which prints as an address",
		},
	}.Check(t)
}
