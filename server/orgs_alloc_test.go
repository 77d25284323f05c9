package server

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/countersign/countersign/server/tenant"
	"github.com/countersign/countersign/store"
)

// The organization cache is what keeps the store's org lookups (and their
// allocations) off the request path. These tests pin that it never serves
// what the store no longer says: every change through the store is seen by
// the next lookup.

func TestOrgCacheAPIKey(t *testing.T) {
	e := newEnv(t)
	oc := e.srv.orgs
	key := []byte(e.apiKey)
	resolve := func(k []byte) *tenant.Credential {
		t.Helper()
		ce, err := oc.APIKey(k)
		if err != nil {
			t.Fatalf("apiKey: %v", err)
		}
		return ce
	}
	cached := func() int {
		n, _ := oc.Len()
		return n
	}

	a := resolve(key)
	if a.Stored.ID != e.org.ID || a.Org == nil || a.PolicyErr != nil {
		t.Fatalf("resolved %+v", a)
	}
	if resolve(key) != a {
		t.Fatal("second lookup did not come from the cache")
	}

	// Keys that do not resolve are refused and not remembered.
	forged := bytes.Clone(key)
	forged[10] ^= 1
	for _, k := range [][]byte{forged, key[:20], []byte(e.org.CID), append(bytes.Clone(key), 'x')} {
		if _, err := oc.APIKey(k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("key %q: %v, want ErrNotFound", k, err)
		}
	}
	if n := cached(); n != 1 {
		t.Fatalf("%d keys cached, want 1", n)
	}

	// A new key of the org, and another org's key.
	key2, err := e.db.AddAPIKey(e.org.ID, store.ScopeBackend)
	orgCacheOK(t, err)
	o3, key3, err := e.db.CreateOrg("globex", nil)
	orgCacheOK(t, err)
	if b := resolve([]byte(key2)); b.Stored.ID != e.org.ID {
		t.Fatalf("second key resolved to %s", b.Stored.ID)
	}
	if c := resolve([]byte(key3)); c.Stored.ID != o3.ID {
		t.Fatalf("other org's key resolved to %s", c.Stored.ID)
	}
	// The store changed, so the first key was resolved afresh, but its
	// policy did not: the compiled policy is reused.
	b := resolve(key)
	if b == a || b.Org != a.Org {
		t.Fatalf("after unrelated changes: entry reused %v, policy reused %v", b == a, b.Org == a.Org)
	}

	// A new policy is in force from the next lookup, for requests and for
	// the frame workers (byID).
	orgCacheOK(t, e.db.SetOrgPolicy(e.org.ID, []byte(`{"minScore":9000}`)))
	c := resolve(key)
	if c.Org == a.Org || c.Org.Compiled.Policy().MinScore != 9000 {
		t.Fatalf("policy after SetOrgPolicy: %+v", c.Org.Compiled.Policy())
	}
	w, err := oc.ByID(e.org.ID)
	orgCacheOK(t, err)
	if w != c.Org {
		t.Fatal("byID serves another policy than the requests")
	}

	// A policy that does not compile is reported, and not cached.
	orgCacheOK(t, e.db.SetOrgPolicy(e.org.ID, []byte(`{"noSuchKey":1}`)))
	if f := resolve(key); f.PolicyErr == nil || f.Org != nil {
		t.Fatalf("broken policy: %+v", f)
	}
	if n := cached(); n != 0 {
		t.Fatalf("%d keys cached with a broken policy, want 0", n)
	}
	if r := e.do(req{method: "GET", path: "/v1/decisions/01JBZ8Q3Y00000000000000000", headers: e.withKey()}); r.status != 500 {
		t.Fatalf("request with a broken policy: %s", r)
	}

	// So is a bound certificate, checked before the policy as before.
	orgCacheOK(t, e.db.BindCert(e.org.ID, [32]byte{7}))
	if d := resolve(key); len(d.Stored.CertFingerprints) != 1 || d.Stored.CertFingerprints[0] != ([32]byte{7}) {
		t.Fatalf("certificates after BindCert: %v", d.Stored.CertFingerprints)
	}
	if r := e.do(req{method: "GET", path: "/v1/decisions/01JBZ8Q3Y00000000000000000", headers: e.withKey()}); r.errorCode() != "client_certificate_required" {
		t.Fatalf("request after BindCert: %s", r)
	}
}

func TestOrgCacheClientID(t *testing.T) {
	e := newEnv(t)
	oc := e.srv.orgs
	a, err := oc.ClientID([]byte(e.org.CID))
	orgCacheOK(t, err)
	if a.Stored.ID != e.org.ID {
		t.Fatalf("cid resolved to %s", a.Stored.ID)
	}
	if b, _ := oc.ClientID([]byte(e.org.CID)); b != a {
		t.Fatal("second lookup did not come from the cache")
	}
	for _, cid := range []string{"cid_nope", "", e.apiKey} {
		if _, err := oc.ClientID([]byte(cid)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("cid %q: %v, want ErrNotFound", cid, err)
		}
	}
	// A broken policy does not stop the SDK's calls: they need none.
	orgCacheOK(t, e.db.SetOrgPolicy(e.org.ID, []byte(`{"noSuchKey":1}`)))
	b, err := oc.ClientID([]byte(e.org.CID))
	orgCacheOK(t, err)
	if b == a || string(b.Stored.Policy) != `{"noSuchKey":1}` {
		t.Fatalf("after SetOrgPolicy: %+v", b.Stored)
	}
}

func orgCacheOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestOrgCacheConcurrent: lookups racing policy changes (run with -race);
// once the changes stop, every lookup sees the last one.
func TestOrgCacheConcurrent(t *testing.T) {
	e := newEnv(t)
	oc := e.srv.orgs
	key := []byte(e.apiKey)
	done := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				if _, err := oc.APIKey(key); err != nil {
					errs <- err
					return
				}
				if _, err := oc.ByID(e.org.ID); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range 50 {
		orgCacheOK(t, e.db.SetOrgPolicy(e.org.ID, fmt.Appendf(nil, `{"minScore":%d}`, 5000+i)))
	}
	close(done)
	for range 4 {
		orgCacheOK(t, <-errs)
	}
	ce, err := oc.APIKey(key)
	orgCacheOK(t, err)
	w, err := oc.ByID(e.org.ID)
	orgCacheOK(t, err)
	if got := ce.Org.Compiled.Policy().MinScore; got != 5049 || w.Compiled.Policy().MinScore != 5049 {
		t.Fatalf("after the changes: minScore %d (requests), %d (workers), want 5049", got, w.Compiled.Policy().MinScore)
	}
}
