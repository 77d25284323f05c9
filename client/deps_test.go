package client

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/countersign/countersign/"

// goList runs go list with format f on pkg (a path below the module).
func goList(t *testing.T, f string, deps bool, pkg string) []string {
	t.Helper()
	args := []string{"list", "-f", f}
	if deps {
		args = append(args, "-deps")
	}
	out, err := exec.Command("go", append(args, module+pkg)...).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// TestReachedOverHTTPOnly keeps the client's promise: the client, the
// simulators and the load harness see countersign only over HTTP, so none of
// them links the server, the store or the engine, and the simulators leave
// the wire (fasthttp, sonic) to the client.
func TestReachedOverHTTPOnly(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to list packages with")
	}
	allowed := map[string][]string{
		"client":   {"client"},
		"simulate": {"client", "simulate"},
		"bench":    {"bench", "client", "simulate"},
	}
	for pkg, ok := range allowed {
		for _, dep := range goList(t, "{{.ImportPath}}", true, pkg) {
			if name, own := strings.CutPrefix(dep, module); own && !slices.Contains(ok, name) {
				t.Errorf("%s depends on %s; it may reach only %v", pkg, name, ok)
			}
		}
	}
	for _, imp := range goList(t, `{{join .Imports " "}}`, false, "simulate") {
		if strings.HasPrefix(imp, "github.com/valyala/fasthttp") || strings.HasPrefix(imp, "github.com/bytedance/sonic") {
			t.Errorf("simulate imports %s; its HTTP goes through package client", imp)
		}
	}
}
