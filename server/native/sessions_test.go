package native

import "testing"

// TestValidIDControls: userID and action refuse C0, DEL and C1 controls,
// and take every other character, those encoded after 0xC2 included.
func TestValidIDControls(t *testing.T) {
	for _, s := range []string{"u\x00", "u\x1f", "u\x7f", "u\u0080", "u\u0085x", "\u009b", "a\u009f"} {
		if validID(s) {
			t.Errorf("validID(%q) = true", s)
		}
	}
	for _, s := range []string{"user-1", "\u00a0", "caf\u00e9", "\u00bf?", "\u00c2", "\u0100", "wire transfer"} {
		if !validID(s) {
			t.Errorf("validID(%q) = false", s)
		}
	}
}
