package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// Validate checks everything Parse does not get from the JSON syntax alone:
// ids (1 to 64 letters, digits, '-', '_', '.', ':'), unique per list; names
// of at most 200 bytes without control characters; latitudes in [-90, 90] and
// longitudes in [-180, 180]; radii in (0, MaxRadiusMeters]; polygons of at
// least 3 distinct vertices spanning at most 180 degrees of longitude (one
// that crosses the antimeridian must be split there) and enclosing a
// non-zero signed area; zones that load
// (not "Local", which would depend on the host); at least one day; times of
// day in range with start != end; CIDR prefixes without host bits; known
// platforms; a minimum app version that parses; user ids of 1 to 256 bytes
// without control characters, assigned only ids the document defines; and
// the limits on counts. The first problem found is returned.
func (r *Rules) Validate() error {
	if err := r.validateFences(); err != nil {
		return err
	}
	if err := r.validateWindows(); err != nil {
		return err
	}
	if err := validateCIDRs("ip.allow", r.IP.Allow); err != nil {
		return err
	}
	if err := validateCIDRs("ip.deny", r.IP.Deny); err != nil {
		return err
	}
	if err := r.Device.validate(); err != nil {
		return err
	}
	return r.validateUsers()
}

func (r *Rules) validateFences() error {
	if len(r.GeoFences) > MaxGeoFences {
		return fmt.Errorf("%w: geoFences has more than %d entries", ErrTooMany, MaxGeoFences)
	}
	ids := make(map[string]bool, len(r.GeoFences))
	total := 0
	for i := range r.GeoFences {
		f := &r.GeoFences[i]
		path := "geoFences[" + strconv.Itoa(i) + "]"
		if err := validateID(path+".id", f.ID, ids); err != nil {
			return err
		}
		if err := validateName(path+".name", f.Name); err != nil {
			return err
		}
		if !f.IsPolygon() {
			if err := validateCoord(path+".lat", path+".lon", f.Lat, f.Lon); err != nil {
				return err
			}
			if !(f.RadiusMeters > 0 && f.RadiusMeters <= MaxRadiusMeters) {
				return fmt.Errorf("%w: %s.radiusMeters must be greater than 0 and at most %d, got %s",
					ErrGeoFence, path, MaxRadiusMeters, num(f.RadiusMeters))
			}
			continue
		}
		if f.Lat != 0 || f.Lon != 0 || f.RadiusMeters != 0 {
			return fmt.Errorf("%w: %s is either a circle (lat, lon, radiusMeters) or a polygon, not both", ErrGeoFence, path)
		}
		total += len(f.Polygon)
		if len(f.Polygon) > MaxPolygonPoints {
			return fmt.Errorf("%w: %s.polygon has more than %d entries", ErrTooMany, path, MaxPolygonPoints)
		}
		if total > MaxTotalPoints {
			return fmt.Errorf("%w: the polygons up to %s have more than %d vertices in all", ErrTooMany, path, MaxTotalPoints)
		}
		if err := validatePolygon(path+".polygon", f.ID, f.Polygon); err != nil {
			return err
		}
	}
	return nil
}

func validateCoord(latPath, lonPath string, lat, lon float64) error {
	if !(lat >= -90 && lat <= 90) { // written so that NaN fails too
		return fmt.Errorf("%w: %s must be a latitude between -90 and 90, got %s", ErrGeoFence, latPath, num(lat))
	}
	if !(lon >= -180 && lon <= 180) {
		return fmt.Errorf("%w: %s must be a longitude between -180 and 180, got %s", ErrGeoFence, lonPath, num(lon))
	}
	return nil
}

