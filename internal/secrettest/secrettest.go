// Package secrettest checks that values holding secrets print none of them:
// through every fmt verb, log/slog's text and JSON handlers and
// encoding/json, by value and by pointer, alone and held in another struct.
//
// A package's test lists each of its exported struct types once, in a
// Package: either with a Sample (a value whose secret fields hold canaries)
// or as holding no secret, with the reason. Package.Check reads the
// package's source, so that a type added without a listing fails the test,
// and so does a type listed as holding no secret whose fields look like
// secrets.
package secrettest

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// minSecretLen is the shortest secret Check accepts: a shorter one could
// turn up in printed output by chance.
const minSecretLen = 8

// Sample is a value of a type that holds secrets, and those secrets.
type Sample struct {
	// Value is the value, or a pointer to it, with canaries (see Canary)
	// in its secret fields.
	Value any
	// Secrets are what must never be printed, each at least 8 bytes: the
	// canaries, or for a key the bytes it is made of.
	Secrets []string
}

// Canary returns a secret for a test to put in a field, n bytes long (at
// least 8), distinct for each name and printable, so that any encoding of
// it is easy to find.
func Canary(name string, n int) string {
	s := "canary-" + name + "-"
	for len(s) < n {
		s += "Zq7Xw3Kp"
	}
	return s[:max(n, minSecretLen)]
}

// Check fails t with every path that prints one of secrets from v: the fmt
// verbs %v %+v %#v %s %q %x %X %d, slog's text and JSON handlers and
// encoding/json, for v by value and by pointer, and for each of those held
// in a field of another struct. A value that holds a lock is checked by
// pointer only: go vet refuses code that copies it.
func Check(t testing.TB, v any, secrets ...string) {
	t.Helper()
	if len(secrets) == 0 {
		t.Fatalf("secrettest: %T: no secrets to look for", v)
	}
	for _, s := range secrets {
		if len(s) < minSecretLen {
			t.Fatalf("secrettest: %T: secret of %d bytes, want at least %d", v, len(s), minSecretLen)
		}
	}
	found, err := leaks(v, secrets...)
	if err != nil {
		t.Fatalf("secrettest: %v", err)
	}
	if len(found) > 0 {
		t.Errorf("%T printed a secret through %d paths, want none:\n\t%s", v, len(found), strings.Join(found, "\n\t"))
	}
}

// leaks returns one line for each path through which v prints one of
// secrets, naming the path and how the secret appeared. It returns an error
// for a nil value.
func leaks(v any, secrets ...string) ([]string, error) {
	forms, err := holders(v)
	if err != nil {
		return nil, err
	}
	var leaks []string
	for _, f := range forms {
		for _, p := range printers() {
			out := p.print(f.value)
			for _, s := range secrets {
				if enc, found := find(out, s); found {
					leaks = append(leaks, fmt.Sprintf("%s %s shows a secret (%s): %.120q", f.name, p.name, enc, out))
					break
				}
			}
		}
	}
	return leaks, nil
}

// form is one way a value is held when printed.
type form struct {
	name  string
	value any
}

// holders returns v by value, by pointer, and each of those as the field of
// a struct.
func holders(v any) ([]form, error) {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() || (rv.Kind() == reflect.Pointer && rv.IsNil()) {
		return nil, fmt.Errorf("nil value %T: give a sample with its secrets set", v)
	}
	var val, ptr reflect.Value
	if rv.Kind() == reflect.Pointer {
		val, ptr = rv.Elem(), rv
	} else {
		ptr = reflect.New(rv.Type())
		ptr.Elem().Set(rv)
		val = ptr.Elem()
	}
	held := func(x reflect.Value) any {
		st := reflect.StructOf([]reflect.StructField{{Name: "Held", Type: x.Type()}})
		s := reflect.New(st).Elem()
		s.Field(0).Set(x)
		return s.Interface()
	}
	forms := []form{
		{"pointer", ptr.Interface()},
		{"pointer in a struct", held(ptr)},
	}
	if holdsLock(val.Type()) {
		return forms, nil
	}
	return append(forms,
		form{"value", val.Interface()},
		form{"value in a struct", held(val)},
	), nil
}

