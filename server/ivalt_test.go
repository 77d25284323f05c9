package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The iVALT surface played by the clients iVALT's integrators run, over a
// loopback socket with net/http as they speak it, with the authenticator
// app played by a Go device (an activated phone with a real Ed25519 key,
// long-polling /v1/device/approvals and signing its answers).

// ivaltRules assigns the test's users their own rules: gina must be in
// London (the device answers from Amsterdam), tim inside office hours on
// weekdays (the test clock is a Saturday morning); everybody else has none.
const ivaltRules = `{"geoFences":[{"id":"london","name":"London","lat":51.5074,"lon":-0.1278,"radiusMeters":1000}],
 "timeWindows":[{"id":"office","zone":"Europe/Amsterdam","days":["mon","tue","wed","thu","fri"],"start":"09:00","end":"17:00"}],
 "users":{"gina":{"geoFences":["london"],"timeWindows":[]},"tim":{"geoFences":[],"timeWindows":["office"]}}}`

type ivaltEnv struct {
	*adminEnv
	phones map[string]phone
}

func newIvaltEnv(t *testing.T) *ivaltEnv {
	e := &ivaltEnv{phones: map[string]phone{}, adminEnv: newAdminEnv(t)}
	e.want(e.admin("PUT", "/admin/v1/rules", ivaltRules, ""), 200, "")
	return e
}

// user registers userID with a mobile number and an e-mail address, and
// activates a phone for it.
func (e *ivaltEnv) user(userID, mobile, email string) phone {
	e.t.Helper()
	e.want(e.admin("POST", "/admin/v1/users", fmt.Sprintf(`{"userID":%q,"mobile":%q,"email":%q}`, userID, mobile, email), ""), 201, "")
	p := e.activatePhone(userID)
	e.phones[userID] = p
	return p
}

// device plays the authenticator app: it waits for the next approval of
// its user and answers it with decision and biometric result, signed,
// timestamped on the server's clock, from Amsterdam; edit, when given,
// rewrites the answer's body (a device that sends no location).
func (e *ivaltEnv) device(p phone, decision, biometric string, edit ...func(string) string) <-chan error {
	done := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			r := e.poll(p, "5")
			if r.status != 200 {
				done <- fmt.Errorf("device poll: %s", r)
				return
			}
			var list devicePoll
			if err := json.Unmarshal(r.body, &list); err != nil {
				done <- err
				return
			}
			if len(list.Approvals) == 0 {
				continue
			}
			a := list.Approvals[0]
			ts := e.clock().UTC().Format(time.RFC3339)
			body := signedAnswer(p.key, a, decision, biometric, ts, "")
			for _, f := range edit {
				body = f(body)
			}
			ans := e.answer(p, a.ApprovalID, body)
			if ans.status != 200 {
				done <- fmt.Errorf("device answer: %s", ans)
				return
			}
			done <- nil
			return
		}
		done <- fmt.Errorf("no approval reached the device")
	}()
	return done
}

// ivaltPost is one call as iVALT's clients make it: a JSON body, the
// x-api-key header, net/http.
func ivaltPost(t testing.TB, base, path, key string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	q, _ := http.NewRequest("POST", base+"/ivalt"+path, bytes.NewReader(b))
	q.Header.Set("Content-Type", "application/json")
	if key != "" {
		q.Header.Set("x-api-key", key)
	}
	resp, err := http.DefaultClient.Do(q)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("%s: the answer is not one JSON object: %v", path, err)
	}
	return resp.StatusCode, v
}