// num renders a number as the operator wrote it (1000001, not 1.000001e+06).
func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func validatePolygon(path, id string, pts [][2]float64) error {
	minLon, maxLon := math.Inf(1), math.Inf(-1)
	var distinct [][2]float64
	for j, pt := range pts {
		p := path + "[" + strconv.Itoa(j) + "]"
		if err := validateCoord(p+"[0]", p+"[1]", pt[0], pt[1]); err != nil {
			return err
		}
		minLon, maxLon = min(minLon, pt[1]), max(maxLon, pt[1])
		if len(distinct) < 3 && !slices.Contains(distinct, pt) {
			distinct = append(distinct, pt)
		}
	}
	if len(distinct) < 3 {
		return fmt.Errorf("%w: %s must have at least 3 distinct [lat, lon] vertices, got %d", ErrGeoFence, path, len(distinct))
	}
	if maxLon-minLon > 180 {
		return fmt.Errorf("%w: %s spans more than 180 degrees of longitude; split a polygon that crosses the antimeridian into two fences",
			ErrGeoFence, path)
	}
	if !hasArea(pts) {
		return fmt.Errorf("%w: %s (fence %q) encloses no area: its vertices lie on one line, or its ring crosses itself so that its parts cancel out",
			ErrGeoFence, path, id)
	}
	return nil
}

// hasArea reports whether the ring's signed (shoelace) area is not zero. A
// ring of collinear vertices contains nothing but its own line, on which
// orb's boundary rule would still let a device pass: a fence that looks
// like a fence and is not one. The vertices are taken relative to the first
// so that rounding scales with the polygon, not with its distance from
// (0, 0), and the area is compared with the size of its terms so that a
// small real fence is not mistaken for a flat one.
func hasArea(pts [][2]float64) bool {
	var sum, scale float64
	o := pts[0]
	for i := range pts {
		a, b := pts[i], pts[(i+1)%len(pts)]
		x1, y1, x2, y2 := a[1]-o[1], a[0]-o[0], b[1]-o[1], b[0]-o[0]
		sum += x1*y2 - x2*y1
		scale += math.Abs(x1*y2) + math.Abs(x2*y1)
	}
	return math.Abs(sum) > 1e-9*scale
}

func (r *Rules) validateWindows() error {
	if len(r.TimeWindows) > MaxTimeWindows {
		return fmt.Errorf("%w: timeWindows has more than %d entries", ErrTooMany, MaxTimeWindows)
	}
	ids := make(map[string]bool, len(r.TimeWindows))
	zones := map[string]bool{}
	for i := range r.TimeWindows {
		w := &r.TimeWindows[i]
		path := "timeWindows[" + strconv.Itoa(i) + "]"
		if err := validateID(path+".id", w.ID, ids); err != nil {
			return err
		}
		if !zones[w.Zone] {
			if _, err := loadZone(w.Zone); err != nil {
				return fmt.Errorf("%w: %s.zone must be an IANA time zone such as Europe/Amsterdam, got %q",
					ErrTimeWindow, path, w.Zone)
			}
			zones[w.Zone] = true
		}
		if w.Days == 0 || w.Days >= 1<<7 {
			return fmt.Errorf("%w: %s.days must name at least one of mon, tue, wed, thu, fri, sat, sun", ErrTimeWindow, path)
		}
		if w.Start < 0 || w.Start >= minutesPerDay {
			return fmt.Errorf("%w: %s.start must be a time from 00:00 to 23:59, got %d minutes", ErrTimeWindow, path, w.Start)
		}
		if w.End < 0 || w.End > minutesPerDay {
			return fmt.Errorf("%w: %s.end must be a time from 00:00 to 24:00, got %d minutes", ErrTimeWindow, path, w.End)
		}
		if w.Start == w.End {
			return fmt.Errorf("%w: %s.start and end are both %s; a window of a whole day is 00:00 to 24:00",
				ErrTimeWindow, path, clockString(w.Start))
		}
	}
	return nil
}

const minutesPerDay = 24 * 60

// loadZone loads an IANA zone. "" and "Local" are refused although
// time.LoadLocation accepts them: they mean UTC by accident and the host's
// zone, and a rule must mean the same on every machine.
func loadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("%w: zone %q", ErrTimeWindow, name)
	}
	return time.LoadLocation(name)
}

func validateCIDRs(path string, list []netip.Prefix) error {
	if len(list) > MaxCIDRs {
		return fmt.Errorf("%w: %s has more than %d entries", ErrTooMany, path, MaxCIDRs)
	}
	seen := make(map[netip.Prefix]bool, len(list))
	for i, p := range list {
		ip := path + "[" + strconv.Itoa(i) + "]"
		if !p.IsValid() {
			return fmt.Errorf("%w: %s must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32", ErrCIDR, ip)
		}
		if m := p.Masked(); m != p {
			return fmt.Errorf("%w: %s has address bits set beyond its /%d, got %q; the range is written %s",
				ErrCIDR, ip, p.Bits(), p.String(), m.String())
		}
		if seen[p] {
			return fmt.Errorf("%w: CIDR %s (%s)", ErrDuplicate, ip, p.String())
		}
		seen[p] = true
	}
	return nil
}

