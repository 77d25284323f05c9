package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// modulePath is the module the rules are written for; every rule names packages
// relative to it, so a graph of another module would pass vacuously. load refuses one.
const modulePath = "github.com/countersign/countersign"

// listFields are the only fields asked of `go list -json`: the rest (file hashes,
// embed patterns, test imports) would only slow the decoding down.
//
// TestImports and XTestImports are deliberately not read: test files may use
// Pebble's vfs for failure injection, fasthttp clients and servers, sonic, the
// clock and the file system, so the rules constrain what ships, not how it is tested.
const listFields = "ImportPath,Dir,Module,GoFiles,CgoFiles,IgnoredGoFiles,Imports,Error"

// goPackage is one package as `go list -json -deps` describes it, plus the clock
// reads found in its non-test files.
type goPackage struct {
	ImportPath string
	Dir        string
	Module     *struct {
		Path string
		Main bool
	}
	GoFiles        []string
	CgoFiles       []string
	IgnoredGoFiles []string
	Imports        []string
	Error          *struct{ Err string }

	// clockReads are the positions ("file:line:col: time.Now") at which the
	// package's non-test code reads or waits on the clock; filled only for packages
	// of the main module.
	clockReads []string
}

// graph is the import graph of the module's non-test code, its dependencies
// included, as one `go list -deps ./...` sees it.
type graph struct {
	pkgs map[string]*goPackage
	// local holds the import paths of the main module's packages, sorted, so
	// violations come out in a stable order.
	local []string
}

// errNotModule is returned when the listed module is not countersign: the rules
// would hold vacuously and say nothing.
var errNotModule = errors.New("lint: packages are not those of " + modulePath)

// load lists every package of the module rooted at dir with its dependencies and
// parses the module's own non-test files for clock reads. env, if not nil,
// replaces the environment of the `go` command.
func load(dir string, env []string) (*graph, error) {
	cmd := exec.Command("go", "list", "-json="+listFields, "-deps", "./...")
	cmd.Dir = dir
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("lint: go list in %s: %v\n%s", dir, err, stderr.Bytes())
	}
	g := &graph{pkgs: map[string]*goPackage{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(goPackage)
		if err := dec.Decode(p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("lint: decoding go list output: %w", err)
		}
		if p.Error != nil {
			return nil, fmt.Errorf("lint: package %s: %s", p.ImportPath, p.Error.Err)
		}
		g.pkgs[p.ImportPath] = p
		if p.Module != nil && p.Module.Main {
			if p.Module.Path != modulePath {
				return nil, fmt.Errorf("%w: module %s", errNotModule, p.Module.Path)
			}
			if p.clockReads, err = clockReads(p); err != nil {
				return nil, err
			}
			g.local = append(g.local, p.ImportPath)
		}
	}
	if len(g.local) == 0 {
		return nil, fmt.Errorf("%w: go list in %s found none", errNotModule, dir)
	}
	slices.Sort(g.local)
	return g, nil
}

// clockFuncs are the functions of package time that read the wall clock or wait on
// it. Building durations and formatting times stay allowed.
var clockFuncs = map[string]bool{
	"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
	"Tick": true, "NewTimer": true, "NewTicker": true, "AfterFunc": true,
}

// clockReads parses every non-test file of p, those excluded by build constraints
// too (a file for another platform ships somewhere), and returns where it calls
// or takes a clock function of package time, under whatever name the file imports it.
func clockReads(p *goPackage) ([]string, error) {
	var files []string
	for _, list := range [][]string{p.GoFiles, p.CgoFiles, p.IgnoredGoFiles} {
		for _, name := range list {
			if !strings.HasSuffix(name, "_test.go") {
				files = append(files, name)
			}
		}
	}
	slices.Sort(files)
	fset := token.NewFileSet()
	var reads []string
	for _, name := range files {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
		if err != nil {
			return nil, fmt.Errorf("lint: parsing %s: %w", name, err)
		}
		local := ""
		for _, spec := range f.Imports {
			if path, _ := strconv.Unquote(spec.Path.Value); path != "time" {
				continue
			}
			local = "time"
			if spec.Name != nil {
				local = spec.Name.Name
			}
			if local == "." {
				// A dot import would let Now() read the clock unqualified.
				reads = append(reads, fmt.Sprintf("%s: dot import of time", fset.Position(spec.Pos())))
			}
		}
		if local == "" || local == "_" || local == "." {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			// A package name resolves to no object in the file; a local variable
			// or parameter that happens to be called time does, and is left alone.
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == local && id.Obj == nil && clockFuncs[sel.Sel.Name] {
				reads = append(reads, fmt.Sprintf("%s: time.%s", fset.Position(sel.Pos()), sel.Sel.Name))
			}
			return true
		})
	}
	return reads, nil
}

// rel returns path relative to the module and whether it is a package of the module.
func rel(path string) (string, bool) {
	if path == modulePath {
		return "", true
	}
	r, ok := strings.CutPrefix(path, modulePath+"/")
	return r, ok
}

// under reports whether path is a package of the module at dir or below it.
func under(path string, dirs ...string) bool {
	r, ok := rel(path)
	if !ok {
		return false
	}
	for _, d := range dirs {
		if r == d || strings.HasPrefix(r, d+"/") {
			return true
		}
	}
	return false
}

// reach walks the non-test imports from the package from, breadth first, and
// returns the shortest import chain to each package for which forbidden is true.
// It does not walk past a forbidden package (its own imports are the fault of the
// first), nor into a package for which through is false (another rule owns it).
func (g *graph) reach(from string, forbidden, through func(string) bool) [][]string {
	parent := map[string]string{from: ""}
	queue := []string{from}
	var chains [][]string
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		p := g.pkgs[cur]
		if p == nil {
			continue
		}
		for _, imp := range p.Imports {
			if _, seen := parent[imp]; seen {
				continue
			}
			parent[imp] = cur
			switch {
			case forbidden(imp):
				var chain []string
				for at := imp; at != ""; at = parent[at] {
					chain = append(chain, at)
				}
				slices.Reverse(chain)
				chains = append(chains, chain)
			case through == nil || through(imp):
				queue = append(queue, imp)
			}
		}
	}
	return chains
}

// closure returns the packages reachable from from by non-test imports, walking
// only into packages for which through is true.
func (g *graph) closure(from string, through func(string) bool) []string {
	seen := map[string]bool{from: true}
	queue := []string{from}
	var out []string
	for len(queue) > 0 {
		p := g.pkgs[queue[0]]
		queue = queue[1:]
		if p == nil {
			continue
		}
		for _, imp := range p.Imports {
			if !seen[imp] && through(imp) {
				seen[imp] = true
				out = append(out, imp)
				queue = append(queue, imp)
			}
		}
	}
	return out
}
