//go:build !race

package match

import "testing"

// The race detector allocates on its own, so these proofs run without it.

// TestMatchAllocs proves the hot path of validate: matching a 4-item sessionData
// against a session's fields allocates nothing once the Matcher and Result are warm.
func TestMatchAllocs(t *testing.T) {
	items, fields := benchRequest(4, 12)
	var m Matcher
	var res Result
	if err := m.Match(items, fields, &res); err != nil || !res.Matched {
		t.Fatalf("setup: err %v, res %+v", err, res)
	}
	if n := testing.AllocsPerRun(200, func() {
		if err := m.Match(items, fields, &res); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Match: %v allocations per run, want 0", n)
	}
}

// TestAppendCanonicalAllocs covers every path of the canonicaliser, including the
// ones that work in dst's spare capacity (escapes, NFC normalisation).
func TestAppendCanonicalAllocs(t *testing.T) {
	for _, raw := range []string{
		`35`, `-12345678901234567890.5e-3`, `true`, `null`,
		`"35.00"`, `"  Hello   World  "`, `"0066"`, `" TRUE "`,
		`"Jos\u00e9 Garci\u0301a"`, `"José García"`, `"Jose` + "\u0301" + ` Garcia` + "\u0301" + `"`,
		`"ΣΑΣ σας"`, `"\ud83d\ude00 \t tab"`, `"日本語のテキスト"`,
	} {
		r := []byte(raw)
		dst := make([]byte, 0, 4*len(r)+16)
		if _, _, err := AppendCanonical(dst, r); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if n := testing.AllocsPerRun(200, func() {
			_, _, _ = AppendCanonical(dst[:0], r)
		}); n != 0 {
			t.Errorf("AppendCanonical(%s): %v allocations per run, want 0", raw, n)
		}
		if n := testing.AllocsPerRun(200, func() {
			_ = ValidateValue(r)
		}); n != 0 {
			t.Errorf("ValidateValue(%s): %v allocations per run, want 0", raw, n)
		}
	}
}
