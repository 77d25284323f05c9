package httptranscript

import (
	"bytes"
	"cmp"
	"slices"
	"strconv"
)

// Masks replaces the values of volatile JSON fields (ids, tokens, times)
// by placeholders numbered in order of first appearance: the first decision
// id a file sees is <decisionID-1> wherever it appears again, so a
// transcript still shows that a replay answered the same decision and a new
// call a new one. The zero value is ready; one Masks serves one file.
type Masks struct {
	seen map[string]map[string]int // field -> value -> number
}

// Apply returns body with the value of every field named in fields, at any
// depth, replaced: a string keeps its quotes ("<name-N>"), any other value
// becomes <name-N>. null is left as it is: it is not volatile, and a
// reader must see that a field is absent in this answer (a pending
// approval's decidedAt). Bytes are changed nowhere else.
func (m *Masks) Apply(body []byte, fields []string) []byte {
	for _, f := range fields {
		key := strconv.AppendQuote(nil, f)
		var out []byte
		rest := body
		for {
			i := bytes.Index(rest, key)
			if i < 0 {
				break
			}
			j := i + len(key)
			j = skipSpace(rest, j)
			if j >= len(rest) || rest[j] != ':' {
				out = append(out, rest[:i+len(key)]...)
				rest = rest[i+len(key):]
				continue
			}
			j = skipSpace(rest, j+1)
			end, quoted := valueEnd(rest, j)
			if string(rest[j:end]) == "null" {
				out = append(out, rest[:end]...)
				rest = rest[end:]
				continue
			}
			out = append(out, rest[:j]...)
			ph := "<" + f + "-" + strconv.Itoa(m.number(f, string(rest[j:end]))) + ">"
			if quoted {
				ph = `"` + ph + `"`
			}
			out = append(out, ph...)
			rest = rest[end:]
		}
		if out != nil {
			body = append(out, rest...)
		}
	}
	return body
}

func (m *Masks) number(field, value string) int {
	if m.seen == nil {
		m.seen = map[string]map[string]int{}
	}
	vs := m.seen[field]
	if vs == nil {
		vs = map[string]int{}
		m.seen[field] = vs
	}
	n, ok := vs[value]
	if !ok {
		n = len(vs) + 1
		vs[value] = n
	}
	return n
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// valueEnd finds the end of the scalar JSON value at b[i:]: a string's
// closing quote, or the delimiter after a number or literal. An object or
// array is masked as far as its first delimiter only; masked fields are
// scalars.
func valueEnd(b []byte, i int) (end int, quoted bool) {
	if i < len(b) && b[i] == '"' {
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1, true
			}
		}
		return len(b), false
	}
	j := i
	for j < len(b) && !bytes.ContainsRune([]byte(",}] \t\r\n"), rune(b[j])) {
		j++
	}
	return j, false
}

// substituteBack replaces each value of vars (those of minLen bytes or more,
// longest first so that one value inside another is not cut) by its $name,
// so that an answer echoing a credential or id reads as the transcript's
// variable and stays the same from run to run.
func substituteBack(body []byte, vars Vars, names []string) []byte {
	const minLen = 8
	type kv struct{ name, val string }
	var list []kv
	for _, n := range names {
		if v := vars[n]; len(v) >= minLen {
			list = append(list, kv{n, v})
		}
	}
	slices.SortFunc(list, func(a, b kv) int { return cmp.Compare(len(b.val), len(a.val)) })
	for _, e := range list {
		body = bytes.ReplaceAll(body, []byte(e.val), []byte("$"+e.name))
	}
	return body
}
