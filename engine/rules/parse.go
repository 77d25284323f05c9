package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
)

// Parse reads a rule document as an operator writes it (DESIGN's
// /admin/v1/rules JSON) and validates it in full. It is strict: one JSON
// object and nothing after it; keys exactly as documented (case included),
// each at most once; no nulls; values of the key's type; and everything
// Validate checks. Every error names the path of the field at fault.
// Empty input (only white space) is the empty rule set: an organization that
// never wrote rules.
//
// encoding/json is fine here: rules are parsed when an operator changes them,
// never on the request path.
func Parse(js []byte) (*Rules, error) {
	r := &Rules{}
	if len(bytes.TrimSpace(js)) == 0 {
		return r, nil
	}
	d := decoder{dec: json.NewDecoder(bytes.NewReader(js))}
	d.dec.UseNumber()
	err := d.object("", func(key, path string) error {
		switch key {
		case "geoFences":
			return d.array(path, MaxGeoFences, func(i int, path string) error {
				f, err := d.geoFence(path)
				r.GeoFences = append(r.GeoFences, f)
				return err
			})
		case "timeWindows":
			return d.array(path, MaxTimeWindows, func(i int, path string) error {
				w, err := d.timeWindow(path)
				r.TimeWindows = append(r.TimeWindows, w)
				return err
			})
		case "ip":
			return d.ipRules(path, &r.IP)
		case "device":
			return d.deviceRules(path, &r.Device)
		case "users":
			return d.users(path, r)
		}
		return unknownKey(path)
	})
	if err != nil {
		return nil, err
	}
	if _, err := d.dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the rules object", ErrJSON)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// decoder reads the document token by token, so that every error, a type
// error included, can name the path where it happened (encoding/json's own
// errors name a Go struct field, not the operator's key).
type decoder struct {
	dec *json.Decoder
}

func (d *decoder) token() (json.Token, error) {
	tok, err := d.dec.Token()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: unexpected end of input", ErrJSON)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJSON, err)
	}
	return tok, nil
}

// describe names the kind of JSON value tok starts, for type errors.
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(v)
	case json.Number:
		return "the number " + v.String()
	case string:
		return "a string"
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "an array"
	}
	return fmt.Sprintf("%v", tok)
}

func typeError(path, want string, got json.Token) error {
	return fmt.Errorf("%w: %s must be %s, got %s", ErrJSON, path, want, describe(got))
}

func unknownKey(path string) error { return fmt.Errorf("%w: %s", ErrUnknownKey, path) }

func missing(path string) error { return fmt.Errorf("%w: %s is required", ErrMissing, path) }

// field is the path of key inside the object at path. The keys of users
// are user ids, which may hold dots, spaces and quotes, so they are quoted.
func field(path, key string) string {
	switch path {
	case "":
		return key
	case "users":
		return userPath(key)
	}
	return path + "." + key
}

// object reads an object, calling each for every key with the key's path;
// each must read the value. The empty path is the document itself.
func (d *decoder) object(path string, each func(key, path string) error) error {
	tok, err := d.token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		if path == "" {
			return fmt.Errorf("%w: the rules document must be a JSON object, got %s", ErrJSON, describe(tok))
		}
		return typeError(path, "an object", tok)
	}
	seen := map[string]bool{}
	for d.dec.More() {
		tok, err := d.token()
		if err != nil {
			return err
		}
		key, _ := tok.(string) // inside an object the tokenizer yields only string keys
		p := field(path, key)
		if seen[key] {
			return fmt.Errorf("%w: key %s", ErrDuplicate, p)
		}
		seen[key] = true
		if err := each(key, p); err != nil {
			return err
		}
	}
	_, err = d.token() // the closing '}'
	return err
}

// userPath names a user's entry; user ids may hold dots and spaces, so they are quoted.
func userPath(id string) string { return "users[" + strconv.Quote(id) + "]" }

// array reads an array of at most limit elements, calling each for every
// element with its path; each must read the element.
func (d *decoder) array(path string, limit int, each func(i int, path string) error) error {
	tok, err := d.token()
	if err != nil {
		return err
	}
	if tok != json.Delim('[') {
		return typeError(path, "an array", tok)
	}
	for i := 0; d.dec.More(); i++ {
		if i == limit {
			return fmt.Errorf("%w: %s has more than %d entries", ErrTooMany, path, limit)
		}
		if err := each(i, path+"["+strconv.Itoa(i)+"]"); err != nil {
			return err
		}
	}
	_, err = d.token() // the closing ']'
	return err
}

