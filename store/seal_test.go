package store

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// newKeyFile creates a master key file in a new temporary directory.
func newKeyFile(t *testing.T) string {
	t.Helper()
	path := MasterKeyPath(t.TempDir())
	if err := CreateMasterKey(path, nil); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMasterKeyRoundTrip(t *testing.T) {
	path := newKeyFile(t)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Fatalf("mode %04o, want 0600", perm)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "countersign-master-key-v1 ") || !strings.HasSuffix(string(b), "\n") || len(b) != masterKeyLineSize+1 {
		t.Fatalf("key file %q", b)
	}
	if got := base64.StdEncoding.EncodedLen(MasterKeySize); got != masterKeyLineSize-len(masterKeyPrefix) {
		t.Fatalf("masterKeyLineSize assumes 44 base64 characters, not %d", got)
	}
	s1, err := LoadMasterKey(path)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := LoadMasterKey(path)
	if err != nil {
		t.Fatal(err)
	}
	// Two loads of one file are one key: what one seals the other opens.
	sealed := s1.Seal(nil, []byte("JBSWY3DPEHPK3PXP"), []byte("aad"))
	if got, err := s2.Open(nil, sealed, []byte("aad")); err != nil || string(got) != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("open with the reloaded key: %q, %v", got, err)
	}
	if s1.KeyID() != s2.KeyID() || len(s1.KeyIDString()) != 2*KeyIDSize {
		t.Fatalf("key ids %x %x (%q)", s1.KeyID(), s2.KeyID(), s1.KeyIDString())
	}
	// The file's key is the one the Sealer uses, and the same bytes pasted
	// without the final newline load too.
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(strings.TrimPrefix(string(b), masterKeyPrefix)))
	direct, err := NewSealer(raw, nil)
	if err != nil || direct.KeyID() != s1.KeyID() {
		t.Fatalf("NewSealer(file key): %v, id %x want %x", err, direct.KeyID(), s1.KeyID())
	}
	bare := filepath.Join(t.TempDir(), "bare.key")
	if err := os.WriteFile(bare, bytes.TrimSuffix(b, []byte("\n")), 0o400); err != nil {
		t.Fatal(err)
	}
	if s, err := LoadMasterKey(bare); err != nil || s.KeyID() != s1.KeyID() {
		t.Fatalf("key without its newline, mode 0400: %v", err)
	}
}

func TestMasterKeyNotOverwritten(t *testing.T) {
	path := newKeyFile(t)
	before, _ := os.ReadFile(path)
	err := CreateMasterKey(path, nil)
	if !errors.Is(err, ErrMasterKeyExists) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second create: %v, want ErrMasterKeyExists naming %s", err, path)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("the existing key file changed")
	}
}

func TestMasterKeyCreateFailsClean(t *testing.T) {
	path := MasterKeyPath(t.TempDir())
	if err := CreateMasterKey(path, bytes.NewReader(make([]byte, 10))); err == nil || !strings.Contains(err.Error(), "randomness") {
		t.Fatalf("short randomness: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a failed create left %s behind (%v)", path, err)
	}
	if err := CreateMasterKey(filepath.Join(path, "no", "such", "dir"), nil); err == nil {
		t.Fatal("create in a missing directory succeeded")
	}
}

func TestMasterKeyRefused(t *testing.T) {
	dir := t.TempDir()
	good, _ := os.ReadFile(newKeyFile(t))
	otherPrefix := append([]byte("countersign-master-key-v2 "), good[len(masterKeyPrefix):]...)
	notBase64 := append([]byte(masterKeyPrefix), bytes.Repeat([]byte("*"), 44)...)
	wrongEnd := append(append([]byte{}, good[:masterKeyLineSize]...), ' ')
	for _, c := range []struct {
		name    string
		content []byte
		mode    os.FileMode
		want    error
		detail  string
	}{
		{"group readable", good, 0o640, ErrMasterKeyExposed, "mode 0640"},
		{"world readable", good, 0o644, ErrMasterKeyExposed, "chmod 600"},
		{"group writable", good, 0o620, ErrMasterKeyExposed, "mode 0620"},
		{"raw 32 bytes", make([]byte, 32), 0o600, ErrMasterKeyFormat, "is 32 bytes"},
		{"empty", nil, 0o600, ErrMasterKeyFormat, "is 0 bytes"},
		{"too long", append(append([]byte{}, good...), '\n'), 0o600, ErrMasterKeyFormat, "is 72 bytes"},
		{"other version", otherPrefix, 0o600, ErrMasterKeyFormat, "does not start with"},
		{"not base64", notBase64, 0o600, ErrMasterKeyFormat, "no base64"},
		{"no newline at the end", wrongEnd, 0o600, ErrMasterKeyFormat, "not a newline"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
		if err := os.WriteFile(path, c.content, 0o600); err != nil {
			t.Fatal(err)
		}
		// Chmod after writing: the umask must not soften the mode under test.
		if err := os.Chmod(path, c.mode); err != nil {
			t.Fatal(err)
		}
		s, err := LoadMasterKey(path)
		if s != nil || !errors.Is(err, c.want) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.detail) {
			t.Errorf("%s: %v; want %v naming %s and %q", c.name, err, c.want, path, c.detail)
		}
		if err != nil && len(c.content) > len(masterKeyPrefix) && strings.Contains(err.Error(), string(c.content[len(masterKeyPrefix):])) {
			t.Errorf("%s: the error shows the file's bytes: %v", c.name, err)
		}
	}
	if _, err := LoadMasterKey(filepath.Join(dir, "missing.key")); !errors.Is(err, ErrMasterKeyMissing) || !strings.Contains(err.Error(), "missing.key") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadMasterKey(dir); !errors.Is(err, ErrMasterKeyFormat) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
}

