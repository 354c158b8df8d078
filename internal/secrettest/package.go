package secrettest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Package lists how each exported struct type of one Go package is
// checked.
type Package struct {
	// Dir is the package's directory: "." in the package's own tests.
	Dir string

	// Samples builds, for each type that holds a secret, a value whose
	// secret fields hold canaries. The key is the type's name.
	Samples map[string]func(t *testing.T) Sample

	// NoSecret gives, for each type that holds no secret, the reason in
	// one line.
	NoSecret map[string]string
}

// Check checks each sample with Check, in a subtest named for its type. It
// fails t when an exported struct type of Dir is listed in neither Samples
// nor NoSecret, or in both; when a listed name is not an exported struct
// type of Dir; and when a type listed in NoSecret has a field that looks
// like a secret: one named like a key, token, secret, password, assertion,
// proof or credentials, or of a type that holds one (a crypto.Signer, a
// private key, a TLS certificate, an AEAD, a Token, or a struct of the
// module with such a field).
func (p Package) Check(t *testing.T) {
	t.Helper()
	for _, problem := range p.audit() {
		t.Error(problem)
	}
	for _, name := range slices.Sorted(maps.Keys(p.Samples)) {
		t.Run(name, func(t *testing.T) {
			s := p.Samples[name](t)
			if got := typeName(s.Value); got != name {
				t.Fatalf("sample for %s: got a %s, want a %s", name, got, name)
			}
			Check(t, s.Value, s.Secrets...)
		})
	}
}

// audit returns what is wrong with the listing, one line each.
func (p Package) audit() []string {
	src, err := parsePackage(p.Dir, map[string]*source{})
	if err != nil {
		return []string{fmt.Sprintf("secrettest: %v", err)}
	}
	var problems []string
	for _, name := range src.exported {
		_, sampled := p.Samples[name]
		reason, listed := p.NoSecret[name]
		why, secret := src.secret[name]
		switch {
		case sampled && listed:
			problems = append(problems, fmt.Sprintf("%s has a sample and is listed as holding no secret: keep one", name))
		case !sampled && !listed:
			problems = append(problems, fmt.Sprintf("%s is not listed: give it a sample in Samples, with canaries in its secret fields, or say in NoSecret why it holds no secret", name))
		case listed && secret:
			problems = append(problems, fmt.Sprintf("%s is listed as holding no secret (%q), but it looks like it holds one: %s; give it a sample", name, reason, why))
		case listed && strings.TrimSpace(reason) == "":
			problems = append(problems, fmt.Sprintf("%s is listed as holding no secret without a reason", name))
		}
	}
	listed := slices.Concat(slices.Collect(maps.Keys(p.Samples)), slices.Collect(maps.Keys(p.NoSecret)))
	for _, name := range listed {
		if !slices.Contains(src.exported, name) {
			problems = append(problems, fmt.Sprintf("%s is listed but is not an exported struct type of %s", name, p.Dir))
		}
	}
	slices.Sort(problems)
	return problems
}

// typeName is the name of v's type, through one pointer.
func typeName(v any) string {
	s := strings.TrimPrefix(fmt.Sprintf("%T", v), "*")
	return s[strings.LastIndex(s, ".")+1:]
}

// source is what the audit knows of one package.
type source struct {
	exported []string          // its exported struct types, sorted
	secret   map[string]string // struct type, exported or not -> why it holds a secret
}

// knownSecret reports whether a type from outside the module, named as
// package.Type, holds a secret.
func knownSecret(name string) bool {
	switch name {
	case "crypto.Signer", "crypto.Decrypter", "crypto.PrivateKey",
		"cipher.AEAD", "cipher.Block",
		"ecdh.PrivateKey", "ecdsa.PrivateKey", "ed25519.PrivateKey", "rsa.PrivateKey",
		"tls.Certificate", "tls.Config",
		"oauth2.Token", "jose.JSONWebKey":
		return true
	}
	return false
}

