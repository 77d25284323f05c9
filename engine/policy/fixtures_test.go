package policy_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/countersign/countersign/engine/biometric"
	"github.com/countersign/countersign/engine/biometric/biometrictest"
	"github.com/countersign/countersign/engine/policy"
)

// TestFixtures runs fixtures/policy/*.txt. Besides the session commands of
// package biometrictest (vector, template, fold, enroll, ...):
//
//	policy [default] [json]          parse the input as a policy JSON and compile it; print
//	                                 the keys that differ from the default policy (json: all);
//	                                 frames folded afterwards are scored under its thresholds
//	evaluate [values-collected] [values-match] [user-mismatch] [fresh-template] [no-frames]
//	         [enrolled=true|false]   evaluate the session's aggregate (enrolled defaults to
//	                                 whether the user has a template; fresh-template: the
//	                                 template was enrolled from this very session)
//	wants-enrollment                 WantsEnrollment for each isEnrollment x enrolled
//
// go test -run TestFixtures ./engine/policy -rewrite regenerates the expectations.
func TestFixtures(t *testing.T) {
	datadriven.Walk(t, "../../fixtures/policy", func(t *testing.T, path string) {
		w := biometrictest.NewWorld(8)
		c, _ := policy.Compile(policy.Default())
		var v policy.Verdict
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "policy":
				js := []byte(d.Input)
				if d.HasArg("default") {
					js = policy.Default().JSON()
				}
				p, err := policy.Parse(js)
				if err != nil {
					return "error: " + err.Error() + "\n"
				}
				if c, err = policy.Compile(p); err != nil {
					d.Fatalf(t, "Parse accepted what Compile refuses: %v", err)
				}
				w.SetThresholds(c.Thresholds()) // frames folded from now on score under it
				back, err := policy.Parse(p.JSON())
				if err != nil || back != p {
					d.Fatalf(t, "JSON does not round-trip: %v\n%s", err, p.JSON())
				}
				if d.HasArg("default") || d.HasArg("json") {
					return string(p.JSON()) + "\n"
				}
				return changes(t, p)
			case "evaluate":
				in := policy.Input{
					ValuesCollected: d.HasArg("values-collected"),
					ValuesMatch:     d.HasArg("values-match"),
					UserMismatch:    d.HasArg("user-mismatch"),
					ActionMismatch:  d.HasArg("action-mismatch"),
					FreshTemplate:   d.HasArg("fresh-template"),
					Agg:             w.Agg,
					Enrolled:        w.Template != nil,
				}
				if d.HasArg("no-frames") {
					in.Agg = biometric.NewAggregate(w.Dim)
				}
				d.MaybeScanArgs(t, "enrolled", &in.Enrolled)
				c.Evaluate(&in, &v)
				return describe(t, c.Policy(), &v)
			case "wants-enrollment":
				var b strings.Builder
				for _, isEnrollment := range []bool{false, true} {
					for _, enrolled := range []bool{false, true} {
						fmt.Fprintf(&b, "isEnrollment=%v enrolled=%v: %v\n", isEnrollment, enrolled,
							c.WantsEnrollment(isEnrollment, enrolled))
					}
				}
				return b.String()
			}
			args := make([]biometrictest.Arg, len(d.CmdArgs))
			for i, a := range d.CmdArgs {
				args[i] = biometrictest.Arg{Key: a.Key, Vals: a.Vals}
			}
			out, err := w.Run(d.Cmd, args, d.Input)
			if errors.Is(err, biometrictest.ErrUnknownCommand) {
				d.Fatalf(t, "unknown command %q", d.Cmd)
			}
			if err != nil {
				d.Fatalf(t, "%v", err)
			}
			return out
		})
	})
}

// changes lists the keys of p's JSON whose values differ from the default
// policy's, so that an expectation shows what a policy changes.
func changes(t *testing.T, p policy.Policy) string {
	flat := func(js []byte) map[string]string {
		var m map[string]any
		if err := json.Unmarshal(js, &m); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				for k2, v2 := range sub {
					out[k+"."+k2] = fmt.Sprint(v2)
				}
				continue
			}
			out[k] = fmt.Sprint(v)
		}
		return out
	}
	got, def := flat(p.JSON()), flat(policy.Default().JSON())
	var diff []string
	for k, v := range got {
		if def[k] != v {
			diff = append(diff, k+"="+v)
		}
	}
	if len(diff) == 0 {
		return "ok: the default policy\n"
	}
	slices.Sort(diff)
	return "ok: " + strings.Join(diff, " ") + "\n"
}

// describe prints the verdict: each weight with its indicator (so that the
// score can be checked by eye, and is checked here against Score), the other
// indicators, the violations and the per-type info.
func describe(t *testing.T, p policy.Policy, v *policy.Verdict) string {
	w := p.Weights
	rows := []struct {
		name   string
		on     bool
		weight int
	}{
		{"iv_is_values_collected", v.ValuesCollected, w.ValuesCollected},
		{"iv_is_values_match", v.ValuesMatch, w.ValuesMatch},
		{"iv_is_biometrics_collected", v.BiometricsCollected, w.BiometricsCollected},
		{"iv_is_biometrics_match", v.BiometricsMatch, w.BiometricsMatch},
		{"iv_liveness", v.Liveness, w.Liveness},
		{"no violations, with frames", !v.HasViolations && v.TotalFrames > 0, w.NoViolations},
		{"iv_user_enrolled", v.UserEnrolled, w.Enrolled},
		{"idv_matching", v.IDVMatching, w.IDVMatching},
		{"idlive_liveness", v.IDLiveLiveness, w.IDLiveLiveness},
		{"regular_liveness", v.RegularLiveness, w.RegularLiveness},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ivScore=%d verifiedAction=%v\n", v.Score, v.VerifiedAction)
	sum := 0
	for _, r := range rows {
		pts := "0"
		if r.on {
			pts = "+" + strconv.Itoa(r.weight)
			sum += r.weight
		}
		fmt.Fprintf(&b, "  %-27s %-5v %6s of %d\n", r.name, r.on, pts, r.weight)
	}
	if sum != v.Score {
		t.Errorf("weights of the true indicators sum to %d, ivScore is %d", sum, v.Score)
	}
	fmt.Fprintf(&b, "iv_spoof_detected=%v driverLicenseCollected=%v has_violations=%v total_frames=%d verified_frames=%d\n",
		v.SpoofDetected, v.DriverLicenseCollected, v.HasViolations, v.TotalFrames, v.VerifiedFrames)
	b.WriteString("violations:")
	if len(v.Violations) == 0 {
		b.WriteString(" none")
	}
	for _, x := range v.Violations {
		fmt.Fprintf(&b, " %s(count=%d first=%d)", x.Kind, x.Count, x.FirstSeq)
	}
	b.WriteByte('\n')
	for _, i := range v.Info {
		fmt.Fprintf(&b, "info: %s frames=%d verified=%d similarity=%.4f liveness=%.4f ts=%d..%d\n",
			i.Type, i.Frames, i.Verified, i.MeanSimilarity, i.MeanLiveness, i.FirstTS, i.LastTS)
	}
	return b.String()
}
