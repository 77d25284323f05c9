package httpd

import "github.com/countersign/countersign/server/jsonwire"

// Error is one entry of the API error catalog: the HTTP status, the stable
// snake_case code a client switches on, and the default human sentence. A
// code means the same thing on every route and every surface; each surface
// renders it in its own envelope (Envelope). A handler may replace the
// sentence with a more specific one (naming the field and the problem) but
// never the code or status.
//
// Entries are created only by Register, at package initialisation, so the
// catalog (Catalog) lists every code any surface can answer, and the tests
// that keep codes unique and documented cannot miss one.
type Error struct {
	Status  int
	Code    string
	Message string
}

// Error makes an entry usable as a Go error (a handler's refusal).
func (e *Error) Error() string { return e.Code + ": " + e.Message }

var catalog []*Error

// Register adds an entry to the catalog and returns it. Call it from a
// package-level variable declaration; a code registered twice panics, at
// start-up, since two meanings for one code is a bug.
func Register(status int, code, message string) *Error {
	for _, e := range catalog {
		if e.Code == code {
			panic("httpd: error code " + code + " registered twice")
		}
	}
	e := &Error{Status: status, Code: code, Message: message}
	catalog = append(catalog, e)
	return e
}

// Catalog returns every registered entry, in registration order. The slice
// is shared: callers must not modify it.
func Catalog() []*Error { return catalog }

// The core's entries: what any surface answers about HTTP itself, the JSON
// checks, and the server's state. Each surface registers its own beside
// them. Keep them sorted by status; the OpenAPI document and the README list
// the same codes.
var (
	// 400: the request itself is wrong; the message names the field.
	ErrEmptyBody      = Register(400, "empty_body", "The request body is empty.")
	ErrInvalidJSON    = Register(400, "invalid_json", "The request body is not valid JSON.")
	ErrInvalidUTF8    = Register(400, "invalid_utf8", "The request body contains invalid UTF-8.")
	ErrNestingDepth   = Register(400, "nesting_too_deep", "The request body nests deeper than 16 levels.")
	ErrTrailingData   = Register(400, "trailing_data", "The request body has data after the JSON value.")
	ErrDuplicateField = Register(400, "duplicate_field", "A field appears twice in one object.")
	ErrUnknownField   = Register(400, "unknown_field", "The request body has a field this route does not accept.")
	ErrMissingField   = Register(400, "missing_field", "A required field is missing.")
	ErrWrongType      = Register(400, "wrong_type", "A field has the wrong JSON type.")
	ErrInvalidField   = Register(400, "invalid_field", "A field has an invalid value.")
	ErrTooManyItems   = Register(400, "too_many_items", "An array has more items than this route accepts.")
	ErrBadEncoding    = Register(400, "bad_encoding", "The compressed request body is corrupt.")
	ErrInvalidHeader  = Register(400, "invalid_header", "A request header has an invalid value.")
	ErrBadRequest     = Register(400, "bad_request", "The request could not be parsed.")

	// 401: credentials, the same codes on every surface; each surface's
	// handler names its own header in the sentence.
	ErrInvalidAPIKey = Register(401, "invalid_api_key", "The apikey header is missing or not a valid API key.")
	ErrCertRequired  = Register(401, "client_certificate_required", "This API key must be used over TLS with the client certificate bound to its organization.")

	ErrRouteNotFound = Register(404, "route_not_found", "No route matches this path.")
	// ErrUserNotFound: the organization has no user of this id. Core, like
	// the credential refusals: operators (admin) and backends (native
	// approvals) name users alike.
	ErrUserNotFound = Register(404, "user_not_found", "No user with this userID exists for this organization.")
	// ErrApprovalNotFound: unknown, or another organization's or user's
	// approval (answered identically). Core, like the approval states
	// below: the requester (native), the device and the vendor surfaces
	// speak of one approval with one set of codes.
	ErrApprovalNotFound = Register(404, "approval_not_found", "No approval with this id exists for this caller.")
	ErrMethodNotAllowed = Register(405, "method_not_allowed", "This route does not accept this method.")
	ErrRequestTimeout   = Register(408, "request_timeout", "The request was not received in time.")

	// 409: the approval cannot take this answer any more, or at all.
	ErrApprovalNotPending  = Register(409, "approval_not_pending", "The approval was already decided, cancelled or expired; it takes no answer.")
	ErrApprovalWrongMethod = Register(409, "approval_wrong_method", "The approval's method does not take this answer.")

	ErrBodyTooLarge = Register(413, "body_too_large", "The request body is larger than this route accepts.")

	ErrUnsupportedMediaType = Register(415, "unsupported_media_type", "The request body must be sent with Content-Type: application/json.")
	ErrUnsupportedEncoding  = Register(415, "unsupported_encoding", "The request Content-Encoding must be gzip, zstd or identity.")

	// 423: the user is locked after too many consecutive failures.
	ErrUserLocked = Register(423, "user_locked", "The user is locked after too many consecutive failures; retry after the Retry-After seconds or ask an operator to unlock.")

	ErrTooManyConnections = Register(429, "too_many_connections", "Too many connections from this address.")

	ErrHeadersTooLarge = Register(431, "headers_too_large", "The request headers are larger than the server accepts.")

	ErrInternal = Register(500, "internal_error", "The server failed to answer this request.")

	// 503: failing closed.
	ErrStoreUnavailable = Register(503, "store_unavailable", "The decision could not be stored durably, so none was made; retry later.")
	ErrStorageFull      = Register(503, "storage_full", "The store's disk is full, so nothing was stored or decided; retry later.")
	ErrNotReady         = Register(503, "not_ready", "The server is starting or shutting down.")
	ErrOverloaded       = Register(503, "overloaded", "The server is answering as many requests as it can; retry after the Retry-After seconds.")
)

// problemErrors answers each problem the JSON checks report with the catalog
// entry of the same code.
var problemErrors = [jsonwire.NumProblems]*Error{
	jsonwire.EmptyBody:      ErrEmptyBody,
	jsonwire.InvalidJSON:    ErrInvalidJSON,
	jsonwire.InvalidUTF8:    ErrInvalidUTF8,
	jsonwire.NestingTooDeep: ErrNestingDepth,
	jsonwire.TrailingData:   ErrTrailingData,
	jsonwire.DuplicateField: ErrDuplicateField,
	jsonwire.UnknownField:   ErrUnknownField,
	jsonwire.MissingField:   ErrMissingField,
	jsonwire.WrongType:      ErrWrongType,
	jsonwire.InvalidField:   ErrInvalidField,
	jsonwire.TooManyItems:   ErrTooManyItems,
}

// Envelope appends a surface's error answer for e to dst: msg replaces the
// catalog sentence when non-empty. Every error answer of a request goes
// through the envelope of its route's surface, whoever writes it (a handler,
// the panic recovery, the transport-error and Expect answers); requests that
// match no surface's route get the server's default envelope.
type Envelope func(dst []byte, e *Error, msg []byte) []byte
