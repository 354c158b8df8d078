// Command zitadel-peer runs zitadel/oidc's example OpenID provider
// (example/server/exampleop, on pkg/op) as an OAuth 2.0 authorization
// server on https://127.0.0.1:PORT for the tests of securehttp (see
// StartZitadel in ../zitadel.go). It is a module of its own, so that
// zitadel's dependencies stay out of securehttp's go.mod.
//
// Usage: zitadel-peer CONFIG.json
//
// The provider is the example's, with its in-memory storage. The storage is
// extended, as an integrator of pkg/op extends it, so that:
//   - token exchange (RFC 8693) accepts a JWT from outside as the subject
//     or actor token (op.TokenExchangeTokensVerifierStorage), verified
//     against subjectJWKS with subjectIssuer and subjectAudience, with no
//     clock leeway, and issues access tokens (JWTs) or ID tokens;
//   - the JWT profile grant (RFC 7523 section 2.1) knows the service
//     accounts of profileKeys (client_id, iss = sub, to a JWKS) and issues
//     JWT access tokens;
//   - the client clientID/clientSecret (client_secret_basic) gets JWT
//     access tokens, which a resource server verifies against /keys.
//
// Once it listens it prints "READY <port>" to stdout. Each subject token it
// accepts is logged to stderr as "zitadel-peer: subject sub=SUB exp=EXP
// now=NOW"; nothing secret is logged. SIGTERM stops it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

type config struct {
	Port            int                           `json:"port"`
	Issuer          string                        `json:"issuer"`
	CertFile        string                        `json:"certFile"`
	KeyFile         string                        `json:"keyFile"`
	ClientID        string                        `json:"clientID"`
	ClientSecret    string                        `json:"clientSecret"`
	SubjectIssuer   string                        `json:"subjectIssuer"`
	SubjectAudience string                        `json:"subjectAudience"`
	SubjectJWKS     jose.JSONWebKeySet            `json:"subjectJWKS"`
	ProfileKeys     map[string]jose.JSONWebKeySet `json:"profileKeys"`
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: zitadel-peer CONFIG.json")
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("read configuration: %v", err)
	}
	var cfg config
	if err := json.Unmarshal(data, &cfg); err != nil {
		fail("configuration: %v", err)
	}
	if cfg.Port <= 0 || cfg.Issuer == "" || cfg.CertFile == "" || cfg.KeyFile == "" || cfg.ClientID == "" || cfg.ClientSecret == "" {
		fail("configuration: port, issuer, certFile, keyFile, clientID and clientSecret are required")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	storage.RegisterClients(storage.WebClient(cfg.ClientID, cfg.ClientSecret))
	st := &store{Storage: storage.NewStorage(storage.NewUserStore(cfg.Issuer)), cfg: &cfg}
	router := exampleop.SetupServer(cfg.Issuer, st, logger, false)

	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port)))
	if err != nil {
		fail("listen: %v", err)
	}
	srv := &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	fmt.Printf("READY %d\n", cfg.Port)
	if err := srv.ServeTLS(ln, cfg.CertFile, cfg.KeyFile); !errors.Is(err, http.ErrServerClosed) {
		fail("serve: %v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "zitadel-peer: "+format+"\n", args...)
	os.Exit(2)
}

// store is the example's storage with what an integrator adds to accept
// tokens and keys from outside.
type store struct {
	*storage.Storage
	cfg *config
}

// jwtClient is a client of the example whose access tokens are JWTs.
type jwtClient struct{ op.Client }

func (jwtClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

func (s *store) GetClientByClientID(ctx context.Context, clientID string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, clientID)
	if err != nil || clientID != s.cfg.ClientID {
		return c, err
	}
	return jwtClient{c}, nil
}

var algs = []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.ES384, jose.EdDSA}

