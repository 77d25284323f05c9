package rules_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"

	"github.com/countersign/countersign/engine/rules"
)

var sentinels = []error{
	rules.ErrJSON, rules.ErrUnknownKey, rules.ErrMissing, rules.ErrDuplicate, rules.ErrTooMany,
	rules.ErrID, rules.ErrGeoFence, rules.ErrTimeWindow, rules.ErrCIDR, rules.ErrDevice, rules.ErrReference,
}

// isSentinel says whether err wraps one of the package's errors.
func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func TestParseErrorsWrapSentinels(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want error
	}{
		{`[`, rules.ErrJSON},
		{`{"x":1}`, rules.ErrUnknownKey},
		{`{"geoFences":[{"lat":1,"lon":1,"radiusMeters":1}]}`, rules.ErrMissing},
		{`{"ip":{},"ip":{}}`, rules.ErrDuplicate},
		{`{"timeWindows":[{"id":"w","zone":"UTC","days":["mon","tue","wed","thu","fri","sat","sun","mon"],"start":"09:00","end":"10:00"}]}`, rules.ErrTooMany},
		{`{"geoFences":[{"id":"a b","lat":1,"lon":1,"radiusMeters":1}]}`, rules.ErrID},
		{`{"geoFences":[{"id":"a","lat":100,"lon":1,"radiusMeters":1}]}`, rules.ErrGeoFence},
		{`{"timeWindows":[{"id":"w","zone":"Nowhere/Town","days":["mon"],"start":"09:00","end":"10:00"}]}`, rules.ErrTimeWindow},
		{`{"ip":{"deny":["10.0.0.0/40"]}}`, rules.ErrCIDR},
		{`{"device":{"platforms":["blackberry"]}}`, rules.ErrDevice},
		{`{"users":{"u":{"geoFences":["nope"]}}}`, rules.ErrReference},
	} {
		_, err := rules.Parse([]byte(tc.doc))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.doc, err, tc.want)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "rules: ") {
			t.Errorf("%s: %q does not name the package", tc.doc, err)
		}
	}
}

// circles renders n circle fences.
func circles(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"f%d","lat":1,"lon":1,"radiusMeters":10}`, i)
	}
	return b.String()
}

// polygon renders a polygon of n vertices on a small circle.
func polygon(id string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"id":%q,"polygon":[`, id)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		a := 2 * math.Pi * float64(i) / float64(n)
		fmt.Fprintf(&b, "[%g,%g]", math.Sin(a), math.Cos(a))
	}
	b.WriteString("]}")
	return b.String()
}

func repeat(n int, f func(i int) string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = f(i)
	}
	return strings.Join(parts, ",")
}

// TestLimits: each limit accepts its maximum and refuses one more, naming the list.
func TestLimits(t *testing.T) {
	window := func(i int) string {
		return fmt.Sprintf(`{"id":"w%d","zone":"UTC","days":["mon"],"start":"09:00","end":"10:00"}`, i)
	}
	cidr := func(i int) string { return fmt.Sprintf(`"10.%d.%d.0/24"`, i/256, i%256) }
	user := func(i int) string { return fmt.Sprintf(`"u%d":{}`, i) }
	polygons := func(n int) string {
		return repeat(n, func(i int) string { return polygon(fmt.Sprint("p", i), rules.MaxPolygonPoints) })
	}
	for _, tc := range []struct {
		name      string
		ok, over  string
		overWords string
	}{
		{"fences", `{"geoFences":[` + circles(rules.MaxGeoFences) + `]}`,
			`{"geoFences":[` + circles(rules.MaxGeoFences+1) + `]}`, "geoFences has more than 1000"},
		{"windows", `{"timeWindows":[` + repeat(rules.MaxTimeWindows, window) + `]}`,
			`{"timeWindows":[` + repeat(rules.MaxTimeWindows+1, window) + `]}`, "timeWindows has more than 1000"},
		{"polygon points", `{"geoFences":[` + polygon("p", rules.MaxPolygonPoints) + `]}`,
			`{"geoFences":[` + polygon("p", rules.MaxPolygonPoints+1) + `]}`, "geoFences[0].polygon has more than 1000"},
		{"total points", `{"geoFences":[` + polygons(rules.MaxTotalPoints/rules.MaxPolygonPoints) + `]}`,
			`{"geoFences":[` + polygons(rules.MaxTotalPoints/rules.MaxPolygonPoints+1) + `]}`, "up to geoFences[20] have more than 20000"},
		{"cidrs", `{"ip":{"allow":[` + repeat(rules.MaxCIDRs, cidr) + `]}}`,
			`{"ip":{"allow":[` + repeat(rules.MaxCIDRs+1, cidr) + `]}}`, "ip.allow has more than 1000"},
		{"users", `{"users":{` + repeat(rules.MaxUsers, user) + `}}`,
			`{"users":{` + repeat(rules.MaxUsers+1, user) + `}}`, "users has more than 100000"},
		{"name", `{"geoFences":[{"id":"a","name":"` + strings.Repeat("n", 200) + `","lat":1,"lon":1,"radiusMeters":1}]}`,
			`{"geoFences":[{"id":"a","name":"` + strings.Repeat("n", 201) + `","lat":1,"lon":1,"radiusMeters":1}]}`, "geoFences[0].name must be at most 200 bytes"},
		{"user id", `{"users":{"` + strings.Repeat("u", 256) + `":{}}}`,
			`{"users":{"` + strings.Repeat("u", 257) + `":{}}}`, "a user id is 1 to 256 bytes"},
		{"id", `{"geoFences":[{"id":"` + strings.Repeat("i", 64) + `","lat":1,"lon":1,"radiusMeters":1}]}`,
			`{"geoFences":[{"id":"` + strings.Repeat("i", 65) + `","lat":1,"lon":1,"radiusMeters":1}]}`, "geoFences[0].id must be 1 to 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := rules.Parse([]byte(tc.ok))
			if err != nil {
				t.Fatalf("at the limit: %v", err)
			}
			if _, err := rules.Compile(r, 1); err != nil {
				t.Fatalf("Compile at the limit: %v", err)
			}
			_, err = rules.Parse([]byte(tc.over))
			if err == nil || !strings.Contains(err.Error(), tc.overWords) {
				t.Fatalf("past the limit: got %v, want it to say %q", err, tc.overWords)
			}
		})
	}
}

