package server

import "github.com/countersign/countersign/server/jsonwire"

// apiError is one entry of the API error catalog: the HTTP status, the stable
// snake_case code a client switches on, and the default human sentence. Every
// error the native surface answers comes from this table, so a code means the
// same thing on every route. A handler may replace the sentence with a more
// specific one (naming the field and the problem) but never the code or status.
type apiError struct {
	status  int
	code    string
	message string
}

// The catalog. Keep it sorted by status; the OpenAPI document and the README
// list the same codes.
var (
	// 400: the request itself is wrong; the message names the field.
	errEmptyBody      = &apiError{400, "empty_body", "The request body is empty."}
	errInvalidJSON    = &apiError{400, "invalid_json", "The request body is not valid JSON."}
	errInvalidUTF8    = &apiError{400, "invalid_utf8", "The request body contains invalid UTF-8."}
	errNestingDepth   = &apiError{400, "nesting_too_deep", "The request body nests deeper than 16 levels."}
	errTrailingData   = &apiError{400, "trailing_data", "The request body has data after the JSON value."}
	errDuplicateField = &apiError{400, "duplicate_field", "A field appears twice in one object."}
	errUnknownField   = &apiError{400, "unknown_field", "The request body has a field this route does not accept."}
	errMissingField   = &apiError{400, "missing_field", "A required field is missing."}
	errWrongType      = &apiError{400, "wrong_type", "A field has the wrong JSON type."}
	errInvalidField   = &apiError{400, "invalid_field", "A field has an invalid value."}
	errTooManyItems   = &apiError{400, "too_many_items", "An array has more items than this route accepts."}
	errDuplicateKey   = &apiError{400, "duplicate_key", "Two sessionData items have the same key."}
	errBadEncoding    = &apiError{400, "bad_encoding", "The compressed request body is corrupt."}
	errInvalidHeader  = &apiError{400, "invalid_header", "A request header has an invalid value."}
	errBadRequest     = &apiError{400, "bad_request", "The request could not be parsed."}

	// 401: credentials.
	errInvalidAPIKey       = &apiError{401, "invalid_api_key", "The apikey header is missing or not a valid API key."}
	errInvalidClientID     = &apiError{401, "invalid_client_id", "The x-client-id header is missing or not a known client id."}
	errInvalidCollectToken = &apiError{401, "invalid_collect_token", "The x-collect-token header is missing or does not belong to this session."}
	errCertRequired        = &apiError{401, "client_certificate_required", "This API key must be used over TLS with the client certificate bound to its organization."}

	// 404: unknown, or another organization's (answered identically).
	errRouteNotFound    = &apiError{404, "route_not_found", "No route matches this path."}
	errSessionNotFound  = &apiError{404, "session_not_found", "No session with this csid exists for this organization."}
	errDecisionNotFound = &apiError{404, "decision_not_found", "No decision with this id exists for this organization."}

	errMethodNotAllowed = &apiError{405, "method_not_allowed", "This route does not accept this method."}
	errRequestTimeout   = &apiError{408, "request_timeout", "The request was not received in time."}

	// 409: conflicts with the session's state.
	errCSIDInUse     = &apiError{409, "csid_in_use", "This csid was already used by this organization; csids are never reused."}
	errSessionFinal  = &apiError{409, "session_final", "The session was marked final; it accepts no more events."}
	errSessionFrames = &apiError{409, "session_frame_limit", "The session would exceed its maximum number of frames."}
	errSessionFields = &apiError{409, "session_field_limit", "The session would exceed its maximum number of distinct fields."}

	errSessionExpired = &apiError{410, "session_expired", "The session has expired."}

	errBodyTooLarge = &apiError{413, "body_too_large", "The request body is larger than this route accepts."}

	errUnsupportedMediaType = &apiError{415, "unsupported_media_type", "The request body must be sent with Content-Type: application/json."}
	errUnsupportedEncoding  = &apiError{415, "unsupported_encoding", "The request Content-Encoding must be gzip, zstd or identity."}

	errIdempotencyMismatch = &apiError{422, "idempotency_key_reused", "This Idempotency-Key was already used with a different request body."}

	errTooManyConnections = &apiError{429, "too_many_connections", "Too many connections from this address."}

	errHeadersTooLarge = &apiError{431, "headers_too_large", "The request headers are larger than the server accepts."}

	errInternal = &apiError{500, "internal_error", "The server failed to answer this request."}

	// 503: overload and failing closed.
	errQueueFull        = &apiError{503, "queue_full", "The frame scoring queue is full; retry after the Retry-After delay."}
	errStoreUnavailable = &apiError{503, "store_unavailable", "The decision could not be stored durably, so none was made; retry later."}
	errNotReady         = &apiError{503, "not_ready", "The server is starting or shutting down."}
)

// catalog lists every entry, for tests that keep codes unique and documented.
var catalog = []*apiError{
	errEmptyBody, errInvalidJSON, errInvalidUTF8, errNestingDepth, errTrailingData,
	errDuplicateField, errUnknownField, errMissingField, errWrongType, errInvalidField,
	errTooManyItems, errDuplicateKey, errBadEncoding, errInvalidHeader, errBadRequest,
	errInvalidAPIKey, errInvalidClientID, errInvalidCollectToken, errCertRequired,
	errRouteNotFound, errSessionNotFound, errDecisionNotFound,
	errMethodNotAllowed, errRequestTimeout,
	errCSIDInUse, errSessionFinal, errSessionFrames, errSessionFields,
	errSessionExpired, errBodyTooLarge,
	errUnsupportedMediaType, errUnsupportedEncoding,
	errIdempotencyMismatch, errTooManyConnections, errHeadersTooLarge,
	errInternal, errQueueFull, errStoreUnavailable, errNotReady,
}

// appendError appends the native error envelope. msg replaces the catalog
// sentence when non-empty.
func appendError(dst []byte, e *apiError, msg []byte) []byte {
	dst = append(dst, `{"success":false,"errorMessage":`...)
	if len(msg) > 0 {
		dst = jsonwire.AppendBytes(dst, msg)
	} else {
		dst = jsonwire.AppendString(dst, e.message)
	}
	dst = append(dst, `,"errorCode":"`...)
	dst = append(dst, e.code...)
	return append(dst, `"}`...)
}

// problemErrors answers each problem the JSON checks report with the catalog
// entry of the same code.
var problemErrors = [jsonwire.NumProblems]*apiError{
	jsonwire.EmptyBody:      errEmptyBody,
	jsonwire.InvalidJSON:    errInvalidJSON,
	jsonwire.InvalidUTF8:    errInvalidUTF8,
	jsonwire.NestingTooDeep: errNestingDepth,
	jsonwire.TrailingData:   errTrailingData,
	jsonwire.DuplicateField: errDuplicateField,
	jsonwire.UnknownField:   errUnknownField,
	jsonwire.MissingField:   errMissingField,
	jsonwire.WrongType:      errWrongType,
	jsonwire.InvalidField:   errInvalidField,
	jsonwire.TooManyItems:   errTooManyItems,
}
