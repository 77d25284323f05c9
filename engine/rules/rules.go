// Package rules decides the contextual factors of an approval: whether the
// device's biometric check passed, whether its location is inside a geo-fence,
// whether the time is inside an allowed window, whether the source IP is
// allowed, and whether the device is trusted. Each factor comes out PASS, FAIL
// or SKIPPED with a human reason, in a fixed order, so that every surface
// (native, iVALT, UNLOQ, admin) renders the same answer.
//
// An organization's rules are written as one JSON document (Parse reads it,
// Rules.JSON renders it back canonically), compiled once when they change
// (Compile) into flat structures, and evaluated per approval (Evaluate)
// without allocating.
//
// The package embeds the IANA time zone database (time/tzdata): a self-hosted
// countersign often runs in a minimal container image with no zoneinfo on
// disk, and a time window must not fail to load there. The system database is
// still preferred when present.
package rules

import (
	"errors"
	"net/netip"
	"time"

	_ "time/tzdata" // see the package comment
)

// Rules is an organization's rule document as an operator writes it to
// PUT /admin/v1/rules. Fences and windows assigned to a user under Users apply
// to that user only; all the others apply to everybody else (org-wide).
//
// A Rules value built by hand must pass Validate; Parse returns only valid ones.
type Rules struct {
	GeoFences   []GeoFence
	TimeWindows []TimeWindow
	IP          IPRules
	Device      DeviceRules
	// Users maps a user id to the fences and windows that apply to that
	// user instead of the org-wide ones. A user listed here gets exactly
	// these, for both factors: an empty list means none of that kind.
	Users map[string]Assignment
}

// GeoFence is an area the device must be in: a circle (Lat, Lon,
// RadiusMeters) or, when Polygon is not nil, a polygon whose vertices are
// [lat, lon] pairs in degrees, as operators copy them from a map. A polygon's
// ring may be given open or closed (last vertex equal to the first); a ring
// that crosses itself counts by the even-odd rule.
type GeoFence struct {
	ID   string
	Name string
	// The circle's centre in degrees and its radius in metres; zero for a polygon.
	Lat, Lon, RadiusMeters float64
	// The polygon's vertices as [lat, lon]; nil for a circle.
	Polygon [][2]float64
}

// IsPolygon says whether f is a polygon rather than a circle.
func (f *GeoFence) IsPolygon() bool { return f.Polygon != nil }

// TimeWindow is a daily period in an IANA time zone, on some days of the
// week, during which approvals are allowed. Start is inclusive and End
// exclusive, both wall-clock minutes after local midnight. An End before
// Start makes a window across midnight, and Days then names the day it
// starts on: fri 22:00-02:00 covers Saturday 01:00. End may be 24:00 (1440)
// so that a window can run to the end of its day.
type TimeWindow struct {
	ID   string
	Zone string
	Days Days
	// Minutes after local midnight: Start in [0, 1440), End in [0, 1440].
	Start, End int
}

// Days is a set of days of the week, bit 1<<time.Weekday for each.
type Days uint8

// Has says whether d includes day.
func (d Days) Has(day time.Weekday) bool { return day < 7 && d&(1<<day) != 0 }

// IPRules are the CIDR lists the approval's source IP is checked against:
// a match in Deny fails; a non-empty Allow fails every address outside it.
// IPv4 ranges are plain IPv4 prefixes (Parse unmaps ::ffff:a.b.c.d/n).
type IPRules struct {
	Allow, Deny []netip.Prefix
}

// DeviceRules are what the approving device must satisfy. The zero value
// asks nothing, and the device factor is then SKIPPED.
type DeviceRules struct {
	RequireRegistered bool
	// Platforms allowed ("ios", "android"); empty allows any.
	Platforms []string
	// MinAppVersion is the lowest app version allowed, dot-separated
	// numbers compared component by component ("2.10.0" > "2.9.9",
	// "2.1" == "2.1.0"); empty allows any.
	MinAppVersion   string
	BlockJailbroken bool
}

// Assignment is the fences and windows (by id) that apply to one user.
type Assignment struct {
	GeoFences   []string
	TimeWindows []string
}

// Limits on a document, so that a rule set stays small enough to evaluate in
// microseconds and to hold per organization in memory.
const (
	MaxGeoFences     = 1000
	MaxTimeWindows   = 1000
	MaxPolygonPoints = 1000   // per polygon
	MaxTotalPoints   = 20000  // over all polygons: bounds the work of one evaluation
	MaxCIDRs         = 1000   // per list
	MaxUsers         = 100000 // users with their own assignment
	MaxRadiusMeters  = 1000000
	maxIDLen         = 64
	maxNameLen       = 200
	maxUserIDLen     = 256 // as the native surface allows
	maxPlatforms     = len(knownPlatforms)
)

// Platforms a device may report; DeviceRules.Platforms names some of them.
var knownPlatforms = [...]string{"ios", "android"}

// Errors of Parse, Validate and Compile. Each is wrapped with the path of the
// field at fault (geoFences[2].radiusMeters) and what is wrong with it, so an
// operator can fix the document from the message alone.
var (
	// ErrJSON: not one JSON object, malformed, a null, or a value of the wrong type.
	ErrJSON = errors.New("rules: invalid rules JSON")
	// ErrUnknownKey: a key that is not in the document (spelling and case count).
	ErrUnknownKey = errors.New("rules: unknown key")
	// ErrMissing: a required key is absent.
	ErrMissing = errors.New("rules: missing key")
	// ErrDuplicate: a key, id, day, platform or CIDR given twice.
	ErrDuplicate = errors.New("rules: duplicate")
	// ErrTooMany: a list or map longer than its limit (MaxGeoFences, ...).
	ErrTooMany = errors.New("rules: too many entries")
	// ErrID: an id or user id that is empty, too long or has characters outside its alphabet.
	ErrID = errors.New("rules: invalid id")
	// ErrGeoFence: a coordinate out of range, a bad radius, or a degenerate polygon.
	ErrGeoFence = errors.New("rules: invalid geo-fence")
	// ErrTimeWindow: a bad zone, day or time of day.
	ErrTimeWindow = errors.New("rules: invalid time window")
	// ErrCIDR: an IP range that is not a CIDR prefix, or has host bits set.
	ErrCIDR = errors.New("rules: invalid CIDR")
	// ErrDevice: an unknown platform or a minimum app version that is not a version.
	ErrDevice = errors.New("rules: invalid device rule")
	// ErrReference: a user assigned a fence or window id that the document does not define.
	ErrReference = errors.New("rules: unknown fence or window id")
)
