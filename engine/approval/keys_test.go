package approval_test

import (
	"crypto/ed25519"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/engine/rules"
)

// edwards is just enough of edwards25519 over math/big to multiply a point
// by the cofactor, so that the blocklist is checked against the curve
// rather than copied from somewhere and trusted.
type edwards struct{ p, d, sqrtM1 *big.Int }

func newEdwards() *edwards {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	d := new(big.Int).Mul(big.NewInt(-121665), new(big.Int).ModInverse(big.NewInt(121666), p))
	d.Mod(d, p)
	e := new(big.Int).Div(new(big.Int).Sub(p, big.NewInt(1)), big.NewInt(4))
	return &edwards{p: p, d: d, sqrtM1: new(big.Int).Exp(big.NewInt(2), e, p)}
}

// decode reads an encoding as RFC 8032 does, but takes y modulo p (the
// non-canonical spellings decode as their residue, as lenient verifiers
// do). ok is false when no point has that y.
func (c *edwards) decode(enc []byte) (x, y *big.Int, ok bool) {
	le := make([]byte, 32)
	for i := range le {
		le[i] = enc[31-i]
	}
	sign := le[0] >> 7
	le[0] &= 0x7f
	y = new(big.Int).Mod(new(big.Int).SetBytes(le), c.p)
	yy := new(big.Int).Mul(y, y)
	u := new(big.Int).Sub(yy, big.NewInt(1))
	v := new(big.Int).Add(new(big.Int).Mul(c.d, yy), big.NewInt(1))
	xx := new(big.Int).Mul(u, new(big.Int).ModInverse(v.Mod(v, c.p), c.p))
	xx.Mod(xx, c.p)
	exp := new(big.Int).Div(new(big.Int).Add(c.p, big.NewInt(3)), big.NewInt(8))
	x = new(big.Int).Exp(xx, exp, c.p)
	if new(big.Int).Mod(new(big.Int).Mul(x, x), c.p).Cmp(xx) != 0 {
		x.Mul(x, c.sqrtM1).Mod(x, c.p)
	}
	if new(big.Int).Mod(new(big.Int).Mul(x, x), c.p).Cmp(xx) != 0 {
		return nil, nil, false
	}
	if x.Bit(0) != uint(sign) {
		x.Sub(c.p, x).Mod(x, c.p)
	}
	return x, y, true
}

// add is the twisted Edwards addition with a = -1.
func (c *edwards) add(x1, y1, x2, y2 *big.Int) (*big.Int, *big.Int) {
	k := new(big.Int).Mul(c.d, new(big.Int).Mul(new(big.Int).Mul(x1, x2), new(big.Int).Mul(y1, y2)))
	k.Mod(k, c.p)
	xn := new(big.Int).Add(new(big.Int).Mul(x1, y2), new(big.Int).Mul(y1, x2))
	yn := new(big.Int).Add(new(big.Int).Mul(y1, y2), new(big.Int).Mul(x1, x2))
	xd := new(big.Int).Add(big.NewInt(1), k)
	yd := new(big.Int).Sub(big.NewInt(1), k)
	x3 := xn.Mul(xn, new(big.Int).ModInverse(xd.Mod(xd, c.p), c.p))
	y3 := yn.Mul(yn, new(big.Int).ModInverse(yd.Mod(yd, c.p), c.p))
	return x3.Mod(x3, c.p), y3.Mod(y3, c.p)
}

// smallOrder reports whether [8]P is the identity.
func (c *edwards) smallOrder(x, y *big.Int) bool {
	for range 3 {
		x, y = c.add(x, y, x, y)
	}
	return x.Sign() == 0 && y.Cmp(big.NewInt(1)) == 0
}

// blocked are the 14 encodings: 7 values of y, each with either sign bit.
func blocked() [][]byte {
	ys := [][]byte{
		make([]byte, 32),
		append([]byte{1}, make([]byte, 31)...),
		{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
			0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
		{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
			0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
	}
	for _, low := range []byte{0xec, 0xed, 0xee} { // p-1, p, p+1
		y := make([]byte, 32)
		for i := range y {
			y[i] = 0xff
		}
		y[0], y[31] = low, 0x7f
		ys = append(ys, y)
	}
	var out [][]byte
	for _, y := range ys {
		neg := append([]byte{}, y...)
		neg[31] |= 0x80
		out = append(out, y, neg)
	}
	return out
}

func TestCheckDevicePublicKeyRefusesEverySmallOrderEncoding(t *testing.T) {
	c := newEdwards()
	encs := blocked()
	if len(encs) != 14 {
		t.Fatalf("%d encodings", len(encs))
	}
	decodable := 0
	for _, enc := range encs {
		if err := approval.CheckDevicePublicKey(enc); !errors.Is(err, approval.ErrPublicKey) {
			t.Errorf("%x: %v", enc, err)
		}
		// Every encoding that names a point names one of small order.
		if x, y, ok := c.decode(enc); ok {
			decodable++
			if !c.smallOrder(x, y) {
				t.Errorf("%x is on the blocklist but not of small order", enc)
			}
		}
	}
	t.Logf("%d of the 14 encodings decode to a point", decodable)
	if decodable != 14 {
		t.Errorf("%d of the encodings decode, want all 14", decodable)
	}
	// A real key passes, and is not of small order.
	for _, seed := range []string{"device d1", "some other device", "a third"} {
		pub := ed25519.NewKeyFromSeed(seed32(seed)).Public().(ed25519.PublicKey)
		if err := approval.CheckDevicePublicKey(pub); err != nil {
			t.Errorf("%s: %v", seed, err)
		}
		if x, y, ok := c.decode(pub); !ok || c.smallOrder(x, y) {
			t.Errorf("%s: decodes %v, small order", seed, ok)
		}
	}
	for _, n := range []int{0, 31, 33} {
		if err := approval.CheckDevicePublicKey(make([]byte, n)); !errors.Is(err, approval.ErrPublicKey) {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
}

// TestSmallOrderKeyForgesWithoutTheCheck shows what the check stops: under
// the identity point, R = identity and S = 0 verify over any message with
// crypto/ed25519, yet the receipt and the answer are refused.
func TestSmallOrderKeyForgesWithoutTheCheck(t *testing.T) {
	pub := identityPoint()
	sig := make([]byte, ed25519.SignatureSize)
	sig[0] = 1
	if !ed25519.Verify(pub, []byte("any message at all"), sig) {
		t.Skip("this crypto/ed25519 refuses the forgery itself")
	}
	a, _ := decided(t)
	copy(a.Receipt.Signature[:], sig)
	if a.VerifyReceipt(pub) {
		t.Fatal("a forged receipt verifies under a small-order key")
	}
	p, err := newApproval(t, newStream("forge"), false)
	if err != nil {
		t.Fatal(err)
	}
	ans := approval.DeviceAnswer{Decision: approval.DecisionApprove, Biometric: rules.BiometricPass,
		Timestamp: fixtureDay.Format(time.RFC3339), Signature: forgedSignature()}
	if err := approval.VerifyAnswer(pub, p, &ans, fixtureDay); !errors.Is(err, approval.ErrPublicKey) || approval.CountsAsFailure(err) {
		t.Fatalf("forged answer: %v", err)
	}
}
