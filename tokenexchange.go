package securehttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
)

// TokenExchange obtains tokens with OAuth 2.0 token exchange (RFC 8693):
// SubjectToken, of SubjectTokenType (zero: a JWT), is traded for a token of
// RequestedTokenType (zero: an access token; or a JWT or an ID token).
// Issuer, TokenURL and Client are as in JWTBearer.
type TokenExchange struct {
	Issuer, TokenURL           string
	SubjectToken               Assertion `json:"-"` // required
	SubjectTokenType           string
	ActorToken                 Assertion `json:"-"` // optional, with ActorTokenType
	ActorTokenType             string
	Audience, Resource, Scopes []string
	RequestedTokenType         string
	Client                     *ClientCredentials
}

// Format prints e as ClientCredentials prints itself, whatever the verb.
func (e TokenExchange) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "securehttp.TokenExchange{Issuer: %q, TokenURL: %q, SubjectTokenType: %q, Audience: %q, Scopes: %q, RequestedTokenType: %q, Client: %v}",
		shownURL(e.Issuer), shownURL(e.TokenURL), e.SubjectTokenType, e.Audience, e.Scopes, e.RequestedTokenType, e.Client)
}

// MarshalJSON encodes e as Format shows it.
func (e TokenExchange) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Issuer             string             `json:"issuer,omitempty"`
		TokenURL           string             `json:"token_url,omitempty"`
		SubjectTokenType   string             `json:"subject_token_type,omitempty"`
		Audience           []string           `json:"audience,omitempty"`
		Scopes             []string           `json:"scopes,omitempty"`
		RequestedTokenType string             `json:"requested_token_type,omitempty"`
		Client             *ClientCredentials `json:"client,omitempty"`
	}{shownURL(e.Issuer), shownURL(e.TokenURL), e.SubjectTokenType, e.Audience, e.Scopes, e.RequestedTokenType, e.Client})
}

// Token type identifiers of RFC 8693 section 3.
const (
	grantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeAccess        = "urn:ietf:params:oauth:token-type:access_token"
	tokenTypeJWT           = "urn:ietf:params:oauth:token-type:jwt"
	tokenTypeIDToken       = "urn:ietf:params:oauth:token-type:id_token"
)

// checkTokenExchange checks e and returns its token client, not yet
// connected to a transport.
func checkTokenExchange(e *TokenExchange, haveClientCert bool) (*tokenClient, error) {
	const field = "Bearer.TokenExchange"
	tc, err := checkEndpoint(field, e.Issuer, e.TokenURL, haveClientCert)
	if err != nil {
		return nil, err
	}
	if e.SubjectToken == nil {
		return nil, &ConfigError{Field: field + ".SubjectToken", Err: errors.New("required")}
	}
	subjectType := e.SubjectTokenType
	if subjectType == "" {
		subjectType = tokenTypeJWT
	}
	if err := checkTokenType(field+".SubjectTokenType", subjectType); err != nil {
		return nil, err
	}
	if (e.ActorToken == nil) != (e.ActorTokenType == "") {
		return nil, &ConfigError{Field: field + ".ActorTokenType", Err: errors.New("set with ActorToken, and only then (RFC 8693 section 2.1)")}
	}
	if e.ActorToken != nil {
		if err := checkTokenType(field+".ActorTokenType", e.ActorTokenType); err != nil {
			return nil, err
		}
	}
	switch e.RequestedTokenType {
	case "", tokenTypeAccess:
		tc.issued = tokenTypeAccess
	case tokenTypeJWT, tokenTypeIDToken:
		tc.issued = e.RequestedTokenType
	default:
		return nil, &ConfigError{Field: field + ".RequestedTokenType", Value: e.RequestedTokenType,
			Err: errors.New("must be an access token, a JWT or an ID token: a token that an API takes as a bearer token")}
	}
	if tc.auth, err = checkGrantClient(field+".Client", e.Client, haveClientCert); err != nil {
		return nil, err
	}
	audience, resource, scopes := slices.Clone(e.Audience), slices.Clone(e.Resource), slices.Clone(e.Scopes)
	for i, a := range audience {
		if a == "" {
			return nil, &ConfigError{Field: fmt.Sprintf("%s.Audience[%d]", field, i), Err: errors.New("empty")}
		}
	}
	if err := checkResources(field+".Resource", resource); err != nil {
		return nil, err
	}
	if err := checkScopes(field+".Scopes", scopes); err != nil {
		return nil, err
	}
	subject, actor, actorType, requested := e.SubjectToken, e.ActorToken, e.ActorTokenType, tc.issued
	tc.params = func(ctx context.Context, _ string) (url.Values, error) {
		s, err := callAssertion(ctx, "the subject token", subject)
		if err != nil {
			return nil, err
		}
		form := url.Values{"grant_type": {grantTypeTokenExchange}, "subject_token": {s}, "subject_token_type": {subjectType}}
		if actor != nil {
			a, err := callAssertion(ctx, "the actor token", actor)
			if err != nil {
				return nil, err
			}
			form.Set("actor_token", a)
			form.Set("actor_token_type", actorType)
		}
		// Sent even for the default: Google's STS requires it, and a
		// server's own default may be another type (zitadel's example
		// issues a refresh token).
		form.Set("requested_token_type", requested)
		for _, a := range audience {
			form.Add("audience", a)
		}
		addScopeAndResource(form, scopes, resource)
		return form, nil
	}
	return tc, nil
}

// checkTokenType requires an absolute URI, as the token type identifiers
// of RFC 8693 section 3 and of any profile are.
func checkTokenType(field, s string) error {
	if u, err := url.Parse(s); err != nil || u.Scheme == "" || !isPrintableASCII(s) {
		return &ConfigError{Field: field, Value: s, Err: errors.New("not a token type identifier (an absolute URI)")}
	}
	return nil
}
