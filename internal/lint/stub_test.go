package lint

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// cs names a package of the module by its path relative to the module root.
func cs(p string) string { return modulePath + "/" + p }

const (
	pebbleRoot = "github.com/cockroachdb/pebble/v2"
	fasthttp   = "github.com/valyala/fasthttp"
	sonic      = "github.com/bytedance/sonic"
	httpwrap   = "example.com/httpwrap"
)

// stubLayout is DESIGN.md's target layout in miniature: each package imports
// what the dependency direction lets it, including the third-party and standard
// packages its real counterpart needs, and nothing any rule forbids.
var stubLayout = map[string][]string{
	"cmd/countersign": {cs("server"), cs("store"), cs("bench"), cs("simulate"), cs("engine/policy"), "os", "log/slog"},
	"server": {cs("server/native"), cs("server/device"), cs("server/ivalt"), cs("server/unloq"), cs("server/admin"),
		cs("server/httpd"), cs("server/webhook"), fasthttp},
	"server/native": {cs("server/httpd"), cs("server/jsonwire"), cs("server/tenant"), cs("engine/match"),
		cs("engine/policy"), cs("store"), fasthttp, sonic},
	"server/device":    {cs("server/httpd"), cs("server/tenant"), cs("engine/approval")},
	"server/ivalt":     {cs("server/httpd"), cs("server/jsonwire"), cs("server/tenant"), cs("engine/rules"), cs("engine/approval")},
	"server/unloq":     {cs("server/httpd"), cs("server/jsonwire"), cs("engine/approval")},
	"server/admin":     {cs("server/httpd"), cs("server/jsonwire"), cs("server/tenant"), cs("server/webhook"), cs("store")},
	"server/webhook":   {cs("server/jsonwire"), cs("store"), fasthttp},
	"server/httpd":     {fasthttp, sonic, "net", "crypto/tls", "log/slog", "os"},
	"server/jsonwire":  {cs("internal/jsonstr"), sonic},
	"server/tenant":    {cs("engine/policy"), cs("engine/rules"), cs("store")},
	"engine/match":     {cs("internal/jsonstr"), "unicode/utf8"},
	"engine/policy":    {cs("engine/match"), "encoding/json", "fmt"},
	"engine/rules":     {"net/netip"},
	"engine/approval":  {cs("engine/rules"), "crypto/hmac"},
	"store":            {pebbleRoot, pebbleRoot + "/vfs", cs("store/keys"), "os", "log/slog"},
	"store/keys":       {"encoding/binary"},
	"internal/jsonstr": {"unicode/utf8"},
	"client":           {fasthttp, sonic, cs("internal/jsonstr")},
	"simulate":         {cs("client"), "crypto/rand"},
	"bench":            {cs("client"), cs("simulate"), fasthttp, "os/exec"},
}

// stubFiles are the files of the miniature beyond its blank imports: allowed uses
// of package time in the engine, a local name that shadows it, and a test file that
// does what only tests may (the rules read non-test code alone).
var stubFiles = map[string]string{
	"engine/rules/window.go": `package rules

import "time"

// Expired may do arithmetic on times it is given; only reading the clock is out.
func Expired(now, at time.Time, ttl time.Duration) bool { return now.Sub(at) > ttl }
`,
	"engine/approval/shadow.go": `package approval

import "time"

// Timeout is a duration, which the engine may build.
const Timeout = 2 * time.Minute

// Next calls a field named Now on a parameter named time, which shadows the
// package: not the clock.
func Next(time struct{ Now func() int }) int { return time.Now() }
`,
	"engine/match/match_test.go": `package match

import (
	"testing"
	"time"

	_ "github.com/cockroachdb/pebble/v2/vfs"
	_ "github.com/valyala/fasthttp"
	_ "os"
)

func TestClock(t *testing.T) { _ = time.Now() }
`,
}

// stubModules are local stand-ins for the third-party modules the rules name, by
// version and packages, reached by replace directives so that listing the
// miniature needs no network.
// httpwrap stands for any library that uses fasthttp underneath: the engine
// may not reach fasthttp through it either.
var stubModules = map[string]struct {
	version  string
	packages map[string][]string // package below the module root -> its imports
}{
	pebbleRoot: {"v2.0.0", map[string][]string{"": nil, "vfs": nil}},
	fasthttp:   {"v1.0.0", map[string][]string{"": nil}},
	sonic:      {"v1.0.0", map[string][]string{"": nil}},
	httpwrap:   {"v1.0.0", map[string][]string{"": {fasthttp}}},
}

// goFile returns the source of a package that blank-imports imports.
func goFile(dir string, imports []string) string {
	name := filepath.Base(dir)
	if strings.HasPrefix(dir, "cmd/") {
		name = "main"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "package %s\n\n", name)
	if len(imports) > 0 {
		b.WriteString("import (\n")
		for _, imp := range imports {
			fmt.Fprintf(&b, "\t_ %q\n", imp)
		}
		b.WriteString(")\n")
	}
	if name == "main" {
		b.WriteString("\nfunc main() {}\n")
	}
	return b.String()
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeStub writes the miniature countersign, with plant's files added (a file of
// the same name replaced), into a temp directory, and returns the module root.
func writeStub(t *testing.T, plant map[string]string) string {
	t.Helper()
	top := t.TempDir()
	root := filepath.Join(top, "countersign")
	mod := "module " + modulePath + "\n\ngo 1.26\n\n"
	var mods []string
	for m := range stubModules {
		mods = append(mods, m)
	}
	slices.Sort(mods)
	for _, m := range mods {
		dir := filepath.Join(top, "mods", filepath.FromSlash(m))
		writeFile(t, filepath.Join(dir, "go.mod"), "module "+m+"\n\ngo 1.26\n")
		for sub, imports := range stubModules[m].packages {
			writeFile(t, filepath.Join(dir, sub, "stub.go"), goFile(path.Join(m, sub), imports))
		}
		mod += fmt.Sprintf("require %s %s\n\nreplace %s => %s\n\n", m, stubModules[m].version, m, dir)
	}
	writeFile(t, filepath.Join(root, "go.mod"), mod)
	for dir, imports := range stubLayout {
		writeFile(t, filepath.Join(root, filepath.FromSlash(dir), "stub.go"), goFile(dir, imports))
	}
	for name, text := range stubFiles {
		writeFile(t, filepath.Join(root, filepath.FromSlash(name)), text)
	}
	for name, text := range plant {
		writeFile(t, filepath.Join(root, filepath.FromSlash(name)), text)
	}
	return root
}

// stubEnv keeps the `go` command listing the miniature offline and inside it: no
// module proxy, no workspace of the caller, no toolchain switch.
func stubEnv() []string {
	return append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local", "GOSUMDB=off")
}