// parsePackage reads the struct types of the package in dir, and which of
// them hold a secret. The packages of the same module that it imports are
// read too (memoised in seen), so that a field of a type from one of them
// counts.
func parsePackage(dir string, seen map[string]*source) (*source, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if src, ok := seen[abs]; ok {
		return src, nil
	}
	modRoot, modPath, err := findModule(abs)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return nil, err
	}
	structs := map[string]*ast.StructType{}
	// The module's own packages imported, by the name they are used
	// under: their directory's name unless renamed.
	modImports := map[string]string{}
	fset := token.NewFileSet()
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(abs, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			rel, ok := strings.CutPrefix(path, modPath)
			if !ok || (rel != "" && rel[0] != '/') {
				continue
			}
			local := path[strings.LastIndex(path, "/")+1:]
			if imp.Name != nil {
				local = imp.Name.Name
			}
			modImports[local] = filepath.Join(modRoot, filepath.FromSlash(rel))
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				if st, ok := ts.Type.(*ast.StructType); ok && !ts.Assign.IsValid() {
					structs[ts.Name.Name] = st
				}
			}
		}
	}

	src := &source{secret: map[string]string{}}
	seen[abs] = src
	names := slices.Sorted(maps.Keys(structs))
	for _, name := range names {
		if ast.IsExported(name) {
			src.exported = append(src.exported, name)
		}
	}

	// typeSecret says why a field of type x holds a secret, or "".
	typeSecret := func(x ast.Expr) (string, error) {
		var why string
		var err error
		ast.Inspect(x, func(n ast.Node) bool {
			if why != "" || err != nil {
				return false
			}
			switch n := n.(type) {
			case *ast.FuncType, *ast.InterfaceType, *ast.ChanType:
				return false // funcs and chans print as addresses; method signatures hold nothing
			case *ast.SelectorExpr:
				pkg, ok := n.X.(*ast.Ident)
				if !ok {
					return false
				}
				name := pkg.Name + "." + n.Sel.Name
				if knownSecret(name) {
					why = "a " + name
				} else if dir, ok := modImports[pkg.Name]; ok {
					var other *source
					if other, err = parsePackage(dir, seen); err == nil && other.secret[n.Sel.Name] != "" {
						why = "a " + name + " (" + other.secret[n.Sel.Name] + ")"
					}
				}
				return false
			case *ast.Ident:
				if w, ok := src.secret[n.Name]; ok {
					why = "a " + n.Name + " (" + w + ")"
				}
			}
			return true
		})
		return why, err
	}
	// structSecret says why a struct holds a secret, or "".
	structSecret := func(name string, st *ast.StructType) (string, error) {
		if secretName(name) {
			return "named like a secret", nil
		}
		for _, field := range st.Fields.List {
			names := field.Names
			if len(names) == 0 { // embedded: named for its type
				names = []*ast.Ident{{Name: embeddedName(field.Type)}}
			}
			why, err := typeSecret(field.Type)
			if err != nil {
				return "", err
			}
			for _, n := range names {
				if why != "" {
					return "field " + n.Name + ", " + why, nil
				}
				if secretName(n.Name) && !isFunc(field.Type) {
					return "field " + n.Name + ", named like a secret", nil
				}
			}
		}
		return "", nil
	}
	// Structs hold one another: look again until nothing new is found.
	for changed := true; changed; {
		changed = false
		for _, name := range names {
			if src.secret[name] != "" {
				continue
			}
			why, err := structSecret(name, structs[name])
			if err != nil {
				return nil, err
			}
			if why != "" {
				src.secret[name] = why
				changed = true
			}
		}
	}
	return src, nil
}

// secretName reports whether the name of a field or a struct type says it
// holds a secret.
func secretName(name string) bool {
	n := strings.ToLower(name)
	if strings.Contains(n, "public") {
		return false
	}
	for _, w := range []string{"secret", "password", "passphrase", "assertion", "proof", "credential", "privatekey"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return strings.HasSuffix(n, "key") || strings.HasSuffix(n, "token")
}

// isFunc reports whether x is a func or chan type, which fmt prints as an
// address and encoding/json refuses.
func isFunc(x ast.Expr) bool {
	switch x.(type) {
	case *ast.FuncType, *ast.ChanType:
		return true
	}
	return false
}

// embeddedName is the field name of an embedded type.
func embeddedName(x ast.Expr) string {
	switch x := x.(type) {
	case *ast.StarExpr:
		return embeddedName(x.X)
	case *ast.SelectorExpr:
		return x.Sel.Name
	case *ast.Ident:
		return x.Name
	case *ast.IndexExpr:
		return embeddedName(x.X)
	case *ast.IndexListExpr:
		return embeddedName(x.X)
	}
	return ""
}

// findModule returns the directory and path of the module holding dir.
func findModule(dir string) (root, path string, err error) {
	for d := dir; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			for line := range strings.SplitSeq(string(data), "\n") {
				if p, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
					return d, strings.Trim(strings.TrimSpace(p), `"`), nil
				}
			}
			return "", "", fmt.Errorf("%s/go.mod names no module", d)
		}
		if filepath.Dir(d) == d {
			return "", "", fmt.Errorf("no go.mod above %s", dir)
		}
	}
}
