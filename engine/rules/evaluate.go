package rules

import (
	"bytes"
	"math"
	"net/netip"
	"time"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geo"
	"github.com/paulmach/orb/planar"
)

// Biometric is the result of the biometric step the device reports. It is
// the one biometric type of countersign: engine/approval signs and stores
// it, so the value a device signed is the value the rules decide on.
type Biometric uint8

const (
	// BiometricAbsent: the device sent no result. It fails: an approval
	// without a biometric check is not the user's.
	BiometricAbsent Biometric = iota
	// BiometricPass: the device recognised its user.
	BiometricPass
	// BiometricFail: it did not; an approval fails on it.
	BiometricFail
)

var biometricNames = [...]string{"absent", "PASS", "FAIL"}

// String returns the wire name of b ("PASS", "FAIL", as a device signs
// them), "absent" for BiometricAbsent, or "unknown".
func (b Biometric) String() string {
	if int(b) < len(biometricNames) {
		return biometricNames[b]
	}
	return "unknown"
}

// Location is where the device says it is, in degrees. Evaluate ignores
// AccuracyM: a fix is taken at its centre, so a poor fix near a fence's edge
// may land either side. Widening fences by the accuracy would let a device
// that reports a huge uncertainty pass every fence, and narrowing them would
// fail honest users indoors; an organization that wants margin draws a larger
// fence. AccuracyM is kept for the audit trail.
type Location struct {
	Present   bool
	Lat, Lon  float64
	AccuracyM float64
}

// Device is what the approving device reports about itself, and whether it
// is a device registered to the user. Jailbroken is the app's own report, so
// a device that says nothing counts as not jailbroken: the flag catches
// honest apps on rooted phones, not a forged client (the device signature
// and registration are what stop those).
type Device struct {
	Registered bool
	Platform   []byte
	AppVersion []byte
	Jailbroken bool
}

// Circle is a geo-fence a request brings with it (iVALT's latitude,
// longitude and radius_meters), in degrees and metres.
type Circle struct {
	Present                bool
	Lat, Lon, RadiusMeters float64
}

// Input is one approval's evidence. The byte slices are borrowed (they may
// point into a request or a stored record) and not kept: a caller holding
// strings appends them into a pooled scratch buffer rather than converting.
type Input struct {
	UserID    []byte
	Biometric Biometric
	Location  Location
	// RequestFence, when Present, is a circle the location must be inside
	// as well as inside one of the organization's fences that apply: it
	// narrows the rules, never widens them, so a requester cannot move a
	// user's fence by sending its own. Without organization fences it is
	// the only fence. A circle out of range fails the factor.
	RequestFence Circle
	// IP is the approval's source IP; the zero Addr means none was known.
	IP     netip.Addr
	Device Device
}

// Factor names one of the contextual factors, in the order they are reported.
type Factor uint8

const (
	FactorBiometric Factor = iota
	FactorGeoFence
	FactorTimeWindow
	FactorIP
	FactorDevice
	// NumFactors is the number of factors, the length of Result.Factors.
	NumFactors
)

var factorNames = [NumFactors]string{"biometric", "geo_fence", "time_window", "ip", "device"}

// String returns the factor's name as the APIs spell it ("geo_fence").
func (f Factor) String() string {
	if f < NumFactors {
		return factorNames[f]
	}
	return "unknown"
}

// Outcome is a factor's result. The zero value is Skipped, so that a factor
// Evaluate has not filled in cannot read as a pass.
type Outcome uint8

const (
	// Skipped: the factor is not configured for the user, so it decides nothing.
	Skipped Outcome = iota
	Pass
	Fail
)

var outcomeNames = [...]string{"SKIPPED", "PASS", "FAIL"}

// String returns "PASS", "FAIL" or "SKIPPED".
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "UNKNOWN"
}

// FactorResult is one factor's outcome with its reason, a human sentence.
// Reasons are constants: a geo-fence failure's contains "geofencing" and a
// time-window failure's "timezone", the words the vendors' clients match on.
type FactorResult struct {
	Outcome Outcome
	Reason  string
	// Match is the id of the fence or window that let the factor pass, or "".
	Match string
}

