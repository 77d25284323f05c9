package rules_test

import (
	"net/netip"
	"testing"

	"github.com/countersign/countersign/engine/rules"
)

// FuzzParse: Parse never panics; what it refuses it refuses with one of the
// package's errors; what it accepts renders canonically, parses back to the
// same rendering, compiles, and evaluates without panicking.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"", "{}", busyRules,
		`{"geoFences":[{"id":"a","name":"x\u0000","lat":-90,"lon":180,"radiusMeters":1e-300}]}`,
		`{"geoFences":[{"id":"p","polygon":[[0,0],[0,1],[1,1],[0,0]]}],"users":{"u":{"geoFences":["p"]}}}`,
		`{"timeWindows":[{"id":"w","zone":"Asia/Kathmandu","days":["sun"],"start":"23:59","end":"00:00"}]}`,
		`{"ip":{"allow":["::ffff:0.0.0.0/96","::/0"],"deny":["0.0.0.0/0"]}}`,
		`{"device":{"minAppVersion":"0.0.0.0.0.1","platforms":["android"]}}`,
		`{"users":{"\u2028":{},"a\"b":{"timeWindows":[]}}}`,
		`{"geoFences":[{"id":"a","lat":1,"lon":2,"radiusMeters":3,"polygon":[]}]}`,
	} {
		f.Add([]byte(seed))
	}
	ins := busyInputs()
	ins = append(ins, rules.Input{}, rules.Input{
		UserID:   []byte("u"),
		Location: rules.Location{Present: true, Lat: 0.5, Lon: 0.5},
		IP:       netip.MustParseAddr("::ffff:1.2.3.4"),
	})
	f.Fuzz(func(t *testing.T, doc []byte) {
		r, err := rules.Parse(doc)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("an error that wraps none of the package's: %v", err)
			}
			return
		}
		roundTrip(t, r)
		c, err := rules.Compile(r, 1)
		if err != nil {
			t.Fatalf("Parse accepted what Compile refuses: %v", err)
		}
		var res rules.Result
		for i := range ins {
			rules.Evaluate(c, &ins[i], busyNow, &res)
			_ = res.AppendJSON(nil)
		}
	})
}
