package admin

import (
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/server/jsonwire"
	"github.com/countersign/countersign/store"
)

// createActivationCode answers POST /admin/v1/users/{userID}/activation-codes:
// 201 {"activationCode","expiresAt"}, the code shown once (the store keeps
// its SHA-256) and usable once, for store.ActivationCodeTTL.
func (s *Surface) createActivationCode(c *reqCtx, userID string) {
	code, ac, err := s.db.CreateActivationCode(c.org.ID, userID)
	if err != nil {
		s.userFailed(c, err)
		return
	}
	c.Status = fasthttp.StatusCreated
	c.Out = append(c.Out[:0], `{"activationCode":`...)
	c.Out = jsonwire.AppendString(c.Out, code)
	c.Out = append(c.Out, `,"expiresAt":`...)
	c.Out = strconv.AppendInt(c.Out, ac.ExpiresAt, 10)
	c.Out = append(c.Out, '}')
}

// listDevices answers GET /admin/v1/users/{userID}/devices: every device
// of the user, revoked ones included (revokedAt set), by id, as a list
// page that is always the last ({"items","next":""}: a user has few).
func (s *Surface) listDevices(c *reqCtx, userID string) {
	// DevicesOfUser answers an unknown user with no devices; an operator
	// asking about a user that is not there is told so.
	if _, err := s.db.User(c.org.ID, userID); err != nil {
		s.userFailed(c, err)
		return
	}
	devices, err := s.db.DevicesOfUser(c.org.ID, userID)
	if err != nil {
		c.StoreFailed(err)
		return
	}
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"items":[`...)
	for i := range devices {
		if i > 0 {
			c.Out = append(c.Out, ',')
		}
		c.Out = appendDevice(c.Out, &devices[i])
	}
	c.Out = append(c.Out, `],"next":""}`...)
}

// revokeDevice answers DELETE /admin/v1/devices/{deviceID}: 204, the
// device's token stops resolving at once; revoking a revoked device is
// the same 204.
func (s *Surface) revokeDevice(c *reqCtx, deviceID string) {
	if err := s.db.RevokeDevice(c.org.ID, deviceID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.Fail(errDeviceNotFound, nil)
			return
		}
		c.StoreFailed(err)
		return
	}
	c.Status = fasthttp.StatusNoContent
}

// appendDevice appends the device's JSON: what the app said about itself
// at activation, and when it was activated and revoked (0 while active).
// The push token is the organization's push service's, not the operator's:
// it is not shown.
func appendDevice(dst []byte, d *store.Device) []byte {
	dst = append(dst, `{"deviceID":`...)
	dst = jsonwire.AppendString(dst, d.ID)
	dst = append(dst, `,"userID":`...)
	dst = jsonwire.AppendString(dst, d.UserID)
	dst = append(dst, `,"platform":`...)
	dst = jsonwire.AppendString(dst, d.Platform)
	dst = append(dst, `,"appVersion":`...)
	dst = jsonwire.AppendString(dst, d.AppVersion)
	dst = append(dst, `,"model":`...)
	dst = jsonwire.AppendString(dst, d.Model)
	dst = append(dst, `,"jailbroken":`...)
	dst = jsonwire.AppendBool(dst, d.Jailbroken)
	dst = append(dst, `,"createdAt":`...)
	dst = strconv.AppendInt(dst, d.CreatedAt, 10)
	dst = append(dst, `,"revokedAt":`...)
	dst = strconv.AppendInt(dst, d.RevokedAt, 10)
	return append(dst, '}')
}
