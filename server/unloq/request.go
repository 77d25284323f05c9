package unloq

import (
	"bytes"
	"net/netip"
	"strconv"

	"github.com/bytedance/sonic"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/server/httpd"
)

// authRequest is POST /authenticate's body, JSON or form-encoded: the
// fields UNLOQ defines, and every other field as a $variable of the
// message. UNLOQ is tolerant of extra fields, and so is this surface.
type authRequest struct {
	email, unloqID, method, ip, token string
	generateToken                     bool
	vars                              []variable
}

// variable is one extra field of the request, its value as text.
type variable struct{ name, value string }

func (r *authRequest) reset() {
	clear(r.vars)
	*r = authRequest{vars: r.vars[:0], generateToken: true}
}

// Limits of the $variables: as many and as long as an approval's values.
const (
	maxVariables   = approval.MaxValues
	maxVariableLen = approval.MaxValueLen
)

// isForm reports a form-encoded body (UNLOQ's documented examples send
// one), with or without a charset parameter.
func isForm(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return bytes.EqualFold(bytes.TrimSpace(ct), []byte("application/x-www-form-urlencoded"))
}

// readRequest reads an authenticate, /token or /token/session body into
// fields, calling set for each field with its value as text. A JSON value
// of a field that set takes must be a string (or, for generate_token, a
// boolean); nested values of extra fields are ignored.
func (c *reqCtx) readFields(limit int, set func(name, value string, isString bool) bool) bool {
	if isForm(c.RC.Request.Header.ContentType()) {
		raw := c.RC.PostBody()
		if len(raw) > limit {
			return c.Fail(httpd.ErrBodyTooLarge, nil)
		}
		ok := true
		c.RC.PostArgs().VisitAll(func(k, v []byte) {
			if ok {
				ok = set(string(k), string(v), true)
			}
		})
		return ok
	}
	if !c.ReadBody(limit) || !c.CheckSyntax() {
		return false
	}
	var m map[string]any
	if err := sonic.ConfigStd.Unmarshal(c.Body, &m); err != nil || m == nil {
		return c.Failf(httpd.ErrInvalidJSON, "The request body must be a JSON object.")
	}
	for k, v := range m {
		var ok bool
		switch x := v.(type) {
		case string:
			ok = set(k, x, true)
		case bool:
			ok = set(k, strconv.FormatBool(x), false)
		case float64:
			ok = set(k, strconv.FormatFloat(x, 'f', -1, 64), false)
		case nil:
			ok = true
		default:
			ok = set(k, "", false)
		}
		if !ok {
			return false
		}
	}
	return true
}

// readAuthenticate reads and checks POST /authenticate's body into c.req.
func (c *reqCtx) readAuthenticate() bool {
	r := &c.req
	r.reset()
	ok := c.readFields(limitAuthBody, func(name, value string, isString bool) bool {
		var dst *string
		switch name {
		case "email":
			dst = &r.email
		case "unloq_id":
			dst = &r.unloqID
		case "method":
			dst = &r.method
		case "ip":
			dst = &r.ip
		case "token":
			// The Node.js client sends it as a string; a number is the
			// same code.
			r.token = value
			return value != "" || isString || c.Failf(httpd.ErrWrongType, "token must be a string")
		case "generate_token":
			switch value {
			case "true", "1":
				r.generateToken = true
			case "false", "0":
				r.generateToken = false
			default:
				return c.Failf(httpd.ErrInvalidField, "generate_token must be true or false")
			}
			return true
		default:
			if value == "" && !isString {
				return true // an object or array: not a variable
			}
			if len(r.vars) >= maxVariables {
				return c.Failf(httpd.ErrTooManyItems, "at most ", strconv.Itoa(maxVariables), " extra fields ($variables) are accepted")
			}
			if len(name) > approval.MaxKeyLen || len(value) > maxVariableLen {
				return c.Failf(httpd.ErrInvalidField, "the extra field ", strconv.Quote(truncate(name, 64)), " is too long (names up to 64 bytes, values up to 1024)")
			}
			r.vars = append(r.vars, variable{name, value})
			return true
		}
		if !isString {
			return c.Failf(httpd.ErrWrongType, name, " must be a string")
		}
		*dst = value
		return true
	})
	if !ok {
		return false
	}
	switch {
	case r.email == "" && r.unloqID == "":
		return c.Failf(httpd.ErrMissingField, "email or unloq_id is required")
	case r.method == "":
		r.method = "UNLOQ"
	}
	return true
}

// parseMethod reads UNLOQ's method name (UNLOQ, EMAIL, OTP; any case).
func parseMethod(m string) (approval.Method, bool) {
	switch {
	case eqFold(m, "UNLOQ"):
		return approval.MethodPush, true
	case eqFold(m, "OTP"):
		return approval.MethodOTP, true
	case eqFold(m, "EMAIL"):
		return approval.MethodEmail, true
	}
	return 0, false
}

func eqFold(a, b string) bool { return bytes.EqualFold([]byte(a), []byte(b)) }

// sourceIP is the approval's source IP: the request's "ip", else the
// caller's address (DESIGN "Rules": the IP factor is applied to it).
func (c *reqCtx) sourceIP(s string) (netip.Addr, bool) {
	if s == "" {
		ip, _ := netip.AddrFromSlice(c.RC.RemoteIP())
		return ip.Unmap(), true
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, c.Failf(httpd.ErrInvalidField, "ip must be an IPv4 or IPv6 address without zone")
	}
	return ip.Unmap(), true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
