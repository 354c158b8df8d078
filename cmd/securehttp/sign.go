package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"

	"github.com/securehttp/securehttp"
	"github.com/securehttp/securehttp/internal/pemkey"
)

// signatures builds get's MessageSignatures from --sign-key, --sign-keyid
// and --verify-key, for the URL's host and port only, or nil without
// --sign-key.
func signatures(f *getFlags, u *url.URL) (*securehttp.MessageSignatures, error) {
	switch {
	case f.signKey == "" && f.signKeyID != "":
		return nil, errors.New("--sign-keyid needs --sign-key")
	case f.signKey == "" && f.verifyKey != "":
		return nil, errors.New("--verify-key needs --sign-key: responses are verified for the requests signed")
	case f.signKey == "":
		return nil, nil
	case f.signKeyID == "":
		return nil, errors.New("--sign-key needs --sign-keyid, the keyid the server knows the key by")
	}
	// A signing key is held to the rules of --client-key's: readable by
	// the user only, read from a file of bounded size.
	data, err := readPrivatePath("--sign-key", f.signKey)
	if err != nil {
		return nil, err
	}
	key, err := pemkey.Signer(data)
	if err != nil {
		return nil, fmt.Errorf("--sign-key %s: %v", f.signKey, err)
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	s := &securehttp.MessageSignatures{Key: key, KeyID: f.signKeyID, Hosts: []string{net.JoinHostPort(u.Hostname(), port)}}
	if f.verifyKey != "" {
		pub, err := loadPublicKey(f.verifyKey)
		if err != nil {
			return nil, fmt.Errorf("--verify-key: %w", err)
		}
		s.Responses = &securehttp.ResponseSignatures{
			Keys:     func(context.Context, string) (crypto.PublicKey, error) { return pub, nil },
			Required: true,
		}
	}
	return s, nil
}

// loadPublicKey reads the first public key of a PEM file, or a
// certificate's.
func loadPublicKey(name string) (crypto.PublicKey, error) {
	rest, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	for {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return nil, fmt.Errorf("%s holds no PEM public key or certificate", name)
		}
		switch block.Type {
		case "PUBLIC KEY":
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", name, err)
			}
			return pub, nil
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", name, err)
			}
			return cert.PublicKey, nil
		}
	}
}
