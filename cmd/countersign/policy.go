package main

import (
	"os"

	"github.com/countersign/countersign/engine/policy"
)

// valuesOnlyPolicy is what --policy values-only stores: DESIGN's values-only
// verdict, every other setting the default.
const valuesOnlyPolicy = `{"verdict":"values-only"}`

// readPolicy turns --policy into the policy JSON stored with the
// organization, refusing one engine/policy would not accept. A file is
// stored as written (missing keys keep following the defaults).
func readPolicy(arg string) ([]byte, error) {
	var b []byte
	switch arg {
	case "":
		return nil, nil
	case "values-only":
		b = []byte(valuesOnlyPolicy)
	default:
		var err error
		if b, err = os.ReadFile(arg); err != nil {
			return nil, usagef("--policy: %v (want values-only or a JSON file)", err)
		}
	}
	if _, err := policy.Parse(b); err != nil {
		return nil, usagef("--policy %s: %v", arg, err)
	}
	return b, nil
}