// holdsLock reports whether a value of t holds a lock (a sync.Mutex, a
// sync/atomic value), which go vet's copylocks check forbids copying: no
// code that vet accepts prints such a value other than by pointer.
func holdsLock(t reflect.Type) bool {
	if reflect.PointerTo(t).Implements(reflect.TypeFor[sync.Locker]()) {
		return true
	}
	switch t.Kind() {
	case reflect.Struct:
		for i := range t.NumField() {
			if holdsLock(t.Field(i).Type) {
				return true
			}
		}
	case reflect.Array:
		return t.Len() > 0 && holdsLock(t.Elem())
	}
	return false
}

// printer is one way of printing a value.
type printer struct {
	name  string
	print func(v any) string
}

// printers returns every way of printing that Check tries.
func printers() []printer {
	var ps []printer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		ps = append(ps, printer{"fmt " + verb, func(v any) string { return fmt.Sprintf(verb, v) }})
	}
	logged := func(h func(*bytes.Buffer) slog.Handler) func(any) string {
		return func(v any) string {
			var buf bytes.Buffer
			slog.New(h(&buf)).Info("sample", "v", v)
			return buf.String()
		}
	}
	return append(ps,
		printer{"slog text", logged(func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) })},
		printer{"slog JSON", logged(func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) })},
		printer{"encoding/json", func(v any) string {
			out, err := json.Marshal(v)
			if err != nil {
				return err.Error() // the error must not show a secret either
			}
			return string(out)
		}},
	)
}

// find reports whether out shows secret in one of the encodings that fmt,
// slog and encoding/json give strings and bytes, and which.
func find(out, secret string) (string, bool) {
	b := []byte(secret)
	encs := []struct{ name, form string }{
		{"as is", secret},
		{"quoted", strconv.Quote(secret)[1 : len(strconv.Quote(secret))-1]},
		{"in hex", hex.EncodeToString(b)},
		{"in upper-case hex", strings.ToUpper(hex.EncodeToString(b))},
		{"as decimal bytes", strings.Trim(fmt.Sprint(b), "[]")},
		{"as Go bytes", strings.TrimSuffix(strings.TrimPrefix(fmt.Sprintf("%#v", b), "[]byte{"), "}")},
	}
	for _, e := range encs {
		if strings.Contains(out, e.form) {
			return e.name, true
		}
	}
	// A key expanded into words (an AES key schedule, say) prints as
	// numbers: its first words are the key's bytes, in either byte order.
	for _, size := range []int{4, 8} {
		for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			if dec, hx := words(b, size, order); len(dec) > 0 && (strings.Contains(out, dec) || strings.Contains(out, hx)) {
				return fmt.Sprintf("as %d-bit %s words", 8*size, order), true
			}
		}
	}
	// Base64 (encoding/json's form for []byte) depends on where the secret
	// starts in the encoded bytes: try each of the three alignments, and
	// leave out the last group, which depends on what follows.
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for shift := range 3 {
			e := enc.EncodeToString(b[shift:])
			if n := len(e)/4*4 - 4; n >= 8 && strings.Contains(out, e[:n]) {
				return "in base64", true
			}
		}
	}
	return "", false
}

// words returns b read as words of size bytes in order, printed in decimal
// and in hex as fmt prints a slice of them, or "" when b is shorter than
// two words.
func words(b []byte, size int, order binary.ByteOrder) (dec, hx string) {
	if len(b) < 2*size {
		return "", ""
	}
	var d, h []string
	for ; len(b) >= size; b = b[size:] {
		var w uint64
		if size == 4 {
			w = uint64(order.Uint32(b))
		} else {
			w = order.Uint64(b)
		}
		d = append(d, strconv.FormatUint(w, 10))
		h = append(h, strconv.FormatUint(w, 16))
	}
	return strings.Join(d, " "), strings.Join(h, " ")
}
