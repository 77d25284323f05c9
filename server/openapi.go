package server

import _ "embed"

// openAPI is the OpenAPI 3.1 document of the native surface and the service
// routes. It is kept as a hand-written JSON file next to the code so that a
// reviewer reads the contract without reading Go, and tests check real
// responses of every route against it.
//
//go:embed openapi.json
var openAPI []byte

// openAPIDocument returns the bytes GET /openapi.json serves. The slice is
// shared: callers must not modify it.
func openAPIDocument() []byte { return openAPI }
