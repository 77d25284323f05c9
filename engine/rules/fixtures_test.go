package rules_test

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geo"

	"github.com/countersign/countersign/engine/rules"
)

// defaultTime is when an eval without time= happens: a Monday, 11:00 in Amsterdam.
var defaultTime = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// TestFixtures runs fixtures/rules/*.txt:
//
//	rules [version=N]        parse the input as a rules document and compile it; print
//	                         the canonical JSON (checked to round-trip) or the error;
//	                         later evals use it (after an error, the previous rules)
//	eval [user=ID] [bio=PASS|FAIL|absent] [lat=.. lon=.. [acc=..]] [ip=ADDR]
//	     [time=RFC3339] [registered] [platform=P] [version=V] [jailbroken]
//	     [fence=(LAT,LON,RADIUS)] [json]
//	                         evaluate the rules; one line per factor, then failed=;
//	                         fence: the request's own circle (iVALT's radius_meters);
//	                         json: also the factors as the APIs render them.
//	                         bio defaults to PASS, time to 2026-03-02T10:00:00Z (a Monday)
//	distance lat=.. lon=.. to=LAT,LON
//	                         haversine metres between two points, to show how far a
//	                         point used in an eval is from a fence's centre
//
// go test -run TestFixtures ./engine/rules -rewrite regenerates the expectations.
func TestFixtures(t *testing.T) {
	datadriven.Walk(t, "../../fixtures/rules", func(t *testing.T, path string) {
		var c *rules.Compiled
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "rules":
				version := uint64(1)
				d.MaybeScanArgs(t, "version", &version)
				r, err := rules.Parse([]byte(d.Input))
				if err != nil {
					return "error: " + err.Error() + "\n"
				}
				js := roundTrip(t, r)
				if c, err = rules.Compile(r, version); err != nil {
					d.Fatalf(t, "Parse accepted what Compile refuses: %v", err)
				}
				if got := c.AppendJSON(nil); string(got) != string(js) {
					d.Fatalf(t, "Compiled.AppendJSON differs from Rules.JSON:\n%s\n%s", got, js)
				}
				return string(js) + "\n"
			case "eval":
				var in rules.Input
				now := scanEval(t, d, &in)
				var res rules.Result
				rules.Evaluate(c, &in, now, &res)
				return describe(t, d, &res)
			case "distance":
				var lat, lon float64
				d.ScanArgs(t, "lat", &lat)
				d.ScanArgs(t, "lon", &lon)
				arg, _ := d.Arg("to")
				var to [2]float64
				arg.ExpectNumVals(t, 2)
				arg.Scan(t, 0, &to[0])
				arg.Scan(t, 1, &to[1])
				m := geo.DistanceHaversine(orb.Point{lon, lat}, orb.Point{to[1], to[0]})
				return fmt.Sprintf("%.9f m\n", m)
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}

// roundTrip renders r, parses the rendering and renders again: both
// renderings must be the same bytes.
func roundTrip(t testing.TB, r *rules.Rules) []byte {
	t.Helper()
	js, err := r.JSON()
	if err != nil {
		t.Fatalf("JSON of a parsed document: %v", err)
	}
	back, err := rules.Parse(js)
	if err != nil {
		t.Fatalf("the canonical rendering does not parse: %v\n%s", err, js)
	}
	again, err := back.JSON()
	if err != nil || string(again) != string(js) {
		t.Fatalf("the canonical rendering does not round-trip (%v):\n%s\n%s", err, js, again)
	}
	return js
}

func scanEval(t *testing.T, d *datadriven.TestData, in *rules.Input) time.Time {
	in.Biometric = rules.BiometricPass
	now := defaultTime
	for _, a := range d.CmdArgs {
		val := ""
		if len(a.Vals) > 0 {
			val = a.Vals[0]
		}
		var err error
		switch a.Key {
		case "user":
			in.UserID = []byte(val)
		case "bio":
			switch val {
			case "PASS":
				in.Biometric = rules.BiometricPass
			case "FAIL":
				in.Biometric = rules.BiometricFail
			case "absent":
				in.Biometric = rules.BiometricAbsent
			default:
				err = fmt.Errorf("bio=%s", val)
			}
		case "lat":
			in.Location.Present = true
			in.Location.Lat, err = strconv.ParseFloat(val, 64)
		case "lon":
			in.Location.Present = true
			in.Location.Lon, err = strconv.ParseFloat(val, 64)
		case "acc":
			in.Location.AccuracyM, err = strconv.ParseFloat(val, 64)
		case "ip":
			in.IP, err = netip.ParseAddr(val)
		case "time":
			now, err = time.Parse(time.RFC3339, val)
		case "registered":
			in.Device.Registered = true
		case "platform":
			in.Device.Platform = []byte(val)
		case "version":
			in.Device.AppVersion = []byte(val)
		case "jailbroken":
			in.Device.Jailbroken = true
		case "fence":
			a.ExpectNumVals(t, 3)
			in.RequestFence.Present = true
			a.Scan(t, 0, &in.RequestFence.Lat)
			a.Scan(t, 1, &in.RequestFence.Lon)
			a.Scan(t, 2, &in.RequestFence.RadiusMeters)
		case "json":
		default:
			err = fmt.Errorf("unknown argument")
		}
		if err != nil {
			d.Fatalf(t, "%s: %v", a.Key, err)
		}
	}
	return now
}

// describe prints one line per factor (outcome, the id that let it pass,
// reason) and failed=, checking that Failed agrees with the lines and that
// every failure reason carries the word clients match on.
func describe(t *testing.T, d *datadriven.TestData, res *rules.Result) string {
	var b strings.Builder
	anyFail := false
	for f := rules.Factor(0); f < rules.NumFactors; f++ {
		r := res.Factors[f]
		fmt.Fprintf(&b, "%-11s %-7s ", f, r.Outcome)
		if r.Match != "" {
			fmt.Fprintf(&b, "[%s] ", r.Match)
		}
		b.WriteString(r.Reason + "\n")
		if r.Outcome == rules.Fail {
			anyFail = true
			if f == rules.FactorGeoFence && !strings.Contains(r.Reason, "geofencing") ||
				f == rules.FactorTimeWindow && !strings.Contains(r.Reason, "timezone") {
				d.Fatalf(t, "%s failed without the word clients match on: %q", f, r.Reason)
			}
		}
	}
	if res.Failed() != anyFail {
		d.Fatalf(t, "Failed() = %v, the factors say %v", res.Failed(), anyFail)
	}
	fmt.Fprintf(&b, "failed=%v\n", res.Failed())
	if d.HasArg("json") {
		b.Write(res.AppendJSON(nil))
		b.WriteByte('\n')
	}
	return b.String()
}
