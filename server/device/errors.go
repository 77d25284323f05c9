package device

import (
	"github.com/countersign/countersign/server/httpd"
)

// The device surface's catalog entries, beside the core's (httpd.Err*).
// Keep them sorted by status; the OpenAPI document and the README list the
// same codes. A bad field is the core's invalid_field, with a sentence
// naming the field; an unknown, decided or wrong-method approval and a
// locked user are the core's approval codes, shared with the requester's
// surfaces.
var (
	// 401: the device token; an unknown, malformed and revoked token are
	// answered alike.
	errInvalidDeviceToken = httpd.Register(401, "invalid_device_token", "The Authorization header is missing or does not carry an active device token (Bearer csd_...).")

	// 404: unknown, or another user's or organization's (answered identically).
	errActivationCodeNotFound = httpd.Register(404, "activation_code_not_found", "No unused activation code matches; ask the operator for a new one.")

	// 409: the user has as many active devices as allowed (store.MaxDevicesPerUser).
	errTooManyDevices = httpd.Register(409, "too_many_devices", "The user has 10 active devices, the most allowed; an operator must revoke one first (the activation code stays usable).")

	// 410: expired (the late answer counts as one of the user's failures).
	errActivationCodeExpired = httpd.Register(410, "activation_code_expired", "The activation code has expired; ask the operator for a new one.")
	errAnswerLate            = httpd.Register(410, "answer_late", "The approval expired before the answer came; the late answer counts as a failure.")

	// 422: the answer does not prove the device made it; each counts as
	// one of the user's consecutive failures.
	errAnswerSignature = httpd.Register(422, "answer_bad_signature", "The signature does not verify with the device's key over this approval; it counts as a failure.")
	errAnswerTimestamp = httpd.Register(422, "answer_bad_timestamp", "The timestamp is not RFC 3339, or is more than 5 minutes from the server's clock; it counts as a failure.")
)
