package securehttp_test

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/secrettest"
	"github.com/securehttp/securehttp/securehttptest"
)

// TestExportedTypesPrintNoSecret checks every exported struct type of the
// package: none prints a token, a client secret or a private key through
// fmt, slog or encoding/json, alone or held in another struct.
func TestExportedTypesPrintNoSecret(t *testing.T) {
	t.Parallel()
	// Canaries, and keys made of them.
	var (
		tokenValue   = secrettest.Canary("token", 40)
		clientSecret = secrettest.Canary("client-secret", 32)
		assertionKey = secrettest.Canary("assertion-key", ed25519.SeedSize)
		dpopKey      = secrettest.Canary("dpop-key", ed25519.SeedSize)
		signatureKey = secrettest.Canary("signature-key", ed25519.SeedSize)
	)
	token := func() securehttp.Token {
		return securehttp.Token{Value: tokenValue, Expiry: time.Now().Add(time.Hour)}
	}
	credentials := func() *securehttp.ClientCredentials {
		return &securehttp.ClientCredentials{
			Issuer:       "https://issuer.test",
			ClientID:     "client",
			Key:          ed25519.NewKeyFromSeed([]byte(assertionKey)),
			ClientSecret: clientSecret,
		}
	}
	dpop := func() *securehttp.DPoP {
		return &securehttp.DPoP{Key: ed25519.NewKeyFromSeed([]byte(dpopKey))}
	}
	bearer := func() *securehttp.Bearer {
		return &securehttp.Bearer{
			Store:             securehttp.NewMemoryStore(token()),
			ClientCredentials: credentials(),
			DPoP:              dpop(),
			Hosts:             []string{"api.test"},
		}
	}
	bearerSecrets := []string{tokenValue, clientSecret, assertionKey, dpopKey}
	signatures := func() *securehttp.MessageSignatures {
		return &securehttp.MessageSignatures{
			Key: ed25519.NewKeyFromSeed([]byte(signatureKey)), KeyID: "client", Hosts: []string{"api.test"},
			Responses: &securehttp.ResponseSignatures{Required: true},
		}
	}
	// A grant's assertions are made by functions that hold the secrets:
	// a signing key, or a token read elsewhere.
	var (
		grantKey     = secrettest.Canary("grant-key", ed25519.SeedSize)
		subjectToken = secrettest.Canary("subject-token", 40)
		extraClaim   = secrettest.Canary("extra-claim", 24)
	)
	claims := securehttp.AssertionClaims{Issuer: "svc", Subject: "svc", Extra: map[string]any{"tenant": extraClaim}}
	signed := securehttp.SignedAssertion(ed25519.NewKeyFromSeed([]byte(grantKey)), claims)
	grantClient := func() *securehttp.ClientCredentials {
		return &securehttp.ClientCredentials{ClientID: "client", ClientSecret: clientSecret}
	}
	// clientCert loads a client certificate of the test kit whose Ed25519
	// key is made of a canary, returned as its secret.
	clientCert := func(t *testing.T) (*securehttp.ClientCert, string) {
		seed := secrettest.Canary("client-key", ed25519.SeedSize)
		certFile, keyFile := securehttptest.NewCA(t).Issue(t, securehttptest.Key(ed25519.NewKeyFromSeed([]byte(seed)))).Files(t)
		cc, err := securehttp.LoadClientCert(certFile, keyFile)
		if err != nil {
			t.Fatalf("LoadClientCert: %v", err)
		}
		t.Cleanup(func() { _ = cc.Close() })
		return cc, seed
	}

	secrettest.Package{
		Dir: ".",
		Samples: map[string]func(t *testing.T) secrettest.Sample{
			"Token": func(*testing.T) secrettest.Sample {
				return secrettest.Sample{Value: token(), Secrets: []string{tokenValue}}
			},
			"ClientCredentials": func(*testing.T) secrettest.Sample {
				return secrettest.Sample{Value: credentials(), Secrets: []string{clientSecret, assertionKey}}
			},
			"DPoP": func(*testing.T) secrettest.Sample {
				return secrettest.Sample{Value: dpop(), Secrets: []string{dpopKey}}
			},
			"MemoryStore": func(*testing.T) secrettest.Sample {
				return secrettest.Sample{Value: securehttp.NewMemoryStore(token()), Secrets: []string{tokenValue}}
			},
			"Bearer": func(*testing.T) secrettest.Sample {
				return secrettest.Sample{Value: bearer(), Secrets: bearerSecrets}
			},
			"MessageSignatures": func(*testing.T) secrettest.Sample {
				return secrettest.Sample{Value: signatures(), Secrets: []string{signatureKey}}
			},
			"AssertionClaims": func(*testing.T) secrettest.Sample {
				return secrettest.Sample{Value: claims, Secrets: []string{extraClaim}}
			},
			"JWTBearer": func(*testing.T) secrettest.Sample {
				b := &securehttp.JWTBearer{Issuer: "https://issuer.test", Assertion: signed, Client: grantClient()}
				return secrettest.Sample{Value: b, Secrets: []string{grantKey, clientSecret}}
			},
			"TokenExchange": func(*testing.T) secrettest.Sample {
				e := &securehttp.TokenExchange{Issuer: "https://issuer.test", Client: grantClient(),
					SubjectToken: func(context.Context) (string, error) { return subjectToken, nil }, ActorToken: signed}
				return secrettest.Sample{Value: e, Secrets: []string{subjectToken, grantKey, clientSecret}}
			},
			"ClientCert": func(t *testing.T) secrettest.Sample {
				cc, key := clientCert(t)
				return secrettest.Sample{Value: cc, Secrets: []string{key}}
			},
			"Config": func(t *testing.T) secrettest.Sample {
				cc, key := clientCert(t)
				cfg := securehttp.Config{Bearer: bearer(), GetClientCertificate: cc.GetClientCertificate, Signatures: signatures()}
				return secrettest.Sample{Value: cfg, Secrets: append(bearerSecrets, key, signatureKey)}
			},
		},
		NoSecret: map[string]string{
			"AttemptEvent":       "a method, a URL without userinfo or query, a status, an error class and durations",
			"ConfigError":        "a field's name, its value only when it is not a secret, and the cause",
			"FileStore":          "the token file's path: the token stays in the file",
			"HandshakeEvent":     "a host, a TLS version, a pin verdict and an error class",
			"Hooks":              "functions, which print as addresses, and a logger",
			"OAuthError":         "the authorization server's error response, cleaned of any credential it echoes",
			"PinError":           "a host and public pins",
			"PinSet":             "a host pattern and public pins",
			"RefreshError":       "its cause, an error, and errors never hold a secret",
			"ResponseSignatures": "a function that returns public keys, a tag, component names and a duration",
			"RetryPolicy":        "counts, durations and a share",
			"TokenEvent":         "the token endpoint's URL, a status, an error class and a duration",
		},
	}.Check(t)

	// The client NewClient returns holds all of the above.
	cc, key := clientCert(t)
	b := bearer()
	b.ClientCredentials.Key = nil // one way to authenticate
	client, err := securehttp.NewClient(securehttp.Config{Bearer: b, GetClientCertificate: cc.GetClientCertificate})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(client.CloseIdleConnections)
	secrettest.Check(t, client, tokenValue, clientSecret, dpopKey, key)
}
