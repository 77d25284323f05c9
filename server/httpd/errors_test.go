package httpd

import (
	"strings"
	"testing"

	"github.com/countersign/countersign/server/jsonwire"
)

// TestProblemErrors: every problem the checks report is answered with the
// catalog entry of its own code.
func TestProblemErrors(t *testing.T) {
	for p := jsonwire.EmptyBody; p < jsonwire.NumProblems; p++ {
		if e := problemErrors[p]; e == nil || e.Code != p.String() {
			t.Errorf("problem %q is answered with %v", p, e)
		}
	}
}

// TestRegisterRefusesACodeTwice: one code, one meaning.
func TestRegisterRefusesACodeTwice(t *testing.T) {
	defer func() {
		if p := recover(); p == nil || !strings.Contains(p.(string), "internal_error") {
			t.Errorf("registering internal_error again: %v", p)
		}
	}()
	Register(500, "internal_error", "Again.")
}

// TestNewRouteRefusesANameTwice: a metrics label names one route.
func TestNewRouteRefusesANameTwice(t *testing.T) {
	defer func() {
		if p := recover(); p == nil || !strings.Contains(p.(string), "unknown") {
			t.Errorf("registering the unknown route again: %v", p)
		}
	}()
	NewRoute(Route{Name: "unknown"})
}
