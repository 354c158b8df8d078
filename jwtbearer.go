package securehttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
)

// JWTBearer obtains tokens with the JWT bearer grant (RFC 7523 section
// 2.1): the Assertion is the grant. Issuer and TokenURL are as in
// ClientCredentials; Client, if set, also authenticates the client, with
// its ClientID and its Key, ClientSecret or Assertion (or a client
// certificate) only.
type JWTBearer struct {
	Issuer, TokenURL string
	Assertion        Assertion `json:"-"` // required
	Scopes, Resource []string
	Client           *ClientCredentials
}

// Format prints b as ClientCredentials prints itself, whatever the verb.
func (b JWTBearer) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "securehttp.JWTBearer{Issuer: %q, TokenURL: %q, Scopes: %q, Client: %v}",
		shownURL(b.Issuer), shownURL(b.TokenURL), b.Scopes, b.Client)
}

// MarshalJSON encodes b as Format shows it.
func (b JWTBearer) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Issuer   string             `json:"issuer,omitempty"`
		TokenURL string             `json:"token_url,omitempty"`
		Scopes   []string           `json:"scopes,omitempty"`
		Client   *ClientCredentials `json:"client,omitempty"`
	}{shownURL(b.Issuer), shownURL(b.TokenURL), b.Scopes, b.Client})
}

const grantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// checkJWTBearer checks b and returns its token client, not yet connected
// to a transport.
func checkJWTBearer(b *JWTBearer, haveClientCert bool) (*tokenClient, error) {
	const field = "Bearer.JWTBearer"
	tc, err := checkEndpoint(field, b.Issuer, b.TokenURL, haveClientCert)
	if err != nil {
		return nil, err
	}
	if b.Assertion == nil {
		return nil, &ConfigError{Field: field + ".Assertion", Err: errors.New("required")}
	}
	if tc.auth, err = checkGrantClient(field+".Client", b.Client, haveClientCert); err != nil {
		return nil, err
	}
	scopes, resource, assertion := slices.Clone(b.Scopes), slices.Clone(b.Resource), b.Assertion
	if err := checkScopes(field+".Scopes", scopes); err != nil {
		return nil, err
	}
	if err := checkResources(field+".Resource", resource); err != nil {
		return nil, err
	}
	tc.params = func(ctx context.Context, _ string) (url.Values, error) {
		s, err := callAssertion(ctx, "the JWT bearer assertion", assertion)
		if err != nil {
			return nil, err
		}
		form := url.Values{"grant_type": {grantTypeJWTBearer}, "assertion": {s}}
		addScopeAndResource(form, scopes, resource)
		return form, nil
	}
	return tc, nil
}

// checkGrantClient checks the Client of a JWTBearer or a TokenExchange: nil
// for none, or a ClientID with one way to authenticate. Its fields that
// belong to the grant are refused rather than ignored.
func checkGrantClient(field string, c *ClientCredentials, haveClientCert bool) (*clientAuth, error) {
	if c == nil {
		return nil, nil
	}
	if c.ClientID == "" {
		return nil, &ConfigError{Field: field + ".ClientID", Err: errors.New("required")}
	}
	for _, f := range []struct {
		name string
		set  bool
	}{{"Issuer", c.Issuer != ""}, {"TokenURL", c.TokenURL != ""}, {"Scopes", len(c.Scopes) > 0}, {"Resource", len(c.Resource) > 0}} {
		if f.set {
			return nil, &ConfigError{Field: field + "." + f.name, Err: errors.New("set it on the grant, not on its Client")}
		}
	}
	return checkClientAuth(field, c, haveClientCert)
}