// dig reads a nested member of an answer ("error.detail"), "" if absent.
func dig(v map[string]any, path string) any {
	var cur any = v
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

// wire is a catalog code as iVALT's envelope spells it
// (ivalt_auth_denied reads AUTH_DENIED).
func wire(code string) string {
	return strings.ToUpper(strings.TrimPrefix(code, "ivalt_"))
}

func digString(v map[string]any, path string) string {
	s, _ := dig(v, path).(string)
	return s
}

// ovpnPlugin behaves as iVALT's OpenVPN Access Server post-auth script
// does: the user's mobile by e-mail, a push request, then the result
// polled every interval for up to window, success on 200, and on any
// other status error.detail searched for "timezone", then "geofencing",
// stopping early on either. The script's own figures are 5 s and 60 s;
// the test scales both down by the same factor (see TestIvaltOpenVPNPlugin).
type ovpnPlugin struct {
	t        testing.TB
	base     string
	key      string
	interval time.Duration
	window   time.Duration
}

// postAuth returns the script's verdict: true and "" on success, else
// false and the reason it gives the VPN client.
func (p ovpnPlugin) postAuth(email string) (bool, string) {
	ok, mobile := p.mobileByEmail(email)
	msg := "AUTHENTICATION_FAILED"
	if !ok {
		if mobile != "" {
			msg = mobile
		}
		return false, msg
	}
	p.requestSent(mobile)
	start := time.Now()
	for time.Since(start) < p.window {
		ok, errMsg := p.verify(mobile)
		if ok {
			return true, ""
		}
		if errMsg == "INVALID_TIMEZONE" || errMsg == "INVALID_GEOFENCE" {
			return false, errMsg
		}
		time.Sleep(p.interval)
	}
	return false, msg
}

func (p ovpnPlugin) mobileByEmail(email string) (bool, string) {
	status, v := ivaltPost(p.t, p.base, "/get-user-by-email", p.key, map[string]string{"email": email})
	if status != 200 {
		return false, digString(v, "error.detail")
	}
	return true, digString(v, "data.details.mobile_with_country_code")
}

func (p ovpnPlugin) requestSent(mobile string) bool {
	status, _ := ivaltPost(p.t, p.base, "/biometric-auth-request", p.key, map[string]string{"mobile": mobile})
	return status == 200
}

func (p ovpnPlugin) verify(mobile string) (bool, string) {
	status, v := ivaltPost(p.t, p.base, "/biometric-geo-fence-auth-results", p.key, map[string]string{"mobile": mobile})
	if status == 200 {
		return true, ""
	}
	detail := digString(v, "error.detail")
	switch {
	case strings.Contains(detail, "timezone"):
		return false, "INVALID_TIMEZONE"
	case strings.Contains(detail, "geofencing"):
		return false, "INVALID_GEOFENCE"
	}
	return false, ""
}

// TestIvaltOpenVPNPlugin plays the OpenVPN plugin against the server for
// each outcome it tells apart. The script polls every 5 s for 60 s; a
// denied request keeps it polling for the whole window, so at the real
// figures this test would take a minute: it polls every 250 ms for 3 s
// instead, the same twelve polls.
func TestIvaltOpenVPNPlugin(t *testing.T) {
	e := newIvaltEnv(t)
	plugin := ovpnPlugin{t: t, base: e.base, key: e.apiKey, interval: 250 * time.Millisecond, window: 3 * time.Second}
	cases := []struct {
		user, mobile, email string
		decision, bio       string
		ok                  bool
		reason              string
	}{
		{"alice", "+916283974746", "alice@example.com", "approve", "PASS", true, ""},
		{"gina", "+447911123456", "gina@example.com", "approve", "PASS", false, "INVALID_GEOFENCE"},
		{"tim", "+14155550101", "tim@example.com", "approve", "PASS", false, "INVALID_TIMEZONE"},
		{"dan", "+14155550102", "dan@example.com", "deny", "PASS", false, "AUTHENTICATION_FAILED"},
		{"fay", "+14155550103", "fay@example.com", "approve", "FAIL", false, "AUTHENTICATION_FAILED"},
	}
	for _, tc := range cases {
		e.user(tc.user, tc.mobile, tc.email)
	}
	var wg sync.WaitGroup
	for _, tc := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dev := e.device(e.phones[tc.user], tc.decision, tc.bio)
			ok, reason := plugin.postAuth(tc.email)
			if err := <-dev; err != nil {
				t.Errorf("%s: %v", tc.user, err)
			}
			if ok != tc.ok || reason != tc.reason {
				t.Errorf("%s: the plugin says %v %q, want %v %q", tc.user, ok, reason, tc.ok, tc.reason)
			}
		}()
	}
	wg.Wait()
	// The code beside the detail the plugin reads.
	if st, v := ivaltPost(t, e.base, "/biometric-auth-result", e.apiKey, map[string]string{"mobile": "+14155550101"}); st != 403 ||
		digString(v, "error.code") != wire("ivalt_invalid_timezone") || !strings.Contains(digString(v, "error.detail"), "timezone") {
		t.Errorf("tim: %d %v", st, v)
	}
	// An unknown e-mail: the plugin fails with the answer's error.detail.
	ok, reason := plugin.postAuth("nobody@example.com")
	if ok || !strings.Contains(reason, "nobody@example.com") || !strings.Contains(reason, "No user") {
		t.Errorf("unknown e-mail: %v %q", ok, reason)
	}
}

