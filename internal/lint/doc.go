// Package lint holds no code of its own: its test enforces the dependency rules of
// DESIGN.md "Layout" over the whole module (engine free of I/O, Pebble only in
// store, fasthttp and sonic only at the HTTP edge, surfaces independent of one
// another, bench and simulate reaching countersign only through client). The test
// reads `go list -deps`, as Pebble's internal/lint does, so an import that arrives
// through another package breaks the build as surely as a direct one.
package lint
