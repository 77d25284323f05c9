// Package match decides whether the values a backend sends with a validate request
// (sessionData) are the values the client SDK collected in the session.
//
// Values are compared by a type-agnostic canonical form (see AppendCanonical): a
// backend may send 35 where the page collected "35.00", or true where it collected
// "TRUE", and they match; a 20-digit account number stays exact because no value is
// ever a float64. Input values are raw JSON tokens, kept as bytes from the request.
//
// The package is pure and allocation-free in steady state: a Matcher keeps its
// scratch space between calls and a Result reuses its Details.
package match

import (
	"bytes"
	"errors"
	"strconv"

	"golang.org/x/text/unicode/norm"
)

// Limits (DESIGN "Value matching"). They bound the work of one validate request and
// are checked before anything is compared.
const (
	MaxItems      = 256  // sessionData items per validate
	MaxSynonyms   = 16   // synonyms per item
	MaxValueBytes = 4096 // raw JSON token of one value, quotes included
	MaxDigits     = 100  // digits in a number's mantissa (integer + fraction digits)
	MaxKeyBytes   = 256  // a key or synonym, in bytes, after JSON unescaping
	MaxExponent   = 9999 // |exponent| of a number literal after normalisation
)

// Errors returned by AppendCanonical, ValidateValue and Match. Match also says which
// item caused them in Result.ErrItem.
var (
	ErrDuplicateKey    = errors.New("match: duplicate key")                                                                  // case-insensitive duplicate in sessionData
	ErrTooManyItems    = errors.New("match: too many items")                                                                 // more than MaxItems
	ErrTooManySynonyms = errors.New("match: too many synonyms")                                                              // more than MaxSynonyms on one item
	ErrValueTooLong    = errors.New("match: value longer than 4096 bytes as sent (its JSON text: quotes and escapes count)") // token longer than MaxValueBytes
	ErrNumberTooLong   = errors.New("match: number of more than 100 digits")                                                 // more than MaxDigits digits
	ErrExponentRange   = errors.New("match: number exponent beyond +-9999")                                                  // beyond ±MaxExponent
	ErrNotScalar       = errors.New("match: value is not a string, number, boolean or null")
	ErrInvalidToken    = errors.New("match: invalid JSON value") // malformed token, bad escape, invalid UTF-8
	ErrEmptyKey        = errors.New("match: empty key")          // an empty key or synonym
	ErrKeyTooLong      = errors.New("match: key too long")       // a key or synonym over MaxKeyBytes
)

// Field is one value the client SDK collected: its name, the raw JSON token of its latest
// value, and when the SDK collected that value (its ts, ms). Names equal up to case are one
// name: an SDK that spelled it differently over time sent several fields, and the one
// collected last is the name's value.
type Field struct {
	Key, Value []byte
	TS         int64
}

// Item is one sessionData entry of a validate request. Value is a raw JSON token; Key and
// Synonyms are already-unescaped UTF-8 names.
type Item struct {
	Key      []byte
	Value    []byte
	Synonyms [][]byte
}

// Reason says how one item was decided; it is the "reason" of iv_values_match_details.
type Reason uint8

// The reasons.
const (
	// NotCollected: no session field has the item's key or any of its synonyms.
	NotCollected Reason = iota
	// Match: the collected value and the item's value have equal canonical forms.
	Match
	// Mismatch: a value was collected but it differs (or one of them is null).
	Mismatch
)

// String returns the reason as the API spells it.
func (r Reason) String() string {
	switch r {
	case NotCollected:
		return "not_collected"
	case Match:
		return "match"
	case Mismatch:
		return "mismatch"
	}
	return "Reason(" + strconv.Itoa(int(r)) + ")"
}

// Detail is the outcome for one item, in the order of the items.
type Detail struct {
	Key     []byte // the item's key (aliases Item.Key)
	Field   []byte // the session field name whose value was compared (aliases Field.Key); nil when not collected
	Matched bool
	Reason  Reason
}

// Result is the outcome of matching one request. Details is reused across calls (truncated).
type Result struct {
	Details   []Detail
	Collected bool // iv_is_values_collected
	Matched   bool // iv_is_values_match
	ErrItem   int  // index of the item that caused the returned error, -1 if none
}

// Matcher holds the scratch space of Match so that steady-state matching does not
// allocate: canonical item values, and hash tables over the item keys (to find
// duplicates) and over the session's field names (to find each item's field without
// a scan per name). One per goroutine (the server pools them); the zero value is
// ready to use.
type Matcher struct {
	canon     []byte   // canonical item values back to back; a field's goes after them
	ends      []int    // ends[i]: end of item i's canonical value in canon
	keyHash   []uint64 // hashName of each item key
	keyTab    []int32  // open addressing: item index+1 by key hash, 0 is empty
	fieldHash []uint64 // hashName of each field name
	fieldTab  []int32  // open addressing: field index+1 by name hash, 0 is empty
	iter      norm.Iter
}

