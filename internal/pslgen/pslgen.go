// Package pslgen reads the public suffix list that golang.org/x/net/publicsuffix
// embeds and finds the names below which a public suffix lies, for the table
// that host patterns are checked against.
//
// x/net/publicsuffix answers one question, the public suffix of a given
// name, and cannot list its rules. The rules are decoded here from the
// tables the package embeds (data/text, data/nodes and data/children, laid
// out as its table.go describes), in the module version that go.mod
// requires, so that the table stays in step with what PublicSuffix answers.
package pslgen

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"go/ast"
	"go/constant"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Node types, as x/net/publicsuffix's gen.go numbers them.
const (
	nodeTypeNormal     = 0
	nodeTypeException  = 1
	nodeTypeParentOnly = 2
)

// Node is one name of the list's tree.
type Node struct {
	Name      string // the whole name, such as "s3.amazonaws.com"
	Rule      bool   // the name is a rule of its own ("s3.amazonaws.com")
	Exception bool   // the name is an exception rule ("!city.kawasaki.jp")
	Wildcard  bool   // "*." + Name is a rule
	Children  []*Node
}

// Table is the decoded list.
type Table struct {
	Version string  // x/net's description of the list, as publicsuffix.List.String() gives it
	TLDs    []*Node // the top-level names, each the root of its tree
}

// ModuleDir returns the directory of golang.org/x/net/publicsuffix in the
// version the module in dir (or the current directory, for "") requires.
func ModuleDir(dir string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "golang.org/x/net")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m golang.org/x/net: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" {
		return "", errors.New("go list -m golang.org/x/net: the module is not in the module cache (run go mod download)")
	}
	return filepath.Join(mod, "publicsuffix"), nil
}

// layout is the bit layout of the embedded tables, read from table.go.
type layout struct {
	version                                                 string
	numTLD                                                  uint32
	nodesBits, bitsChildren, bitsICANN, bitsOffset, bitsLen uint
	bitsWildcard, bitsNodeType, bitsHi, bitsLo              uint
	typeNormal, typeException, typeParentOnly               int64
}

// readLayout reads the constants of table.go. A constant that is missing,
// or a layout that differs from the one this decoder knows, is an error,
// so that a change in x/net's format stops the generator rather than
// producing a wrong table.
func readLayout(dir string) (layout, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(dir, "table.go"), nil, 0)
	if err != nil {
		return layout{}, err
	}
	consts := map[string]constant.Value{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
					consts[name.Name] = constant.MakeFromLiteral(lit.Value, lit.Kind, 0)
				}
			}
		}
	}
	var l layout
	var missing []string
	num := func(name string) uint64 {
		v, ok := consts[name]
		if !ok || v.Kind() != constant.Int {
			missing = append(missing, name)
			return 0
		}
		n, _ := constant.Uint64Val(v)
		return n
	}
	if v, ok := consts["version"]; ok && v.Kind() == constant.String {
		l.version = constant.StringVal(v)
	} else {
		missing = append(missing, "version")
	}
	l.numTLD = uint32(num("numTLD"))
	l.nodesBits = uint(num("nodesBits"))
	l.bitsChildren = uint(num("nodesBitsChildren"))
	l.bitsICANN = uint(num("nodesBitsICANN"))
	l.bitsOffset = uint(num("nodesBitsTextOffset"))
	l.bitsLen = uint(num("nodesBitsTextLength"))
	l.bitsWildcard = uint(num("childrenBitsWildcard"))
	l.bitsNodeType = uint(num("childrenBitsNodeType"))
	l.bitsHi = uint(num("childrenBitsHi"))
	l.bitsLo = uint(num("childrenBitsLo"))
	l.typeNormal = int64(num("nodeTypeNormal"))
	l.typeException = int64(num("nodeTypeException"))
	l.typeParentOnly = int64(num("nodeTypeParentOnly"))
	if len(missing) > 0 {
		return l, fmt.Errorf("%s: constants missing: %s", filepath.Join(dir, "table.go"), strings.Join(missing, ", "))
	}
	switch {
	case l.nodesBits != 40:
		return l, fmt.Errorf("nodes are %d bits wide, this decoder reads 40", l.nodesBits)
	case l.bitsChildren+l.bitsICANN+l.bitsOffset+l.bitsLen > l.nodesBits:
		return l, errors.New("node fields wider than a node")
	case l.bitsWildcard+l.bitsNodeType+l.bitsHi+l.bitsLo > 32:
		return l, errors.New("children fields wider than 32 bits")
	case l.typeNormal != nodeTypeNormal || l.typeException != nodeTypeException || l.typeParentOnly != nodeTypeParentOnly:
		return l, errors.New("node types numbered differently from what this decoder knows")
	}
	return l, nil
}

