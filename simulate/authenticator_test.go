package simulate

import (
	"testing"
	"time"

	"github.com/countersign/countersign/client"
)

// TestAuthenticatorRules: the rules scenarios' set gives the fence and the
// open window to the users of the scenarios about them, the closed window
// to the time-window scenario's user alone, so every other user of the
// organization is held to neither; the open window holds now, the closed
// one does not, also across midnight.
func TestAuthenticatorRules(t *testing.T) {
	for _, now := range []time.Time{
		time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 3, 23, 30, 0, 0, time.UTC),
	} {
		a := NewAuthenticator(nil, "run")
		a.Now = func() time.Time { return now }
		r := a.Rules(AuthScenarios)
		byID := map[string][2]string{}
		for _, w := range r.TimeWindows {
			byID[w.ID] = [2]string{w.Start, w.End}
		}
		hm := now.Format("15:04")
		inside := func(w [2]string) bool {
			if w[0] <= w[1] {
				return w[0] <= hm && hm < w[1]
			}
			return hm >= w[0] || hm < w[1] // across midnight
		}
		if !inside(byID[openWindow]) || inside(byID[closedWindow]) {
			t.Errorf("at %s: open %v, closed %v", hm, byID[openWindow], byID[closedWindow])
		}
		want := map[string]client.UserRules{
			"run-approve":             client.UserRules{GeoFences: []string{fenceID}, TimeWindows: []string{openWindow}},
			"run-outside-geofence":    client.UserRules{GeoFences: []string{fenceID}, TimeWindows: []string{openWindow}},
			"run-outside-time-window": client.UserRules{GeoFences: []string{}, TimeWindows: []string{closedWindow}},
		}
		if len(r.Users) != len(want) {
			t.Fatalf("users %v", r.Users)
		}
		for u, w := range want {
			got := r.Users[u]
			if len(got.GeoFences) != len(w.GeoFences) || len(got.TimeWindows) != 1 || got.TimeWindows[0] != w.TimeWindows[0] {
				t.Errorf("%s: %+v, want %+v", u, got, w)
			}
		}
	}
}