func newSealer(t testing.TB) *Sealer {
	t.Helper()
	key := make([]byte, MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	s, err := NewSealer(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// recordKey is the record key a sealed TOTP seed would be stored under.
var recordKey = []byte("\x30org-0001device-7")

func TestSealOpen(t *testing.T) {
	s := newSealer(t)
	for _, plain := range [][]byte{nil, []byte("x"), []byte("JBSWY3DPEHPK3PXP"), bytes.Repeat([]byte("whsec_"), 100)} {
		prefix := []byte("kept")
		sealed := s.Seal(prefix, plain, recordKey)
		if !bytes.HasPrefix(sealed, []byte("kept")) || len(sealed) != 4+len(plain)+SealOverhead {
			t.Fatalf("Seal appended %d bytes to %d of plaintext, want %d more", len(sealed)-4, len(plain), SealOverhead)
		}
		sealed = sealed[4:]
		if sealed[0] != sealVersion || !bytes.Equal(sealed[1:1+KeyIDSize], s.id[:]) {
			t.Fatalf("header % x, want version 1 and key id % x", sealed[:1+KeyIDSize], s.id)
		}
		got, err := s.Open([]byte("out:"), sealed, recordKey)
		if err != nil || string(got) != "out:"+string(plain) {
			t.Fatalf("Open: %q, %v", got, err)
		}
	}
	// Fresh nonces: one plaintext sealed twice is two different values.
	a, b := s.Seal(nil, []byte("seed"), recordKey), s.Seal(nil, []byte("seed"), recordKey)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one plaintext are equal: the nonce repeats")
	}
	if _, err := NewSealer(make([]byte, 16), nil); !errors.Is(err, ErrMasterKeySize) {
		t.Fatalf("a 16-byte key: %v", err)
	}
}

func TestSealHidesPlaintext(t *testing.T) {
	s := newSealer(t)
	plain := []byte("whsec_4f8a1c2e9b7d6a5f3e1c0b9a8d7f6e5c")
	sealed := s.Seal(nil, plain, recordKey)
	for i := 0; i+4 <= len(plain); i++ {
		if bytes.Contains(sealed, plain[i:i+4]) {
			t.Fatalf("the sealed bytes contain %q of the plaintext", plain[i:i+4])
		}
	}
}

func TestSealRefused(t *testing.T) {
	s := newSealer(t)
	plain := []byte("JBSWY3DPEHPK3PXP")
	sealed := s.Seal(nil, plain, recordKey)
	// A nonce source that repeats its bytes still shows every check below.
	fixed, err := NewSealer(make([]byte, MasterKeySize), bytes.NewReader(make([]byte, 1<<10)))
	if err != nil {
		t.Fatal(err)
	}
	otherKey := fixed.Seal(nil, plain, recordKey)
	// The same value under another key, with this key's id in its header:
	// GCM itself refuses it, not only the id check.
	forged := append(append(append([]byte{}, otherKey[0]), s.id[:]...), otherKey[1+KeyIDSize:]...)

	flip := func(i int) []byte {
		b := append([]byte{}, sealed...)
		b[i] ^= 0x01
		return b
	}
	for _, c := range []struct {
		name   string
		sealed []byte
		aad    []byte
		want   error
	}{
		{"version", flip(0), recordKey, ErrSealedVersion},
		{"key id", flip(1), recordKey, ErrSealedOpen},
		{"nonce", flip(1 + KeyIDSize), recordKey, ErrSealedOpen},
		{"ciphertext", flip(sealHeader), recordKey, ErrSealedOpen},
		{"tag", flip(len(sealed) - 1), recordKey, ErrSealedOpen},
		{"other aad", sealed, []byte("\x30org-0002device-7"), ErrSealedOpen},
		{"no aad", sealed, nil, ErrSealedOpen},
		{"wrong key", otherKey, recordKey, ErrSealedOpen},
		{"wrong key, forged id", forged, recordKey, ErrSealedOpen},
		{"truncated by one", sealed[:len(sealed)-1], recordKey, ErrSealedOpen},
		{"truncated to the header", sealed[:sealHeader], recordKey, ErrSealedShort},
		{"empty", nil, recordKey, ErrSealedShort},
		{"appended to", append(append([]byte{}, sealed...), 0), recordKey, ErrSealedOpen},
	} {
		dst := []byte("dst")
		got, err := s.Open(dst, c.sealed, c.aad)
		if !errors.Is(err, c.want) || string(got) != "dst" {
			t.Errorf("%s: %q, %v; want dst unchanged and %v", c.name, got, err, c.want)
		}
	}
	if ErrSealedOpen.Error() != "store: sealed value does not open: wrong key or altered" {
		t.Errorf("ErrSealedOpen says %q", ErrSealedOpen)
	}
}

// TestSealConcurrent shares one Sealer between goroutines, as the server's
// request handlers will; under -race it shows the sharing is sound.
func TestSealConcurrent(t *testing.T) {
	s := newSealer(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			plain := []byte{byte(g), 's', 'e', 'e', 'd'}
			for range 200 {
				got, err := s.Open(nil, s.Seal(nil, plain, recordKey), recordKey)
				if err != nil || !bytes.Equal(got, plain) {
					errs <- fmt.Errorf("goroutine %d: %q, %v", g, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// dryNonces is a nonce source that has run dry.
type dryNonces struct{}

func (dryNonces) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestSealNonceSourceFails(t *testing.T) {
	s, err := NewSealer(make([]byte, MasterKeySize), dryNonces{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "nonce") {
			t.Fatalf("Seal with a failed nonce source: recovered %v, want a panic about the nonce", r)
		}
	}()
	s.Seal(nil, []byte("seed"), recordKey)
}