// Decode reads the list from dir, the directory of x/net/publicsuffix.
func Decode(dir string) (*Table, error) {
	l, err := readLayout(dir)
	if err != nil {
		return nil, err
	}
	var text, nodes, children []byte
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{"text", &text}, {"nodes", &nodes}, {"children", &children}} {
		if *f.dst, err = os.ReadFile(filepath.Join(dir, "data", f.name)); err != nil {
			return nil, err
		}
	}
	if len(nodes)%5 != 0 || len(children)%4 != 0 {
		return nil, errors.New("data/nodes or data/children is not a whole number of entries")
	}
	d := decoder{l: l, text: text, nodes: nodes, children: children}
	t := &Table{Version: l.version}
	if t.TLDs, err = d.range_(0, l.numTLD, "", 0); err != nil {
		return nil, err
	}
	return t, nil
}

type decoder struct {
	l                     layout
	text, nodes, children []byte
}

func mask(bits uint) uint64 { return 1<<bits - 1 }

// maxDepth bounds the recursion: no name has more than 127 labels.
const maxDepth = 127

// range_ decodes nodes [lo, hi), the children of the node named parent.
func (d *decoder) range_(lo, hi uint32, parent string, depth int) ([]*Node, error) {
	if depth > maxDepth {
		return nil, errors.New("tree deeper than a domain name can be")
	}
	if lo > hi || uint64(hi)*5 > uint64(len(d.nodes)) {
		return nil, fmt.Errorf("node range [%d, %d) outside the %d nodes", lo, hi, len(d.nodes)/5)
	}
	out := make([]*Node, 0, hi-lo)
	for i := lo; i < hi; i++ {
		b := d.nodes[i*5 : i*5+5]
		x := uint64(b[0])<<32 | uint64(b[1])<<24 | uint64(b[2])<<16 | uint64(b[3])<<8 | uint64(b[4])
		length := x & mask(d.l.bitsLen)
		x >>= d.l.bitsLen
		offset := x & mask(d.l.bitsOffset)
		x >>= d.l.bitsOffset
		x >>= d.l.bitsICANN
		ci := x & mask(d.l.bitsChildren)
		if offset+length > uint64(len(d.text)) || length == 0 {
			return nil, fmt.Errorf("node %d: label outside the text", i)
		}
		if (ci+1)*4 > uint64(len(d.children)) {
			return nil, fmt.Errorf("node %d: children index %d outside the table", i, ci)
		}
		label := string(d.text[offset : offset+length])
		c := uint64(d.children[ci*4])<<24 | uint64(d.children[ci*4+1])<<16 | uint64(d.children[ci*4+2])<<8 | uint64(d.children[ci*4+3])
		clo := uint32(c & mask(d.l.bitsLo))
		c >>= d.l.bitsLo
		chi := uint32(c & mask(d.l.bitsHi))
		c >>= d.l.bitsHi
		typ := int64(c & mask(d.l.bitsNodeType))
		c >>= d.l.bitsNodeType
		n := &Node{Name: label, Wildcard: c&mask(d.l.bitsWildcard) != 0}
		if parent != "" {
			n.Name = label + "." + parent
		}
		switch typ {
		case nodeTypeNormal:
			n.Rule = true
		case nodeTypeException:
			n.Exception = true
		case nodeTypeParentOnly:
		default:
			return nil, fmt.Errorf("node %q: unknown node type %d", n.Name, typ)
		}
		var err error
		if n.Children, err = d.range_(clo, chi, n.Name, depth+1); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// Walk calls fn for every node of t, parents before their children.
func (t *Table) Walk(fn func(*Node)) {
	var walk func([]*Node)
	walk = func(ns []*Node) {
		for _, n := range ns {
			fn(n)
			walk(n.Children)
		}
	}
	walk(t.TLDs)
}

// Rules returns the rules of the list in the form of the list's file:
// "name", "*.name" and "!name".
func (t *Table) Rules() []string {
	var out []string
	t.Walk(func(n *Node) {
		if n.Rule {
			out = append(out, n.Name)
		}
		if n.Exception {
			out = append(out, "!"+n.Name)
		}
		if n.Wildcard {
			out = append(out, "*."+n.Name)
		}
	})
	return out
}

// Branch is a name below which at least one public suffix lies.
type Branch struct {
	Name  string   // such as "amazonaws.com"
	Below []string // the rules strictly below Name, such as "s3.amazonaws.com" or "*.compute.amazonaws.com"
}

// Example is the rule of b.Below to name in an error: the one with the
// fewest labels, a plain name before a wildcard, then the shortest, then
// the first in order.
func (b Branch) Example() string {
	return slices.MinFunc(b.Below, func(x, y string) int {
		return cmp.Or(
			cmp.Compare(strings.Count(x, "."), strings.Count(y, ".")),
			cmp.Compare(wild(x), wild(y)),
			cmp.Compare(len(x), len(y)),
			strings.Compare(x, y))
	})
}

func wild(rule string) int {
	if strings.HasPrefix(rule, "*.") {
		return 1
	}
	return 0
}

// Branches returns, sorted by name, every name of t below which a rule
// lies, except those for which isSuffix is true: a name that is a public
// suffix itself is refused as a wildcard's base on that ground alone.
func (t *Table) Branches(isSuffix func(string) bool) []Branch {
	var out []Branch
	var below func(n *Node) []string
	below = func(n *Node) []string {
		var rules []string
		if n.Wildcard {
			rules = append(rules, "*."+n.Name)
		}
		for _, c := range n.Children {
			if c.Rule {
				rules = append(rules, c.Name)
			}
			rules = append(rules, below(c)...)
		}
		if len(rules) > 0 && !isSuffix(n.Name) {
			out = append(out, Branch{Name: n.Name, Below: slices.Sorted(slices.Values(rules))})
		}
		return rules
	}
	for _, n := range t.TLDs {
		below(n)
	}
	slices.SortFunc(out, func(a, b Branch) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Source returns the Go file, in package pkg, that holds branches as the
// table hostpattern.go searches: a string constant with one line for each
// branch, "\n<name> <labels> <more>", where <labels> joined to <name> by a
// dot give the example rule ("*" for a wildcard rule) and <more> counts the
// other rules below <name>. A string costs the binary its bytes and
// nothing more, and one search finds a name.
func Source(pkg, generator, version string, branches []Branch) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by %s; DO NOT EDIT.\n\n", generator)
	fmt.Fprintf(&b, "package %s\n\n", pkg)
	b.WriteString("// suffixBelowVersion is the list the table was made from, as\n// publicsuffix.List.String() describes it.\n")
	fmt.Fprintf(&b, "const suffixBelowVersion = %q\n\n", version)
	b.WriteString("// suffixBelow lists, one a line and sorted, every name that is not a\n")
	b.WriteString("// public suffix but has one below it: the name; the labels that, before\n")
	b.WriteString("// it, spell the rule with the fewest labels below it (\"*\" for a wildcard\n")
	b.WriteString("// rule); and how many other rules lie below it.\n")
	b.WriteString("const suffixBelow = \"\" +\n")
	for _, br := range branches {
		ex := br.Example()
		labels, ok := strings.CutSuffix(ex, "."+br.Name)
		if !ok || strings.ContainsAny(br.Name+labels, " \n") {
			return nil, fmt.Errorf("rule %q is not below %q", ex, br.Name)
		}
		fmt.Fprintf(&b, "\t%q +\n", fmt.Sprintf("\n%s %s %d", br.Name, labels, len(br.Below)-1))
	}
	b.WriteString("\t\"\\n\"\n")
	return format.Source(b.Bytes())
}

// Generator is how the generated file names the command that writes it.
const Generator = "go run ./internal/pslgen/cmd"

// Generate returns the table's Go source for the module in dir (the
// current directory for ""), from the x/net version its go.mod requires.
// That must be the version compiled into this program, so that the table
// agrees with publicsuffix.PublicSuffix, which decides which names are
// public suffixes themselves.
func Generate(dir, pkg string) ([]byte, error) {
	psDir, err := ModuleDir(dir)
	if err != nil {
		return nil, err
	}
	t, err := Decode(psDir)
	if err != nil {
		return nil, err
	}
	if built := publicsuffix.List.String(); t.Version != built {
		return nil, fmt.Errorf("%s holds %q, but this program was built with %q: run it from the module whose table it writes", psDir, t.Version, built)
	}
	isSuffix := func(name string) bool {
		ps, _ := publicsuffix.PublicSuffix(name)
		return ps == name
	}
	return Source(pkg, Generator, t.Version, t.Branches(isSuffix))
}