// Match compares items against the session's fields and fills res. Zero allocations in steady state.
//
// Each item's collected value is the field named by its key, else by the first of its
// synonyms that is present; names compare under Unicode simple case folding. When
// several fields share a name up to case, the one spelled exactly like the name wins,
// else the first in fields order. A field value that cannot be canonicalised (it
// would have been refused by ValidateValue) is collected but matches nothing.
//
// The items are checked in order and the first bad one stops the match: an empty or
// too long key or synonym, too many synonyms, a key already used by an earlier item
// (case-insensitively), or a value AppendCanonical refuses. Then res holds no
// details, both indicators are false and res.ErrItem is the item's index (MaxItems
// for ErrTooManyItems). Keys and fields are aliased by res.Details, not copied.
func (m *Matcher) Match(items []Item, fields []Field, res *Result) error {
	res.Details = res.Details[:0]
	res.Collected, res.Matched, res.ErrItem = false, false, -1
	if len(items) > MaxItems {
		res.ErrItem = MaxItems
		return ErrTooManyItems
	}
	if i, err := m.prepareItems(items); err != nil {
		res.ErrItem = i
		return err
	}
	m.indexFields(fields)

	// With no items the request asks nothing of the values; "collected" then says
	// whether the session has any at all.
	collected := len(items) == 0 && len(fields) > 0
	matched := len(items) > 0
	start := 0
	for i := range items {
		it := &items[i]
		end := m.ends[i]
		d := Detail{Key: it.Key, Reason: NotCollected}
		f := m.lookup(fields, it.Key, m.keyHash[i])
		for s := 0; f < 0 && s < len(it.Synonyms); s++ {
			f = m.lookup(fields, it.Synonyms[s], hashName(it.Synonyms[s]))
		}
		if f >= 0 {
			collected = true
			d.Field = fields[f].Key
			d.Reason = Mismatch
			if m.canon[start] != tagNull {
				var err error
				tail := len(m.canon)
				m.canon, _, err = appendCanonical(m.canon, fields[f].Value, &m.iter)
				if err == nil && Equal(m.canon[start:end], m.canon[tail:]) {
					d.Matched, d.Reason = true, Match
				}
				m.canon = m.canon[:tail]
			}
		}
		matched = matched && d.Matched
		res.Details = append(res.Details, d)
		start = end
	}
	res.Collected, res.Matched = collected, matched
	return nil
}

// prepareItems validates the items in order, canonicalises their values into
// m.canon and fills the key table. It returns the index of the first bad item.
func (m *Matcher) prepareItems(items []Item) (int, error) {
	m.canon = m.canon[:0]
	m.ends = m.ends[:0]
	m.keyHash = m.keyHash[:0]
	m.keyTab = resetTable(m.keyTab, len(items))
	mask := uint64(len(m.keyTab) - 1)
	for i := range items {
		it := &items[i]
		if err := checkName(it.Key); err != nil {
			return i, err
		}
		if len(it.Synonyms) > MaxSynonyms {
			return i, ErrTooManySynonyms
		}
		for _, s := range it.Synonyms {
			if err := checkName(s); err != nil {
				return i, err
			}
		}
		h := hashName(it.Key)
		for slot := h & mask; ; slot = (slot + 1) & mask {
			e := m.keyTab[slot]
			if e == 0 {
				m.keyTab[slot] = int32(i + 1)
				break
			}
			if k := e - 1; m.keyHash[k] == h && equalName(items[k].Key, it.Key) {
				return i, ErrDuplicateKey
			}
		}
		m.keyHash = append(m.keyHash, h)
		var err error
		if m.canon, _, err = appendCanonical(m.canon, it.Value, &m.iter); err != nil {
			return i, err
		}
		m.ends = append(m.ends, len(m.canon))
	}
	return 0, nil
}

// indexFields fills the field table. Equal names (up to case) probe from the same
// slot and are inserted in order, so a probe meets them in fields order.
func (m *Matcher) indexFields(fields []Field) {
	m.fieldHash = m.fieldHash[:0]
	m.fieldTab = resetTable(m.fieldTab, len(fields))
	mask := uint64(len(m.fieldTab) - 1)
	for j := range fields {
		h := hashName(fields[j].Key)
		m.fieldHash = append(m.fieldHash, h)
		slot := h & mask
		for m.fieldTab[slot] != 0 {
			slot = (slot + 1) & mask
		}
		m.fieldTab[slot] = int32(j + 1)
	}
}

// lookup returns the index of the field called name (h is its hashName), or -1. Of the
// fields equal to name up to case, the one collected last (greatest TS) wins; at equal TS
// the one spelled exactly like name, else the first (fields of one hash lie along the
// probe sequence in the order they were indexed).
func (m *Matcher) lookup(fields []Field, name []byte, h uint64) int {
	mask := uint64(len(m.fieldTab) - 1)
	found, foundExact := -1, false
	for slot := h & mask; ; slot = (slot + 1) & mask {
		e := m.fieldTab[slot]
		if e == 0 {
			return found
		}
		j := int(e - 1)
		if m.fieldHash[j] != h || !equalName(fields[j].Key, name) {
			continue
		}
		exact := bytes.Equal(fields[j].Key, name)
		if found < 0 || fields[j].TS > fields[found].TS ||
			fields[j].TS == fields[found].TS && exact && !foundExact {
			found, foundExact = j, exact
		}
	}
}

// resetTable returns an empty open-addressing table for n entries: a power of two at
// least twice n, so probes stay short and always reach an empty slot.
func resetTable(t []int32, n int) []int32 {
	size := 8
	for size < 2*n {
		size <<= 1
	}
	if cap(t) < size {
		return make([]int32, size)
	}
	t = t[:size]
	clear(t)
	return t
}

func checkName(b []byte) error {
	if len(b) == 0 {
		return ErrEmptyKey
	}
	if len(b) > MaxKeyBytes {
		return ErrKeyTooLong
	}
	return nil
}
