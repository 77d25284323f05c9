package admin

import (
	"testing"

	"github.com/countersign/countersign/server/httpd"
)

// TestRoute: each admin path maps to its resource and path parameter, and
// nothing else under the prefix does.
func TestRoute(t *testing.T) {
	s := &Surface{}
	for path, want := range map[string]struct {
		r     *httpd.Route
		param string
	}{
		"/admin/v1/users":                         {resUsers.route, ""},
		"/admin/v1/users/alice":                   {resUser.route, "alice"},
		"/admin/v1/users/alice/unlock":            {resUnlock.route, "alice"},
		"/admin/v1/users/alice/activation-codes":  {resActivationCodes.route, "alice"},
		"/admin/v1/users/alice/devices":           {resUserDevices.route, "alice"},
		"/admin/v1/devices/dev-1":                 {resDevice.route, "dev-1"},
		"/admin/v1":                               {httpd.RouteUnknown, ""},
		"/admin/v1/":                              {httpd.RouteUnknown, ""},
		"/admin/v1/users/":                        {httpd.RouteUnknown, ""},
		"/admin/v1/users//devices":                {httpd.RouteUnknown, ""},
		"/admin/v1/users/alice/devices/dev-1":     {httpd.RouteUnknown, ""},
		"/admin/v1/users/alice/unlock/":           {httpd.RouteUnknown, ""},
		"/admin/v1/devices/":                      {httpd.RouteUnknown, ""},
		"/admin/v1/devices/dev-1/revoke":          {httpd.RouteUnknown, ""},
		"/admin/v1/rules":                         {resRules.route, ""},
		"/admin/v1/settings":                      {resSettings.route, ""},
		"/admin/v1/policy":                        {resPolicy.route, ""},
		"/admin/v1/keys":                          {resKeys.route, ""},
		"/admin/v1/keys/key_abc":                  {resKey.route, "key_abc"},
		"/admin/v1/client-certs":                  {resCerts.route, ""},
		"/admin/v1/rules/x":                       {httpd.RouteUnknown, ""},
		"/admin/v1/keys/":                         {httpd.RouteUnknown, ""},
		"/admin/v1/keys/a/b":                      {httpd.RouteUnknown, ""},
		"/admin/v1/usersx":                        {httpd.RouteUnknown, ""},
		"/admin/v1/users/alice/activation-codesx": {httpd.RouteUnknown, ""},
	} {
		r, param := s.Route([]byte(path))
		if r != want.r || string(param) != want.param {
			t.Errorf("%s -> %s %q, want %s %q", path, r, param, want.r, want.param)
		}
	}
	// A configuration document (a rule set's polygons) or a list of bound
	// certificates is larger than a user.
	large := map[*resource]bool{resRules: true, resSettings: true, resPolicy: true, resCerts: true}
	for _, res := range resources {
		if (res.route.BodyLimit == httpd.LimitSmall) == large[res] || !res.route.UsesStore {
			t.Errorf("%s: limit %d, uses store %v", res.route, res.route.BodyLimit, res.route.UsesStore)
		}
	}
}

// TestBearer: the Bearer scheme, its name in any case, with the credential
// after it; anything else is no credential.
func TestBearer(t *testing.T) {
	for h, want := range map[string]string{
		"Bearer csk_x":  "csk_x",
		"bearer csk_x":  "csk_x",
		"BEARER  csk_x": "csk_x",
		"Bearer ":       "",
		"Bearer":        "",
		"Basic csk_x":   "",
		"csk_x":         "",
		"":              "",
	} {
		got, ok := bearer([]byte(h))
		if string(got) != want || (want != "") != (ok && len(got) > 0) {
			t.Errorf("bearer(%q) = %q %v, want %q", h, got, ok, want)
		}
	}
}
