//go:build !race

package jsonstr

import "testing"

func TestAppendAllocatesNothing(t *testing.T) {
	dst := make([]byte, 0, 64)
	in := []byte(`caf\u00e9 \ud83d\ude00 \"quoted\"`)
	if n := testing.AllocsPerRun(100, func() { dst, _ = Append(dst[:0], in) }); n != 0 {
		t.Errorf("Append: %v allocs", n)
	}
}
