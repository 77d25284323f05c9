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
// The authenticator-app simulator (authenticator.go) is an operator, a
// backend and the user's phone: it registers a user, activates a device
// with the operator's code and a new Ed25519 key, asks for an approval,
// long-polls it from the device, answers it signed (approve, deny, a
// failed biometric, outside the fence or the window, a forged signature,
// too late, number matching), and checks what the backend's long poll is
// answered.
//
// Neither talks HTTP itself: the wire is package client's, so this package
// imports neither fasthttp nor sonic.
package simulate
