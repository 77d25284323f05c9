package client

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestRulesJSON: the rules document is DESIGN's ("Admin", PUT
// /admin/v1/rules): circles and polygons, windows, the IP lists, device
// trust, and users' own fences and windows; empty lists are [] not null.
func TestRulesJSON(t *testing.T) {
	r := Rules{
		GeoFences: []GeoFence{
			{ID: "office", Name: "Office", Lat: 52.3676, Lon: 4.9041, RadiusMeters: 250},
			{ID: "campus", Name: "Campus", Polygon: [][2]float64{{52.1, 4.1}, {52.2, 4.1}, {52.2, 4.2}}},
		},
		TimeWindows: []TimeWindow{{ID: "night", Zone: "Europe/Amsterdam", Days: []string{"mon", "sun"}, Start: "22:00", End: "06:00"}},
		IPAllow:     []string{"10.0.0.0/8"},
		Device:      &DeviceRules{RequireRegistered: true, Platforms: []string{"ios"}, MinAppVersion: "2.10.0", BlockJailbroken: true},
		Users:       map[string]UserRules{"u\"1": {GeoFences: []string{"office"}}},
	}
	var got any
	if err := json.Unmarshal(r.AppendJSON(nil), &got); err != nil {
		t.Fatalf("%v: %s", err, r.AppendJSON(nil))
	}
	var want any
	json.Unmarshal([]byte(`{
	 "geoFences":[{"id":"office","name":"Office","lat":52.3676,"lon":4.9041,"radiusMeters":250},
	              {"id":"campus","name":"Campus","polygon":[[52.1,4.1],[52.2,4.1],[52.2,4.2]]}],
	 "timeWindows":[{"id":"night","zone":"Europe/Amsterdam","days":["mon","sun"],"start":"22:00","end":"06:00"}],
	 "ip":{"allow":["10.0.0.0/8"],"deny":[]},
	 "device":{"requireRegistered":true,"platforms":["ios"],"minAppVersion":"2.10.0","blockJailbroken":true},
	 "users":{"u\"1":{"geoFences":["office"],"timeWindows":[]}}}`), &want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rules document\n got %s", r.AppendJSON(nil))
	}
	if got := string((&Rules{}).AppendJSON(nil)); got != `{"geoFences":[],"timeWindows":[],"ip":{"allow":[],"deny":[]},"users":{}}` {
		t.Errorf("empty rules: %s", got)
	}
}
