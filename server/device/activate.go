package device

import (
	"encoding/base64"
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/jsonwire"
	"github.com/countersign/countersign/store"
)

// activateRequest is POST /v1/device/activate's body. Strings refer into
// the request context's body.
type activateRequest struct {
	ActivationCode string `json:"activationCode"`
	PublicKey      string `json:"publicKey"`
	Platform       string `json:"platform"`
	AppVersion     string `json:"appVersion"`
	Model          string `json:"model"`
	Jailbroken     bool   `json:"jailbroken"`
	PushToken      string `json:"pushToken"`
}

var shapeActivate = &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
	{Name: "activationCode", Shape: jsonwire.ShapeString, Required: true},
	{Name: "publicKey", Shape: jsonwire.ShapeString, Required: true},
	{Name: "platform", Shape: jsonwire.ShapeString, Required: true},
	{Name: "appVersion", Shape: jsonwire.ShapeString, Required: true},
	{Name: "model", Shape: jsonwire.ShapeString},
	{Name: "jailbroken", Shape: jsonwire.ShapeBool},
	{Name: "pushToken", Shape: jsonwire.ShapeString},
}}

// Limits of what the app says about itself: shown to operators and
// matched by the device rules (platform, minimum app version), so short
// and printable; a push token (APNs, FCM) is at most a few hundred bytes.
const (
	maxAppVersion = 32
	maxModel      = 128
	maxPushToken  = 1024
)

// activate answers POST /v1/device/activate: 201 {"deviceID","deviceToken",
// "userID","totpURI"}, the token shown once (the store keeps its SHA-256).
// Activation gives the user a new TOTP seed, sealed in the store under the
// master key; totpURI provisions it in the user's authenticator, labelled
// with the organization's name and the user, and is shown this once too.
// It is left out when the server runs without a master key, which keeps no
// seed (the OTP route then answers otp_seed_missing).
func (s *Surface) activate(c *reqCtx) {
	if !c.ReadBody(httpd.LimitSmall) {
		return
	}
	r := &c.activateReq
	*r = activateRequest{}
	if !c.Decode(shapeActivate, r) {
		return
	}
	var pub [32]byte
	n, err := base64.RawURLEncoding.Strict().Decode(pub[:], []byte(r.PublicKey))
	if err != nil || n != len(pub) || base64.RawURLEncoding.EncodedLen(len(pub)) != len(r.PublicKey) {
		c.Failf(httpd.ErrInvalidField, "publicKey must be a 32-byte Ed25519 public key in base64url without padding (43 characters)")
		return
	}
	if err := approval.CheckDevicePublicKey(pub[:]); err != nil {
		c.Failf(httpd.ErrInvalidField, "publicKey is not a usable Ed25519 public key: a small-order point, under which anyone could sign")
		return
	}
	switch {
	case r.Platform != "ios" && r.Platform != "android":
		c.Failf(httpd.ErrInvalidField, `platform must be "ios" or "android"`)
		return
	case !field(r.AppVersion, 1, maxAppVersion):
		c.Failf(httpd.ErrInvalidField, "appVersion must be 1 to 32 printable ASCII characters")
		return
	case !field(r.Model, 0, maxModel):
		c.Failf(httpd.ErrInvalidField, "model must be at most 128 printable ASCII characters")
		return
	case !field(r.PushToken, 0, maxPushToken):
		c.Failf(httpd.ErrInvalidField, "pushToken must be at most 1024 printable ASCII characters")
		return
	}
	d, token, err := s.db.ActivateDevice([]byte(r.ActivationCode), &store.DeviceActivation{
		PublicKey: pub[:], Platform: r.Platform, AppVersion: r.AppVersion, Model: r.Model,
		PushToken: r.PushToken, Jailbroken: r.Jailbroken,
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.Fail(errActivationCodeNotFound, nil)
		return
	case errors.Is(err, store.ErrCodeExpired):
		c.Fail(errActivationCodeExpired, nil)
		return
	case errors.Is(err, store.ErrTooManyDevices):
		c.Fail(errTooManyDevices, nil)
		return
	case err != nil:
		c.StoreFailed(err)
		return
	}
	uri, ok := s.totpURI(c, d.OrgID, d.UserID)
	if !ok {
		return
	}
	c.Status = fasthttp.StatusCreated
	c.Out = append(c.Out[:0], `{"deviceID":`...)
	c.Out = jsonwire.AppendString(c.Out, d.ID)
	c.Out = append(c.Out, `,"deviceToken":`...)
	c.Out = jsonwire.AppendString(c.Out, token)
	c.Out = append(c.Out, `,"userID":`...)
	c.Out = jsonwire.AppendString(c.Out, d.UserID)
	if uri != "" {
		c.Out = append(c.Out, `,"totpURI":`...)
		c.Out = jsonwire.AppendString(c.Out, uri)
	}
	c.Out = append(c.Out, '}')
}

// totpURI is the otpauth:// URI of the seed the activation gave the user,
// "" when the store keeps no seeds; ok false after answering a failure.
func (s *Surface) totpURI(c *reqCtx, org store.OrgID, userID string) (string, bool) {
	seed, err := s.db.TOTPSeed(org, userID, nil)
	if errors.Is(err, store.ErrNoSealer) {
		return "", true
	}
	if err != nil {
		return "", c.StoreFailed(err)
	}
	defer clear(seed)
	o, err := s.db.OrgByID(org)
	if err != nil {
		return "", c.StoreFailed(err)
	}
	issuer := o.Name
	if issuer == "" {
		issuer = "countersign"
	}
	uri, err := approval.ProvisioningURI(seed, issuer, userID)
	if err != nil {
		c.Srv.Log().Error("TOTP provisioning URI", "err", err)
		return "", c.Fail(httpd.ErrInternal, nil)
	}
	return uri, true
}

// field reports whether s is min to max bytes of printable ASCII: what a
// version, a model name and a push token are, and nothing an operator's
// screen or a log line could be fooled by.
func field(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