// TestValidateBuiltByHand: a Rules value that did not come from Parse is
// checked by Compile just the same, including what JSON cannot express.
func TestValidateBuiltByHand(t *testing.T) {
	circle := rules.GeoFence{ID: "a", Lat: 1, Lon: 1, RadiusMeters: 10}
	window := rules.TimeWindow{ID: "w", Zone: "UTC", Days: 1 << 1, Start: 540, End: 600}
	for _, tc := range []struct {
		name string
		edit func(r *rules.Rules)
		want error
	}{
		{"NaN latitude", func(r *rules.Rules) { r.GeoFences[0].Lat = math.NaN() }, rules.ErrGeoFence},
		{"infinite radius", func(r *rules.Rules) { r.GeoFences[0].RadiusMeters = math.Inf(1) }, rules.ErrGeoFence},
		{"NaN radius", func(r *rules.Rules) { r.GeoFences[0].RadiusMeters = math.NaN() }, rules.ErrGeoFence},
		{"polygon with a centre", func(r *rules.Rules) {
			r.GeoFences[0].Polygon = [][2]float64{{0, 0}, {0, 1}, {1, 1}}
		}, rules.ErrGeoFence},
		{"NaN vertex", func(r *rules.Rules) {
			r.GeoFences[0] = rules.GeoFence{ID: "a", Polygon: [][2]float64{{0, 0}, {0, math.NaN()}, {1, 1}}}
		}, rules.ErrGeoFence},
		{"no days", func(r *rules.Rules) { r.TimeWindows[0].Days = 0 }, rules.ErrTimeWindow},
		{"an eighth day", func(r *rules.Rules) { r.TimeWindows[0].Days = 1 << 7 }, rules.ErrTimeWindow},
		{"start past the day", func(r *rules.Rules) { r.TimeWindows[0].Start = 1440 }, rules.ErrTimeWindow},
		{"negative start", func(r *rules.Rules) { r.TimeWindows[0].Start = -1 }, rules.ErrTimeWindow},
		{"end past the day", func(r *rules.Rules) { r.TimeWindows[0].End = 1441 }, rules.ErrTimeWindow},
		{"zero prefix", func(r *rules.Rules) { r.IP.Allow = []netip.Prefix{{}} }, rules.ErrCIDR},
		{"host bits", func(r *rules.Rules) {
			r.IP.Deny = []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("10.1.2.3"), 8)}
		}, rules.ErrCIDR},
		{"unknown platform", func(r *rules.Rules) { r.Device.Platforms = []string{"IOS"} }, rules.ErrDevice},
		{"bad minimum", func(r *rules.Rules) { r.Device.MinAppVersion = "latest" }, rules.ErrDevice},
		{"unknown fence", func(r *rules.Rules) {
			r.Users = map[string]rules.Assignment{"u": {GeoFences: []string{"b"}}}
		}, rules.ErrReference},
		{"control character in a user id", func(r *rules.Rules) {
			r.Users = map[string]rules.Assignment{"u\n": {}}
		}, rules.ErrID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &rules.Rules{GeoFences: []rules.GeoFence{circle}, TimeWindows: []rules.TimeWindow{window}}
			tc.edit(r)
			if _, err := rules.Compile(r, 1); !errors.Is(err, tc.want) {
				t.Fatalf("Compile: got %v, want %v", err, tc.want)
			}
		})
	}

	// What Validate refuses but cannot be written in JSON still renders
	// without a panic: the rendering says what is wrong.
	r := &rules.Rules{GeoFences: []rules.GeoFence{{ID: "a", Lat: math.NaN(), RadiusMeters: 1}}}
	if _, err := r.JSON(); err == nil {
		t.Fatal("JSON of a NaN latitude succeeded")
	}
	// The zero Rules is valid: an organization without rules.
	var zero rules.Rules
	if _, err := rules.Compile(&zero, 1); err != nil {
		t.Fatalf("the zero Rules: %v", err)
	}
}

