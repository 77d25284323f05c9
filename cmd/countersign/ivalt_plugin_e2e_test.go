package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/client"
)

// openVPNPlugin behaves as iVALT's OpenVPN Access Server post-auth script
// (iVALT-Inc/openvpn-ivalt-2fa, main.py) does, with the base URL
// https://api.ivalt.com changed to the binary's /ivalt: the user's mobile
// by e-mail, a push request whose answer it ignores, then the result
// polled every 5 s while less than window has passed since the e-mail
// lookup; success on 200, and on any other status error.detail searched
// for "timezone", then "geofencing", either ending the loop at once. The
// script's window is 60 s.
type openVPNPlugin struct {
	t      *testing.T
	base   string
	key    string
	window time.Duration
}

// pluginPoll is one result poll as the script saw it.
type pluginPoll struct {
	status int
	detail string
}

// postAuth returns the script's verdict for email: true and "" on
// success, else false and the reason it gives the VPN client; and the
// result polls it made.
func (p openVPNPlugin) postAuth(email string) (ok bool, reason string, polls []pluginPoll) {
	found, mobile := p.mobileByEmail(email)
	start := time.Now()
	reason = "AUTHENTICATION_FAILED"
	if !found {
		if mobile != "" {
			reason = mobile
		}
		return false, reason, nil
	}
	p.post("/biometric-auth-request", mobile)
	for time.Since(start) < p.window {
		st, v := p.post("/biometric-geo-fence-auth-results", mobile)
		detail := errorDetail(v)
		polls = append(polls, pluginPoll{st, detail})
		if st == 200 {
			return true, "", polls
		}
		switch {
		case strings.Contains(detail, "timezone"):
			return false, "INVALID_TIMEZONE", polls
		case strings.Contains(detail, "geofencing"):
			return false, "INVALID_GEOFENCE", polls
		}
		time.Sleep(5 * time.Second)
	}
	return false, reason, polls
}

// mobileByEmail is the script's lookup: on 200 the number at
// data.details.mobile_with_country_code, otherwise error.detail.
func (p openVPNPlugin) mobileByEmail(email string) (bool, string) {
	st, v := p.post("/get-user-by-email", map[string]string{"email": email})
	if st != 200 {
		return false, errorDetail(v)
	}
	var d struct {
		Data struct {
			Details struct {
				Mobile string `json:"mobile_with_country_code"`
			} `json:"details"`
		} `json:"data"`
	}
	_ = json.Unmarshal(v, &d)
	return true, d.Data.Details.Mobile
}

// post sends body (a mobile number is sent as {"mobile": ...}) as the
// script's requests.post does: JSON, Content-Type and x-api-key.
func (p openVPNPlugin) post(path string, body any) (int, []byte) {
	p.t.Helper()
	if m, ok := body.(string); ok {
		body = map[string]string{"mobile": m}
	}
	return ivaltPost(p.t, p.base, p.key, path, body)
}

