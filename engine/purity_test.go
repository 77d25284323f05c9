// Package engine_test keeps the decision engine pure: engine/... takes bytes and
// structs and returns decisions, so it must never reach the network, the file
// system, a process, a logger or any of the service's I/O libraries. The check
// reads `go list -deps`, so an indirect import through a helper package fails too.
package engine_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// forbiddenDeps may not appear anywhere in the dependency graph of an engine package.
var forbiddenDeps = []string{
	"net",
	"net/http",
	"os/exec",
	"github.com/valyala/fasthttp",
	"github.com/cockroachdb/pebble",
	"github.com/cockroachdb/pebble/v2",
	"github.com/bytedance/sonic",
}

// forbiddenDirect may not be imported by engine code itself. They may still be
// reached indirectly through the standard library (fmt imports os), which is why
// they are checked against the direct imports only.
var forbiddenDirect = []string{"os", "log", "log/slog", "math/rand", "math/rand/v2", "crypto/rand"}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Fields(string(out))
}

func TestEngineIsPure(t *testing.T) {
	pkgs := goList(t, "github.com/countersign/countersign/engine/...")
	if len(pkgs) == 0 {
		t.Fatal("no engine packages found")
	}
	for _, pkg := range pkgs {
		deps := map[string]bool{}
		for _, d := range goList(t, "-deps", pkg) {
			deps[d] = true
		}
		for d := range deps {
			if isForbiddenDep(d) {
				t.Errorf("%s depends on %s: the engine must stay free of I/O", pkg, d)
			}
		}
		direct := goList(t, "-f", `{{join .Imports " "}}`, pkg)
		for _, imp := range direct {
			for _, f := range forbiddenDirect {
				if imp == f {
					t.Errorf("%s imports %s directly: pass clocks, randomness and errors in and out instead", pkg, f)
				}
			}
		}
	}
}

// isForbiddenDep reports whether dep is one of forbiddenDeps or, for the
// third-party modules, one of their sub-packages. net's own sub-packages such as
// net/netip (pure address arithmetic, used by the rules) stay allowed.
func isForbiddenDep(dep string) bool {
	for _, f := range forbiddenDeps {
		if dep == f || (strings.Contains(f, ".") && strings.HasPrefix(dep, f+"/")) {
			return true
		}
	}
	return false
}

// TestEngineReadsNoClock fails if engine code (not its tests) reads the wall
// clock: decisions must be reproducible from their inputs, so `now` is an argument.
func TestEngineReadsNoClock(t *testing.T) {
	dirs := goList(t, "-f", "{{.Dir}}", "github.com/countersign/countersign/engine/...")
	fset := token.NewFileSet()
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "time" {
					switch sel.Sel.Name {
					case "Now", "Since", "Until", "Sleep", "After", "Tick", "NewTimer", "NewTicker", "AfterFunc":
						t.Errorf("%s: time.%s: the engine takes now as an argument", fset.Position(sel.Pos()), sel.Sel.Name)
					}
				}
				return true
			})
		}
	}
}
