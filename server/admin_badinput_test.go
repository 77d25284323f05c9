package server

import (
	"bytes"
	"strings"
	"testing"
)

// TestAdminBadInputs sends malformed, hostile and merely wrong requests to
// /admin/v1 and checks each gets the 4xx it should, in the native envelope
// with a sentence, never a 5xx, and that nothing of the stored user changed.
func TestAdminBadInputs(t *testing.T) {
	e := newAdminEnv(t)
	e.want(e.admin("POST", "/admin/v1/users", `{"userID":"alice","mobile":"+447911123456","email":"alice@example.com","name":"Alice"}`, ""), 201, "")
	before := e.admin("GET", "/admin/v1/users/alice", "", "")

	long := strings.Repeat("x", 257)
	users, alice := "/admin/v1/users", "/admin/v1/users/alice"
	for _, c := range []struct {
		name, method, path, body string
		headers                  []string // beside the admin key; replace it when they name Authorization
		status                   int
		code                     string
	}{
		{"empty body", "POST", users, "", nil, 400, "empty_body"},
		{"not JSON", "POST", users, `{"userID":`, nil, 400, "invalid_json"},
		{"an array", "POST", users, `[{"userID":"bob"}]`, nil, 400, "wrong_type"},
		{"trailing data", "POST", users, `{"userID":"bob"} {}`, nil, 400, "trailing_data"},
		{"duplicate field", "POST", users, `{"userID":"bob","userID":"eve"}`, nil, 400, "duplicate_field"},
		{"unknown field", "POST", users, `{"userID":"bob","admin":true}`, nil, 400, "unknown_field"},
		{"field in another case", "POST", users, `{"userid":"bob"}`, nil, 400, "unknown_field"},
		{"missing userID", "POST", users, `{"name":"Bob"}`, nil, 400, "missing_field"},
		{"userID a number", "POST", users, `{"userID":7}`, nil, 400, "wrong_type"},
		{"userID null", "POST", users, `{"userID":null}`, nil, 400, "wrong_type"},
		{"userID empty", "POST", users, `{"userID":""}`, nil, 400, "invalid_field"},
		{"userID too long", "POST", users, `{"userID":"` + long + `"}`, nil, 400, "invalid_field"},
		{"userID with a control", "POST", users, `{"userID":"bo\u0007b"}`, nil, 400, "invalid_field"},
		{"userID with a C1 control", "POST", users, `{"userID":"bo\u0085b"}`, nil, 400, "invalid_field"},
		{"userID with a slash", "POST", users, `{"userID":"../alice"}`, nil, 400, "invalid_field"},
		{"invalid UTF-8", "POST", users, "{\"userID\":\"b\xffb\"}", nil, 400, "invalid_utf8"},
		{"mobile without country", "POST", users, `{"userID":"bob","mobile":"7911123456"}`, nil, 400, "invalid_field"},
		{"mobile letters", "POST", users, `{"userID":"bob","mobile":"+44 CALL ME"}`, nil, 400, "invalid_field"},
		{"mobile too long", "POST", users, `{"userID":"bob","mobile":"+` + strings.Repeat("1", 80) + `"}`, nil, 400, "invalid_field"},
		{"mobile a number", "POST", users, `{"userID":"bob","mobile":447911123456}`, nil, 400, "wrong_type"},
		{"email without @", "POST", users, `{"userID":"bob","email":"bob.example.com"}`, nil, 400, "invalid_field"},
		{"email with a space", "POST", users, `{"userID":"bob","email":"bob smith@example.com"}`, nil, 400, "invalid_field"},
		{"email too long", "POST", users, `{"userID":"bob","email":"` + strings.Repeat("b", 250) + `@example.com"}`, nil, 400, "invalid_field"},
		{"name too long", "POST", users, `{"userID":"bob","name":"` + long + `"}`, nil, 400, "invalid_field"},
		{"name with a newline", "POST", users, `{"userID":"bob","name":"Bob\nSmith"}`, nil, 400, "invalid_field"},
		{"body over the limit", "POST", users, `{"userID":"bob","name":"` + strings.Repeat("x", 5000) + `"}`, nil, 413, "body_too_large"},
		{"deep nesting", "POST", users, strings.Repeat("[", 100) + strings.Repeat("]", 100), nil, 400, "nesting_too_deep"},
		{"not JSON content", "POST", users, `{"userID":"bob"}`, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"unknown encoding", "POST", users, `{"userID":"bob"}`, []string{"Content-Encoding", "br"}, 415, "unsupported_encoding"},
		{"patch userID", "PATCH", alice, `{"userID":"eve"}`, nil, 400, "unknown_field"},
		{"patch null", "PATCH", alice, `{"mobile":null}`, nil, 400, "wrong_type"},
		{"patch bad mobile", "PATCH", alice, `{"mobile":"+1"}`, nil, 400, "invalid_field"},
		{"patch bad email", "PATCH", alice, `{"email":"@example.com"}`, nil, 400, "invalid_field"},
		{"patch an array", "PATCH", alice, `[]`, nil, 400, "wrong_type"},
		{"limit zero", "GET", users + "?limit=0", "", nil, 400, "invalid_field"},
		{"limit over", "GET", users + "?limit=1001", "", nil, 400, "invalid_field"},
		{"limit not a number", "GET", users + "?limit=ten", "", nil, 400, "invalid_field"},
		{"limit negative", "GET", users + "?limit=-1", "", nil, 400, "invalid_field"},
		{"cursor not ours", "GET", users + "?cursor=%25%25%25", "", nil, 400, "invalid_field"},
		{"a user id too long in the path", "GET", "/admin/v1/users/" + long, "", nil, 404, "user_not_found"},
		{"an encoded slash in the path", "GET", "/admin/v1/users/al%2Fice", "", nil, 404, "route_not_found"},
		{"a device id too long", "DELETE", "/admin/v1/devices/" + strings.Repeat("d", 600), "", nil, 404, "device_not_found"},
		{"key twice", "GET", users, "", []string{"Authorization", "x", "Authorization", "y"}, 400, "invalid_header"},
		{"a key too short", "GET", users, "", []string{"Authorization", "Bearer csk_short"}, 401, "invalid_api_key"},
		{"a key with a bad prefix", "GET", users, "", []string{"Authorization", "Bearer " + strings.Repeat("k", 47)}, 401, "invalid_api_key"},
		{"a long header", "GET", users, "", []string{"Authorization", "Bearer " + strings.Repeat("k", 2000)}, 401, "invalid_api_key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := req{method: c.method, path: c.path, headers: append([]string{"Authorization", "Bearer " + e.adminKey}, c.headers...)}
			if len(c.headers) > 0 && c.headers[0] == "Authorization" {
				q.headers = c.headers
			}
			if c.body != "" || c.code == "empty_body" {
				q.body = []byte(c.body) // sent with its Content-Type, empty or not
			}
			if c.name == "key twice" {
				// The client would merge them: on the wire as sent.
				resp, body := rawExchange(t, strings.TrimPrefix(e.base, "http://"), c.method+" "+c.path+" HTTP/1.1\r\nHost: x\r\n"+
					"Authorization: Bearer "+e.adminKey+"\r\nAuthorization: Bearer "+e.adminKey+"\r\n\r\n")
				if resp.StatusCode != c.status || !bytes.Contains(body, []byte(`"errorCode":"`+c.code+`"`)) {
					t.Fatalf("got %d %s, want %d %s", resp.StatusCode, body, c.status, c.code)
				}
				return
			}
			r := e.do(q)
			if r.status >= 500 || r.status != c.status || r.errorCode() != c.code || r.errorMessage() == "" {
				t.Fatalf("got %s, want %d %s", r, c.status, c.code)
			}
		})
	}
	if after := e.admin("GET", "/admin/v1/users/alice", "", ""); string(after.body) != string(before.body) {
		t.Fatalf("a refused request changed the user: %s, was %s", after.body, before.body)
	}
	if r := e.admin("GET", "/admin/v1/users", "", ""); !strings.Contains(string(r.body), `"items":[{"userID":"alice"`) || strings.Count(string(r.body), `"userID"`) != 1 {
		t.Fatalf("a refused request stored a user: %s", r)
	}
}
