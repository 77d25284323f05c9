package native

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/countersign/countersign/engine/biometric"
	"github.com/countersign/countersign/engine/match"
	"github.com/countersign/countersign/engine/policy"
)

// randomDecision draws a verdict and value details covering every field of
// the record: each flag, nil and empty field names, escapes and non-ASCII in
// keys, extreme counts, sequence numbers, floats and timestamps.
func randomDecision(r *rand.Rand) (policy.Verdict, []match.Detail) {
	names := []string{"amount", "payeeID", "Ünïcode", `quo"te\back`, "tab\tnew\nline", "\u2028", "a", "x-very-long-key-name-for-a-form-field"}
	var v policy.Verdict
	for _, b := range []*bool{&v.ValuesCollected, &v.ValuesMatch, &v.BiometricsCollected, &v.BiometricsMatch,
		&v.Liveness, &v.SpoofDetected, &v.UserEnrolled, &v.IDVMatching, &v.DriverLicenseCollected,
		&v.IDLiveLiveness, &v.RegularLiveness, &v.HasViolations, &v.VerifiedAction} {
		*b = r.IntN(2) == 1
	}
	for k := biometric.Kind(0); k < biometric.NumReportedKinds; k++ {
		if r.IntN(3) == 0 {
			v.Violations = append(v.Violations, policy.ViolationCount{Kind: k, Count: r.Uint32(), FirstSeq: r.Uint64()})
		}
	}
	v.TotalFrames, v.VerifiedFrames = r.Uint32(), r.Uint32()
	for _, t := range []biometric.FrameType{biometric.FaceFrame, biometric.DocumentFrame} {
		if r.IntN(2) == 0 {
			v.Info = append(v.Info, policy.TypeInfo{Type: t, Frames: r.Uint32(), Verified: r.Uint32(),
				MeanSimilarity: r.Float32()*2 - 1, MeanLiveness: r.Float32(),
				FirstTS: r.Int64() - math.MaxInt64/2, LastTS: r.Int64()})
		}
	}
	v.Score = r.IntN(10001)
	var details []match.Detail
	for i := r.IntN(6); i > 0; i-- {
		d := match.Detail{Key: []byte(names[r.IntN(len(names))]), Matched: r.IntN(2) == 1,
			Reason: match.Reason(r.IntN(3))}
		switch r.IntN(3) {
		case 0: // not collected
		case 1:
			d.Field = []byte{}
		default:
			d.Field = []byte(names[r.IntN(len(names))])
		}
		details = append(details, d)
	}
	return v, details
}

// wantAnswer is DESIGN's answer for v and details, built independently of
// the renderer (as generic JSON values), for a semantic comparison.
func wantAnswer(v *policy.Verdict, details []match.Detail, id string) map[string]any {
	det := map[string]any{}
	for _, d := range details {
		var field any
		if d.Field != nil {
			field = string(d.Field)
		}
		det[string(d.Key)] = map[string]any{"matched": d.Matched, "field": field, "reason": d.Reason.String()}
	}
	viol := []any{}
	for _, vc := range v.Violations {
		viol = append(viol, map[string]any{"type": vc.Kind.String(), "count": float64(vc.Count), "firstSeq": float64(vc.FirstSeq)})
	}
	info := []any{}
	for _, ti := range v.Info {
		info = append(info, map[string]any{"type": ti.Type.String(), "frames": float64(ti.Frames), "verified": float64(ti.Verified),
			"meanSimilarity": float64(ti.MeanSimilarity), "meanLiveness": float64(ti.MeanLiveness),
			"firstTs": float64(ti.FirstTS), "lastTs": float64(ti.LastTS)})
	}
	return map[string]any{
		"success": true, "verifiedAction": v.VerifiedAction, "decisionID": id, "ivScore": float64(v.Score),
		"indicators": map[string]any{
			"iv_is_values_collected": v.ValuesCollected, "iv_is_values_match": v.ValuesMatch,
			"iv_values_match_details":    det,
			"iv_is_biometrics_collected": v.BiometricsCollected,
			"iv_is_biometrics_match":     v.BiometricsMatch,
			"iv_liveness":                v.Liveness,
			"iv_policy_violations":       map[string]any{"violations": viol, "has_violations": v.HasViolations, "total_frames": float64(v.TotalFrames), "verified_frames": float64(v.VerifiedFrames)},
			"iv_biometrics_info":         info,
			"iv_user_enrolled":           v.UserEnrolled,
			"iv_spoof_detected":          v.SpoofDetected,
			"idv_matching":               v.IDVMatching,
			"driverLicenseCollected":     v.DriverLicenseCollected,
			"idlive_liveness":            v.IDLiveLiveness,
			"regular_liveness":           v.RegularLiveness,
		},
	}
}

// normalizeFloats makes float32 figures comparable after a trip through
// JSON: the renderer writes the shortest float32 form, which parses to a
// float64 that differs from float64(f32) in its low bits.
func normalizeFloats(m map[string]any) {
	ind := m["indicators"].(map[string]any)
	for _, e := range ind["iv_biometrics_info"].([]any) {
		ti := e.(map[string]any)
		for _, k := range []string{"meanSimilarity", "meanLiveness"} {
			ti[k] = float32(ti[k].(float64))
		}
	}
}