func (dev *DeviceRules) validate() error {
	if len(dev.Platforms) > maxPlatforms {
		return fmt.Errorf("%w: device.platforms has more than %d entries", ErrTooMany, maxPlatforms)
	}
	for i, p := range dev.Platforms {
		path := "device.platforms[" + strconv.Itoa(i) + "]"
		if !slices.Contains(knownPlatforms[:], p) {
			return fmt.Errorf("%w: %s must be \"ios\" or \"android\", got %q", ErrDevice, path, p)
		}
		if slices.Contains(dev.Platforms[:i], p) {
			return fmt.Errorf("%w: platform %s (%q)", ErrDuplicate, path, p)
		}
	}
	if dev.MinAppVersion != "" {
		if _, ok := parseVersion(dev.MinAppVersion); !ok {
			return fmt.Errorf("%w: device.minAppVersion must be up to %d numbers separated by dots, such as 2.1.0, got %q",
				ErrDevice, maxVersionParts, dev.MinAppVersion)
		}
	}
	return nil
}

func (r *Rules) validateUsers() error {
	if len(r.Users) > MaxUsers {
		return fmt.Errorf("%w: users has more than %d users", ErrTooMany, MaxUsers)
	}
	fences := make(map[string]bool, len(r.GeoFences))
	for _, f := range r.GeoFences {
		fences[f.ID] = true
	}
	windows := make(map[string]bool, len(r.TimeWindows))
	for _, w := range r.TimeWindows {
		windows[w.ID] = true
	}
	for _, id := range r.userIDs() {
		path := userPath(id)
		if !validUserID(id) {
			return fmt.Errorf("%w: %s: a user id is 1 to %d bytes without control characters", ErrID, path, maxUserIDLen)
		}
		a := r.Users[id]
		if err := validateRefs(path+".geoFences", "geo-fence", a.GeoFences, fences, MaxGeoFences); err != nil {
			return err
		}
		if err := validateRefs(path+".timeWindows", "time window", a.TimeWindows, windows, MaxTimeWindows); err != nil {
			return err
		}
	}
	return nil
}

