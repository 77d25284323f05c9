package client

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"

	"github.com/valyala/fasthttp"
)

// The calls of the admin API (/admin/v1, Authorization: Bearer <admin
// key>), as an operator's console makes them.

// User is an approval user as /admin/v1 shows it.
type User struct {
	UserID    string `json:"userID"`
	Mobile    string `json:"mobile"`
	Email     string `json:"email"`
	Name      string `json:"name"`
	CreatedAt int64  `json:"createdAt"`
	Locked    bool   `json:"locked"`
	Devices   int    `json:"devices"`
}

// NewUser is POST /admin/v1/users's body; empty fields are left out.
type NewUser struct {
	UserID, Mobile, Email, Name string
}

// AppendJSON appends the body to dst.
func (u *NewUser) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"userID":`...)
	dst = appendString(dst, u.UserID)
	for _, f := range [...]struct{ name, v string }{{"mobile", u.Mobile}, {"email", u.Email}, {"name", u.Name}} {
		if f.v != "" {
			dst = append(dst, ',')
			dst = appendString(dst, f.name)
			dst = append(dst, ':')
			dst = appendString(dst, f.v)
		}
	}
	return append(dst, '}')
}

// ActivationCode is a one-time code that activates a user's device.
type ActivationCode struct {
	ActivationCode string `json:"activationCode"`
	ExpiresAt      int64  `json:"expiresAt"`
}

// DeviceInfo is a registered device as /admin/v1 shows it.
type DeviceInfo struct {
	DeviceID   string `json:"deviceID"`
	UserID     string `json:"userID"`
	Platform   string `json:"platform"`
	AppVersion string `json:"appVersion"`
	Model      string `json:"model"`
	Jailbroken bool   `json:"jailbroken"`
	CreatedAt  int64  `json:"createdAt"`
	RevokedAt  int64  `json:"revokedAt"`
}

// adminCall sends one admin request and decodes a want-status answer into
// out (nil: no body expected).
func (c *Client) adminCall(method, path string, body []byte, want int, out any) error {
	r, err := c.Do(method, path, body, Header{"Authorization", "Bearer " + c.adminKey})
	if err != nil {
		return err
	}
	if r.Status != want {
		return apiError(r)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(r.Body, out); err != nil {
		return fmt.Errorf("%s %s: answer: %w", method, path, err)
	}
	return nil
}

func userPath(userID string) string { return "/admin/v1/users/" + url.PathEscape(userID) }

// CreateUser asks POST /admin/v1/users.
func (c *Client) CreateUser(u *NewUser) (*User, error) {
	out := &User{}
	return out, c.adminCall("POST", "/admin/v1/users", u.AppendJSON(nil), fasthttp.StatusCreated, out)
}

// GetUser reads GET /admin/v1/users/{userID}.
func (c *Client) GetUser(userID string) (*User, error) {
	out := &User{}
	return out, c.adminCall("GET", userPath(userID), nil, fasthttp.StatusOK, out)
}

// UnlockUser asks POST /admin/v1/users/{userID}/unlock.
func (c *Client) UnlockUser(userID string) error {
	return c.adminCall("POST", userPath(userID)+"/unlock", nil, fasthttp.StatusOK, nil)
}

// CreateActivationCode asks POST /admin/v1/users/{userID}/activation-codes.
func (c *Client) CreateActivationCode(userID string) (*ActivationCode, error) {
	out := &ActivationCode{}
	return out, c.adminCall("POST", userPath(userID)+"/activation-codes", nil, fasthttp.StatusCreated, out)
}

// UserDevices reads GET /admin/v1/users/{userID}/devices.
func (c *Client) UserDevices(userID string) ([]DeviceInfo, error) {
	var out struct {
		Items []DeviceInfo `json:"items"`
	}
	return out.Items, c.adminCall("GET", userPath(userID)+"/devices", nil, fasthttp.StatusOK, &out)
}

// RevokeDevice asks DELETE /admin/v1/devices/{deviceID}: the device's
// token and answers stop working at once.
func (c *Client) RevokeDevice(deviceID string) error {
	return c.adminCall("DELETE", "/admin/v1/devices/"+url.PathEscape(deviceID), nil, fasthttp.StatusNoContent, nil)
}

// Rules is the organization's rule set as PUT /admin/v1/rules takes it
// (DESIGN "Admin"): geo-fences, time windows, IP lists, device trust, and
// the users given their own fences and windows.
type Rules struct {
	GeoFences   []GeoFence
	TimeWindows []TimeWindow
	IPAllow     []string
	IPDeny      []string
	Device      *DeviceRules
	// Users maps a user id to the fences and windows (by id) that apply to
	// that user instead of the org-wide ones.
	Users map[string]UserRules
}

// GeoFence is a circle (Lat, Lon, RadiusMeters) or, when Polygon is set, a
// polygon of [lat, lon] points.
type GeoFence struct {
	ID, Name     string
	Lat, Lon     float64
	RadiusMeters float64
	Polygon      [][2]float64
}

// TimeWindow is a daily window in an IANA zone: Days are "mon".."sun",
// Start and End "HH:MM" (End before Start crosses midnight).
type TimeWindow struct {
	ID, Zone   string
	Days       []string
	Start, End string
}

// DeviceRules are the device-trust rules.
type DeviceRules struct {
	RequireRegistered bool
	Platforms         []string
	MinAppVersion     string
	BlockJailbroken   bool
}

// UserRules are one user's own fences and windows, by id.
type UserRules struct {
	GeoFences, TimeWindows []string
}

// AppendJSON appends the rules document to dst. Users are written in the
// map's order: the document is an object, whose order means nothing.
func (r *Rules) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"geoFences":[`...)
	for i, f := range r.GeoFences {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":`...)
		dst = appendString(dst, f.ID)
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, f.Name)
		if f.Polygon != nil {
			dst = append(dst, `,"polygon":[`...)
			for j, p := range f.Polygon {
				if j > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, '[')
				dst = strconv.AppendFloat(dst, p[0], 'f', -1, 64)
				dst = append(dst, ',')
				dst = strconv.AppendFloat(dst, p[1], 'f', -1, 64)
				dst = append(dst, ']')
			}
			dst = append(dst, "]}"...)
			continue
		}
		dst = append(dst, `,"lat":`...)
		dst = strconv.AppendFloat(dst, f.Lat, 'f', -1, 64)
		dst = append(dst, `,"lon":`...)
		dst = strconv.AppendFloat(dst, f.Lon, 'f', -1, 64)
		dst = append(dst, `,"radiusMeters":`...)
		dst = strconv.AppendFloat(dst, f.RadiusMeters, 'f', -1, 64)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"timeWindows":[`...)
	for i, w := range r.TimeWindows {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":`...)
		dst = appendString(dst, w.ID)
		dst = append(dst, `,"zone":`...)
		dst = appendString(dst, w.Zone)
		dst = append(dst, `,"days":`...)
		dst = appendStrings(dst, w.Days)
		dst = append(dst, `,"start":`...)
		dst = appendString(dst, w.Start)
		dst = append(dst, `,"end":`...)
		dst = appendString(dst, w.End)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"ip":{"allow":`...)
	dst = appendStrings(dst, r.IPAllow)
	dst = append(dst, `,"deny":`...)
	dst = appendStrings(dst, r.IPDeny)
	dst = append(dst, '}')
	if d := r.Device; d != nil {
		dst = append(dst, `,"device":{"requireRegistered":`...)
		dst = strconv.AppendBool(dst, d.RequireRegistered)
		dst = append(dst, `,"platforms":`...)
		dst = appendStrings(dst, d.Platforms)
		dst = append(dst, `,"minAppVersion":`...)
		dst = appendString(dst, d.MinAppVersion)
		dst = append(dst, `,"blockJailbroken":`...)
		dst = strconv.AppendBool(dst, d.BlockJailbroken)
		dst = append(dst, '}')
	}
	dst = append(dst, `,"users":{`...)
	n := 0
	for id, u := range r.Users {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = appendString(dst, id)
		dst = append(dst, `:{"geoFences":`...)
		dst = appendStrings(dst, u.GeoFences)
		dst = append(dst, `,"timeWindows":`...)
		dst = appendStrings(dst, u.TimeWindows)
		dst = append(dst, '}')
	}
	return append(dst, "}}"...)
}

func appendStrings(dst []byte, list []string) []byte {
	dst = append(dst, '[')
	for i, s := range list {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s)
	}
	return append(dst, ']')
}

// PutRules replaces the organization's rule set (PUT /admin/v1/rules) and
// returns its new version. A server that does not serve the route answers
// an *APIError with Code "route_not_found".
func (c *Client) PutRules(r *Rules) (int64, error) {
	var out struct {
		Version int64 `json:"version"`
	}
	return out.Version, c.adminCall("PUT", "/admin/v1/rules", r.AppendJSON(nil), fasthttp.StatusOK, &out)
}
