package rules_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/countersign/countersign/engine/rules"
)

// busyRules is a rule set with every kind of rule, for the allocation test
// and the benchmark: circles and polygons, windows in two zones (one across
// midnight), allow and deny lists of both families, device rules, and users
// with their own assignments.
const busyRules = `{
 "geoFences": [
  {"id": "hq", "lat": 52.370216, "lon": 4.895168, "radiusMeters": 1000},
  {"id": "port", "polygon": [[51.88, 4.20], [51.88, 4.50], [51.98, 4.50], [51.98, 4.20]]},
  {"id": "ell", "polygon": [[0, 0], [0, 2], [1, 2], [1, 1], [2, 1], [2, 0], [0, 0]]},
  {"id": "nyc", "lat": 40.7128, "lon": -74.006, "radiusMeters": 5000},
  {"id": "home-alice", "polygon": [[52.09, 5.10], [52.09, 5.14], [52.11, 5.14], [52.11, 5.10]]}
 ],
 "timeWindows": [
  {"id": "office", "zone": "Europe/Amsterdam", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:30"},
  {"id": "ny", "zone": "America/New_York", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:30"},
  {"id": "night", "zone": "Europe/Amsterdam", "days": ["fri", "sat"], "start": "22:00", "end": "02:00"}
 ],
 "ip": {"allow": ["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"], "deny": ["10.66.0.0/16", "2001:db8:bad::/48"]},
 "device": {"requireRegistered": true, "platforms": ["ios", "android"], "minAppVersion": "2.10.0", "blockJailbroken": true},
 "users": {"alice": {"geoFences": ["home-alice", "hq"], "timeWindows": ["night"]}}
}`

func compileBusy(tb testing.TB) *rules.Compiled {
	tb.Helper()
	r, err := rules.Parse([]byte(busyRules))
	if err != nil {
		tb.Fatal(err)
	}
	c, err := rules.Compile(r, 7)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// busyInputs are evaluations that walk most of the rule set: a user with an
// assignment and one without, a pass, and failures that scan every fence,
// window and range before giving up.
func busyInputs() []rules.Input {
	return []rules.Input{
		{
			UserID: []byte("alice"), Biometric: rules.BiometricPass,
			Location: rules.Location{Present: true, Lat: 52.10, Lon: 5.12, AccuracyM: 12},
			// The request's own circle, so that the allocation test walks it too.
			RequestFence: rules.Circle{Present: true, Lat: 52.10, Lon: 5.12, RadiusMeters: 500},
			IP:           netip.MustParseAddr("::ffff:10.1.2.3"),
			Device:       rules.Device{Registered: true, Platform: []byte("iOS"), AppVersion: []byte("2.10.1")},
		},
		{
			UserID: []byte("dave"), Biometric: rules.BiometricPass,
			Location: rules.Location{Present: true, Lat: 48.8566, Lon: 2.3522},
			IP:       netip.MustParseAddr("2001:db9::1"),
			Device:   rules.Device{Registered: true, Platform: []byte("android"), AppVersion: []byte("2.9.9")},
		},
	}
}

// busyNow is a Saturday 01:00 in Amsterdam: inside alice's night window
// (it started on Friday), outside everybody's office hours.
var busyNow = time.Date(2026, 3, 7, 0, 0, 0, 0, time.UTC)
