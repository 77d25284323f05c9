package native

import (
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/jsonwire"
)

// The native surface's catalog entries, beside the core's (httpd.Err*). Keep
// them sorted by status; the OpenAPI document and the README list the same
// codes.
var (
	// 400: sessionData with two items of one key.
	errDuplicateKey = httpd.Register(400, "duplicate_key", "Two sessionData items have the same key.")

	// 401: credentials.
	errInvalidClientID     = httpd.Register(401, "invalid_client_id", "The x-client-id header is missing or not a known client id.")
	errInvalidCollectToken = httpd.Register(401, "invalid_collect_token", "The x-collect-token header is missing or does not belong to this session.")

	// 404: unknown, or another organization's (answered identically).
	errSessionNotFound  = httpd.Register(404, "session_not_found", "No session with this csid exists for this organization.")
	errDecisionNotFound = httpd.Register(404, "decision_not_found", "No decision with this id exists for this organization.")

	// 409: conflicts with the session's state.
	errCSIDInUse     = httpd.Register(409, "csid_in_use", "This csid was already used by this organization; csids are never reused.")
	errSessionFinal  = httpd.Register(409, "session_final", "The session was marked final; it accepts no more events.")
	errSessionFrames = httpd.Register(409, "session_frame_limit", "The session would exceed its maximum number of frames.")
	errSessionFields = httpd.Register(409, "session_field_limit", "The session would exceed its maximum number of distinct fields.")

	errSessionExpired = httpd.Register(410, "session_expired", "The session has expired.")

	errIdempotencyMismatch = httpd.Register(422, "idempotency_key_reused", "This Idempotency-Key was already used with a different request body.")

	// 503: overload.
	errQueueFull = httpd.Register(503, "queue_full", "The frame scoring queue is full; retry after the Retry-After delay.")
)

// AppendError is the native error envelope:
// {"success":false,"errorMessage":...,"errorCode":...}. msg replaces the
// catalog sentence when non-empty. It is also the server's default envelope,
// for requests that match no route of any surface.
func AppendError(dst []byte, e *httpd.Error, msg []byte) []byte {
	dst = append(dst, `{"success":false,"errorMessage":`...)
	if len(msg) > 0 {
		dst = jsonwire.AppendBytes(dst, msg)
	} else {
		dst = jsonwire.AppendString(dst, e.Message)
	}
	dst = append(dst, `,"errorCode":"`...)
	dst = append(dst, e.Code...)
	return append(dst, `"}`...)
}