// Result is the outcome of every factor, indexed by Factor, and the version
// of the rules that decided them. A caller keeps one per request (pooled);
// Evaluate overwrites all of it.
type Result struct {
	Version uint64
	Factors [NumFactors]FactorResult
}

// Failed says whether any factor failed. Skipped factors never fail; the
// biometric factor is always configured.
func (r *Result) Failed() bool {
	for i := range r.Factors {
		if r.Factors[i].Outcome == Fail {
			return true
		}
	}
	return false
}

// AppendJSON appends the factors as the APIs render them, in Factor order:
// [{"factor":"geo_fence","result":"FAIL","reason":"..."},...].
func (r *Result) AppendJSON(dst []byte) []byte {
	dst = append(dst, '[')
	for i := range r.Factors {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendFactorJSON(dst, factorNames[i], r.Factors[i].Outcome, r.Factors[i].Reason)
	}
	return append(dst, ']')
}

// AppendFactorJSON appends one factor as the APIs render it,
// {"factor":name,"result":"PASS","reason":"..."}: the shape of every factor
// list, so that a stored approval's factors (engine/approval, which adds its
// own such as number_match) render exactly as a fresh Result's.
func AppendFactorJSON(dst []byte, name string, o Outcome, reason string) []byte {
	dst = append(dst, `{"factor":`...)
	dst = appendQuoted(dst, name)
	dst = append(dst, `,"result":"`...)
	dst = append(dst, o.String()...)
	dst = append(dst, `","reason":`...)
	dst = appendQuoted(dst, reason)
	return append(dst, '}')
}