// userIDs returns the users' ids sorted, so that errors and renderings do
// not depend on map order.
func (r *Rules) userIDs() []string {
	ids := make([]string, 0, len(r.Users))
	for id := range r.Users {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func validateRefs(path, kind string, refs []string, defined map[string]bool, limit int) error {
	if len(refs) > limit {
		return fmt.Errorf("%w: %s has more than %d entries", ErrTooMany, path, limit)
	}
	for i, ref := range refs {
		p := path + "[" + strconv.Itoa(i) + "]"
		if !defined[ref] {
			return fmt.Errorf("%w: %s names no %s of the document, got %q", ErrReference, p, kind, ref)
		}
		if slices.Contains(refs[:i], ref) {
			return fmt.Errorf("%w: id %s (%q)", ErrDuplicate, p, ref)
		}
	}
	return nil
}

// validateID checks an id's form and that it is not already in seen, then adds it.
func validateID(path, id string, seen map[string]bool) error {
	ok := len(id) > 0 && len(id) <= maxIDLen
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':'
	}
	if !ok {
		return fmt.Errorf("%w: %s must be 1 to %d letters, digits, '-', '_', '.' or ':', got %q", ErrID, path, maxIDLen, id)
	}
	if seen[id] {
		return fmt.Errorf("%w: id %s (%q)", ErrDuplicate, path, id)
	}
	seen[id] = true
	return nil
}

func validateName(path, name string) error {
	if len(name) > maxNameLen || hasControl(name) {
		return fmt.Errorf("%w: %s must be at most %d bytes without control characters", ErrGeoFence, path, maxNameLen)
	}
	return nil
}

func validUserID(id string) bool {
	return len(id) > 0 && len(id) <= maxUserIDLen && !hasControl(id)
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// clockString renders minutes after midnight as HH:MM.
func clockString(m int) string {
	return string([]byte{byte('0' + m/600), byte('0' + m/60%10), ':', byte('0' + m%60/10), byte('0' + m%10)})
}

// The JSON mirror of Rules, in DESIGN's key order.
type (
	rulesJSON struct {
		GeoFences   []fenceJSON         `json:"geoFences"`
		TimeWindows []windowJSON        `json:"timeWindows"`
		IP          ipJSON              `json:"ip"`
		Device      deviceJSON          `json:"device"`
		Users       map[string]userJSON `json:"users"` // encoding/json sorts the keys
	}
	fenceJSON struct {
		ID           string       `json:"id"`
		Name         string       `json:"name"`
		Lat          *float64     `json:"lat,omitempty"`
		Lon          *float64     `json:"lon,omitempty"`
		RadiusMeters *float64     `json:"radiusMeters,omitempty"`
		Polygon      [][2]float64 `json:"polygon,omitempty"`
	}
	windowJSON struct {
		ID    string   `json:"id"`
		Zone  string   `json:"zone"`
		Days  []string `json:"days"`
		Start string   `json:"start"`
		End   string   `json:"end"`
	}
	ipJSON struct {
		Allow []string `json:"allow"`
		Deny  []string `json:"deny"`
	}
	deviceJSON struct {
		RequireRegistered bool     `json:"requireRegistered"`
		Platforms         []string `json:"platforms"`
		MinAppVersion     string   `json:"minAppVersion"`
		BlockJailbroken   bool     `json:"blockJailbroken"`
	}
	userJSON struct {
		GeoFences   []string `json:"geoFences"`
		TimeWindows []string `json:"timeWindows"`
	}
)

// JSON renders r canonically, as GET /admin/v1/rules answers it: every key
// present (empty lists as []), keys in DESIGN's order, days from mon to sun,
// users sorted by id, fences and windows in the operator's order. For a valid
// r, Parse(r.JSON()) gives r back and renders the same bytes. The only error
// is a coordinate that is NaN or infinite, which Validate refuses.
func (r *Rules) JSON() ([]byte, error) {
	m := rulesJSON{
		GeoFences:   make([]fenceJSON, 0, len(r.GeoFences)),
		TimeWindows: make([]windowJSON, 0, len(r.TimeWindows)),
		IP:          ipJSON{Allow: prefixStrings(r.IP.Allow), Deny: prefixStrings(r.IP.Deny)},
		Device: deviceJSON{
			RequireRegistered: r.Device.RequireRegistered,
			Platforms:         append([]string{}, r.Device.Platforms...),
			MinAppVersion:     r.Device.MinAppVersion,
			BlockJailbroken:   r.Device.BlockJailbroken,
		},
		Users: make(map[string]userJSON, len(r.Users)),
	}
	for i := range r.GeoFences {
		f := &r.GeoFences[i]
		fj := fenceJSON{ID: f.ID, Name: f.Name, Polygon: f.Polygon}
		if !f.IsPolygon() {
			fj.Lat, fj.Lon, fj.RadiusMeters = &f.Lat, &f.Lon, &f.RadiusMeters
		} else if len(f.Polygon) == 0 {
			fj.Polygon = nil // invalid, but render it rather than omit the key
		}
		m.GeoFences = append(m.GeoFences, fj)
	}
	for _, w := range r.TimeWindows {
		days := []string{}
		for _, day := range [7]time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday,
			time.Friday, time.Saturday, time.Sunday} {
			if w.Days.Has(day) {
				days = append(days, dayNames[day])
			}
		}
		m.TimeWindows = append(m.TimeWindows, windowJSON{
			ID: w.ID, Zone: w.Zone, Days: days, Start: clockString(w.Start), End: clockString(w.End),
		})
	}
	for id, a := range r.Users {
		m.Users[id] = userJSON{
			GeoFences:   append([]string{}, a.GeoFences...),
			TimeWindows: append([]string{}, a.TimeWindows...),
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // names stay readable: "R&D" rather than "R\u0026D"
	if err := enc.Encode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrGeoFence, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func prefixStrings(list []netip.Prefix) []string {
	out := make([]string, len(list))
	for i, p := range list {
		out[i] = p.String()
	}
	return out
}