// apiPortal behaves as iVALT's API portal's client: the push request and
// the result poll, both with {mobile, requestFrom}, the poll every 2 s,
// its status read as 200 authenticated, 422 pending, 403 failed, 404 not
// registered.
type apiPortal struct {
	t    testing.TB
	base string
	key  string
}

func (p apiPortal) sendBiometricAuthRequest(mobile string) int {
	status, _ := ivaltPost(p.t, p.base, "/biometric-auth-request", p.key,
		map[string]string{"mobile": mobile, "requestFrom": "iVALT Api Portal"})
	return status
}

func (p apiPortal) getBiometricResult(mobile string) (int, map[string]any) {
	return ivaltPost(p.t, p.base, "/biometric-auth-result", p.key,
		map[string]string{"mobile": mobile, "requestFrom": "iVALT Api Portal"})
}

// login is the portal's sign-in: the request, one poll before the phone
// answers (started by answer, which may be nil for a phone that never
// does), then a poll every 2 s until an answer other than 422, for up to
// 20 s. It returns every status the polls saw.
func (p apiPortal) login(mobile string, answer func() <-chan error) ([]int, map[string]any) {
	if st := p.sendBiometricAuthRequest(mobile); st != 200 {
		return []int{st}, nil
	}
	var seen []int
	var done <-chan error
	for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(2 * time.Second) {
		st, v := p.getBiometricResult(mobile)
		seen = append(seen, st)
		if st != 422 {
			if done != nil {
				if err := <-done; err != nil {
					p.t.Errorf("device: %v", err)
				}
			}
			return seen, v
		}
		if done == nil && answer != nil {
			done = answer()
		}
	}
	return seen, nil
}

