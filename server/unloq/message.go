package unloq

import (
	"github.com/countersign/countersign/engine/approval"
)

// defaultMessage is the message shown on the device for an UNLOQ
// authenticate when the organization's settings set no template for the
// method and no default (DESIGN's example template); $app is the
// organization's name unless the request or the settings' variables say
// otherwise.
const defaultMessage = "Log in to $app from $ip?"

// defaultEmailMessage is the text an EMAIL authenticate's link is mailed
// with when the organization's settings set no EMAIL template and no
// default.
const defaultEmailMessage = "Open this link to log in to $app from $ip."

// expandMessage appends template with each $name replaced: by the
// request's extra field of that name, else the organization's variable of
// that name (its settings), else $ip by the source IP and $app by the
// organization's name; an unknown $name is left as written, so a
// missing variable shows rather than vanishing. ok is false when the
// result is longer than an approval's message may be.
func expandMessage(dst []byte, template string, vars []variable, doc *approval.SettingsDocument, ip, app string) ([]byte, bool) {
	for i := 0; i < len(template); i++ {
		ch := template[i]
		if ch != '$' {
			dst = append(dst, ch)
			continue
		}
		j := i + 1
		for j < len(template) && isNameByte(template[j]) {
			j++
		}
		name := template[i+1 : j]
		if v, ok := lookup(name, vars, doc, ip, app); ok {
			dst = append(dst, v...)
			i = j - 1
			continue
		}
		dst = append(dst, ch)
	}
	return dst, len(dst) <= approval.MaxMessageLen
}

func lookup(name string, vars []variable, doc *approval.SettingsDocument, ip, app string) (string, bool) {
	if name == "" {
		return "", false
	}
	for _, v := range vars {
		if v.name == name {
			return v.value, true
		}
	}
	if v, ok := doc.Variables[name]; ok {
		return v, true
	}
	switch name {
	case "ip":
		return ip, true
	case "app":
		return app, true
	}
	return "", false
}

// messageFor is the organization's template for method (its settings'
// messages: "UNLOQ", "OTP" or "EMAIL", else "default"), or the built-in
// one (defaultEmailMessage for EMAIL, else defaultMessage).
func messageFor(doc *approval.SettingsDocument, method approval.Method) string {
	key := "UNLOQ"
	switch method {
	case approval.MethodOTP:
		key = "OTP"
	case approval.MethodEmail:
		key = "EMAIL"
	}
	if m, ok := doc.Messages[key]; ok {
		return m
	}
	if m, ok := doc.Messages["default"]; ok {
		return m
	}
	if method == approval.MethodEmail {
		return defaultEmailMessage
	}
	return defaultMessage
}

func isNameByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_'
}
