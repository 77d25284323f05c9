package lint

import (
	"fmt"
	"strings"
)

// The rules of DESIGN.md "Layout", by the name a violation reports.
const (
	// Decisions must be reproducible and testable from their inputs alone, so the
	// engine reaches no network, process, store or wire library, imports no file
	// system, logger or randomness, and reads no clock (now is an argument). It
	// holds for every package of the module the engine imports, internal/... too.
	ruleEnginePure = "engine-pure"
	// The engine is the bottom layer: the server, the store and the programs call
	// it, never the other way round.
	ruleEngineBelow = "engine-below"
	// Pebble is imported by store alone, because a second storage backend is
	// planned and must only have to replace store.
	rulePebbleInStore = "pebble-in-store"
	// fasthttp and sonic stay at the HTTP edge (server, client, and bench's load
	// generator), so the rest of the code speaks in bytes and structs and a
	// change of HTTP or JSON library stays within the edge.
	ruleWireAtEdge = "wire-at-edge"
	// Each vendor surface can change without touching another: a surface shares
	// code with the others only through server/{httpd,jsonwire,tenant}.
	ruleSurfacesApart = "surfaces-apart"
	// The core every surface uses sits below the surfaces and the prefix switch,
	// or the surfaces would reach each other through it.
	ruleCoreBelow = "core-below-surfaces"
	// Webhook delivery (server/webhook) serves the surfaces and the server:
	// the admin surface checks subscriptions with it, the server runs its
	// worker. It sits below both, like the core, so no surface reaches
	// another or the prefix switch through it.
	ruleDeliveryBelow = "delivery-below-surfaces"
	// The store is called by the server and the programs, and calls neither.
	ruleStoreBelow = "store-below"
	// bench and simulate drive countersign the way a customer does, over HTTP
	// through client, so what they measure is what a customer gets.
	ruleThroughClient = "through-client"
	// client speaks HTTP only: it is what bench, simulate and tests share, and
	// carries no server, store or engine code into them.
	ruleClientHTTPOnly = "client-http-only"
)

// surfaces are the API surfaces of DESIGN.md, each with its own prefix.
var surfaces = []string{"server/native", "server/device", "server/ivalt", "server/unloq", "server/admin"}

// core are the packages every surface builds on.
var core = []string{"server/httpd", "server/jsonwire", "server/tenant"}

// delivery is the webhook delivery package, below the surfaces.
var delivery = []string{"server/webhook"}

// programs are the module's callers of the other packages: nothing below them
// may import them.
var programs = []string{"server", "client", "simulate", "bench", "cmd"}

// engineForbiddenDeps may not appear anywhere in the dependency graph of the
// engine. net's own sub-packages such as net/netip (pure address arithmetic, used
// by the rules) stay allowed; the third-party modules are forbidden whole.
var engineForbiddenDeps = []string{
	"net",
	"net/http",
	"os/exec",
	"github.com/valyala/fasthttp/...",
	"github.com/cockroachdb/pebble/...",
	"github.com/bytedance/sonic/...",
}

// engineForbiddenImports may not be imported by the engine's code itself. They
// are still reached through the standard library (fmt imports os), which is why
// they are checked against the direct imports only.
var engineForbiddenImports = []string{"os", "log", "log/slog", "math/rand", "math/rand/v2", "crypto/rand"}

// pebble and wire are the import paths rulePebbleInStore and ruleWireAtEdge restrict.
var (
	pebble = []string{"github.com/cockroachdb/pebble/..."}
	wire   = []string{"github.com/valyala/fasthttp/...", "github.com/bytedance/sonic/..."}
)

// matches reports whether path is one of patterns, where "x/..." stands for x
// and every package below it.
func matches(path string, patterns []string) bool {
	for _, p := range patterns {
		if base, ok := strings.CutSuffix(p, "/..."); ok {
			if path == base || strings.HasPrefix(path, base+"/") {
				return true
			}
		} else if path == p {
			return true
		}
	}
	return false
}

// violation is one broken rule: the package that breaks it and, for a dependency
// that arrives through other packages, the import chain from it to the forbidden one.
type violation struct {
	rule  string
	pkg   string
	chain []string
	what  string
}