func TestEvaluateWithoutRules(t *testing.T) {
	var res rules.Result
	in := rules.Input{Biometric: rules.BiometricAbsent}
	rules.Evaluate(nil, &in, busyNow, &res)
	if !res.Failed() || res.Factors[rules.FactorBiometric].Outcome != rules.Fail {
		t.Fatalf("no biometric result passed: %+v", res)
	}
	in.Biometric = rules.BiometricPass
	rules.Evaluate(nil, &in, busyNow, &res)
	if res.Failed() {
		t.Fatalf("nil rules failed a biometric pass: %+v", res)
	}
	for f := rules.FactorGeoFence; f < rules.NumFactors; f++ {
		if r := res.Factors[f]; r.Outcome != rules.Skipped || r.Reason == "" {
			t.Errorf("%s: %+v, want SKIPPED with a reason", f, r)
		}
	}
}

// TestEvaluateOverwrites: a pooled Result keeps nothing from the last use.
func TestEvaluateOverwrites(t *testing.T) {
	c := compileBusy(t)
	ins := busyInputs()
	var res rules.Result
	rules.Evaluate(c, &ins[1], busyNow, &res)
	if !res.Failed() || res.Version != 7 {
		t.Fatalf("dave: %+v", res)
	}
	rules.Evaluate(c, &ins[0], busyNow, &res)
	if res.Failed() {
		t.Fatalf("alice after dave: %+v", res)
	}
	res.Factors[rules.FactorIP].Match = "stale"
	rules.Evaluate(nil, &ins[0], busyNow, &res)
	if res.Version != 0 || res.Factors[rules.FactorIP].Match != "" {
		t.Fatalf("nil rules kept the previous result: %+v", res)
	}
}

func TestNames(t *testing.T) {
	want := []string{"biometric", "geo_fence", "time_window", "ip", "device"}
	for f := rules.Factor(0); f < rules.NumFactors; f++ {
		if f.String() != want[f] {
			t.Errorf("factor %d is %q, want %q", f, f, want[f])
		}
	}
	if rules.NumFactors.String() != "unknown" || rules.Outcome(9).String() != "UNKNOWN" {
		t.Error("out-of-range names")
	}
	if rules.Pass.String() != "PASS" || rules.Fail.String() != "FAIL" || rules.Skipped.String() != "SKIPPED" {
		t.Error("outcome names")
	}
	var zero rules.FactorResult
	if zero.Outcome != rules.Skipped {
		t.Error("the zero outcome must not be PASS")
	}
}

func TestCompiledRendersItsDocument(t *testing.T) {
	r, err := rules.Parse([]byte(busyRules))
	if err != nil {
		t.Fatal(err)
	}
	c, err := rules.Compile(r, 42)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := r.JSON()
	if got := c.AppendJSON([]byte("x")); string(got) != "x"+string(want) || c.Version() != 42 {
		t.Fatalf("AppendJSON %s, Version %d", got, c.Version())
	}
	// The compiled rules do not follow later edits of the document.
	r.GeoFences[0].RadiusMeters = 1
	r.Users["alice"] = rules.Assignment{}
	var res rules.Result
	rules.Evaluate(c, &busyInputs()[0], busyNow, &res)
	if res.Factors[rules.FactorGeoFence].Match != "home-alice" {
		t.Fatalf("an edit of the document reached the compiled rules: %+v", res)
	}
}

func TestDaysHas(t *testing.T) {
	d := rules.Days(1<<0 | 1<<6) // sun, sat
	if !d.Has(0) || !d.Has(6) || d.Has(1) || d.Has(7) || d.Has(200) {
		t.Fatalf("Has on %b", d)
	}
}

// TestResultJSON: the rendering is JSON in the shape every surface returns.
func TestResultJSON(t *testing.T) {
	c := compileBusy(t)
	var res rules.Result
	rules.Evaluate(c, &busyInputs()[1], busyNow, &res)
	var got []struct{ Factor, Result, Reason string }
	if err := json.Unmarshal(res.AppendJSON(nil), &got); err != nil {
		t.Fatalf("%v: %s", err, res.AppendJSON(nil))
	}
	if len(got) != int(rules.NumFactors) {
		t.Fatalf("%d factors", len(got))
	}
	for i, g := range got {
		f := res.Factors[i]
		if g.Factor != rules.Factor(i).String() || g.Result != f.Outcome.String() || g.Reason != f.Reason {
			t.Errorf("factor %d rendered as %+v, is %+v", i, g, f)
		}
	}
}
