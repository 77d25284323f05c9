//go:build tools

// Package tools pins the modules DESIGN.md chooses before every one of them is
// imported by code, so that go.mod and go.sum stay complete for everyone who
// builds countersign. Remove an import here once real code imports the module.
package tools

import (
	_ "github.com/HdrHistogram/hdrhistogram-go"
	_ "github.com/VictoriaMetrics/metrics"
	_ "github.com/bytedance/sonic"
	_ "github.com/cespare/xxhash/v2"
	_ "github.com/cockroachdb/datadriven"
	_ "github.com/cockroachdb/pebble/v2"
	_ "github.com/getkin/kin-openapi/openapi3"
	_ "github.com/getkin/kin-openapi/openapi3filter"
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/nyaruka/phonenumbers"
	_ "github.com/paulmach/orb"
	_ "github.com/pquerna/otp/totp"
	_ "github.com/valyala/fasthttp"
	_ "golang.org/x/text/unicode/norm"
)
