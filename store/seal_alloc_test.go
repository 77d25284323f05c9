//go:build !race

package store

import "testing"

// TestSealAllocations pins that sealing and opening into buffers sized by
// SealOverhead allocate nothing, nonce included, so the approval engine can
// seal and open on a request path.
func TestSealAllocations(t *testing.T) {
	s := newSealer(t)
	plain := []byte("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
	sealed := make([]byte, 0, len(plain)+SealOverhead)
	opened := make([]byte, 0, len(plain))
	if n := testing.AllocsPerRun(100, func() {
		sealed = s.Seal(sealed[:0], plain, recordKey)
	}); n != 0 {
		t.Errorf("Seal allocates %.1f times per call, want 0", n)
	}
	var err error
	if n := testing.AllocsPerRun(100, func() {
		opened, err = s.Open(opened[:0], sealed, recordKey)
	}); n != 0 || err != nil || string(opened) != string(plain) {
		t.Errorf("Open allocates %.1f times per call (%v), want 0", n, err)
	}
}
