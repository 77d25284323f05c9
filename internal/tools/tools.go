//go:build tools

// Package tools pins the modules DESIGN.md chooses for the approval surfaces
// (E.164 numbers, geo-fences, TOTP) before code imports them, so that go.mod
// and go.sum already hold the versions those surfaces will be built on.
// Remove an import here once real code imports the module.
package tools

import (
	_ "github.com/nyaruka/phonenumbers"
	_ "github.com/paulmach/orb"
	_ "github.com/pquerna/otp/totp"
)
