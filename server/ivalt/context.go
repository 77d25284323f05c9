package ivalt

import (
	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/engine/rules"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/jsonwire"
	"github.com/countersign/countersign/store"
)

// reqCtx is the iVALT surface's pooled per-request context: the core's
// (httpd.Ctx), the decoded body, the organization the x-api-key named, and
// the approval, user state and rules scratch the calls read into. Nothing
// in it outlives the request: decoded strings refer into the body.
type reqCtx struct {
	httpd.Ctx

	org  store.Org
	body body
	user store.User

	appr   approval.Approval
	ustate approval.UserState
	in     rules.Input
	res    rules.Result
}

// release makes c ready for the pool, dropping every reference into the
// body.
func (c *reqCtx) release() {
	c.Ctx.Release()
	c.body = body{}
	c.user = store.User{}
	c.in = rules.Input{}
	c.ustate.Recent = c.ustate.Recent[:0]
}

// body is every field any iVALT call reads. One shape serves every route:
// the calls differ in which fields they require, which each handler checks
// and names, and a client that sends a field another call uses (the
// portal's requestFrom on its result poll) is not refused for it.
type body struct {
	Mobile       string `json:"mobile"`
	MobileNumber string `json:"mobile_number"`
	CountryCode  string `json:"country_code"`
	RequestFrom  string `json:"requestFrom"`
	RequestID    string `json:"request_id"`

	Latitude     *float64 `json:"latitude"`
	Longitude    *float64 `json:"longitude"`
	RadiusMeters *float64 `json:"radius_meters"`

	Email        string `json:"email"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	AuthToken    string `json:"auth_token"`
	FaceToken    string `json:"face_auth_token"`

	UserID          string      `json:"user_id"`
	BiometricResult string      `json:"biometric_result"`
	GeoFenceResult  *geoResult  `json:"geo_fence_result"`
	DeviceInfo      *deviceInfo `json:"device_info"`
	Timestamp       string      `json:"timestamp"`
}

// geoResult is where the integrator's app found the device (the seed's
// geo_fence_result), for the rules engine to judge against the fences.
type geoResult struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	Accuracy  float64 `json:"accuracy"`
}

// deviceInfo is what the integrator's app reports of the device.
type deviceInfo struct {
	Platform   string `json:"platform"`
	AppVersion string `json:"app_version"`
	Jailbroken bool   `json:"jailbroken"`
}

var (
	shapeLat    = &jsonwire.Shape{Kind: jsonwire.KindNumber, Min: -90, Max: 90, Desc: "a latitude from -90 to 90"}
	shapeLon    = &jsonwire.Shape{Kind: jsonwire.KindNumber, Min: -180, Max: 180, Desc: "a longitude from -180 to 180"}
	shapeRadius = &jsonwire.Shape{Kind: jsonwire.KindNumber, Min: 1, Max: rules.MaxRadiusMeters,
		Desc: "a radius in metres from 1 to 1000000"}
	shapeAccuracy = &jsonwire.Shape{Kind: jsonwire.KindNumber, Min: 0, Max: 1e7, Desc: "metres from 0 to 10000000"}

	shapeBody = &jsonwire.Shape{Kind: jsonwire.KindObject, Open: true, Desc: "an object", Fields: []jsonwire.FieldShape{
		{Name: "mobile", Shape: jsonwire.ShapeString},
		{Name: "mobile_number", Shape: jsonwire.ShapeString},
		{Name: "country_code", Shape: jsonwire.ShapeString},
		{Name: "requestFrom", Shape: jsonwire.ShapeString},
		{Name: "request_id", Shape: jsonwire.ShapeString},
		{Name: "latitude", Shape: shapeLat},
		{Name: "longitude", Shape: shapeLon},
		{Name: "radius_meters", Shape: shapeRadius},
		{Name: "email", Shape: jsonwire.ShapeString},
		{Name: "client_id", Shape: jsonwire.ShapeString},
		{Name: "client_secret", Shape: jsonwire.ShapeString},
		{Name: "auth_token", Shape: jsonwire.ShapeString},
		{Name: "face_auth_token", Shape: jsonwire.ShapeString},
		{Name: "user_id", Shape: jsonwire.ShapeString},
		{Name: "biometric_result", Shape: jsonwire.ShapeString},
		{Name: "geo_fence_result", Shape: &jsonwire.Shape{Kind: jsonwire.KindObject, Open: true, Desc: "an object",
			Fields: []jsonwire.FieldShape{
				{Name: "latitude", Shape: shapeLat, Required: true},
				{Name: "longitude", Shape: shapeLon, Required: true},
				{Name: "accuracy", Shape: shapeAccuracy},
			}}},
		{Name: "device_info", Shape: &jsonwire.Shape{Kind: jsonwire.KindObject, Open: true, Desc: "an object",
			Fields: []jsonwire.FieldShape{
				{Name: "platform", Shape: jsonwire.ShapeString},
				{Name: "app_version", Shape: jsonwire.ShapeString},
				{Name: "jailbroken", Shape: jsonwire.ShapeBool},
			}}},
		{Name: "timestamp", Shape: jsonwire.ShapeString},
	}}
)

// decode reads the body into c.body, answering 400 naming the field for
// what it refuses.
func (c *reqCtx) decode() bool {
	c.body = body{}
	return c.Decode(shapeBody, &c.body)
}
