package unloq

import (
	"strconv"

	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/jsonwire"
)

// outcome is an answer of UNLOQ's own vocabulary: how an authenticate or a
// token exchange ended when it did not succeed. UNLOQ's clients switch on
// these codes (the Node.js client turns APPROVAL.DENIED into DENIED), so
// they are UNLOQ's spelling, not entries of the core's catalog, whose
// snake_case codes the other surfaces answer; the core's refusals are
// spelled in UNLOQ's words by unloqCode.
type outcome struct {
	status  int
	code    string // "NS.NAME"
	message string
}

var (
	outDenied     = outcome{403, "APPROVAL.DENIED", "The user denied the request. The next request needs the user's one-time code as token."}
	outFailed     = outcome{403, "APPROVAL.DENIED", "The user approved, but the approval failed the organization's checks."}
	outToken      = outcome{403, "APPROVAL.TOKEN", "The user denied an earlier request: send the one-time code of the user's authenticator as token."}
	outTimeout    = outcome{408, "APPROVAL.TIMEOUT", "The user did not answer in time."}
	outDevice     = outcome{409, "APPROVAL.DEVICE", "The user has no registered device to approve on."}
	outNoSeed     = outcome{409, "APPROVAL.OTP", "The user has no TOTP seed stored, so no one-time code can be checked."}
	outThrottle   = outcome{429, "FIREWALL.THROTTLE", "The user was sent as many approvals as allowed; retry after the Retry-After seconds."}
	outLocked     = outcome{423, "USER.LOCKED", "The user is locked after too many failures; retry after the Retry-After seconds."}
	outUser       = outcome{404, "USER.NOT_FOUND", "No user with this email or unloq_id exists for this application."}
	outTokenBad   = outcome{404, "TOKEN.INVALID", "The token is unknown, was used already or has expired."}
	outNoEmail    = outcome{409, "APPROVAL.EMAIL", "The user has no e-mail address to send the link to."}
	outNoNotifier = outcome{409, "APPROVAL.EMAIL", "No webhook of the organization takes approval.email, so the link cannot be sent; subscribe the notifier first."}
	outLinkBad    = outcome{404, "LINK.INVALID", "The link is unknown, was used already or has expired."}
	outShutdown   = outcome{503, "SERVER.UNAVAILABLE", "The server is shutting down; retry the request."}
)

// fail answers o in UNLOQ's envelope and returns false.
func (c *reqCtx) fail(o outcome) bool {
	c.Status = o.status
	c.ContentType = ""
	c.Out = appendEnvelope(c.Out[:0], o.code, o.message, o.status)
	return false
}

// AppendError is UNLOQ's error envelope for a catalog entry:
// {"error":{"code","ns","message","status"}}, the code in UNLOQ's spelling.
// msg replaces the catalog sentence when non-empty. Every route of the
// surface renders the core's refusals (401, bad input, 503, a panic's 500)
// through it.
func AppendError(dst []byte, e *httpd.Error, msg []byte) []byte {
	m := e.Message
	if len(msg) > 0 {
		m = jsonwire.BytesToString(msg)
	}
	return appendEnvelope(dst, unloqCode(e), m, e.Status)
}

// appendEnvelope appends {"type":"error","error":{...}}; ns is the part of
// code before its dot, as UNLOQ names its namespaces.
func appendEnvelope(dst []byte, code, message string, status int) []byte {
	ns := code
	for i := 0; i < len(code); i++ {
		if code[i] == '.' {
			ns = code[:i]
			break
		}
	}
	dst = append(dst, `{"type":"error","error":{"code":`...)
	dst = jsonwire.AppendString(dst, code)
	dst = append(dst, `,"ns":`...)
	dst = jsonwire.AppendString(dst, ns)
	dst = append(dst, `,"message":`...)
	dst = jsonwire.AppendString(dst, message)
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	return append(dst, "}}"...)
}

// coreCodes spells the core's catalog entries that the surface answers in
// UNLOQ's words; the rest take the word of their status (statusCodes).
var coreCodes = map[*httpd.Error]string{
	httpd.ErrInvalidAPIKey:        "API.KEY",
	httpd.ErrCertRequired:         "API.CERTIFICATE",
	httpd.ErrRouteNotFound:        "API.NOT_FOUND",
	httpd.ErrMethodNotAllowed:     "API.METHOD",
	httpd.ErrUserNotFound:         "USER.NOT_FOUND",
	httpd.ErrApprovalNotFound:     "APPROVAL.NOT_FOUND",
	httpd.ErrApprovalNotPending:   "APPROVAL.NOT_PENDING",
	httpd.ErrUserLocked:           "USER.LOCKED",
	httpd.ErrBodyTooLarge:         "DATA.TOO_LARGE",
	httpd.ErrUnsupportedMediaType: "DATA.CONTENT_TYPE",
	httpd.ErrUnsupportedEncoding:  "DATA.ENCODING",
	httpd.ErrTooManyConnections:   "FIREWALL.THROTTLE",
	httpd.ErrOverloaded:           "SERVER.UNAVAILABLE",
	httpd.ErrNotReady:             "SERVER.UNAVAILABLE",
	httpd.ErrStoreUnavailable:     "SERVER.UNAVAILABLE",
}

// unloqCode is e's code in UNLOQ's spelling.
func unloqCode(e *httpd.Error) string {
	if c, ok := coreCodes[e]; ok {
		return c
	}
	switch {
	case e.Status == 400:
		return "DATA.INVALID"
	case e.Status == 408:
		return "API.TIMEOUT"
	case e.Status == 429:
		return "FIREWALL.THROTTLE"
	case e.Status == 431:
		return "DATA.TOO_LARGE"
	case e.Status >= 500:
		return "SERVER.ERROR"
	}
	return "API.ERROR"
}
