package rules

// maxVersionParts is the most dot-separated numbers an app version may have
// (major.minor.patch.build and two more for the odd vendor scheme).
const maxVersionParts = 6

// maxVersionPart bounds each number, so that accumulating digits cannot
// overflow and "2.0000000000000000001" is refused rather than wrapped.
const maxVersionPart = 1<<31 - 1

// version is an app version as numbers; missing trailing parts are zero, so
// "2.1" and "2.1.0" are equal.
type version [maxVersionParts]uint32

// parseVersion reads dot-separated decimal numbers ("2.10.0"). Anything
// else (a suffix such as "-beta", a leading "v", empty parts, white space)
// does not parse: a device that reports a version the rules cannot compare
// must not pass a minimum. It reads strings and byte slices alike, without
// allocating.
func parseVersion[S string | []byte](s S) (version, bool) {
	var v version
	n, part, digits := 0, uint64(0), 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 || n == maxVersionParts {
				return version{}, false
			}
			v[n] = uint32(part)
			n, part, digits = n+1, 0, 0
			continue
		}
		c := s[i]
		if c < '0' || c > '9' {
			return version{}, false
		}
		part = part*10 + uint64(c-'0')
		digits++
		if part > maxVersionPart {
			return version{}, false
		}
	}
	return v, true
}

// less says whether v is an older version than w.
func (v *version) less(w *version) bool {
	for i := range v {
		if v[i] != w[i] {
			return v[i] < w[i]
		}
	}
	return false
}