func TestDecisionRecordRendersTheAnswer(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		v, details := randomDecision(r)
		rec := appendDecisionRecord(nil, &v, details)
		out, err := AppendValidateAnswer([]byte("prefix"), rec, "01JBZ8Q3Y00000000000000000")
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !bytes.HasPrefix(out, []byte("prefix")) {
			t.Fatalf("case %d: dst's contents lost", i)
		}
		var got map[string]any
		if err := json.Unmarshal(out[len("prefix"):], &got); err != nil {
			t.Fatalf("case %d: invalid JSON %v:\n%s", i, err, out)
		}
		// Large integers lose precision through float64 on both sides
		// alike, so comparing as generic JSON is exact enough here.
		want := wantAnswer(&v, details, "01JBZ8Q3Y00000000000000000")
		normalizeFloats(got)
		normalizeFloats(want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d:\n got %v\nwant %v", i, got, want)
		}
	}
}

// A record is about a fifth of the answer it renders: that is what it is for.
func TestDecisionRecordIsCompact(t *testing.T) {
	v := policy.Verdict{ValuesCollected: true, ValuesMatch: true, BiometricsCollected: true, Liveness: true,
		RegularLiveness: true, TotalFrames: 5, VerifiedFrames: 5, Score: 6250,
		Info: []policy.TypeInfo{{Type: biometric.FaceFrame, Frames: 5, Verified: 5, MeanLiveness: 0.97,
			FirstTS: 1763800000100, LastTS: 1763800001700}}}
	var details []match.Detail
	for _, kv := range [][2]string{{"amount", "total"}, {"payeeID", "payee"}, {"accountNumber", "account"}, {"notes", "memo"}} {
		details = append(details, match.Detail{Key: []byte(kv[0]), Field: []byte(kv[1]), Matched: true, Reason: match.Match})
	}
	rec := appendDecisionRecord(nil, &v, details)
	out, err := AppendValidateAnswer(nil, rec, "01M81AM6Z4K6HTWJNGAXMN7SMG")
	if err != nil {
		t.Fatal(err)
	}
	if len(rec)*4 > len(out) {
		t.Errorf("record %d bytes for an answer of %d", len(rec), len(out))
	}
}

// A decision log written before records existed holds the JSON answer
// itself; it is answered as stored.
func TestDecisionRecordVerbatimAnswer(t *testing.T) {
	stored := []byte(`{"success":true,"verifiedAction":true}`)
	out, err := AppendValidateAnswer([]byte("x"), stored, "ignored")
	if err != nil || string(out) != "x"+string(stored) {
		t.Fatalf("%q %v", out, err)
	}
}

// Damage never panics or renders garbage: a truncated record, a record with
// bytes left over, unknown versions, flags, reasons, kinds and types, and
// lengths past the end are all errDecisionRecord, with dst left as it was.
func TestDecisionRecordDamage(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	v, details := randomDecision(r)
	v.Violations = []policy.ViolationCount{{Kind: biometric.NoFace, Count: 1, FirstSeq: 2}}
	v.Info = []policy.TypeInfo{{Type: biometric.FaceFrame, Frames: 1}}
	details = []match.Detail{{Key: []byte("k"), Field: []byte("f"), Reason: match.Match}}
	rec := appendDecisionRecord(nil, &v, details)
	bad := func(name string, b []byte) {
		t.Helper()
		out, err := AppendValidateAnswer([]byte("dst"), b, "id")
		if err == nil || string(out) != "dst" {
			t.Errorf("%s: %q %v", name, out, err)
		}
	}
	for n := 0; n < len(rec); n++ {
		bad("truncated", rec[:n])
	}
	bad("trailing byte", append(bytes.Clone(rec), 0))
	bad("version", append([]byte{2}, rec[1:]...))
	bad("unknown flag", func() []byte { b := bytes.Clone(rec); b[2] |= 0x80; return b }())
	// Positions of single bytes in this record's layout: version, 2 flag
	// bytes, details count, key len, 'k', matched/field byte, field len,
	// 'f', reason, violations count, kind.
	for _, c := range []struct {
		name string
		at   int
		val  byte
	}{
		{"details count past the end", 3, 0x7f},
		{"key length past the end", 4, 0x7f},
		{"matched/field flags", 6, 0x04},
		{"reason", 9, 3},
		{"violations count", 10, 0x7f},
		{"kind", 11, byte(biometric.NumReportedKinds)},
	} {
		b := bytes.Clone(rec)
		b[c.at] = c.val
		bad(c.name, b)
	}
	// Every single-byte change either renders valid JSON or is refused.
	for i := range rec {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			b := bytes.Clone(rec)
			b[i] ^= x
			out, err := AppendValidateAnswer(nil, b, "id")
			if err == nil && !json.Valid(out) {
				t.Errorf("byte %d ^ %#x: invalid JSON %s", i, x, out)
			}
		}
	}
}

func FuzzDecisionRecord(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 8 {
		v, details := randomDecision(r)
		f.Add(appendDecisionRecord(nil, &v, details))
	}
	f.Add([]byte{})
	f.Add([]byte(`{"x":1}`))
	f.Fuzz(func(t *testing.T, rec []byte) {
		if len(rec) > 0 && rec[0] == '{' {
			return // a verbatim answer from an older log is trusted as stored
		}
		out, err := AppendValidateAnswer(nil, rec, "id")
		if err == nil && !json.Valid(out) {
			t.Fatalf("rendered invalid JSON from %x: %s", rec, out)
		}
		if err != nil && len(out) != 0 {
			t.Fatalf("error with output %q", out)
		}
	})
}
