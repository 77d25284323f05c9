package ivalt

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/store"
)

// TestEnvelope: every catalog entry renders as one JSON object in iVALT's
// shape, its code without the prefix and upper-cased, every 429 as
// RATE_LIMIT_EXCEEDED, the sentence as message and detail.
func TestEnvelope(t *testing.T) {
	for _, e := range httpd.Catalog() {
		var v struct {
			Status  string `json:"status"`
			Message string `json:"message"`
			Error   struct {
				Code, Type, Title, Detail, Instance string
				Status                              int
			} `json:"error"`
			Debug struct {
				Timestamp  string `json:"timestamp"`
				ActivityID string `json:"activityId"`
			} `json:"debug"`
		}
		b := AppendError(nil, e, nil)
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v in %s", e.Code, err, b)
		}
		want := strings.ToUpper(strings.TrimPrefix(e.Code, "ivalt_"))
		if e.Status == 429 {
			want = "RATE_LIMIT_EXCEEDED"
		}
		if v.Status != "error" || v.Error.Code != want || v.Error.Status != e.Status || v.Message != e.Message ||
			v.Error.Detail != e.Message || v.Error.Title == "" || v.Debug.ActivityID == "" || v.Debug.Timestamp == "" ||
			!strings.HasSuffix(v.Error.Instance, v.Debug.ActivityID) {
			t.Errorf("%s: %s", e.Code, b)
		}
	}
	b := AppendError(nil, errGeofence, []byte(`outside "geofencing"`))
	if !strings.Contains(string(b), `"detail":"outside \"geofencing\""`) {
		t.Errorf("a sentence given: %s", b)
	}
}

// TestAuthTokens: a token is good for its organization until it expires,
// never for another, and the table stays bounded.
func TestAuthTokens(t *testing.T) {
	var tt authTokens
	tt.init()
	now := time.Unix(1763800000, 0)
	org, other := store.OrgID{1}, store.OrgID{2}
	tok, err := tt.issue(org, now)
	if err != nil || !strings.HasPrefix(tok, tokenPrefix) {
		t.Fatal(tok, err)
	}
	switch {
	case !tt.valid(tok, org, now.Add(AuthTokenTTL-time.Second)):
		t.Error("a fresh token refused")
	case tt.valid(tok, other, now):
		t.Error("a token accepted for another organization")
	case tt.valid(tok+"x", org, now), tt.valid("", org, now):
		t.Error("a wrong token accepted")
	case tt.valid(tok, org, now.Add(AuthTokenTTL)):
		t.Error("an expired token accepted")
	case tt.valid(tok, org, now):
		t.Error("an expired token was not forgotten")
	}
	for range maxAuthTokensPerOrg + 10 {
		if _, err := tt.issue(org, now); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(tt.m); n > maxAuthTokensPerOrg {
		t.Errorf("%d tokens held, the bound is %d", n, maxAuthTokensPerOrg)
	}
}

// TestRoutes: both path families, and anything else under /ivalt answered
// in iVALT's envelope rather than the server's default one.
func TestRoutes(t *testing.T) {
	s := &Surface{}
	for _, p := range Paths() {
		if r, _ := s.Route([]byte(p)); r == routeNotFound {
			t.Errorf("%s: no route", p)
		}
	}
	for _, p := range []string{"/ivalt", "/ivalt/", "/ivalt/admin/public/api/", "/ivalt/biometric-auth-request/", "/ivalt/admin/public/api/biometric-auth-request", "/ivaltx"} {
		if r, _ := s.Route([]byte(p)); r != routeNotFound {
			t.Errorf("%s: route %s", p, r)
		}
	}
	if len(Paths()) != 12 {
		t.Errorf("%d paths", len(Paths()))
	}
}

// TestAuthTokensBoundPerOrg: an organization minting tokens past its bound
// loses its own oldest ones and never another organization's; expired
// tokens are dropped as new ones are issued; a token is good for its own
// organization only.
func TestAuthTokensBoundPerOrg(t *testing.T) {
	var tt authTokens
	tt.init()
	now := time.Unix(1_800_000_000, 0)
	orgA, orgB := store.OrgID{1}, store.OrgID{2}
	b, err := tt.issue(orgB, now)
	if err != nil {
		t.Fatal(err)
	}
	var first, second, last string
	for i := range maxAuthTokensPerOrg + 1 {
		tok, err := tt.issue(orgA, now)
		if err != nil {
			t.Fatal(err)
		}
		switch i {
		case 0:
			first = tok
		case 1:
			second = tok
		}
		last = tok
	}
	if tt.valid(first, orgA, now) {
		t.Error("org A's oldest token is still valid past the bound")
	}
	if !tt.valid(second, orgA, now) || !tt.valid(last, orgA, now) {
		t.Error("org A lost more than its oldest token")
	}
	if !tt.valid(b, orgB, now) {
		t.Error("org A's tokens evicted org B's")
	}
	if tt.valid(b, orgA, now) || tt.valid(last, orgB, now) {
		t.Error("a token is accepted for another organization")
	}
	if n := len(tt.m); n != maxAuthTokensPerOrg+1 {
		t.Errorf("%d tokens held, want %d", n, maxAuthTokensPerOrg+1)
	}
	later := now.Add(AuthTokenTTL)
	if _, err := tt.issue(orgA, later); err != nil {
		t.Fatal(err)
	}
	if n := len(tt.m); n != 2 { // org B's, and org A's new one
		t.Errorf("%d tokens held after org A's expired, want 2", n)
	}
	if tt.valid(b, orgB, later) {
		t.Error("an expired token is valid")
	}
}
