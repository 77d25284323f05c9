package store

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// resolves says whether the token authenticates, as which device.
func resolves(t testing.TB, db *DB, token string) (Device, bool) {
	t.Helper()
	var d Device
	switch err := db.DeviceByToken([]byte(token), &d); err {
	case nil:
		return d, true
	case ErrNotFound:
		return Device{}, false
	default:
		t.Fatal(err)
		return Device{}, false
	}
}

func cachedDevices(db *DB) int {
	n, _ := db.dc.len()
	return n
}

// TestDeviceCacheRevocation: a device's token, once resolved, is served
// from memory, and its revocation, its user's deletion and a re-activation
// for the user each take effect on the very next call.
func TestDeviceCacheRevocation(t *testing.T) {
	db, o, _ := annOrg(t)
	dev, token := activate(t, db, o.ID, "ann", 1)
	for range 2 {
		if got, ok := resolves(t, db, token); !ok || got.ID != dev.ID || got.OrgID != o.ID || got.UserID != "ann" {
			t.Fatalf("resolved %+v, %v", got, ok)
		}
	}
	if n := cachedDevices(db); n != 1 {
		t.Fatalf("%d devices cached, want 1", n)
	}
	check(t, db.RevokeDevice(o.ID, dev.ID))
	if _, ok := resolves(t, db, token); ok {
		t.Fatal("a revoked device's token still resolves")
	}

	// Re-activation: a new device for ann, with a new token; the old one
	// stays refused.
	again, token2 := activate(t, db, o.ID, "ann", 3)
	for range 2 {
		if got, ok := resolves(t, db, token2); !ok || got.ID != again.ID {
			t.Fatalf("the re-activated device resolved %+v, %v", got, ok)
		}
		if _, ok := resolves(t, db, token); ok {
			t.Fatal("a revoked device's token resolves after its user's re-activation")
		}
	}

	// The user's deletion takes the cached device with it.
	check(t, db.DeleteUser(o.ID, "ann"))
	if _, ok := resolves(t, db, token2); ok {
		t.Fatal("a deleted user's device token still resolves")
	}
	if n := cachedDevices(db); n != 0 {
		t.Fatalf("%d devices cached after the revocation and the deletion", n)
	}
	must[User](t)(db.CreateUser(o.ID, User{UserID: "ann"}))
	if _, ok := resolves(t, db, token2); ok {
		t.Fatal("the device of a deleted user resolves once the user id is reused")
	}
}

// TestDeviceCacheFillAfterRevocation: a DeviceByToken that read the device
// from Pebble before a revocation committed, and fills the cache after the
// revocation dropped the entry, leaves nothing behind: the next call is
// refused. The same for a deletion of the user.
func TestDeviceCacheFillAfterRevocation(t *testing.T) {
	for _, write := range []struct {
		name string
		do   func(db *DB, org OrgID, dev Device) error
	}{
		{"revocation", func(db *DB, org OrgID, dev Device) error { return db.RevokeDevice(org, dev.ID) }},
		{"deletion", func(db *DB, org OrgID, dev Device) error { return db.DeleteUser(org, dev.UserID) }},
	} {
		t.Run(write.name, func(t *testing.T) {
			db, o, _ := annOrg(t)
			dev, token := activate(t, db, o.ID, "ann", 1)
			db.afterDeviceRead = func() {
				db.afterDeviceRead = nil
				check(t, write.do(db, o.ID, dev))
			}
			// This call read the device while it was active; it is
			// concurrent with the write, so it may answer either way.
			resolves(t, db, token)
			if db.afterDeviceRead != nil {
				t.Fatal("the call did not read the device from Pebble")
			}
			if _, ok := resolves(t, db, token); ok {
				t.Fatalf("the token resolves after the %s", write.name)
			}
		})
	}
}

// TestDeviceCacheHitReadsNothing: a cached device is authenticated without
// reading Pebble: it resolves even with its records gone behind the
// store's back (which no store write does without dropping the entry).
func TestDeviceCacheHitReadsNothing(t *testing.T) {
	db, o, _ := annOrg(t)
	dev, token := activate(t, db, o.ID, "ann", 1)
	resolves(t, db, token)
	hash := sha256.Sum256([]byte(token))
	b := db.pdb.NewBatch()
	check(t, b.Delete(appendHashKey(nil, kindDeviceByToken, &hash), nil))
	check(t, b.Delete(appendDeviceKey(nil, o.ID, dev.ID), nil))
	check(t, b.Commit(pebble.Sync))
	if got, ok := resolves(t, db, token); !ok || got.ID != dev.ID || got.OrgID != o.ID || got.PublicKey != dev.PublicKey {
		t.Fatalf("a cached device resolved %+v, %v", got, ok)
	}
	db.dc.drop(&hash)
	if _, ok := resolves(t, db, token); ok {
		t.Fatal("a dropped entry still resolves")
	}
}

