package rules

import (
	"net/netip"
	"time"

	"github.com/paulmach/orb"
)

// Compiled is a Rules document prepared for evaluation: fences with their
// polygons in orb's (lon, lat) order and their bounds, windows with their
// zones loaded, CIDRs unmapped, the minimum app version parsed, and the
// per-user assignments as ranges into flat index lists. It is read-only once
// built and shared by all requests of an organization (safe for concurrent use).
type Compiled struct {
	version uint64
	doc     []byte // the canonical JSON, for GET /admin/v1/rules

	fences  []fence
	windows []window
	// fenceIdx and windowIdx hold indices into fences and windows: the
	// org-wide ones first, then each listed user's, so that an assignment is
	// two ranges and a lookup touches one map.
	fenceIdx  []int32
	windowIdx []int32
	org       assignment
	users     map[string]assignment

	allow, deny []netip.Prefix
	device      deviceRule
}

// span is a range [lo, hi) of fenceIdx or windowIdx.
type span struct{ lo, hi int32 }

type assignment struct{ fences, windows span }

type fence struct {
	id      string
	polygon orb.Polygon // nil for a circle
	bound   orb.Bound   // the polygon's, to skip the ring walk for far points
	center  orb.Point   // a circle's, as (lon, lat)
	radius  float64
}

type window struct {
	id         string
	loc        *time.Location
	days       Days
	start, end int
}

type deviceRule struct {
	configured        bool
	requireRegistered bool
	blockJailbroken   bool
	platforms         [][]byte
	hasMin            bool
	min               version
}

// Compile validates r and prepares it for evaluation. version is the
// document's version as the store numbers it; results carry it, so a decision
// can say which rules decided it.
func Compile(r *Rules, version uint64) (*Compiled, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	doc, err := r.JSON()
	if err != nil {
		return nil, err
	}
	c := &Compiled{
		version: version,
		doc:     doc,
		fences:  make([]fence, len(r.GeoFences)),
		windows: make([]window, len(r.TimeWindows)),
		users:   make(map[string]assignment, len(r.Users)),
	}
	fenceAt := make(map[string]int32, len(r.GeoFences))
	for i := range r.GeoFences {
		c.fences[i] = compileFence(&r.GeoFences[i])
		fenceAt[r.GeoFences[i].ID] = int32(i)
	}
	windowAt := make(map[string]int32, len(r.TimeWindows))
	zones := map[string]*time.Location{}
	for i, w := range r.TimeWindows {
		loc := zones[w.Zone]
		if loc == nil {
			if loc, err = loadZone(w.Zone); err != nil { // Validate loaded it: only a changed host gets here
				return nil, err
			}
			zones[w.Zone] = loc
		}
		c.windows[i] = window{id: w.ID, loc: loc, days: w.Days, start: w.Start, end: w.End}
		windowAt[w.ID] = int32(i)
	}

	// Org-wide: what no user is assigned.
	assignedFence := make([]bool, len(c.fences))
	assignedWindow := make([]bool, len(c.windows))
	for _, a := range r.Users {
		for _, id := range a.GeoFences {
			assignedFence[fenceAt[id]] = true
		}
		for _, id := range a.TimeWindows {
			assignedWindow[windowAt[id]] = true
		}
	}
	c.org.fences = appendUnassigned(&c.fenceIdx, assignedFence)
	c.org.windows = appendUnassigned(&c.windowIdx, assignedWindow)
	for _, id := range r.userIDs() {
		a := r.Users[id]
		c.users[id] = assignment{
			fences:  appendRefs(&c.fenceIdx, a.GeoFences, fenceAt),
			windows: appendRefs(&c.windowIdx, a.TimeWindows, windowAt),
		}
	}

	c.allow = unmapAll(r.IP.Allow)
	c.deny = unmapAll(r.IP.Deny)
	c.device = compileDevice(&r.Device)
	return c, nil
}

func compileFence(f *GeoFence) fence {
	if !f.IsPolygon() {
		return fence{id: f.ID, center: orb.Point{f.Lon, f.Lat}, radius: f.RadiusMeters}
	}
	ring := make(orb.Ring, len(f.Polygon))
	for i, pt := range f.Polygon {
		ring[i] = orb.Point{pt[1], pt[0]} // the document says [lat, lon]; orb wants (lon, lat)
	}
	return fence{id: f.ID, polygon: orb.Polygon{ring}, bound: ring.Bound()}
}

func appendUnassigned(idx *[]int32, assigned []bool) span {
	s := span{lo: int32(len(*idx))}
	for i, a := range assigned {
		if !a {
			*idx = append(*idx, int32(i))
		}
	}
	s.hi = int32(len(*idx))
	return s
}

func appendRefs(idx *[]int32, ids []string, at map[string]int32) span {
	s := span{lo: int32(len(*idx))}
	for _, id := range ids {
		*idx = append(*idx, at[id])
	}
	s.hi = int32(len(*idx))
	return s
}

func unmapAll(list []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(list))
	for i, p := range list {
		out[i] = unmapPrefix(p)
	}
	return out
}

func compileDevice(d *DeviceRules) deviceRule {
	dr := deviceRule{
		requireRegistered: d.RequireRegistered,
		blockJailbroken:   d.BlockJailbroken,
	}
	for _, p := range d.Platforms {
		dr.platforms = append(dr.platforms, []byte(p))
	}
	if d.MinAppVersion != "" {
		dr.min, dr.hasMin = parseVersion(d.MinAppVersion)
	}
	dr.configured = dr.requireRegistered || dr.blockJailbroken || len(dr.platforms) > 0 || dr.hasMin
	return dr
}

// Version returns the version c was compiled with.
func (c *Compiled) Version() uint64 { return c.version }

// AppendJSON appends the canonical JSON of the rules c was compiled from
// (Rules.JSON), as GET /admin/v1/rules answers it.
func (c *Compiled) AppendJSON(dst []byte) []byte { return append(dst, c.doc...) }
