package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/client"
)

// apiPortal behaves as iVALT's API portal (jaskaran-ai/ivalt-api-portal,
// src/lib/ivalt.ts) does, with the base URL https://api.ivalt.com changed
// to the binary's /ivalt: sendBiometricAuthRequest posts {mobile,
// requestFrom}; getBiometricResult posts {mobile} (with latitude,
// longitude and radius_meters when the sign-in asks for an area) every
// 2 s while the answer is 422, and reads 200 as authenticated, 403 as
// failed, denied or timed out, 404 as not registered.
type apiPortal struct {
	t    *testing.T
	base string
	key  string
}

// portalArea is the circle a sign-in may ask the user to be in.
type portalArea struct {
	lat, lon, radiusMeters float64
}

// portalPoll is one getBiometricResult as the portal saw it.
type portalPoll struct {
	status int
	body   []byte
}

func (pp portalPoll) String() string { return fmt.Sprintf("%d %s", pp.status, pp.body) }

func (p apiPortal) sendBiometricAuthRequest(mobile string) int {
	st, _ := ivaltPost(p.t, p.base, p.key, "/biometric-auth-request",
		map[string]string{"mobile": mobile, "requestFrom": "iVALT Api Portal"})
	return st
}

func (p apiPortal) getBiometricResult(mobile string, area *portalArea) (int, []byte) {
	body := map[string]any{"mobile": mobile}
	if area != nil {
		body["latitude"], body["longitude"], body["radius_meters"] = area.lat, area.lon, area.radiusMeters
	}
	return ivaltPost(p.t, p.base, p.key, "/biometric-auth-result", body)
}

// signIn is the portal's sign-in: the request, then the result every 2 s
// for up to 20 s until an answer other than 422. answer starts the user's
// phone after the first poll, so that poll finds the request pending. It
// returns every poll; none when the request itself was refused (its status
// is then the only one).
func (p apiPortal) signIn(mobile string, area *portalArea, answer func() <-chan error) (int, []portalPoll) {
	if st := p.sendBiometricAuthRequest(mobile); st != 200 {
		return st, nil
	}
	var polls []portalPoll
	var phone <-chan error
	for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(2 * time.Second) {
		st, b := p.getBiometricResult(mobile, area)
		polls = append(polls, portalPoll{st, b})
		if st != 422 {
			break
		}
		if phone == nil {
			phone = answer()
		}
	}
	if phone != nil {
		if err := <-phone; err != nil {
			p.t.Errorf("%s's phone: %v", mobile, err)
		}
	}
	return 200, polls
}

// portalAnswer is what the test reads of a result.
type portalAnswer struct {
	Error struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	} `json:"error"`
	Data struct {
		Details struct {
			FaceAuthToken string           `json:"face_auth_token"`
			Factors       []map[string]any `json:"factors"`
		} `json:"details"`
	} `json:"data"`
}

// TestServeIvaltAPIPortal plays the portal's two calls against the binary,
// each phone played with the client package answering from Amsterdam:
// 422 on the first poll, before the phone answers; then 200 for an
// approval, also inside an area around Amsterdam (the circle among the
// factors); 403 for a denial and for an approval outside an area around
// London (INVALID_GEOFENCE, "geofencing" in error.detail); 404 on both
// calls for a number nobody registered. The sign-ins run at once.
func TestServeIvaltAPIPortal(t *testing.T) {
	data, cred := newOrg(t)
	p := serve(t, data, freeAddr(t))
	c := p.client(client.Config{APIKey: cred.APIKey, AdminKey: cred.AdminKey, Timeout: 30 * time.Second})
	portal := apiPortal{t: t, base: "http://" + p.addr + "/ivalt", key: cred.APIKey}
	amsterdam := &portalArea{52.37, 4.89, 5000}
	london := &portalArea{51.5074, -0.1278, 5000}
	cases := []struct {
		user, mobile, decision string
		area                   *portalArea
		status                 int
		code                   string
	}{
		{"alice", "+916283974746", "approve", nil, 200, ""},
		{"ivy", "+14155550103", "approve", amsterdam, 200, ""},
		{"dan", "+14155550102", "deny", nil, 403, "AUTH_DENIED"},
		{"gina", "+447911123456", "approve", london, 403, "INVALID_GEOFENCE"},
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
			st, polls := portal.signIn(tc.mobile, tc.area, func() <-chan error { return ivaltPhone(phones[tc.user], tc.decision) })
			if st != 200 || len(polls) != 2 || polls[0].status != 422 {
				t.Errorf("%s: request %d, polls %v: want 422 then the answer", tc.user, st, polls)
				return
			}
			last := polls[1]
			var v portalAnswer
			if err := json.Unmarshal(last.body, &v); err != nil || last.status != tc.status || v.Error.Code != tc.code {
				t.Errorf("%s: %d %s, want %d %q", tc.user, last.status, last.body, tc.status, tc.code)
				return
			}
			t.Logf("%s: %d %s", tc.user, last.status, last.body)
			fs := v.Data.Details.Factors
			switch {
			case tc.status == 200 && !strings.HasPrefix(v.Data.Details.FaceAuthToken, "apr_"):
				t.Errorf("%s: no face_auth_token: %s", tc.user, last.body)
			case tc.code == "INVALID_GEOFENCE" && !strings.Contains(v.Error.Detail, "geofencing"):
				t.Errorf("%s: error.detail %q does not say geofencing", tc.user, v.Error.Detail)
			case tc.area != nil && (len(fs) == 0 || fs[len(fs)-1]["factor"] != "request_geo_fence" ||
				fs[len(fs)-1]["radius_meters"] != tc.area.radiusMeters):
				t.Errorf("%s: the area is not among the factors: %v", tc.user, fs)
			case tc.area == amsterdam && fs[len(fs)-1]["result"] != "PASS",
				tc.area == london && fs[len(fs)-1]["result"] != "FAIL":
				t.Errorf("%s: the area's factor: %v", tc.user, fs[len(fs)-1])
			}
		}()
	}
	wg.Wait()
	t.Logf("the four sign-ins took %v", time.Since(start).Round(time.Millisecond))

	// A number nobody registered: 404 on both calls.
	if st, polls := portal.signIn("+14155550199", nil, nil); st != 404 || polls != nil {
		t.Errorf("unregistered request: %d %v", st, polls)
	}
	if st, b := portal.getBiometricResult("+14155550199", nil); st != 404 || !strings.Contains(string(b), `"USER_NOT_FOUND"`) {
		t.Errorf("unregistered result: %d %s", st, b)
	}
}