// TestDeviceCacheBound: the cache keeps to its byte budget by evicting, an
// evicted device is read from Pebble again, each as its own organization's,
// and an evicted device's revocation is as immediate as a cached one's.
func TestDeviceCacheBound(t *testing.T) {
	const budget = 8 << 10 // 512 bytes a shard: one or two devices
	db, err := Open(Options{Dir: "db", FS: vfs.NewMem(), Now: newClock().Now, DeviceCacheBytes: budget})
	check(t, err)
	t.Cleanup(func() { _ = db.Close() })
	a, _ := newOrg(t, db, "a")
	b, _ := newOrg(t, db, "b")
	type phone struct {
		dev   Device
		token string
	}
	var phones []phone
	for i := range 64 {
		org := []Org{a, b}[i%2]
		user := "u" + string(rune('A'+i))
		must[User](t)(db.CreateUser(org.ID, User{UserID: user}))
		d, token := activate(t, db, org.ID, user, byte(i+1))
		phones = append(phones, phone{d, token})
	}
	for range 2 {
		for _, p := range phones {
			if got, ok := resolves(t, db, p.token); !ok || got.ID != p.dev.ID || got.OrgID != p.dev.OrgID || got.UserID != p.dev.UserID {
				t.Fatalf("resolved %+v, %v, want %+v", got, ok, p.dev)
			}
		}
	}
	n, bytes := db.dc.len()
	if bytes > budget || n == 0 || n >= len(phones) {
		t.Fatalf("%d devices cached in %d bytes, budget %d", n, bytes, budget)
	}
	for _, p := range phones {
		check(t, db.RevokeDevice(p.dev.OrgID, p.dev.ID))
		if _, ok := resolves(t, db, p.token); ok {
			t.Fatalf("revoked %s still resolves", p.dev.ID)
		}
	}
}

// TestDeviceCacheOff: with the cache turned off every call reads Pebble,
// and answers the same.
func TestDeviceCacheOff(t *testing.T) {
	db, err := Open(Options{Dir: "db", FS: vfs.NewMem(), Now: newClock().Now, DeviceCacheBytes: -1})
	check(t, err)
	t.Cleanup(func() { _ = db.Close() })
	o, _ := newOrg(t, db, "acme")
	must[User](t)(db.CreateUser(o.ID, User{UserID: "ann"}))
	dev, token := activate(t, db, o.ID, "ann", 1)
	if db.dc != nil {
		t.Fatal("the cache is on")
	}
	if got, ok := resolves(t, db, token); !ok || got.ID != dev.ID {
		t.Fatalf("resolved %+v, %v", got, ok)
	}
	check(t, db.RevokeDevice(o.ID, dev.ID))
	if _, ok := resolves(t, db, token); ok {
		t.Fatal("a revoked device's token still resolves")
	}
}

// TestDeviceCacheConcurrentRevocation: callers authenticating the device
// while it is revoked may pass until RevokeDevice returns, and none that
// starts after it does.
func TestDeviceCacheConcurrentRevocation(t *testing.T) {
	db, o, _ := annOrg(t)
	dev, token := activate(t, db, o.ID, "ann", 1)
	var revoked atomic.Bool
	var after atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var d Device
			for after.Load() < 2000 {
				was := revoked.Load()
				err := db.DeviceByToken([]byte(token), &d)
				if was {
					after.Add(1)
					if err == nil {
						t.Error("a call begun after the revocation returned passed")
						return
					}
				}
				if err != nil && err != ErrNotFound {
					t.Error(err)
					return
				}
			}
		}()
	}
	for cachedDevices(db) == 0 {
		resolves(t, db, token)
	}
	check(t, db.RevokeDevice(o.ID, dev.ID))
	revoked.Store(true)
	wg.Wait()
}

// TestDeleteUserOfManyDevices: deleting a user takes every one of its
// device records, revoked ones included, past one page of the per-user
// index (MaxPageLimit), so that no device token of a deleted user still
// resolves.
func TestDeleteUserOfManyDevices(t *testing.T) {
	db, o, _ := annOrg(t)
	var tokens []string
	for i := range MaxPageLimit + 3 {
		code, _ := must2(t)(db.CreateActivationCode(o.ID, "ann"))
		seed := make([]byte, ed25519.SeedSize)
		seed[0], seed[1] = byte(i), byte(i>>8)
		a := testActivation(0)
		a.PublicKey = ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
		d, token, err := db.ActivateDevice([]byte(code), a)
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, token)
		if i < MaxPageLimit { // revoked records count too, and keep the active ones under the cap
			check(t, db.RevokeDevice(o.ID, d.ID))
		}
	}
	check(t, db.DeleteUser(o.ID, "ann"))
	for i, token := range tokens {
		if _, ok := resolves(t, db, token); ok {
			t.Fatalf("device %d of %d of the deleted user still resolves", i, len(tokens))
		}
	}
}

// TestActivationCap: a user's eleventh active device is ErrTooManyDevices
// and its code stays usable; revoking one makes room.
func TestActivationCap(t *testing.T) {
	db, o, _ := annOrg(t)
	var first Device
	for i := range MaxDevicesPerUser {
		d, _ := activate(t, db, o.ID, "ann", byte(i+1))
		if i == 0 {
			first = d
		}
	}
	code, _ := must2(t)(db.CreateActivationCode(o.ID, "ann"))
	if _, _, err := db.ActivateDevice([]byte(code), testActivation(100)); !errors.Is(err, ErrTooManyDevices) {
		t.Fatalf("the eleventh active device: %v, want ErrTooManyDevices", err)
	}
	check(t, db.RevokeDevice(o.ID, first.ID))
	if _, _, err := db.ActivateDevice([]byte(code), testActivation(100)); err != nil {
		t.Fatalf("after a revocation, the same code: %v", err)
	}
}