func (v violation) String() string {
	s := fmt.Sprintf("%s: %s %s", v.rule, v.pkg, v.what)
	if len(v.chain) > 2 {
		s += " (via " + strings.Join(v.chain, " -> ") + ")"
	}
	return s
}

// surfaceOf returns the surface path is part of, or "".
func surfaceOf(path string) string {
	for _, s := range surfaces {
		if under(path, s) {
			return s
		}
	}
	return ""
}

// check applies every rule to g and returns the violations, ordered by package.
func check(g *graph) []violation {
	var vs []violation
	everything := func(string) bool { return true }
	transitive := func(rule, pkg string, forbidden, through func(string) bool, what string) {
		for _, chain := range g.reach(pkg, forbidden, through) {
			vs = append(vs, violation{rule: rule, pkg: pkg, chain: chain, what: what + " " + chain[len(chain)-1]})
		}
	}
	direct := func(rule, pkg string, forbidden func(string) bool, what string) {
		for _, imp := range g.pkgs[pkg].Imports {
			if forbidden(imp) {
				vs = append(vs, violation{rule: rule, pkg: pkg, chain: []string{pkg, imp}, what: what + " " + imp})
			}
		}
	}
	inModule := func(path string) bool { _, ok := rel(path); return ok }

	// The engine's purity covers every package of the module it imports.
	pure := map[string]bool{}
	for _, p := range g.local {
		if under(p, "engine") {
			pure[p] = true
			for _, d := range g.closure(p, inModule) {
				pure[d] = true
			}
		}
	}

	for _, p := range g.local {
		if pure[p] {
			n := len(vs)
			transitive(ruleEnginePure, p, func(d string) bool { return matches(d, engineForbiddenDeps) }, everything, "depends on")
			direct(ruleEnginePure, p, func(d string) bool { return matches(d, engineForbiddenImports) }, "imports")
			for _, at := range g.pkgs[p].clockReads {
				vs = append(vs, violation{rule: ruleEnginePure, pkg: p, what: "reads the clock at " + at})
			}
			if !under(p, "engine") {
				for i := n; i < len(vs); i++ {
					vs[i].what += ", and the engine imports it"
				}
			}
		}
		if under(p, "engine") {
			transitive(ruleEngineBelow, p, func(d string) bool { return under(d, "store") || under(d, programs...) }, everything, "depends on")
		}
		if !under(p, "store") {
			direct(rulePebbleInStore, p, func(d string) bool { return matches(d, pebble) }, "imports")
		}
		if !under(p, "server", "client", "bench") {
			direct(ruleWireAtEdge, p, func(d string) bool {
				return matches(d, wire)
			}, "imports")
		}
		if s := surfaceOf(p); s != "" {
			// A surface reaching another through the core is the core's fault,
			// reported once by ruleCoreBelow.
			transitive(ruleSurfacesApart, p, func(d string) bool { o := surfaceOf(d); return o != "" && o != s },
				func(d string) bool { return !under(d, core...) && !under(d, delivery...) }, "depends on another surface,")
		}
		if under(p, core...) {
			transitive(ruleCoreBelow, p, func(d string) bool { r, _ := rel(d); return r == "server" || surfaceOf(d) != "" }, everything, "depends on")
		}
		if under(p, delivery...) {
			transitive(ruleDeliveryBelow, p, func(d string) bool { r, _ := rel(d); return r == "server" || surfaceOf(d) != "" }, everything, "depends on")
		}
		if under(p, "store") {
			transitive(ruleStoreBelow, p, func(d string) bool { return under(d, programs...) }, everything, "depends on")
		}
		if under(p, "bench", "simulate") {
			// client's own graph is ruleClientHTTPOnly's: a fault there is reported
			// once, against client, not again against every program using it.
			transitive(ruleThroughClient, p, func(d string) bool { return under(d, "engine", "store", "server") },
				func(d string) bool { return !under(d, "client") }, "depends on")
		}
		if under(p, "client") {
			transitive(ruleClientHTTPOnly, p, func(d string) bool { return inModule(d) && !under(d, "client", "internal") }, everything, "depends on")
		}
	}
	return vs
}
