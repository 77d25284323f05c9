package biometric_test

import (
	"errors"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/countersign/countersign/engine/biometric/biometrictest"
)

// TestFixtures runs fixtures/biometric/*.txt (see package biometrictest for
// the commands). go test -run TestFixtures ./engine/biometric -rewrite
// regenerates the expectations; review the diff by hand.
func TestFixtures(t *testing.T) {
	datadriven.Walk(t, "../../fixtures/biometric", func(t *testing.T, path string) {
		w := biometrictest.NewWorld(8)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out, err := w.Run(d.Cmd, Args(d), d.Input)
			if errors.Is(err, biometrictest.ErrUnknownCommand) {
				d.Fatalf(t, "unknown command %q", d.Cmd)
			}
			if err != nil {
				d.Fatalf(t, "%v", err)
			}
			return out
		})
	})
}

// Args converts datadriven's arguments.
func Args(d *datadriven.TestData) []biometrictest.Arg {
	args := make([]biometrictest.Arg, len(d.CmdArgs))
	for i, a := range d.CmdArgs {
		args[i] = biometrictest.Arg{Key: a.Key, Vals: a.Vals}
	}
	return args
}
