package unloq

import (
	"strings"
	"testing"

	"github.com/countersign/countersign/engine/approval"
)

var noSettings = approval.DefaultSettingsDocument()

func TestExpandMessage(t *testing.T) {
	vars := []variable{{"app", "Demo Bank"}, {"amount", "35.00"}, {"ip_hint", "x"}}
	cases := []struct{ template, want string }{
		{"Log in to $app from $ip?", "Log in to Demo Bank from 203.0.113.7?"},
		{"Pay $amount?", "Pay 35.00?"},
		{"$unknown stays, $ and $$ too", "$unknown stays, $ and $$ too"},
		{"$ip_hint is one name, not $ip + _hint", "x is one name, not 203.0.113.7 + _hint"},
		{"at the end: $amount", "at the end: 35.00"},
	}
	for _, c := range cases {
		got, ok := expandMessage(nil, c.template, vars, &noSettings, "203.0.113.7", "acme")
		if !ok || string(got) != c.want {
			t.Errorf("%q: got %q %v, want %q", c.template, got, ok, c.want)
		}
	}
	// $app falls back to the organization's name.
	if got, _ := expandMessage(nil, "$app", nil, &noSettings, "", "acme"); string(got) != "acme" {
		t.Errorf("$app without a variable: %q", got)
	}
	// The organization's variables come after the request's fields and
	// before the built-in $ip and $app.
	doc := approval.DefaultSettingsDocument()
	doc.Variables["app"], doc.Variables["desk"] = "Demo Bank", "the front desk"
	if got, _ := expandMessage(nil, "$app at $desk", nil, &doc, "", "acme"); string(got) != "Demo Bank at the front desk" {
		t.Errorf("the settings' variables: %q", got)
	}
	if got, _ := expandMessage(nil, "$app", []variable{{"app", "Sent"}}, &doc, "", "acme"); string(got) != "Sent" {
		t.Errorf("the request's field over the settings' variable: %q", got)
	}
	doc.Messages["default"] = "Sign in?"
	doc.Messages["OTP"] = "Code for $app?"
	if messageFor(&doc, approval.MethodPush) != "Sign in?" || messageFor(&doc, approval.MethodOTP) != "Code for $app?" ||
		messageFor(&noSettings, approval.MethodPush) != defaultMessage {
		t.Error("messageFor does not pick the method's template, then default, then the built-in one")
	}
	if _, ok := expandMessage(nil, "$v", []variable{{"v", strings.Repeat("x", 1025)}}, &noSettings, "", ""); ok {
		t.Error("a message over 1024 bytes was accepted")
	}
}

func TestAppendEnvelope(t *testing.T) {
	got := string(appendEnvelope(nil, "APPROVAL.DENIED", `say "no"`, 403))
	want := `{"type":"error","error":{"code":"APPROVAL.DENIED","ns":"APPROVAL","message":"say \"no\"","status":403}}`
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}
