package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/countersign/countersign/client"
)

// TestDeviceCommand plays 'countersign device' against the binary: a bad
// command line is exit 2; a wrong or reused activation code and a file that
// is not a device's state are exit 1 naming the problem; activation writes
// the state with mode 0600 even over a looser file; answer shows the
// approval's values and denies it with --deny (the backend reads denied,
// the signature having verified); and with nothing pending it gives up
// after --for, exit 1.
func TestDeviceCommand(t *testing.T) {
	data, cred := newOrg(t)
	p := serve(t, data, freeAddr(t))
	c := p.client(client.Config{APIKey: cred.APIKey, AdminKey: cred.AdminKey})
	if _, err := c.CreateUser(&client.NewUser{UserID: "dora", Mobile: "+31612345679"}); err != nil {
		t.Fatal(err)
	}
	code, err := c.CreateActivationCode("dora")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + p.addr
	state := filepath.Join(t.TempDir(), "phone.json")
	if err := os.WriteFile(state, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"device"}, 2, "missing subcommand"},
		{[]string{"device", "reboot"}, 2, `unknown subcommand "reboot"`},
		{[]string{"device", "activate", "--addr", addr, "--state", state}, 2, "--code and --state are required"},
		{[]string{"device", "activate", "--addr", addr, "--code", "csa_wrong", "--state", state}, 1, "activation"},
		{[]string{"device", "answer", "--state", state}, 1, "is not a device's state"},
		{[]string{"device", "answer", "--state", state, "--location", "91,4"}, 2, "want LAT,LON"},
		{[]string{"device", "answer", "--state", state, "--n", "0"}, 2, "must be positive"},
	} {
		r := countersign(t, nil, bad.args...)
		if r.code != bad.code || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d naming %q", bad.args, r.code, r.stderr, bad.code, bad.want)
		}
	}
	r := countersign(t, nil, "device", "activate", "--addr", addr, "--code", code.ActivationCode, "--state", state)
	if r.code != 0 || !strings.Contains(r.stdout, "activated device dev_") || !strings.Contains(r.stdout, "for user dora") {
		t.Fatalf("activate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	if r := countersign(t, nil, "device", "activate", "--addr", addr, "--code", code.ActivationCode, "--state", state+"2"); r.code != 1 {
		t.Errorf("a used activation code: exit %d, want 1\n%s", r.code, r.stderr)
	}
	a, err := c.CreateApproval(&client.ApprovalRequest{UserID: "dora", Message: "Pay 35.00 EUR?", Method: "push",
		Values: []client.Value{{Key: "amount", Value: "35.00"}}})
	if err != nil {
		t.Fatal(err)
	}
	r = countersign(t, nil, "device", "answer", "--state", state, "--deny")
	want := `deny ` + a.ApprovalID + ` "Pay 35.00 EUR?" amount="35.00" -> denied`
	if r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Fatalf("answer --deny: exit %d, want %q in\n%s%s", r.code, want, r.stdout, r.stderr)
	}
	if st, err := c.Approval(a.ApprovalID, 0); err != nil || st.Status != "denied" || st.Receipt == nil {
		t.Fatalf("the backend reads %+v, %v; want denied with the device's receipt", st, err)
	}
	if r := countersign(t, nil, "device", "answer", "--state", state, "--for", "1s"); r.code != 1 || !strings.Contains(r.stderr, "answered 0 of 1") {
		t.Errorf("nothing pending: exit %d, stderr %q", r.code, r.stderr)
	}
}