func (d *decoder) str(path string) (string, error) {
	tok, err := d.token()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", typeError(path, "a string", tok)
	}
	return s, nil
}

func (d *decoder) boolean(path string) (bool, error) {
	tok, err := d.token()
	if err != nil {
		return false, err
	}
	b, ok := tok.(bool)
	if !ok {
		return false, typeError(path, "true or false", tok)
	}
	return b, nil
}

func (d *decoder) number(path string) (float64, error) {
	tok, err := d.token()
	if err != nil {
		return 0, err
	}
	n, ok := tok.(json.Number)
	if !ok {
		return 0, typeError(path, "a number", tok)
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil { // only a magnitude beyond float64 gets here: the tokenizer checked the syntax
		return 0, fmt.Errorf("%w: %s is out of range, got %s", ErrJSON, path, n)
	}
	return f, nil
}

// strings reads an array of at most limit strings.
func (d *decoder) strings(path string, limit int) ([]string, error) {
	out := []string{}
	err := d.array(path, limit, func(_ int, path string) error {
		s, err := d.str(path)
		out = append(out, s)
		return err
	})
	return out, err
}

func (d *decoder) geoFence(path string) (GeoFence, error) {
	var f GeoFence
	var hasID, hasLat, hasLon, hasRadius bool
	err := d.object(path, func(key, p string) error {
		var err error
		switch key {
		case "id":
			f.ID, err = d.str(p)
			hasID = true
		case "name":
			f.Name, err = d.str(p)
		case "lat":
			f.Lat, err = d.number(p)
			hasLat = true
		case "lon":
			f.Lon, err = d.number(p)
			hasLon = true
		case "radiusMeters":
			f.RadiusMeters, err = d.number(p)
			hasRadius = true
		case "polygon":
			f.Polygon, err = d.polygon(p)
		default:
			err = unknownKey(p)
		}
		return err
	})
	if err != nil {
		return f, err
	}
	switch {
	case !hasID:
		return f, missing(field(path, "id"))
	case f.Polygon != nil && (hasLat || hasLon || hasRadius):
		return f, fmt.Errorf("%w: %s is either a circle (lat, lon, radiusMeters) or a polygon, not both", ErrGeoFence, path)
	case f.Polygon != nil:
		return f, nil
	case !hasLat && !hasLon && !hasRadius:
		return f, fmt.Errorf("%w: %s needs lat, lon and radiusMeters (a circle) or polygon", ErrMissing, path)
	case !hasLat:
		return f, missing(field(path, "lat"))
	case !hasLon:
		return f, missing(field(path, "lon"))
	case !hasRadius:
		return f, missing(field(path, "radiusMeters"))
	}
	return f, nil
}

// polygon reads [[lat, lon], ...]; the result is not nil even when empty, so
// that an empty polygon is reported as too small rather than as a circle.
func (d *decoder) polygon(path string) ([][2]float64, error) {
	pts := [][2]float64{}
	err := d.array(path, MaxPolygonPoints, func(_ int, path string) error {
		var pt [2]float64
		n := 0
		err := d.array(path, 2, func(j int, p string) error {
			var err error
			pt[j], err = d.number(p)
			n++
			return err
		})
		if err != nil {
			if n == 2 { // a third element
				return fmt.Errorf("%w: %s must be [lat, lon]", ErrGeoFence, path)
			}
			return err
		}
		if n != 2 {
			return fmt.Errorf("%w: %s must be [lat, lon]", ErrGeoFence, path)
		}
		pts = append(pts, pt)
		return nil
	})
	return pts, err
}

// dayNames are the document's names of the days, indexed by time.Weekday.
var dayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// windowKeys are a time window's keys, all required.
var windowKeys = [...]string{"id", "zone", "days", "start", "end"}

func (d *decoder) timeWindow(path string) (TimeWindow, error) {
	var w TimeWindow
	var has [len(windowKeys)]bool
	err := d.object(path, func(key, p string) error {
		var err error
		switch key {
		case "id":
			w.ID, err = d.str(p)
		case "zone":
			w.Zone, err = d.str(p)
		case "days":
			w.Days, err = d.days(p)
		case "start":
			w.Start, err = d.clock(p, false)
		case "end":
			w.End, err = d.clock(p, true)
		default:
			return unknownKey(p)
		}
		has[slices.Index(windowKeys[:], key)] = true
		return err
	})
	if err != nil {
		return w, err
	}
	for i, key := range windowKeys {
		if !has[i] {
			return w, missing(field(path, key))
		}
	}
	return w, nil
}

func (d *decoder) clock(path string, isEnd bool) (int, error) {
	s, err := d.str(path)
	if err != nil {
		return 0, err
	}
	return parseClock(path, s, isEnd)
}

func (d *decoder) days(path string) (Days, error) {
	var set Days
	err := d.array(path, 7, func(_ int, p string) error {
		s, err := d.str(p)
		if err != nil {
			return err
		}
		for day, name := range dayNames {
			if s != name {
				continue
			}
			if set&(1<<day) != 0 {
				return fmt.Errorf("%w: day %s (%q)", ErrDuplicate, p, s)
			}
			set |= 1 << day
			return nil
		}
		return fmt.Errorf("%w: %s must be one of mon, tue, wed, thu, fri, sat, sun, got %q", ErrTimeWindow, p, s)
	})
	return set, err
}

// parseClock reads "HH:MM" (24-hour, two digits each) as minutes after
// midnight; "24:00" is allowed as an end, for a window that runs to the end
// of its day.
func parseClock(path, s string, isEnd bool) (int, error) {
	digit := func(c byte) (int, bool) { return int(c - '0'), c >= '0' && c <= '9' }
	if len(s) == 5 && s[2] == ':' {
		h1, ok1 := digit(s[0])
		h2, ok2 := digit(s[1])
		m1, ok3 := digit(s[3])
		m2, ok4 := digit(s[4])
		h, m := h1*10+h2, m1*10+m2
		if ok1 && ok2 && ok3 && ok4 && m < 60 && (h < 24 || isEnd && h == 24 && m == 0) {
			return h*60 + m, nil
		}
	}
	if isEnd {
		return 0, fmt.Errorf("%w: %s must be a time HH:MM from 00:00 to 24:00, got %q", ErrTimeWindow, path, s)
	}
	return 0, fmt.Errorf("%w: %s must be a time HH:MM from 00:00 to 23:59, got %q", ErrTimeWindow, path, s)
}

func (d *decoder) ipRules(path string, ip *IPRules) error {
	return d.object(path, func(key, p string) error {
		var list *[]netip.Prefix
		switch key {
		case "allow":
			list = &ip.Allow
		case "deny":
			list = &ip.Deny
		default:
			return unknownKey(p)
		}
		*list = []netip.Prefix{}
		return d.array(p, MaxCIDRs, func(_ int, p string) error {
			s, err := d.str(p)
			if err != nil {
				return err
			}
			pfx, err := netip.ParsePrefix(s)
			if err != nil {
				return fmt.Errorf("%w: %s must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32, got %q", ErrCIDR, p, s)
			}
			*list = append(*list, unmapPrefix(pfx))
			return nil
		})
	})
}

// unmapPrefix turns an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) into
// the IPv4 prefix it means (10.0.0.0/8), since Evaluate unmaps addresses
// before matching. A mapped prefix shorter than /96 spans more than IPv4 and
// stays as it is.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

func (d *decoder) deviceRules(path string, dev *DeviceRules) error {
	return d.object(path, func(key, p string) error {
		var err error
		switch key {
		case "requireRegistered":
			dev.RequireRegistered, err = d.boolean(p)
		case "platforms":
			dev.Platforms, err = d.strings(p, maxPlatforms)
		case "minAppVersion":
			dev.MinAppVersion, err = d.str(p)
		case "blockJailbroken":
			dev.BlockJailbroken, err = d.boolean(p)
		default:
			err = unknownKey(p)
		}
		return err
	})
}

func (d *decoder) users(path string, r *Rules) error {
	r.Users = map[string]Assignment{}
	return d.object(path, func(id, p string) error {
		if len(r.Users) == MaxUsers {
			return fmt.Errorf("%w: %s has more than %d users", ErrTooMany, path, MaxUsers)
		}
		a := Assignment{GeoFences: []string{}, TimeWindows: []string{}}
		err := d.object(p, func(key, p string) error {
			var err error
			switch key {
			case "geoFences":
				a.GeoFences, err = d.strings(p, MaxGeoFences)
			case "timeWindows":
				a.TimeWindows, err = d.strings(p, MaxTimeWindows)
			default:
				err = unknownKey(p)
			}
			return err
		})
		r.Users[id] = a
		return err
	})
}
