package approval_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/countersign/countersign/engine/approval"
)

// FuzzDecodeApproval feeds DecodeApproval any bytes. It must never panic; it
// either refuses them with ErrCorrupt, leaving the approval empty, or
// accepts exactly the bytes AppendApproval makes of what it decoded.
func FuzzDecodeApproval(f *testing.F) {
	full, _ := decided(f)
	pending, _ := newApproval(f, newStream("fuzz"), true)
	cancelled, approved := emailApprovals(f)
	for _, a := range []*approval.Approval{full, pending, cancelled, approved, {}} {
		enc := approval.AppendApproval(nil, a)
		f.Add(enc)
		f.Add(enc[:len(enc)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var a approval.Approval
		if err := approval.DecodeApproval(b, &a); err != nil {
			if !errors.Is(err, approval.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			if a.ID != "" || len(a.Values) != 0 || len(a.Factors) != 0 || a.Status != 0 || a.HasReceipt() {
				t.Fatalf("a refused decode left %+v", a)
			}
			return
		}
		if enc := approval.AppendApproval(nil, &a); !bytes.Equal(enc, b) {
			t.Fatalf("accepted bytes are not canonical:\n in  %x\n out %x", b, enc)
		}
	})
}

// FuzzDecodeUserState is FuzzDecodeApproval for the user's state.
func FuzzDecodeUserState(f *testing.F) {
	f.Add(approval.AppendUserState(nil, &approval.UserState{}))
	u := approval.UserState{Version: 1 << 33, Failures: 3, LockedUntil: fixtureDay, TokenRequired: true, LastTOTPStep: 1 << 40}
	u.Recent = append(u.Recent, fixtureDay, fixtureDay)
	f.Add(approval.AppendUserState(nil, &u))
	f.Add([]byte{1, 0, 0x80, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		var u approval.UserState
		if err := approval.DecodeUserState(b, &u); err != nil {
			if !errors.Is(err, approval.ErrCorruptUserState) || u.Failures != 0 || len(u.Recent) != 0 {
				t.Fatalf("refused with %v, left %+v", err, u)
			}
			return
		}
		if enc := approval.AppendUserState(nil, &u); !bytes.Equal(enc, b) {
			t.Fatalf("accepted bytes are not canonical:\n in  %x\n out %x", b, enc)
		}
	})
}
