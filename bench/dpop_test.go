package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkDPoP measures what DPoP (RFC 9449) adds to a keep-alive GET.
// Four operations run in alternating blocks, so that load from elsewhere
// falls on all alike:
//
//   - bearer: securehttp with a bearer token;
//   - dpop: the same securehttp with Bearer.DPoP (a P-256 key);
//   - diy: bare net/http whose caller builds each proof with jwt/v5, as a
//     user without DPoP support in their client would write it;
//   - sign: one crypto/ecdsa P-256 signature of a SHA-256 digest, the
//     physical limit of a proof.
//
// It reports each one's time per operation, added-ns/op (dpop − bearer),
// added-÷-sign (the target: ≤ 1.25), added-allocs/op (dpop − bearer, the
// target: ≤ 30), sign-allocs/op (what one crypto/ecdsa signature allocates
// by itself) and dpop-÷-diy. Allocations are counted over whole blocks
// with runtime.ReadMemStats, outside the timed part.
func BenchmarkDPoP(b *testing.B) {
	f := server(b)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tok := longJWT(time.Now())
	bearer := f.secureClient(b, secureOptions{token: tok, refresh: refuseRefresh})
	dpop := f.secureClient(b, secureOptions{token: tok, refresh: refuseRefresh, dpop: key})
	diy := &http.Client{Transport: f.baseTransport()}
	defer bearer.CloseIdleConnections()
	defer dpop.CloseIdleConnections()
	defer diy.CloseIdleConnections()
	builder := newDIYProofs(key, tok)

	for _, proto := range []struct{ name, host string }{{"h1", hostH1}, {"h2", hostH2}} {
		url := "https://" + proto.host + "/get"
		b.Run("proto="+proto.name+"/conc=1", func(b *testing.B) {
			ctx := b.Context()
			digest := sha256.Sum256([]byte("proof"))
			ops := []func() error{
				func() error { return getWith(ctx, bearer, url, nil) },
				func() error { return getWith(ctx, dpop, url, nil) },
				func() error { return getWith(ctx, diy, url, builder.set) },
				func() error { _, err := ecdsa.SignASN1(rand.Reader, key, digest[:]); return err },
			}
			for _, op := range ops {
				if err := op(); err != nil { // the connections, before the timer starts
					b.Fatal(err)
				}
			}
			var wall [4]time.Duration
			var mallocs [4]uint64
			var ms runtime.MemStats
			const block = 64
			b.ResetTimer()
			for done, round := 0, 0; done < b.N; round++ {
				n := min(block, b.N-done)
				for k := range ops {
					i := (k + round) % len(ops) // rotate the order every round
					runtime.ReadMemStats(&ms)
					before := ms.Mallocs
					start := time.Now()
					for range n {
						if err := ops[i](); err != nil {
							b.Fatal(err)
						}
					}
					wall[i] += time.Since(start)
					runtime.ReadMemStats(&ms)
					mallocs[i] += ms.Mallocs - before
				}
				done += n
			}
			b.StopTimer()
			per := func(d time.Duration) float64 { return float64(d) / float64(b.N) }
			added := per(wall[1]) - per(wall[0])
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(per(wall[0]), "bearer-ns/op")
			b.ReportMetric(per(wall[1]), "dpop-ns/op")
			b.ReportMetric(per(wall[2]), "diy-ns/op")
			b.ReportMetric(per(wall[3]), "sign-ns/op")
			b.ReportMetric(added, "added-ns/op")
			b.ReportMetric(added/per(wall[3]), "added-÷-sign")
			b.ReportMetric((float64(mallocs[1])-float64(mallocs[0]))/float64(b.N), "added-allocs/op")
			// crypto/ecdsa's own allocations for one signature (its hedged
			// nonce's HMAC-DRBG): the part of added-allocs/op that no proof
			// builder can avoid with a P-256 key.
			b.ReportMetric(float64(mallocs[3])/float64(b.N), "sign-allocs/op")
			b.ReportMetric(float64(wall[1])/float64(wall[2]), "dpop-÷-diy")
		})
	}
}

// BenchmarkDPoPProofDIY is proof creation alone, written with jwt/v5 as a
// user would write it: compare with BenchmarkDPoPProof in the securehttp
// package, the library's own proof.
func BenchmarkDPoPProofDIY(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	p := newDIYProofs(key, longJWT(time.Now()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.proof(http.MethodGet, "https://api.example.com/v1/things"); err != nil {
			b.Fatal(err)
		}
	}
}

// getWith sends a GET through hc, letting prepare add headers first.
func getWith(ctx context.Context, hc *http.Client, url string, prepare func(*http.Request) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if prepare != nil {
		if err := prepare(req); err != nil {
			return err
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	return drain(resp)
}

// diyProofs builds DPoP proofs with jwt/v5 and its own ES256, a JWK map
// in the header and MapClaims: the straightforward way.
type diyProofs struct {
	key   *ecdsa.PrivateKey
	jwk   map[string]any
	token string
	ath   string
}

func newDIYProofs(key *ecdsa.PrivateKey, token string) *diyProofs {
	pub, _ := key.PublicKey.ECDH()
	pt := pub.Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	sum := sha256.Sum256([]byte(token))
	return &diyProofs{
		key:   key,
		jwk:   map[string]any{"kty": "EC", "crv": "P-256", "x": enc(pt[1:33]), "y": enc(pt[33:])},
		token: token,
		ath:   enc(sum[:]),
	}
}

func (p *diyProofs) proof(method, htu string) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"jti": rand.Text(),
		"htm": method,
		"htu": htu,
		"iat": time.Now().Unix(),
		"ath": p.ath,
	})
	t.Header["typ"] = "dpop+jwt"
	t.Header["jwk"] = p.jwk
	return t.SignedString(p.key)
}

// set adds the token and a new proof to req.
func (p *diyProofs) set(req *http.Request) error {
	proof, err := p.proof(req.Method, fmt.Sprintf("https://%s%s", req.URL.Host, req.URL.Path))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "DPoP "+p.token)
	req.Header.Set("DPoP", proof)
	return nil
}