// TestIvaltAPIPortal plays the portal's two calls: 422 then 200 for an
// approval, 403 for a denial and for a request left to time out, 404 for a
// number nobody registered, each reached by the flow that reaches it.
func TestIvaltAPIPortal(t *testing.T) {
	e := newIvaltEnv(t)
	portal := apiPortal{t: t, base: e.base, key: e.apiKey}
	alice := e.user("alice", "+916283974746", "alice@example.com")
	dan := e.user("dan", "+14155550102", "dan@example.com")
	e.user("ola", "+14155550104", "ola@example.com")

	var wg sync.WaitGroup
	run := func(name string, f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	run("approved", func() {
		seen, v := portal.login("+91 62839 74746", func() <-chan error { return e.device(alice, "approve", "PASS") })
		if fmt.Sprint(seen) != "[422 200]" || dig(v, "authenticated") != true || digString(v, "status") != "success" ||
			digString(v, "data.details.user_id") != "alice" || !strings.HasPrefix(digString(v, "data.details.face_auth_token"), "apr_") {
			t.Errorf("approved: polls %v, last %v", seen, v)
		}
		if fs, _ := dig(v, "data.details.factors").([]any); len(fs) != 5 {
			t.Errorf("approved: factors %v, want all five", dig(v, "data.details.factors"))
		}
	})
	run("denied", func() {
		seen, v := portal.login("+14155550102", func() <-chan error { return e.device(dan, "deny", "PASS") })
		if fmt.Sprint(seen) != "[422 403]" || digString(v, "error.code") != wire("ivalt_auth_denied") {
			t.Errorf("denied: polls %v, last %v", seen, v)
		}
	})
	wg.Wait()

	// A circle with the poll is measured against where alice's phone
	// answered (Amsterdam): inside, 200 with the circle among the factors;
	// around London, 403 INVALID_GEOFENCE.
	amsterdam := map[string]any{"mobile": "+916283974746", "latitude": 52.3676, "longitude": 4.9041, "radius_meters": 5000}
	st, v := ivaltPost(t, e.base, "/biometric-auth-result", e.apiKey, amsterdam)
	fs, _ := dig(v, "data.details.factors").([]any)
	if st != 200 || len(fs) != 6 || fmt.Sprint(fs[5]) != "map[factor:request_geo_fence latitude:52.3676 longitude:4.9041 "+
		"radius_meters:5000 reason:the device is inside the geofencing area of the request result:PASS]" {
		t.Errorf("inside the circle: %d %v", st, v)
	}
	london := map[string]any{"mobile": "+916283974746", "latitude": 51.5074, "longitude": -0.1278, "radius_meters": 5000}
	st, v = ivaltPost(t, e.base, "/biometric-auth-result", e.apiKey, london)
	if st != 403 || digString(v, "error.code") != wire("ivalt_invalid_geofence") ||
		!strings.Contains(digString(v, "error.detail"), "geofencing") || digString(v, "data.status") != "failed" {
		t.Errorf("outside the circle: %d %v", st, v)
	}
	// A phone that sent no location cannot be inside any circle.
	noFix := func(b string) string {
		return strings.Replace(b, `"location":{"lat":52.37,"lon":4.89,"accuracyM":12},`, "", 1)
	}
	// A second later than dan's denied request, so that this one is his
	// latest: the test clock stands still, and two requests of one
	// instant have no order.
	e.advance(time.Second)
	if seen, v := portal.login("+14155550102", func() <-chan error { return e.device(dan, "approve", "PASS", noFix) }); fmt.Sprint(seen) != "[422 200]" {
		t.Fatalf("dan approved: %v %v", seen, v)
	}
	amsterdam["mobile"] = "+14155550102"
	if st, v := ivaltPost(t, e.base, "/biometric-auth-result", e.apiKey, amsterdam); st != 403 ||
		!strings.Contains(digString(v, "error.detail"), "sent no location") {
		t.Errorf("no location: %d %v", st, v)
	}

	// Nobody answers ola's phone: pending until the request's two minutes
	// pass on the server's clock, then 403.
	if st := portal.sendBiometricAuthRequest("+14155550104"); st != 200 {
		t.Fatalf("ola's request: %d", st)
	}
	if st, v := portal.getBiometricResult("+14155550104"); st != 422 || digString(v, "error.code") != wire("ivalt_auth_pending") {
		t.Errorf("ola pending: %d %v", st, v)
	}
	e.advance(121 * time.Second)
	if st, v := portal.getBiometricResult("+14155550104"); st != 403 || digString(v, "error.code") != wire("ivalt_auth_timeout") {
		t.Errorf("ola timed out: %d %v", st, v)
	}

	// A request cancelled on the native surface reads as cancelled: 403.
	_, v = ivaltPost(t, e.base, "/biometric-auth-request", e.apiKey, map[string]string{"mobile": "+14155550104"})
	e.want(e.do(req{method: "POST", path: "/v1/approvals/" + digString(v, "request_id") + "/cancel", headers: []string{"apikey", e.apiKey}}), 200, "")
	if st, v := portal.getBiometricResult("+14155550104"); st != 403 || digString(v, "error.code") != wire("ivalt_auth_cancelled") {
		t.Errorf("ola cancelled: %d %v", st, v)
	}

	// A number nobody registered: 404 on both calls.
	if st := portal.sendBiometricAuthRequest("+14155550199"); st != 404 {
		t.Errorf("unregistered request: %d", st)
	}
	if st, v := portal.getBiometricResult("+14155550199"); st != 404 || digString(v, "error.code") != "USER_NOT_FOUND" {
		t.Errorf("unregistered result: %d %v", st, v)
	}
}

// TestIvaltSeedExample runs the documented three steps: generate a token,
// verify the user by +91 and the national number, submit the biometric
// and geo-fence results in the seed's body. Every factor passes: success,
// every factor listed; a failed biometric or a location outside the
// user's fence: the failing factor, every factor still listed.
func TestIvaltSeedExample(t *testing.T) {
	e := newIvaltEnv(t)
	alice := e.user("alice", "+916283974746", "alice@example.com")
	e.user("gina", "+447911123456", "gina@example.com")
	key := e.apiKey

	st, v := ivaltPost(t, e.base, "/admin/public/api/generate-auth-token", key,
		map[string]string{"client_id": e.org.CID, "client_secret": key})
	token := digString(v, "data.details.auth_token")
	if st != 200 || digString(v, "status") != "success" || !strings.HasPrefix(token, "ivt_") {
		t.Fatalf("step 1: %d %v", st, v)
	}
	st, v = ivaltPost(t, e.base, "/admin/public/api/verify-user", key,
		map[string]string{"country_code": "+91", "mobile": "6283974746"})
	if st != 200 || digString(v, "status") != "success" || digString(v, "data.details.user_id") != "alice" {
		t.Fatalf("step 2: %d %v", st, v)
	}
	requestID := digString(v, "request_id")
	if err := <-e.device(alice, "approve", "PASS"); err != nil {
		t.Fatal(err)
	}
	submit := func(user, bio string, lat, lon float64) (int, map[string]any) {
		return ivaltPost(t, e.base, "/admin/public/api/biometric-geo-fence-auth-results", key, map[string]any{
			"user_id": user, "biometric_result": bio,
			"geo_fence_result": map[string]any{"latitude": lat, "longitude": lon},
			"device_info":      map[string]any{"platform": "iOS", "app_version": "2.1.0", "model": "iPhone15,2"},
			"timestamp":        e.clock().UTC().Format(time.RFC3339),
		})
	}
	factorsOf := func(v map[string]any) string {
		var out []string
		fs, _ := dig(v, "data.details.factors").([]any)
		for _, f := range fs {
			m := f.(map[string]any)
			out = append(out, fmt.Sprint(m["factor"], "=", m["result"]))
		}
		return strings.Join(out, " ")
	}
	st, v = submit("alice", "PASS", 52.37, 4.89)
	if st != 200 || digString(v, "status") != "success" || digString(v, "data.details.biometric_result") != "PASS" ||
		factorsOf(v) != "biometric=PASS geo_fence=SKIPPED time_window=SKIPPED ip=SKIPPED device=SKIPPED" {
		t.Errorf("step 3, every factor passing: %d %v", st, v)
	}
	st, v = submit("alice", "FAIL", 52.37, 4.89)
	if st != 403 || digString(v, "error.code") != wire("ivalt_auth_failed") || !strings.Contains(digString(v, "error.detail"), "biometric") ||
		factorsOf(v) != "biometric=FAIL geo_fence=SKIPPED time_window=SKIPPED ip=SKIPPED device=SKIPPED" {
		t.Errorf("step 3, biometric failed: %d %v", st, v)
	}
	st, v = submit("gina", "PASS", 52.37, 4.89)
	if st != 403 || digString(v, "error.code") != wire("ivalt_invalid_geofence") || !strings.Contains(digString(v, "error.detail"), "geofencing") ||
		factorsOf(v) != "biometric=PASS geo_fence=FAIL time_window=SKIPPED ip=SKIPPED device=SKIPPED" {
		t.Errorf("step 3, outside the fence: %d %v", st, v)
	}
	st, v = submit("gina", "PASS", 51.5072, -0.1276)
	if st != 200 || digString(v, "data.details.geo_fence_result") != "PASS" {
		t.Errorf("step 3, inside the fence: %d %v", st, v)
	}

	// The token validates the request's result, and the one-time
	// face_auth_token it hands out validates the user once.
	st, v = ivaltPost(t, e.base, "/admin/public/api/validate/global/rest/auth", key,
		map[string]string{"mobile": "+916283974746", "auth_token": token, "request_id": requestID})
	face := digString(v, "data.details.face_auth_token")
	if st != 200 || face == "" {
		t.Fatalf("validate global auth: %d %v", st, v)
	}
	st, v = ivaltPost(t, e.base, "/admin/public/api/api/v1/validate/user", key,
		map[string]string{"face_auth_token": face, "auth_token": token})
	if st != 200 || digString(v, "data.details.request_id") != requestID {
		t.Errorf("validate user: %d %v", st, v)
	}
	st, v = ivaltPost(t, e.base, "/admin/public/api/api/v1/validate/user", key,
		map[string]string{"face_auth_token": face, "auth_token": token})
	if st != 401 || digString(v, "error.code") != wire("ivalt_invalid_face_auth_token") || !strings.Contains(digString(v, "error.detail"), "used already") {
		t.Errorf("validate user again: %d %v", st, v)
	}
	// An expired auth_token is refused.
	e.advance(6 * time.Minute)
	st, v = ivaltPost(t, e.base, "/admin/public/api/validate/global/rest/auth", key,
		map[string]string{"mobile": "+916283974746", "auth_token": token})
	if st != 401 || digString(v, "error.code") != wire("ivalt_invalid_auth_token") {
		t.Errorf("expired auth_token: %d %v", st, v)
	}
}

// TestIvaltTenancyAndBadInput: another organization's key sees none of
// this organization's users or requests (404 USER_NOT_FOUND and
// APPROVAL_NOT_FOUND, exactly as for missing ones); a missing key is 401
// and a wrong one 403, in iVALT's envelope; and a table of bad requests is
// each answered 4xx in the envelope, naming its problem, never 5xx.
func TestIvaltTenancyAndBadInput(t *testing.T) {
	e := newIvaltEnv(t)
	alice := e.user("alice", "+916283974746", "alice@example.com")
	_, v := ivaltPost(t, e.base, "/biometric-auth-request", e.apiKey, map[string]string{"mobile": "+916283974746"})
	requestID := digString(v, "request_id")
	if err := <-e.device(alice, "approve", "PASS"); err != nil {
		t.Fatal(err)
	}
	sameAnswer := func(what, path string, mine, missing map[string]any) {
		t.Helper()
		sm, vm := ivaltPost(t, e.base, path, e.otherKey, mine)
		sn, vn := ivaltPost(t, e.base, path, e.otherKey, missing)
		if sm != 404 || sn != 404 || digString(vm, "error.code") != digString(vn, "error.code") || digString(vm, "error.code") == "" {
			t.Errorf("%s: another org's %d %v, a missing one's %d %v", what, sm, vm, sn, vn)
		}
	}
	sameAnswer("user by e-mail", "/get-user-by-email", map[string]any{"email": "alice@example.com"}, map[string]any{"email": "zed@example.com"})
	sameAnswer("user by mobile", "/biometric-auth-result", map[string]any{"mobile": "+916283974746"}, map[string]any{"mobile": "+916283974799"})
	sameAnswer("request", "/biometric-auth-request", map[string]any{"mobile": "+916283974746"}, map[string]any{"mobile": "+916283974799"})
	// The other org registers the same number: it still never reads alice's request.
	e.want(e.admin("POST", "/admin/v1/users", `{"userID":"alice2","mobile":"+916283974746"}`, e.otherAdmin), 201, "")
	st, v := ivaltPost(t, e.base, "/biometric-auth-result", e.otherKey, map[string]any{"mobile": "+916283974746", "request_id": requestID})
	if st != 404 || digString(v, "error.code") != "APPROVAL_NOT_FOUND" {
		t.Errorf("another org's request by id: %d %v", st, v)
	}
	st, v = ivaltPost(t, e.base, "/biometric-auth-result", e.otherKey, map[string]any{"mobile": "+916283974746"})
	if st != 404 || digString(v, "error.code") != "APPROVAL_NOT_FOUND" {
		t.Errorf("another org's user of the same number, no request of its own: %d %v", st, v)
	}
	st, v = ivaltPost(t, e.base, "/biometric-auth-result", e.apiKey, map[string]any{"mobile": "+916283974746", "request_id": requestID})
	if st != 200 {
		t.Errorf("own request by id: %d %v", st, v)
	}

	type badCase struct {
		name, path, key, ct, body string
		status                    int
		code, says                string
	}
	k := e.apiKey
	cases := []badCase{
		{"no key", "/biometric-auth-request", "", "", `{"mobile":"+916283974746"}`, 401, wire("ivalt_api_key_missing"), "x-api-key"},
		{"unknown key", "/biometric-auth-request", "nope", "", `{"mobile":"+916283974746"}`, 403, wire("ivalt_invalid_api_key"), "x-api-key"},
		{"admin key", "/biometric-auth-request", e.adminKey, "", `{"mobile":"+916283974746"}`, 403, "INVALID_API_KEY", "x-api-key"},
		{"no key on the admin family", "/admin/public/api/verify-user", "", "", `{}`, 401, "API_KEY_MISSING", "x-api-key"},
		{"empty body", "/biometric-auth-request", k, "", ``, 400, "EMPTY_BODY", ""},
		{"not JSON", "/biometric-auth-request", k, "", `{mobile:1}`, 400, "INVALID_JSON", ""},
		{"an array", "/biometric-auth-request", k, "", `[]`, 400, "WRONG_TYPE", ""},
		{"trailing data", "/biometric-auth-request", k, "", `{"mobile":"+916283974746"} x`, 400, "TRAILING_DATA", ""},
		{"mobile a number", "/biometric-auth-request", k, "", `{"mobile":916283974746}`, 400, "WRONG_TYPE", "mobile"},
		{"mobile missing", "/biometric-auth-request", k, "", `{"requestFrom":"x"}`, 400, "MISSING_FIELD", "mobile"},
		{"mobile empty", "/biometric-auth-result", k, "", `{"mobile":""}`, 400, "MISSING_FIELD", "mobile"},
		{"mobile and mobile_number", "/biometric-auth-result", k, "", `{"mobile":"+916283974746","mobile_number":"+916283974746"}`, 400, "INVALID_FIELD", "mobile_number"},
		{"mobile without country code", "/biometric-auth-request", k, "", `{"mobile":"6283974746"}`, 400, "INVALID_FIELD", "mobile"},
		{"mobile letters", "/biometric-auth-request", k, "", `{"mobile":"+91abc"}`, 400, "INVALID_FIELD", "mobile"},
		{"mobile too long", "/biometric-auth-request", k, "", `{"mobile":"+9162839747466283974746628397474662839747466283974746628397474662839747466"}`, 400, "INVALID_FIELD", "mobile"},
		{"country code unknown", "/admin/public/api/verify-user", k, "", `{"country_code":"+999","mobile":"6283974746"}`, 400, "INVALID_FIELD", "country_code"},
		{"country code a number", "/admin/public/api/verify-user", k, "", `{"country_code":91,"mobile":"6283974746"}`, 400, "WRONG_TYPE", "country_code"},
		{"mobile_number not valid", "/biometric-auth-result", k, "", `{"mobile_number":"+9112"}`, 400, "INVALID_FIELD", "mobile_number"},
		{"latitude out of range", "/biometric-auth-result", k, "", `{"mobile":"+916283974746","latitude":91,"longitude":0,"radius_meters":5}`, 400, "INVALID_FIELD", "latitude"},
		{"longitude a string", "/biometric-auth-result", k, "", `{"mobile":"+916283974746","latitude":1,"longitude":"0","radius_meters":5}`, 400, "WRONG_TYPE", "longitude"},
		{"radius zero", "/biometric-auth-result", k, "", `{"mobile":"+916283974746","latitude":1,"longitude":0,"radius_meters":0}`, 400, "INVALID_FIELD", "radius_meters"},
		{"fence without radius", "/biometric-auth-result", k, "", `{"mobile":"+916283974746","latitude":1,"longitude":0}`, 400, "INVALID_FIELD", "radius_meters"},
		{"request_id malformed", "/biometric-auth-result", k, "", `{"mobile":"+916283974746","request_id":"x"}`, 400, "INVALID_FIELD", "request_id"},
		{"request_id unknown", "/biometric-auth-result", k, "", `{"mobile":"+916283974746","request_id":"apr_aaaaaaaaaaaaaaaaaaaaaaaa"}`, 404, "APPROVAL_NOT_FOUND", ""},
		{"field twice", "/biometric-auth-request", k, "", `{"mobile":"+916283974746","mobile":"+916283974746"}`, 400, "DUPLICATE_FIELD", "mobile"},
		{"email missing", "/get-user-by-email", k, "", `{}`, 400, "MISSING_FIELD", "email"},
		{"email not an address", "/get-user-by-email", k, "", `{"email":"alice"}`, 400, "INVALID_FIELD", "email"},
		{"email an object", "/admin/public/api/get-user-by-email", k, "", `{"email":{}}`, 400, "WRONG_TYPE", "email"},
		{"client_secret missing", "/admin/public/api/generate-auth-token", k, "", `{"client_id":"` + e.org.CID + `"}`, 400, "MISSING_FIELD", "client_secret"},
		{"client_secret wrong", "/admin/public/api/api/v1/auth", k, "", `{"client_id":"` + e.org.CID + `","client_secret":"nope"}`, 401, wire("ivalt_invalid_client"), "client_id"},
		{"client of another org", "/admin/public/api/generate-auth-token", k, "", `{"client_id":"` + e.other.CID + `","client_secret":"` + e.otherKey + `"}`, 401, "INVALID_CLIENT", ""},
		{"auth_token missing", "/admin/public/api/validate/global/rest/auth", k, "", `{"mobile":"+916283974746"}`, 400, "MISSING_FIELD", "auth_token"},
		{"auth_token unknown", "/admin/public/api/validate/global/rest/auth", k, "", `{"mobile":"+916283974746","auth_token":"ivt_x"}`, 401, "INVALID_AUTH_TOKEN", "auth_token"},
		{"face token unknown", "/admin/public/api/api/v1/validate/user", k, "", `{"auth_token":"ivt_x","face_auth_token":"x"}`, 401, "INVALID_AUTH_TOKEN", ""},
		{"biometric_result wrong", "/admin/public/api/biometric-geo-fence-auth-results", k, "", `{"user_id":"alice","biometric_result":"OK"}`, 400, "INVALID_FIELD", "biometric_result"},
		{"user_id missing", "/admin/public/api/biometric-geo-fence-auth-results", k, "", `{"biometric_result":"PASS"}`, 400, "MISSING_FIELD", "user_id"},
		{"user_id unknown", "/admin/public/api/biometric-geo-fence-auth-results", k, "", `{"user_id":"zed","biometric_result":"PASS"}`, 404, "USER_NOT_FOUND", "user_id"},
		{"geo_fence_result without longitude", "/admin/public/api/biometric-geo-fence-auth-results", k, "", `{"user_id":"alice","biometric_result":"PASS","geo_fence_result":{"latitude":1}}`, 400, "MISSING_FIELD", "longitude"},
		{"device_info jailbroken a string", "/admin/public/api/biometric-geo-fence-auth-results", k, "", `{"user_id":"alice","biometric_result":"PASS","device_info":{"jailbroken":"no"}}`, 400, "WRONG_TYPE", "jailbroken"},
		{"timestamp stale", "/admin/public/api/biometric-geo-fence-auth-results", k, "", `{"user_id":"alice","biometric_result":"PASS","timestamp":"2020-01-01T00:00:00Z"}`, 400, "INVALID_FIELD", "timestamp"},
		{"timestamp not RFC 3339", "/admin/public/api/biometric-geo-fence-auth-results", k, "", `{"user_id":"alice","biometric_result":"PASS","timestamp":"yesterday"}`, 400, "INVALID_FIELD", "timestamp"},
		{"form body", "/biometric-auth-request", k, "application/x-www-form-urlencoded", `mobile=%2B916283974746`, 415, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"body too large", "/biometric-auth-request", k, "", `{"mobile":"+916283974746","pad":"` + strings.Repeat("x", 5000) + `"}`, 413, "BODY_TOO_LARGE", ""},
		{"unknown path", "/biometric-auth", k, "", `{}`, 404, "ROUTE_NOT_FOUND", ""},
		{"unknown admin path", "/admin/public/api/verify", k, "", `{}`, 404, "ROUTE_NOT_FOUND", ""},
	}
	for _, tc := range cases {
		h := []string{}
		if tc.key != "" {
			h = append(h, "x-api-key", tc.key)
		}
		if tc.ct != "" {
			h = append(h, "Content-Type", tc.ct)
		}
		r := e.do(req{method: "POST", path: "/ivalt" + tc.path, body: []byte(tc.body), headers: h, noCT: tc.ct != ""})
		var env struct {
			Status string `json:"status"`
			Error  struct {
				Code   string `json:"code"`
				Status int    `json:"status"`
				Detail string `json:"detail"`
			} `json:"error"`
		}
		err := json.Unmarshal(r.body, &env)
		if err != nil || r.status >= 500 || r.status != tc.status || env.Status != "error" || env.Error.Code != tc.code ||
			env.Error.Status != tc.status || !strings.Contains(env.Error.Detail, tc.says) {
			t.Errorf("%s: %s, want %d %s naming %q", tc.name, r, tc.status, tc.code, tc.says)
		}
	}
	// Push-bombing: three pending requests for one user, then 429
	// RATE_LIMIT_EXCEEDED with Retry-After.
	e.user("bob", "+14155550105", "bob@example.com")
	for i := range 4 {
		r := e.do(req{method: "POST", path: "/ivalt/biometric-auth-request", body: []byte(`{"mobile":"+14155550105"}`), headers: []string{"x-api-key", k}})
		if i < 3 && r.status != 200 || i == 3 && (r.status != 429 || r.header["retry-after"] == "" ||
			!strings.Contains(string(r.body), `"code":"`+wire("ivalt_rate_limit_exceeded")+`"`)) {
			t.Errorf("request %d for bob: %s %v", i+1, r, r.header)
		}
	}

	// A GET is refused with 405 in the envelope.
	if r := e.do(req{method: "GET", path: "/ivalt/biometric-auth-result", headers: []string{"x-api-key", k}}); r.status != 405 || !strings.Contains(string(r.body), `"code":"METHOD_NOT_ALLOWED"`) {
		t.Errorf("GET: %s", r)
	}
}

// TestIvaltPanic: a panic in a handler of the surface answers 500 in
// iVALT's envelope (status "error", the code INTERNAL_ERROR), and the
// server goes on serving.
func TestIvaltPanic(t *testing.T) {
	e := newAdminEnv(t, withHook(func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Request.Header.Peek("x-test-panic")) == "1" {
			panic("boom")
		}
	}))
	body := []byte(`{"mobile":"+31612345678"}`)
	r := e.do(req{method: "POST", path: "/ivalt/biometric-auth-result", body: body, headers: []string{"x-api-key", e.apiKey, "x-test-panic", "1"}})
	var v struct {
		Status string `json:"status"`
		Error  struct {
			Code   string `json:"code"`
			Status int    `json:"status"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil || r.status != 500 || v.Status != "error" || v.Error.Code != "INTERNAL_ERROR" || v.Error.Status != 500 {
		t.Fatalf("a panic answered %d %s (%v), want 500 in iVALT's envelope with INTERNAL_ERROR", r.status, r.body, err)
	}
	r = e.do(req{method: "POST", path: "/ivalt/biometric-auth-result", body: body, headers: []string{"x-api-key", e.apiKey}})
	if r.status != 404 || !strings.Contains(string(r.body), `"USER_NOT_FOUND"`) {
		t.Fatalf("after the panic: %d %s, want 404 USER_NOT_FOUND", r.status, r.body)
	}
}
