package device

import (
	"bytes"
	"errors"

	"github.com/countersign/countersign/store"
)

// authDevice authenticates the app's call by its Authorization: Bearer
// header, which must carry the token of an active device, and leaves the
// device in c.dev. A revoked device's token stops working at once, and is
// answered exactly as an unknown or malformed one.
func (s *Surface) authDevice(c *reqCtx) bool {
	h, _, ok := c.OneHeader("Authorization")
	if !ok {
		return false
	}
	// The scheme's name is compared without case, as RFC 9110 has it.
	const scheme = "bearer "
	if len(h) <= len(scheme) || !bytes.EqualFold(h[:len(scheme)], []byte(scheme)) {
		return c.Fail(errInvalidDeviceToken, nil)
	}
	err := s.db.DeviceByToken(bytes.TrimLeft(h[len(scheme):], " "), &c.dev)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return c.Fail(errInvalidDeviceToken, nil)
	case err != nil:
		return c.StoreFailed(err)
	}
	return true
}
