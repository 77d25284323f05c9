package rules

import (
	"encoding/json"
	"testing"
)

func TestParseVersion(t *testing.T) {
	for _, s := range []string{"", ".", "1.", ".1", "1..2", " 1", "1 ", "v1", "1.2-beta", "+1", "-1", "1e3",
		"1.2.3.4.5.6.7", "2147483648", "99999999999999999999", "1.2.3\x00"} {
		if _, ok := parseVersion(s); ok {
			t.Errorf("%q parsed", s)
		}
		if _, ok := parseVersion([]byte(s)); ok {
			t.Errorf("%q parsed as bytes", s)
		}
	}
	older := [][2]string{
		{"2.9.9", "2.10.0"}, {"2.1", "2.1.1"}, {"0", "0.0.1"}, {"1.99", "2"}, {"2.10.0", "10.0"},
		{"2147483646", "2147483647"}, {"1.2.3.4.5.6", "1.2.3.4.5.7"},
	}
	for _, p := range older {
		a, ok1 := parseVersion(p[0])
		b, ok2 := parseVersion([]byte(p[1]))
		if !ok1 || !ok2 || !a.less(&b) || b.less(&a) {
			t.Errorf("%s should be older than %s", p[0], p[1])
		}
	}
	for _, p := range [][2]string{{"2.1", "2.1.0"}, {"2", "2.0.0.0.0.0"}, {"02.1", "2.01"}} {
		a, _ := parseVersion(p[0])
		b, _ := parseVersion(p[1])
		if a.less(&b) || b.less(&a) {
			t.Errorf("%s and %s should be equal", p[0], p[1])
		}
	}
}

// TestAppendQuoted: what the escaper writes decodes back to its input.
func TestAppendQuoted(t *testing.T) {
	for _, s := range []string{"", "plain reason", `a "quoted" \ path`, "tab\tnew\nline\x01\x1f", "caf\u00e9 \u2603"} {
		var back string
		if err := json.Unmarshal(appendQuoted(nil, s), &back); err != nil || back != s {
			t.Errorf("%q: %s decodes to %q (%v)", s, appendQuoted(nil, s), back, err)
		}
	}
}
