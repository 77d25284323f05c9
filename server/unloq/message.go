package unloq

import (
	"github.com/countersign/countersign/engine/approval"
)

// defaultMessage is the message shown on the device for an UNLOQ
// authenticate until the organization's messages are stored (DESIGN's
// example template); $app is the organization's name unless the request
// sends an app field.
const defaultMessage = "Log in to $app from $ip?"

// defaultEmailMessage is the text an EMAIL authenticate's link is mailed
// with, until the organization's messages are stored.
const defaultEmailMessage = "Open this link to log in to $app from $ip."

// expandMessage appends template with each $name replaced: by the
// request's extra field of that name, else $ip by the source IP and $app
// by the organization's name; an unknown $name is left as written, so a
// missing variable shows rather than vanishing. ok is false when the
// result is longer than an approval's message may be.
func expandMessage(dst []byte, template string, vars []variable, ip, app string) ([]byte, bool) {
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
		if v, ok := lookup(name, vars, ip, app); ok {
			dst = append(dst, v...)
			i = j - 1
			continue
		}
		dst = append(dst, ch)
	}
	return dst, len(dst) <= approval.MaxMessageLen
}

func lookup(name string, vars []variable, ip, app string) (string, bool) {
	if name == "" {
		return "", false
	}
	for _, v := range vars {
		if v.name == name {
			return v.value, true
		}
	}
	switch name {
	case "ip":
		return ip, true
	case "app":
		return app, true
	}
	return "", false
}

func isNameByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_'
}
