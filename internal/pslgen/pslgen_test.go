package pslgen

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/net/publicsuffix"
)

// listedRules reads the rules that x/net writes, as text, into its own
// table_test.go in the same run that writes the binary tables.
func listedRules(t *testing.T, dir string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, "table_test.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "rules" || len(vs.Values) != 1 {
			return true
		}
		for _, e := range vs.Values[0].(*ast.CompositeLit).Elts {
			s, err := strconv.Unquote(e.(*ast.BasicLit).Value)
			if err != nil {
				t.Fatal(err)
			}
			rules = append(rules, s)
		}
		return false
	})
	if len(rules) == 0 {
		t.Fatalf("no rules found in %s/table_test.go", dir)
	}
	return rules
}

// TestDecodeMatchesListedRules checks the decoder against the rules x/net
// lists as text, and against publicsuffix.PublicSuffix itself.
func TestDecodeMatchesListedRules(t *testing.T) {
	t.Parallel()
	dir, err := ModuleDir("")
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := Decode(dir)
	if err != nil {
		t.Fatal(err)
	}
	if built := publicsuffix.List.String(); tbl.Version != built {
		t.Fatalf("decoded version %q, want the built one %q", tbl.Version, built)
	}
	got := slices.Sorted(slices.Values(tbl.Rules()))
	want := slices.Sorted(slices.Values(listedRules(t, dir)))
	if !slices.Equal(got, want) {
		for _, r := range got {
			if _, ok := slices.BinarySearch(want, r); !ok {
				t.Errorf("decoded rule %q is not listed", r)
			}
		}
		for _, r := range want {
			if _, ok := slices.BinarySearch(got, r); !ok {
				t.Errorf("listed rule %q was not decoded", r)
			}
		}
		t.Fatalf("got %d rules, want %d", len(got), len(want))
	}
	tbl.Walk(func(n *Node) {
		ps, _ := publicsuffix.PublicSuffix(n.Name)
		switch {
		case n.Rule && ps != n.Name:
			t.Errorf("rule %q: PublicSuffix gives %q, want the rule itself", n.Name, ps)
		case n.Exception && ps == n.Name:
			t.Errorf("exception %q: PublicSuffix gives the name itself", n.Name)
		}
		if n.Wildcard {
			name := "securehttp-probe." + n.Name
			if ps, _ := publicsuffix.PublicSuffix(name); ps != name {
				t.Errorf("wildcard %q: PublicSuffix(%q) gives %q, want the name itself", n.Name, name, ps)
			}
		}
	})
}

// TestBranches checks the branch computation on a small tree.
func TestBranches(t *testing.T) {
	t.Parallel()
	// com: rule; example.com: none; cloud.com (not a rule): s3.cloud.com
	// and *.compute.cloud.com below it.
	tbl := &Table{TLDs: []*Node{{
		Name: "com", Rule: true,
		Children: []*Node{
			{Name: "example.com"},
			{Name: "cloud.com", Children: []*Node{
				{Name: "s3.cloud.com", Rule: true},
				{Name: "compute.cloud.com", Wildcard: true},
			}},
		},
	}}}
	suffixes := map[string]bool{"com": true, "s3.cloud.com": true}
	got := tbl.Branches(func(name string) bool { return suffixes[name] })
	want := []Branch{
		{Name: "cloud.com", Below: []string{"*.compute.cloud.com", "s3.cloud.com"}},
		{Name: "compute.cloud.com", Below: []string{"*.compute.cloud.com"}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Name != want[i].Name || !slices.Equal(got[i].Below, want[i].Below) {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if ex := got[0].Example(); ex != "s3.cloud.com" {
		t.Fatalf("got example %q, want %q", ex, "s3.cloud.com")
	}
}
