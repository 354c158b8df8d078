// Package pemkey reads a private key from PEM, for the library and its
// command alike. Its errors never quote the key.
package pemkey

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrEncrypted: the key is encrypted (PKCS #8, or OpenSSL's legacy
	// kind with a DEK-Info header).
	ErrEncrypted = errors.New("the private key is encrypted; store it decrypted, readable only by its user (openssl pkey -in KEY -out KEY)")
	// ErrTruncated: a PEM block begins but does not end.
	ErrTruncated = errors.New("a PEM block is incomplete (file being written?)")
	// ErrNoKey: no PEM block holds a private key.
	ErrNoKey = errors.New("no PEM private key block (-----BEGIN PRIVATE KEY-----)")
	// ErrKeyType: the key cannot sign, as an X25519 key cannot.
	ErrKeyType = errors.New("not an RSA, ECDSA or Ed25519 signing key")
)

// Signer reads the first private key block of data: PKCS #8, PKCS #1 (RSA)
// or SEC 1 (EC), not encrypted.
func Signer(data []byte) (crypto.Signer, error) {
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			if bytes.Contains(data, []byte("-----BEGIN")) {
				return nil, ErrTruncated
			}
			return nil, ErrNoKey
		}
		data = rest
		if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
			continue
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["DEK-Info"] != "" {
			return nil, ErrEncrypted
		}
		var key any
		var err error
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		}
		if err != nil {
			return nil, fmt.Errorf("the %s block does not parse", block.Type)
		}
		if k, ok := key.(crypto.Signer); ok {
			return k, nil
		}
		return nil, ErrKeyType
	}
}