// ivaltPost is one call as iVALT's clients make it: POST base+path with
// body as JSON, Content-Type and x-api-key; it checks the answer is JSON.
func ivaltPost(t *testing.T, base, key, path string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	q, _ := http.NewRequest("POST", base+path, bytes.NewReader(b))
	q.Header.Set("Content-Type", "application/json")
	q.Header.Set("x-api-key", key)
	resp, err := http.DefaultClient.Do(q)
	if err != nil {
		t.Errorf("POST %s: %v", path, err)
		return 0, nil
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if !json.Valid(buf.Bytes()) {
		t.Errorf("POST %s: %d, the answer is not JSON: %q", path, resp.StatusCode, buf.Bytes())
	}
	return resp.StatusCode, buf.Bytes()
}

func errorDetail(b []byte) string {
	var v struct {
		Error struct {
			Detail string `json:"detail"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &v)
	return v.Error.Detail
}

// ivaltPhone is a user's authenticator app: it long-polls its device's
// approvals and answers the first with decision, a passing face check,
// from Amsterdam.
func ivaltPhone(ph *testPhone, decision string) <-chan error {
	done := make(chan error, 1)
	go func() {
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
			list, err := ph.poll(10)
			if err != nil {
				done <- fmt.Errorf("device poll: %w", err)
				return
			}
			if len(list) == 0 {
				continue
			}
			ans := &client.DeviceAnswer{Decision: decision, Biometric: "PASS", BiometricMethod: "face",
				Location: &client.Location{Lat: 52.3676, Lon: 4.9041, AccuracyM: 12},
				Platform: "ios", AppVersion: "2.1.0", Timestamp: time.Now().UTC().Format(time.RFC3339)}
			ans.Sign(ph.key, &list[0])
			_, err = ph.c.AnswerApproval(ph.dev.DeviceToken, list[0].ApprovalID, ans)
			done <- err
			return
		}
		done <- fmt.Errorf("no approval reached the device in 20s")
	}()
	return done
}

// ivaltUser registers user with mobile and e-mail user@example.com, and
// activates a phone for it.
func ivaltUser(t *testing.T, c *client.Client, user, mobile string) *testPhone {
	t.Helper()
	if _, err := c.CreateUser(&client.NewUser{UserID: user, Mobile: mobile, Email: user + "@example.com"}); err != nil {
		t.Fatalf("create %s: %v", user, err)
	}
	code, err := c.CreateActivationCode(user)
	if err != nil {
		t.Fatalf("activation code for %s: %v", user, err)
	}
	ph, err := activateTestPhone(c, code.ActivationCode)
	if err != nil {
		t.Fatalf("activate %s's phone: %v", user, err)
	}
	return ph
}

// TestServeIvaltOpenVPNPlugin plays iVALT's OpenVPN plugin against the
// binary, the device played with the client package: approved is success;
// answering from Amsterdam when the user's fence is London is
// INVALID_GEOFENCE; a window that opens in two hours is INVALID_TIMEZONE;
// a denial is failure; an unknown e-mail fails with its error.detail. The
// polls are 5 s apart as the script's are, and the cases run at once. A
// denial keeps the script polling for its whole minute, as it does: the
// test checks that it polled for all of it and that every poll after the
// first answered 403 without either word.
func TestServeIvaltOpenVPNPlugin(t *testing.T) {
	data, cred := newOrg(t)
	p := serve(t, data, freeAddr(t))
	c := p.client(client.Config{APIKey: cred.APIKey, AdminKey: cred.AdminKey, Timeout: 30 * time.Second})
	admin := client.Header{Name: "Authorization", Value: "Bearer " + cred.AdminKey}
	now := time.Now().UTC()
	rules := fmt.Sprintf(`{"geoFences":[{"id":"london","name":"London","lat":51.5074,"lon":-0.1278,"radiusMeters":1000}],
 "timeWindows":[{"id":"later","zone":"UTC","days":["mon","tue","wed","thu","fri","sat","sun"],"start":%q,"end":%q}],
 "users":{"gina":{"geoFences":["london"],"timeWindows":[]},"tim":{"geoFences":[],"timeWindows":["later"]}}}`,
		now.Add(2*time.Hour).Format("15:04"), now.Add(3*time.Hour).Format("15:04"))
	if r, err := c.Do("PUT", "/admin/v1/rules", []byte(rules), admin); err != nil || r.Status != 200 {
		t.Fatalf("PUT /admin/v1/rules: %v %d %s", err, r.Status, r.Body)
	}

	plugin := openVPNPlugin{t: t, base: "http://" + p.addr + "/ivalt", key: cred.APIKey, window: 60 * time.Second}
	cases := []struct {
		user, mobile, decision string
		ok                     bool
		reason                 string
		window                 time.Duration
	}{
		{"alice", "+916283974746", "approve", true, "", 0},
		{"gina", "+447911123456", "approve", false, "INVALID_GEOFENCE", 0},
		{"tim", "+14155550101", "approve", false, "INVALID_TIMEZONE", 0},
		{"dan", "+14155550102", "deny", false, "AUTHENTICATION_FAILED", 60 * time.Second},
	}
	phones := map[string]*testPhone{}
	for _, tc := range cases {
		phones[tc.user] = ivaltUser(t, c, tc.user, tc.mobile)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, tc := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pl := plugin
			if tc.window > 0 {
				pl.window = tc.window
			}
			dev := ivaltPhone(phones[tc.user], tc.decision)
			ok, reason, polls := pl.postAuth(tc.user + "@example.com")
			if err := <-dev; err != nil {
				t.Errorf("%s's phone: %v", tc.user, err)
			}
			t.Logf("%s: %v %q after polls %v", tc.user, ok, reason, polls)
			if ok != tc.ok || reason != tc.reason {
				t.Errorf("%s: the plugin says %v %q, want %v %q; polls %v", tc.user, ok, reason, tc.ok, tc.reason, polls)
			}
			// The phone answers within milliseconds: the first or the
			// second poll decides.
			if tc.window == 0 && len(polls) > 2 {
				t.Errorf("%s: %d polls, want the first or second to decide: %v", tc.user, len(polls), polls)
			}
			if tc.window > 0 {
				// 5 s apart for a minute: 12, or 11 when the machine
				// makes a poll slow enough to push the twelfth past it.
				if len(polls) < 11 || len(polls) > 12 {
					t.Errorf("%s: %d polls in %v, want 12 (5 s apart): %v", tc.user, len(polls), tc.window, polls)
				}
				for i, pp := range polls[min(1, len(polls)):] {
					if pp.status != 403 || strings.Contains(pp.detail, "timezone") || strings.Contains(pp.detail, "geofencing") {
						t.Errorf("%s: poll %d after the denial: %d %q", tc.user, i+2, pp.status, pp.detail)
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("the four sign-ins took %v", time.Since(start).Round(time.Millisecond))

	// An unknown e-mail: the script fails with the answer's error.detail,
	// and sends no push.
	ok, reason, polls := plugin.postAuth("nobody@example.com")
	if ok || polls != nil || !strings.Contains(reason, "nobody@example.com") {
		t.Errorf("unknown e-mail: %v %q %v", ok, reason, polls)
	}
}
