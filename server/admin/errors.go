package admin

import (
	"github.com/countersign/countersign/server/httpd"
)

// The admin surface's catalog entries, beside the core's (httpd.Err*). Keep
// them sorted by status; the OpenAPI document and the README list the same
// codes. A bad field is the core's invalid_field, with a sentence naming
// the field.
var (
	// 404: unknown, or another organization's (answered identically).
	errUserNotFound    = httpd.ErrUserNotFound
	errDeviceNotFound  = httpd.Register(404, "device_not_found", "No device with this id exists for this organization.")
	errWebhookNotFound = httpd.Register(404, "webhook_not_found", "No webhook subscription with this id exists for this organization.")
	errKeyNotFound     = httpd.Register(404, "key_not_found", "No API key with this id exists for this organization.")

	// 409: conflicts with the organization's other users.
	errUserExists   = httpd.Register(409, "user_exists", "This organization already has a user with this userID.")
	errMobileTaken  = httpd.Register(409, "mobile_taken", "Another user of this organization has this mobile number.")
	errEmailTaken   = httpd.Register(409, "email_taken", "Another user of this organization has this e-mail address.")
	errWebhookLimit = httpd.Register(409, "webhook_limit", "The organization has as many webhook subscriptions as allowed (16); delete one first.")
	// 409: a change that would lock out the operator making it.
	errKeyInUse    = httpd.Register(409, "key_in_use", "This is the API key the request is made with; revoke it with another admin key.")
	errCertLockout = httpd.Register(409, "cert_binding_lockout", "These bindings would refuse the connection making the change: bind the client certificate this request is made with too, or make it over TLS with a bound one.")
)

// msgInvalidAdminKey replaces invalid_api_key's sentence, which names the
// native surface's header.
var msgInvalidAdminKey = []byte("The Authorization header is missing or does not carry a valid admin key (Bearer csk_...).")
