package server

import (
	"strings"
	"testing"
)

// TestOpenAPIConformanceAdmin drives every /admin/v1 route through its
// answers and checks each against the document.
func TestOpenAPIConformanceAdmin(t *testing.T) {
	cf := newConformance(t)
	e := newAdminEnv(t)
	do := func(method, path, body string, key ...string) response {
		t.Helper()
		k := e.adminKey
		if len(key) > 0 {
			k = key[0]
		}
		q := req{method: method, path: path, headers: []string{"Authorization", "Bearer " + k}}
		if body != "" {
			q.body = []byte(body)
		}
		r := e.do(q)
		cf.check(q, r)
		return r
	}
	do("POST", "/admin/v1/users", `{"userID":"alice","mobile":"+447911123456","email":"alice@example.com","name":"Alice"}`)
	do("POST", "/admin/v1/users", `{"userID":"bob"}`)
	do("POST", "/admin/v1/users", `{"userID":"alice"}`)
	do("POST", "/admin/v1/users", `{"userID":"carol","mobile":"+44 7911 123456"}`)
	do("POST", "/admin/v1/users", `{"userID":"carol","mobile":"+1"}`)
	do("POST", "/admin/v1/users", `{"userID":"carol","name":"`+strings.Repeat("x", 5000)+`"}`)
	do("POST", "/admin/v1/users", `{"userID":"carol"}`, e.apiKey)
	e.do(req{method: "POST", path: "/admin/v1/users", body: []byte(`{}`), noCT: true, headers: []string{"Authorization", "Bearer " + e.adminKey}})

	r := do("GET", "/admin/v1/users?limit=1", "")
	next := jsonMap(t, r.body)["next"].(string)
	do("GET", "/admin/v1/users?limit=1&cursor="+next, "")
	do("GET", "/admin/v1/users?limit=0", "")

	do("GET", "/admin/v1/users/alice", "")
	do("GET", "/admin/v1/users/alice", "", e.otherAdmin)
	do("PATCH", "/admin/v1/users/bob", `{"name":"Bob","email":""}`)
	do("PATCH", "/admin/v1/users/bob", `{"mobile":"+447911123456"}`)
	do("PATCH", "/admin/v1/users/bob", `{"email":"x"}`)
	do("PATCH", "/admin/v1/users/nobody", `{"name":"x"}`)
	do("POST", "/admin/v1/users/alice/unlock", "")
	do("POST", "/admin/v1/users/nobody/unlock", "")
	do("POST", "/admin/v1/users/nobody/activation-codes", "")
	d, _ := e.activate("alice") // POST .../activation-codes 201, checked below
	do("POST", "/admin/v1/users/alice/activation-codes", "")
	do("GET", "/admin/v1/users/alice/devices", "")
	do("GET", "/admin/v1/users/nobody/devices", "")
	do("DELETE", "/admin/v1/devices/"+d.ID, "")
	do("GET", "/admin/v1/users/alice/devices", "")
	do("DELETE", "/admin/v1/devices/nope", "")
	do("DELETE", "/admin/v1/users/bob", "")
	do("DELETE", "/admin/v1/users/bob", "")

	for _, want := range []string{
		"POST /admin/v1/users 201", "POST /admin/v1/users 409", "POST /admin/v1/users 400", "POST /admin/v1/users 413", "POST /admin/v1/users 401",
		"GET /admin/v1/users 200", "GET /admin/v1/users 400",
		"GET /admin/v1/users/{userID} 200", "GET /admin/v1/users/{userID} 404",
		"PATCH /admin/v1/users/{userID} 200", "PATCH /admin/v1/users/{userID} 409", "PATCH /admin/v1/users/{userID} 400", "PATCH /admin/v1/users/{userID} 404",
		"DELETE /admin/v1/users/{userID} 204", "DELETE /admin/v1/users/{userID} 404",
		"POST /admin/v1/users/{userID}/unlock 200", "POST /admin/v1/users/{userID}/unlock 404",
		"POST /admin/v1/users/{userID}/activation-codes 201", "POST /admin/v1/users/{userID}/activation-codes 404",
		"GET /admin/v1/users/{userID}/devices 200", "GET /admin/v1/users/{userID}/devices 404",
		"DELETE /admin/v1/devices/{deviceID} 204", "DELETE /admin/v1/devices/{deviceID} 404",
	} {
		if !cf.seen[want] {
			t.Errorf("not exercised: %s", want)
		}
	}
}
