package bench

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/securehttp/securehttp"
)

// BenchmarkSignatures measures what HTTP Message Signatures (RFC 9421) add
// to a keep-alive GET with a bearer token. Four operations run in
// alternating blocks, so that load from elsewhere falls on all alike:
//
//   - bearer: securehttp with a bearer token;
//   - signed: the same securehttp with Config.Signatures (the FAPI 2.0
//     defaults: @method, @target-uri, authorization; created, keyid);
//   - bare: bare net/http sending the same token and a Signature-Input and
//     a Signature of the same sizes, fresh values each time so that HPACK
//     cannot index them: the wire's cost of the fields, apart from signing;
//   - sign: one signature with the same key over a base of the same size,
//     the physical limit.
//
// It reports each one's time per operation, added-ns/op (signed − bare),
// added-÷-sign (the target: ≤ 1.1), added-allocs/op (signed − bare, the
// target: ≤ sign-allocs/op + 15), sign-allocs/op and, for reference,
// over-bearer-ns/op (signed − bearer). Allocations are counted over whole
// blocks with runtime.ReadMemStats, outside the timed part.
func BenchmarkSignatures(b *testing.B) {
	f := server(b)
	tok := longJWT(time.Now())
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range []struct {
		name string
		key  crypto.Signer
		sign func(base []byte) error
	}{
		{"ed25519", ed, func(base []byte) error { _ = ed25519.Sign(ed, base); return nil }},
		{"p256", p256, func(base []byte) error {
			d := sha256.Sum256(base)
			_, err := ecdsa.SignASN1(rand.Reader, p256, d[:])
			return err
		}},
	} {
		bearer := f.secureClient(b, secureOptions{token: tok, refresh: refuseRefresh})
		signed := signingClient(b, f, tok, k.key)
		bare := &http.Client{Transport: f.baseTransport()}
		for _, proto := range []struct{ name, host string }{{"h1", hostH1}, {"h2", hostH2}} {
			url := "https://" + proto.host + "/get"
			// The sizes of our fields: the base is as long as the one the
			// client signs.
			input := `sig1=("@method" "@target-uri" "authorization");created=` + strconv.FormatInt(time.Now().Unix(), 10) + `;keyid="bench-key"`
			base := make([]byte, len(`"@method": GET`+"\n"+`"@target-uri": `+url+"\n"+`"authorization": Bearer `+tok+"\n"+`"@signature-params": `)+len(input)-len("sig1="))
			sigLen := len("sig1=:") + base64.StdEncoding.EncodedLen(64) + 1
			fields := newFreshFields(len(input), sigLen)
			b.Run("key="+k.name+"/proto="+proto.name+"/conc=1", func(b *testing.B) {
				ctx := b.Context()
				ops := []func() error{
					func() error { return getWith(ctx, bearer, url, nil) },
					func() error { return getWith(ctx, signed, url, nil) },
					func() error {
						return getWith(ctx, bare, url, func(req *http.Request) error {
							req.Header["Authorization"] = []string{"Bearer " + tok}
							fields.set(req.Header)
							return nil
						})
					},
					func() error { return k.sign(base) },
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
					for j := range ops {
						i := (j + round) % len(ops) // rotate the order every round
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
				added := per(wall[1]) - per(wall[2])
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(per(wall[0]), "bearer-ns/op")
				b.ReportMetric(per(wall[1]), "signed-ns/op")
				b.ReportMetric(per(wall[2]), "bare-ns/op")
				b.ReportMetric(per(wall[3]), "sign-ns/op")
				b.ReportMetric(added, "added-ns/op")
				b.ReportMetric(added/per(wall[3]), "added-÷-sign")
				b.ReportMetric(per(wall[1])-per(wall[0]), "over-bearer-ns/op")
				b.ReportMetric((float64(mallocs[1])-float64(mallocs[2]))/float64(b.N), "added-allocs/op")
				b.ReportMetric(float64(mallocs[3])/float64(b.N), "sign-allocs/op")
			})
		}
		bearer.CloseIdleConnections()
		signed.CloseIdleConnections()
		bare.CloseIdleConnections()
	}
}

// signingClient is secureClient's configuration with Config.Signatures.
func signingClient(b *testing.B, f *fixture, tok string, key crypto.Signer) *http.Client {
	b.Helper()
	hc, err := securehttp.NewClient(securehttp.Config{
		RootCAs: f.roots,
		Bearer: &securehttp.Bearer{
			Store:   securehttp.NewMemoryStore(securehttp.Token{Value: tok}),
			Refresh: valueRefresh(refuseRefresh),
			Hosts:   []string{hostH1, hostH2, hostFull},
		},
		Signatures:          &securehttp.MessageSignatures{Key: key, KeyID: "bench-key"},
		Proxy:               noProxy,
		DialContext:         f.dial,
		MaxIdleConnsPerHost: poolSize,
	})
	if err != nil {
		b.Fatal(err)
	}
	return hc
}

// freshFields makes a Signature-Input and a Signature of given lengths
// whose values differ on every request, as signatures do.
type freshFields struct {
	input, sig []byte
	rnd        [48]byte
}

func newFreshFields(inputLen, sigLen int) *freshFields {
	return &freshFields{input: make([]byte, inputLen), sig: make([]byte, sigLen)}
}

// set puts fresh values in h, allocating their strings as a signer does.
func (f *freshFields) set(h http.Header) {
	_, _ = rand.Read(f.rnd[:])
	enc := base64.StdEncoding
	for _, dst := range [][]byte{f.input, f.sig} {
		for i := 0; i < len(dst); i += enc.EncodedLen(len(f.rnd)) {
			var tmp [64]byte
			enc.Encode(tmp[:], f.rnd[:])
			copy(dst[i:], tmp[:])
			f.rnd[0]++
		}
	}
	h["Signature-Input"] = []string{string(f.input)}
	h["Signature"] = []string{string(f.sig)}
}

// BenchmarkSignColdCache measures one signature whose key tables and code
// were evicted from the CPU caches first, as they are after a request has
// gone through TLS, HTTP and the server, against the same signature in a
// tight loop (BenchmarkSignatures' sign-ns/op): cold-÷-warm is the share of
// added-÷-sign that comes from the caches, not from any code of ours. The
// eviction (walking 8 MiB) is timed alone and subtracted.
func BenchmarkSignColdCache(b *testing.B) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	base := make([]byte, 1200)
	evict := make([]byte, 8<<20)
	walk := func() {
		for i := 0; i < len(evict); i += 64 {
			evict[i]++
		}
	}
	for _, k := range []struct {
		name string
		sign func()
	}{
		{"ed25519", func() { _ = ed25519.Sign(ed, base) }},
		{"p256", func() { d := sha256.Sum256(base); _, _ = ecdsa.SignASN1(rand.Reader, p256, d[:]) }},
	} {
		b.Run("key="+k.name, func(b *testing.B) {
			ops := []func(){walk, func() { walk(); k.sign() }, k.sign}
			var wall [3]time.Duration
			const block = 32
			for done, round := 0, 0; done < b.N; round++ {
				n := min(block, b.N-done)
				for j := range ops {
					i := (j + round) % len(ops)
					start := time.Now()
					for range n {
						ops[i]()
					}
					wall[i] += time.Since(start)
				}
				done += n
			}
			per := func(d time.Duration) float64 { return float64(d) / float64(b.N) }
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(per(wall[2]), "warm-ns/op")
			b.ReportMetric(per(wall[1])-per(wall[0]), "cold-ns/op")
			b.ReportMetric((per(wall[1])-per(wall[0]))/per(wall[2]), "cold-÷-warm")
		})
	}
}