// verify checks an outside JWT: its signature by a key of subjectJWKS, its
// issuer, audience and lifetime, with no leeway.
func (s *store) verify(token string) (josejwt.Claims, map[string]any, error) {
	var claims josejwt.Claims
	all := map[string]any{}
	tok, err := josejwt.ParseSigned(token, algs)
	if err != nil || len(tok.Headers) != 1 {
		return claims, nil, errors.New("not a signed JWT")
	}
	keys := s.cfg.SubjectJWKS.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		return claims, nil, errors.New("unknown key")
	}
	if err := tok.Claims(keys[0].Key, &claims, &all); err != nil {
		return claims, nil, err
	}
	now := time.Now()
	err = claims.ValidateWithLeeway(josejwt.Expected{Issuer: s.cfg.SubjectIssuer,
		AnyAudience: josejwt.Audience{s.cfg.SubjectAudience}, Time: now}, 0)
	if err != nil {
		return claims, nil, err
	}
	if claims.Expiry == nil || claims.Subject == "" {
		return claims, nil, errors.New("no exp or sub")
	}
	fmt.Fprintf(os.Stderr, "zitadel-peer: subject sub=%s exp=%d now=%.3f\n", claims.Subject, claims.Expiry.Time().Unix(),
		float64(now.UnixNano())/1e9)
	return claims, all, nil
}

// VerifyExchangeSubjectToken implements op.TokenExchangeTokensVerifierStorage.
func (s *store) VerifyExchangeSubjectToken(_ context.Context, token string, tokenType oidc.TokenType) (string, string, map[string]any, error) {
	if tokenType != oidc.JWTTokenType {
		return "", "", nil, errors.New("not a JWT")
	}
	claims, all, err := s.verify(token)
	if err != nil {
		return "", "", nil, err
	}
	return claims.ID, claims.Subject, all, nil
}

// VerifyExchangeActorToken implements op.TokenExchangeTokensVerifierStorage.
func (s *store) VerifyExchangeActorToken(ctx context.Context, token string, tokenType oidc.TokenType) (string, string, map[string]any, error) {
	return s.VerifyExchangeSubjectToken(ctx, token, tokenType)
}

// ValidateTokenExchangeRequest accepts a verified outside subject: the
// example's own check looks the subject up among its users.
func (s *store) ValidateTokenExchangeRequest(ctx context.Context, req op.TokenExchangeRequest) error {
	if req.GetExchangeSubjectTokenType() != oidc.JWTTokenType {
		return s.Storage.ValidateTokenExchangeRequest(ctx, req)
	}
	if req.GetRequestedTokenType() == "" {
		req.SetRequestedTokenType(oidc.AccessTokenType)
	}
	return nil
}

// SetUserinfoFromTokenExchangeRequest makes an ID token for an outside
// subject, whom the example's user store does not know.
func (s *store) SetUserinfoFromTokenExchangeRequest(ctx context.Context, info *oidc.UserInfo, req op.TokenExchangeRequest) error {
	if req.GetExchangeSubjectTokenType() != oidc.JWTTokenType {
		return s.Storage.SetUserinfoFromTokenExchangeRequest(ctx, info, req)
	}
	info.Subject = req.GetSubject()
	return nil
}

// GetKeyByIDAndClientID gives the keys of the service accounts of
// profileKeys to the JWT profile grant.
func (s *store) GetKeyByIDAndClientID(ctx context.Context, keyID, clientID string) (*jose.JSONWebKey, error) {
	set, ok := s.cfg.ProfileKeys[clientID]
	if !ok {
		return s.Storage.GetKeyByIDAndClientID(ctx, keyID, clientID)
	}
	keys := set.Key(keyID)
	if len(keys) != 1 {
		return nil, errors.New("key not found")
	}
	return &keys[0], nil
}

// ValidateJWTProfileScopes grants the service accounts of profileKeys the
// scopes they ask for.
func (s *store) ValidateJWTProfileScopes(ctx context.Context, userID string, scopes []string) ([]string, error) {
	if _, ok := s.cfg.ProfileKeys[userID]; !ok {
		return s.Storage.ValidateJWTProfileScopes(ctx, userID, scopes)
	}
	return scopes, nil
}

// JWTProfileTokenType implements op.JWTProfileTokenStorage: JWT access
// tokens, which a resource server verifies against /keys.
func (s *store) JWTProfileTokenType(context.Context, op.TokenRequest) (op.AccessTokenType, error) {
	return op.AccessTokenTypeJWT, nil
}
