package match

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/cockroachdb/datadriven"
)

// TestFixtures runs the behaviour cases in fixtures/match. Regenerate expectations with
// `go test ./engine/match -run TestFixtures -rewrite` and review the diff by hand.
//
// Commands (every input line first expands $rep(N,s) to s repeated N times and
// $x(hex) to raw bytes, so limits and invalid UTF-8 stay readable):
//
//	canonical        one raw JSON token per line -> its kind and canonical bytes, or the error
//	equal            lines "A ~ B" of two raw tokens -> match, or mismatch with both kinds
//	match [quiet]    lines "field NAME = RAW", "item KEY [SYN ...] = RAW",
//	                 "fields N PREFIX = RAW", "items N PREFIX [SYN ...] = RAW"
//	                 -> one line per item (or counts per reason with quiet), then both
//	                 indicators; or the error and the item index
//
// NAME, KEY and SYN are bare words or JSON strings (for spaces, "" and escapes).
func TestFixtures(t *testing.T) {
	datadriven.Walk(t, "../../fixtures/match", func(t *testing.T, path string) {
		var shared Matcher // reused across cases, like a pooled matcher
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "canonical":
				return runCanonical(t, d)
			case "equal":
				return runEqual(t, d)
			case "match":
				return runMatch(t, d, &shared)
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}

var (
	repMacro = regexp.MustCompile(`\$rep\((\d+),([^)]*)\)`)
	hexMacro = regexp.MustCompile(`\$x\(([0-9a-fA-F]+)\)`)
)

// expand replaces the fixture macros in a line.
func expand(t *testing.T, s string) []byte {
	s = repMacro.ReplaceAllStringFunc(s, func(m string) string {
		sub := repMacro.FindStringSubmatch(m)
		n, err := strconv.Atoi(sub[1])
		if err != nil {
			t.Fatalf("bad $rep in %q: %v", m, err)
		}
		return strings.Repeat(sub[2], n)
	})
	s = hexMacro.ReplaceAllStringFunc(s, func(m string) string {
		b, err := hex.DecodeString(hexMacro.FindStringSubmatch(m)[1])
		if err != nil {
			t.Fatalf("bad $x in %q: %v", m, err)
		}
		return string(b)
	})
	return []byte(s)
}

func inputLines(d *datadriven.TestData) []string {
	var out []string
	for _, l := range strings.Split(d.Input, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// canonical checks the invariants every result must keep and returns it: the tag
// agrees with the kind, appending after existing bytes leaves them alone (NFC must not
// merge with what precedes), an error leaves dst unchanged, and ValidateValue agrees.
func canonical(t *testing.T, raw []byte) ([]byte, Kind, error) {
	t.Helper()
	c, k, err := AppendCanonical(nil, raw)
	prefix := []byte("xe") // 'e' would compose with a leading combining acute
	c2, k2, err2 := AppendCanonical(prefix, raw)
	if !bytes.HasPrefix(c2, []byte("xe")) || !bytes.Equal(c2[2:], c) || k2 != k || err2 != err {
		t.Fatalf("%q: appending after a prefix gives %q %v %v, want %q + %q %v %v", raw, c2, k2, err2, prefix, c, k, err)
	}
	if verr := ValidateValue(raw); verr != err {
		t.Fatalf("%q: ValidateValue = %v, AppendCanonical = %v", raw, verr, err)
	}
	if err != nil {
		if len(c) != 0 || k != KindNull {
			t.Fatalf("%q: error %v with output %q kind %v", raw, err, c, k)
		}
		return nil, k, err
	}
	if len(c) == 0 || kindOfTag(c[0]) != k {
		t.Fatalf("%q: canonical %q does not start with the tag of %v", raw, c, k)
	}
	return c, k, nil
}

func kindOfTag(tag byte) Kind {
	switch tag {
	case tagBool:
		return KindBool
	case tagNumber:
		return KindNumber
	case tagText:
		return KindText
	}
	return KindNull
}

func runCanonical(t *testing.T, d *datadriven.TestData) string {
	var b strings.Builder
	for _, l := range inputLines(d) {
		c, k, err := canonical(t, expand(t, l))
		if err != nil {
			fmt.Fprintf(&b, "%s -> error: %v\n", l, err)
			continue
		}
		fmt.Fprintf(&b, "%s -> %v %s\n", l, k, quoteShort(c))
	}
	return b.String()
}

// quoteShort quotes canonical bytes, eliding the middle of long ones.
func quoteShort(c []byte) string {
	if len(c) <= 80 {
		return quote(c)
	}
	head, tail := 24, len(c)-8
	for head > 0 && !utf8.RuneStart(c[head]) {
		head--
	}
	for tail < len(c) && !utf8.RuneStart(c[tail]) {
		tail++
	}
	return fmt.Sprintf("%s...%s (%d bytes)", quote(c[:head]), quote(c[tail:]), len(c))
}

// quote is strconv.Quote, except that combining marks are escaped: printed raw they
// would sit on the character before them (or on the quote).
func quote(b []byte) string {
	q := strconv.Quote(string(b))
	var out strings.Builder
	for _, r := range q {
		if unicode.Is(unicode.M, r) {
			fmt.Fprintf(&out, "\\u%04x", r)
			continue
		}
		out.WriteRune(r)
	}
	return out.String()
}

func runEqual(t *testing.T, d *datadriven.TestData) string {
	var b strings.Builder
	for _, l := range inputLines(d) {
		a, z, ok := strings.Cut(l, " ~ ")
		if !ok {
			d.Fatalf(t, "equal: want A ~ B, got %q", l)
		}
		ca, ka, erra := canonical(t, expand(t, a))
		cz, kz, errz := canonical(t, expand(t, z))
		switch {
		case erra != nil:
			fmt.Fprintf(&b, "%s -> error (left): %v\n", l, erra)
		case errz != nil:
			fmt.Fprintf(&b, "%s -> error (right): %v\n", l, errz)
		case Equal(ca, cz):
			if !Equal(cz, ca) {
				t.Fatalf("%s: Equal is not symmetric", l)
			}
			fmt.Fprintf(&b, "%s -> match\n", l)
		default:
			fmt.Fprintf(&b, "%s -> mismatch (%v, %v)\n", l, ka, kz)
		}
	}
	return b.String()
}

func runMatch(t *testing.T, d *datadriven.TestData, shared *Matcher) string {
	var items []Item
	var fields []Field
	for _, l := range inputLines(d) {
		verb, rest, _ := strings.Cut(strings.TrimSpace(l), " ")
		names, value, many := parseMatchLine(t, d, expand(t, rest), verb == "fields" || verb == "items")
		n := 1
		if many > 0 {
			n = many
		}
		for i := 0; i < n; i++ {
			key := names[0]
			if many > 0 {
				key = append(bytes.Clone(key), strconv.Itoa(i)...)
			}
			switch verb {
			case "field", "fields":
				var ts int64
				if len(names) == 2 && bytes.HasPrefix(names[1], []byte("ts=")) {
					var err error
					if ts, err = strconv.ParseInt(string(names[1][3:]), 10, 64); err != nil {
						d.Fatalf(t, "bad ts in %q", l)
					}
					names = names[:1]
				}
				if len(names) != 1 {
					d.Fatalf(t, "field lines take one name (and ts=N): %q", l)
				}
				fields = append(fields, Field{Key: key, Value: value, TS: ts})
			case "item", "items":
				items = append(items, Item{Key: key, Value: value, Synonyms: names[1:]})
			default:
				d.Fatalf(t, "unknown line %q", l)
			}
		}
	}

	var res Result
	err := shared.Match(items, fields, &res)
	out := formatResult(t, items, &res, err, d.HasArg("quiet"))
	// A fresh matcher must agree with the reused one, and a second run with itself.
	var fresh Matcher
	var res2 Result
	for i := 0; i < 2; i++ {
		err2 := fresh.Match(items, fields, &res2)
		if out2 := formatResult(t, items, &res2, err2, d.HasArg("quiet")); out2 != out {
			t.Fatalf("fresh matcher (run %d) disagrees:\n%s\nvs\n%s", i, out2, out)
		}
	}
	return out
}

// parseMatchLine splits "[N] NAME [SYN ...] = RAW" into the names and the raw value.
func parseMatchLine(t *testing.T, d *datadriven.TestData, s []byte, counted bool) (names [][]byte, value []byte, n int) {
	if counted {
		word, rest, _ := bytes.Cut(s, []byte(" "))
		var err error
		if n, err = strconv.Atoi(string(word)); err != nil {
			d.Fatalf(t, "want a count in %q", s)
		}
		s = rest
	}
	synonyms := false
	for {
		s = bytes.TrimLeft(s, " ")
		switch {
		case len(s) == 0:
			d.Fatalf(t, "missing '= value'")
		case s[0] == '=' && (len(s) == 1 || s[1] == ' '):
			if len(names) == 0 {
				d.Fatalf(t, "missing name before '='")
			}
			return names, bytes.TrimPrefix(s[1:], []byte(" ")), n
		case s[0] == '[' && !synonyms && len(names) == 1:
			synonyms = true
			s = s[1:]
		case s[0] == ']' && synonyms:
			synonyms = false
			s = s[1:]
		case s[0] == '"':
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			var name string
			if end >= len(s) || json.Unmarshal(s[:end+1], &name) != nil {
				d.Fatalf(t, "bad quoted name in %q", s)
			}
			names = append(names, []byte(name))
			s = s[end+1:]
		default:
			end := bytes.IndexAny(s, " ]")
			if end < 0 {
				end = len(s)
			}
			names = append(names, s[:end])
			s = s[end:]
		}
	}
}

func formatResult(t *testing.T, items []Item, res *Result, err error, quiet bool) string {
	var b strings.Builder
	if err != nil {
		if len(res.Details) != 0 || res.Collected || res.Matched {
			t.Fatalf("error %v left a result behind: %+v", err, res)
		}
		fmt.Fprintf(&b, "error: %v (item %d)\n", err, res.ErrItem)
		return b.String()
	}
	if res.ErrItem != -1 || len(res.Details) != len(items) {
		t.Fatalf("ErrItem %d, %d details for %d items", res.ErrItem, len(res.Details), len(items))
	}
	var counts [3]int
	for i, d := range res.Details {
		if !bytes.Equal(d.Key, items[i].Key) || d.Matched != (d.Reason == Match) || (d.Field == nil) != (d.Reason == NotCollected) {
			t.Fatalf("inconsistent detail %d: %+v", i, d)
		}
		counts[d.Reason]++
		if quiet {
			continue
		}
		fmt.Fprintf(&b, "%s: %v", name(d.Key), d.Reason)
		if d.Field != nil {
			fmt.Fprintf(&b, " (field %s)", name(d.Field))
		}
		b.WriteByte('\n')
	}
	if quiet {
		fmt.Fprintf(&b, "%d match, %d mismatch, %d not_collected\n", counts[Match], counts[Mismatch], counts[NotCollected])
	}
	fmt.Fprintf(&b, "collected=%v matched=%v\n", res.Collected, res.Matched)
	return b.String()
}

// name prints a key as the fixtures write it: bare when that reads back the same.
func name(b []byte) string {
	if len(b) > 0 && len(b) <= 40 && utf8.Valid(b) && b[0] != '"' && b[0] != '[' && !bytes.ContainsAny(b, " ]=") &&
		bytes.IndexFunc(b, func(r rune) bool { return !unicode.IsGraphic(r) || unicode.IsSpace(r) }) < 0 {
		return string(b)
	}
	if len(b) > 40 {
		return fmt.Sprintf("%q...(%d bytes)", b[:16], len(b))
	}
	return strconv.Quote(string(b))
}
