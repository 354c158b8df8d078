// Package sample is what Package.Check's own tests audit.
package sample

import "crypto"

// Plain holds no secret.
type Plain struct {
	Name string
}

// Keyed holds a key by name.
type Keyed struct {
	APIKey string
}

// Signing holds a key by type.
type Signing struct {
	Signer crypto.Signer
}

// Outer holds a secret through another struct.
type Outer struct {
	inner inner
}

type inner struct {
	password string
}

// Funcs holds only functions, which print as addresses.
type Funcs struct {
	Token func() string
}
