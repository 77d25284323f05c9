// Package simulate plays the devices a countersign deployment serves, over
// HTTP through package client, so that demos, tests and load seeding see
// countersign exactly as customers' software does.
//
// The client-SDK simulator (sdk.go, with its scenarios in scenarios.go and
// the synthetic face model in faces.go) is a web or mobile SDK and the
// backend behind it: it starts a session, sends the form values and face
// frames the user produced, validates, and checks that countersign concluded
// what the scenario says it must (a genuine user verified; an impostor,
// replay, photo, second face, other user or tampered amount refused).
//
// The authenticator-app simulator, a device activated with an operator's
// code that long-polls /v1/device/approvals and approves or denies, belongs
// beside it in this package, in its own file.
//
// Neither talks HTTP itself: the wire is package client's, so this package
// imports neither fasthttp nor sonic.
package simulate
