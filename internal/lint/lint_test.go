package lint

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// needGo skips a test that lists packages when no `go` command is installed,
// as on a machine that runs a prebuilt test binary.
func needGo(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("lint: no go command on PATH to list the module's packages with")
	}
}

// TestLayout holds the module to the dependency rules of DESIGN.md "Layout".
func TestLayout(t *testing.T) {
	needGo(t)
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == "/dev/null" {
		t.Fatal("lint: not inside the countersign module")
	}
	g, err := load(filepath.Dir(gomod), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(g.local, func(p string) bool { return under(p, "engine") }) {
		t.Fatal("lint: no engine package listed; the engine rules would hold vacuously")
	}
	for _, v := range check(g) {
		t.Error(v)
	}
}

// TestStubPasses shows the miniature layout, which breaks no rule, passing, and
// that every one of its packages was listed, so a planted violation below is the
// only difference that can make a rule fail.
func TestStubPasses(t *testing.T) {
	needGo(t)
	t.Parallel()
	g, err := load(writeStub(t, nil), stubEnv())
	if err != nil {
		t.Fatal(err)
	}
	for dir := range stubLayout {
		if !slices.Contains(g.local, cs(dir)) {
			t.Errorf("stub package %s was not listed", dir)
		}
	}
	for _, v := range check(g) {
		t.Error(v)
	}
}

// plantCase is one forbidden import planted into the miniature layout, and the
// violation it must cause.
type plantCase struct {
	name  string
	plant map[string]string // file (module-relative) -> source
	rule  string
	pkg   string   // module-relative package the rule must name
	chain []string // if set, the import chain reported for pkg
}

// plant returns a file of package dir blank-importing imports.
func plant(dir string, imports ...string) map[string]string {
	return map[string]string{dir + "/plant.go": goFile(dir, imports)}
}

var plantCases = []plantCase{
	{name: "engine depends on net/http", plant: plant("engine/match", "net/http"),
		rule: ruleEnginePure, pkg: "engine/match"},
	{name: "engine depends on net/http through another engine package", plant: plant("engine/match", "net/http"),
		rule: ruleEnginePure, pkg: "engine/policy", chain: []string{cs("engine/policy"), cs("engine/match"), "net/http"}},
	{name: "engine depends on fasthttp through another library", plant: plant("engine/rules", httpwrap),
		rule: ruleEnginePure, pkg: "engine/rules", chain: []string{cs("engine/rules"), httpwrap, fasthttp}},
	{name: "engine imports os", plant: plant("engine/rules", "os"),
		rule: ruleEnginePure, pkg: "engine/rules"},
	{name: "engine imports math/rand/v2", plant: plant("engine/approval", "math/rand/v2"),
		rule: ruleEnginePure, pkg: "engine/approval"},
	{name: "engine reads the clock", plant: map[string]string{"engine/approval/clock.go": `package approval

import "time"

func now() time.Time { return time.Now() }
`}, rule: ruleEnginePure, pkg: "engine/approval"},
	{name: "engine waits on the clock under another name", plant: map[string]string{"engine/rules/clock.go": `package rules

import clock "time"

var wait = clock.After
`}, rule: ruleEnginePure, pkg: "engine/rules"},
	{name: "an internal package the engine imports depends on os/exec", plant: plant("internal/jsonstr", "os/exec"),
		rule: ruleEnginePure, pkg: "internal/jsonstr"},
	{name: "an internal package the engine imports imports log", plant: plant("internal/jsonstr", "log"),
		rule: ruleEnginePure, pkg: "internal/jsonstr"},
	{name: "engine imports store", plant: plant("engine/rules", cs("store/keys")),
		rule: ruleEngineBelow, pkg: "engine/rules"},
	{name: "a surface imports pebble", plant: plant("server/admin", pebbleRoot),
		rule: rulePebbleInStore, pkg: "server/admin"},
	{name: "the core imports pebble's vfs", plant: plant("server/tenant", pebbleRoot+"/vfs"),
		rule: rulePebbleInStore, pkg: "server/tenant"},
	{name: "store imports sonic", plant: plant("store", sonic),
		rule: ruleWireAtEdge, pkg: "store"},
	{name: "simulate imports fasthttp", plant: plant("simulate", fasthttp),
		rule: ruleWireAtEdge, pkg: "simulate"},
	{name: "cmd imports sonic", plant: plant("cmd/countersign", sonic),
		rule: ruleWireAtEdge, pkg: "cmd/countersign"},
	{name: "a surface imports another", plant: plant("server/native", cs("server/device")),
		rule: ruleSurfacesApart, pkg: "server/native"},
	{name: "a surface reaches another through its own sub-package", plant: map[string]string{
		"server/unloq/plant.go":     goFile("server/unloq", []string{cs("server/unloq/otp")}),
		"server/unloq/otp/plant.go": goFile("server/unloq/otp", []string{cs("server/admin")}),
	}, rule: ruleSurfacesApart, pkg: "server/unloq", chain: []string{cs("server/unloq"), cs("server/unloq/otp"), cs("server/admin")}},
	{name: "the core imports a surface", plant: plant("server/httpd/catalog", cs("server/ivalt")),
		rule: ruleCoreBelow, pkg: "server/httpd/catalog"},
	{name: "the core the other surfaces use imports a surface", plant: plant("server/tenant", cs("server/unloq")),
		rule: ruleCoreBelow, pkg: "server/tenant"},
	{name: "the core imports the prefix switch", plant: plant("server/tenant/compile", cs("server")),
		rule: ruleCoreBelow, pkg: "server/tenant/compile"},
	{name: "webhook delivery imports a surface", plant: plant("server/webhook", cs("server/unloq")),
		rule: ruleDeliveryBelow, pkg: "server/webhook"},
	{name: "store imports client", plant: plant("store", cs("client")),
		rule: ruleStoreBelow, pkg: "store"},
	{name: "bench imports the engine", plant: plant("bench", cs("engine/match")),
		rule: ruleThroughClient, pkg: "bench"},
	{name: "bench reaches the store through simulate", plant: plant("simulate", cs("store")),
		rule: ruleThroughClient, pkg: "bench", chain: []string{cs("bench"), cs("simulate"), cs("store")}},
	{name: "client imports the engine", plant: plant("client", cs("engine/match")),
		rule: ruleClientHTTPOnly, pkg: "client"},
	{name: "client imports the core", plant: plant("client", cs("server/jsonwire")),
		rule: ruleClientHTTPOnly, pkg: "client"},
}

// TestPlantedViolations shows each rule failing: one forbidden import planted
// into the miniature layout makes that rule, and no other, report a violation
// naming the package that broke it.
func TestPlantedViolations(t *testing.T) {
	needGo(t)
	for _, c := range plantCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			g, err := load(writeStub(t, c.plant), stubEnv())
			if err != nil {
				t.Fatal(err)
			}
			vs := check(g)
			found := false
			for _, v := range vs {
				t.Log(v)
				if v.rule != c.rule {
					t.Errorf("rule %s also reports %v", v.rule, v)
				}
				if v.rule == c.rule && v.pkg == cs(c.pkg) {
					found = true
					if c.chain != nil && !slices.Equal(v.chain, c.chain) {
						t.Errorf("chain %v, want %v", v.chain, c.chain)
					}
				}
			}
			if !found {
				t.Errorf("rule %s reports no violation for %s; got %v", c.rule, c.pkg, vs)
			}
		})
	}
}