// appendQuoted appends s as a JSON string. Reasons are this package's ASCII
// constants, so escaping quotes, backslashes and control bytes is all JSON
// needs; other bytes pass through. Runs without escapes are copied whole,
// which for a reason is all of it.
func appendQuoted(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		if c < 0x20 {
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		} else {
			dst = append(dst, '\\', c)
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// The reasons, one per outcome and cause.
const (
	reasonBiometricPass   = "the user passed the biometric check on the device"
	reasonBiometricFail   = "the biometric check on the device failed"
	reasonBiometricAbsent = "the device sent no biometric result"

	reasonGeoSkipped  = "no geofencing areas apply to the user"
	reasonGeoPass     = "the device is inside a geofencing area assigned to the user"
	reasonGeoOutside  = "the device is outside every geofencing area assigned to the user"
	reasonGeoNoFix    = "the device sent no location, so geofencing cannot pass"
	reasonGeoBadFix   = "the device sent a location that is not a valid coordinate, so geofencing cannot pass"
	reasonGeoRequest  = "the device is inside the geofencing area of the request"
	reasonGeoOutReq   = "the device is outside the geofencing area of the request"
	reasonGeoBadReq   = "the request's geofencing area is not a valid circle, so geofencing cannot pass"
	reasonTimeSkipped = "no time windows apply to the user"
	reasonTimePass    = "the time is inside a window allowed for the user, in the window's timezone"
	reasonTimeOutside = "the time is outside every window allowed for the user, in each window's timezone"

	reasonIPSkipped  = "no IP rules are configured"
	reasonIPPass     = "the source IP is allowed"
	reasonIPDenied   = "the source IP is in a denied range"
	reasonIPNotAllow = "the source IP is outside every allowed range"
	reasonIPAbsent   = "no source IP is known to check against the IP rules"

	reasonDeviceSkipped    = "no device rules are configured"
	reasonDevicePass       = "the device meets the device rules"
	reasonDeviceUnknown    = "the device is not registered to the user"
	reasonDevicePlatform   = "the device's platform is not allowed"
	reasonDeviceOld        = "the app version is older than the minimum allowed"
	reasonDeviceBadVersion = "the app version is missing or not a version the rules can compare"
	reasonDeviceJailbroken = "the device is jailbroken or rooted"
)

// Evaluate decides every factor of in at time now under c into out, without
// allocating. now is the server's clock, never the device's timestamp: the
// time window is a rule about when the server saw the answer, and a device
// could claim any time it likes. A user listed in the rules' users gets
// exactly the fences and windows assigned there; everybody else gets the
// org-wide ones. A nil c is an organization without rules: only the
// biometric factor (and a request's own fence) is decided.
func Evaluate(c *Compiled, in *Input, now time.Time, out *Result) {
	*out = Result{}
	out.Factors[FactorBiometric] = BiometricFactor(in.Biometric)
	if c == nil {
		out.Factors[FactorGeoFence] = evalGeo(nil, nil, &in.Location, &in.RequestFence)
		out.Factors[FactorTimeWindow] = FactorResult{Reason: reasonTimeSkipped}
		out.Factors[FactorIP] = FactorResult{Reason: reasonIPSkipped}
		out.Factors[FactorDevice] = FactorResult{Reason: reasonDeviceSkipped}
		return
	}
	out.Version = c.version
	a := c.org
	if u, ok := c.users[string(in.UserID)]; ok { // the conversion in a map index does not allocate
		a = u
	}
	out.Factors[FactorGeoFence] = evalGeo(c.fences, c.fenceIdx[a.fences.lo:a.fences.hi], &in.Location, &in.RequestFence)
	out.Factors[FactorTimeWindow] = c.evalTime(c.windowIdx[a.windows.lo:a.windows.hi], now)
	out.Factors[FactorIP] = c.evalIP(in.IP)
	out.Factors[FactorDevice] = c.device.eval(&in.Device)
}

// BiometricFactor is the biometric factor Evaluate decides for b, so that
// a caller holding a Result can check it was evaluated for the biometric
// result it has (engine/approval checks it against the signed one).
func BiometricFactor(b Biometric) FactorResult {
	switch b {
	case BiometricPass:
		return FactorResult{Outcome: Pass, Reason: reasonBiometricPass}
	case BiometricFail:
		return FactorResult{Outcome: Fail, Reason: reasonBiometricFail}
	}
	return FactorResult{Outcome: Fail, Reason: reasonBiometricAbsent}
}

// evalGeo passes when the location is inside any of the fences idx names
// (inclusive at the edge) and inside the request's fence when there is one.
// Fences configured and no location fails: a missing location must not walk
// around a fence.
func evalGeo(fences []fence, idx []int32, loc *Location, req *Circle) FactorResult {
	if len(idx) == 0 && !req.Present {
		return FactorResult{Reason: reasonGeoSkipped}
	}
	if !loc.Present {
		return FactorResult{Outcome: Fail, Reason: reasonGeoNoFix}
	}
	if !validLatLon(loc.Lat, loc.Lon) {
		return FactorResult{Outcome: Fail, Reason: reasonGeoBadFix}
	}
	pt := orb.Point{loc.Lon, loc.Lat}
	pass := FactorResult{Outcome: Pass, Reason: reasonGeoRequest}
	if len(idx) > 0 {
		pass = FactorResult{Outcome: Fail, Reason: reasonGeoOutside}
		for _, i := range idx {
			if f := &fences[i]; f.contains(pt) {
				pass = FactorResult{Outcome: Pass, Reason: reasonGeoPass, Match: f.id}
				break
			}
		}
		if pass.Outcome == Fail {
			return pass
		}
	}
	if req.Present {
		if !validLatLon(req.Lat, req.Lon) || !(req.RadiusMeters > 0 && req.RadiusMeters <= MaxRadiusMeters) {
			return FactorResult{Outcome: Fail, Reason: reasonGeoBadReq}
		}
		circle := fence{center: orb.Point{req.Lon, req.Lat}, radius: req.RadiusMeters}
		if !circle.contains(pt) {
			return FactorResult{Outcome: Fail, Reason: reasonGeoOutReq}
		}
	}
	return pass
}

// validLatLon is written so that NaN fails too.
func validLatLon(lat, lon float64) bool {
	return lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180
}

// contains measures circles by the haversine distance on orb's sphere
// (radius 6378137 m), within 0.5% of the ellipsoid: metres at a fence of a
// kilometre. The edge is inside, with a micrometre to spare, so that a point
// placed exactly on it is not pushed out by rounding. Polygons are planar in (lon, lat), which Validate keeps to less
// than 180 degrees of longitude; orb counts the boundary as inside.
const edgeToleranceM = 1e-6

func (f *fence) contains(pt orb.Point) bool {
	if f.polygon == nil {
		d := geo.DistanceHaversine(pt, f.center)
		return d <= f.radius+edgeToleranceM && !math.IsNaN(d)
	}
	return f.bound.Contains(pt) && planar.PolygonContains(f.polygon, pt)
}

// evalTime passes when now is inside any of the windows. Times compare as
// wall clocks in each window's zone, so a DST change moves the window with
// the clock: on a spring-forward day a 02:00-03:00 window never opens (the
// clock skips it), and on a fall-back day it is open for both 02:00 hours.
func (c *Compiled) evalTime(idx []int32, now time.Time) FactorResult {
	if len(idx) == 0 {
		return FactorResult{Reason: reasonTimeSkipped}
	}
	for _, i := range idx {
		w := &c.windows[i]
		if w.contains(now) {
			return FactorResult{Outcome: Pass, Reason: reasonTimePass, Match: w.id}
		}
	}
	return FactorResult{Outcome: Fail, Reason: reasonTimeOutside}
}

func (w *window) contains(now time.Time) bool {
	local := now.In(w.loc)
	h, m, _ := local.Clock()
	minute := h*60 + m
	day := local.Weekday()
	if w.start < w.end {
		return w.days.Has(day) && minute >= w.start && minute < w.end
	}
	// Across midnight: the evening of a listed day, or the early hours of
	// the day after one.
	return w.days.Has(day) && minute >= w.start || w.days.Has((day+6)%7) && minute < w.end
}

// evalIP applies deny before allow, to the address unmapped from IPv4-mapped
// IPv6 and without an IPv6 zone (a zoned address matches no prefix, and so
// would slip past a deny list).
func (c *Compiled) evalIP(ip netip.Addr) FactorResult {
	if len(c.allow) == 0 && len(c.deny) == 0 {
		return FactorResult{Reason: reasonIPSkipped}
	}
	if !ip.IsValid() {
		return FactorResult{Outcome: Fail, Reason: reasonIPAbsent}
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range c.deny {
		if p.Contains(ip) {
			return FactorResult{Outcome: Fail, Reason: reasonIPDenied}
		}
	}
	if len(c.allow) == 0 {
		return FactorResult{Outcome: Pass, Reason: reasonIPPass}
	}
	for _, p := range c.allow {
		if p.Contains(ip) {
			return FactorResult{Outcome: Pass, Reason: reasonIPPass}
		}
	}
	return FactorResult{Outcome: Fail, Reason: reasonIPNotAllow}
}

// eval checks the device in DESIGN's order (registered, platform, version,
// jailbroken) and reports the first rule it breaks.
func (d *deviceRule) eval(dev *Device) FactorResult {
	if !d.configured {
		return FactorResult{Reason: reasonDeviceSkipped}
	}
	if d.requireRegistered && !dev.Registered {
		return FactorResult{Outcome: Fail, Reason: reasonDeviceUnknown}
	}
	if len(d.platforms) > 0 && !d.platformAllowed(dev.Platform) {
		return FactorResult{Outcome: Fail, Reason: reasonDevicePlatform}
	}
	if d.hasMin {
		v, ok := parseVersion(dev.AppVersion)
		if !ok {
			return FactorResult{Outcome: Fail, Reason: reasonDeviceBadVersion}
		}
		if v.less(&d.min) {
			return FactorResult{Outcome: Fail, Reason: reasonDeviceOld}
		}
	}
	if d.blockJailbroken && dev.Jailbroken {
		return FactorResult{Outcome: Fail, Reason: reasonDeviceJailbroken}
	}
	return FactorResult{Outcome: Pass, Reason: reasonDevicePass}
}

// platformAllowed compares without regard to case: apps report "iOS" as often as "ios".
func (d *deviceRule) platformAllowed(p []byte) bool {
	for _, allowed := range d.platforms {
		if bytes.EqualFold(p, allowed) {
			return true
		}
	}
	return false
}
