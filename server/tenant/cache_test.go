package tenant

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/countersign/countersign/store"
)

func testCert(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestCertAllowed: a credential of an organization without bound
// certificates is used over anything; one with bindings only over TLS with
// one of the bound client certificates.
func TestCertAllowed(t *testing.T) {
	bound, other := testCert(t), testCert(t)
	withCert := func(c *x509.Certificate) *tls.ConnectionState {
		return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}
	}
	free := &Credential{}
	if !free.CertAllowed(nil) || !free.CertAllowed(withCert(other)) {
		t.Error("an organization without bound certificates refused a request")
	}
	ce := &Credential{Stored: store.Org{CertFingerprints: [][32]byte{{1}, sha256.Sum256(bound.RawSubjectPublicKeyInfo)}}}
	for name, st := range map[string]*tls.ConnectionState{
		"plain HTTP":          nil,
		"TLS without a cert":  {},
		"another certificate": withCert(other),
	} {
		if ce.CertAllowed(st) {
			t.Errorf("%s: allowed", name)
		}
	}
	if !ce.CertAllowed(withCert(bound)) {
		t.Error("the bound certificate was refused")
	}
}

// TestAPIKeyScope: the cache resolves a key to its organization and its
// scope, from the store and from the cache alike.
func TestAPIKeyScope(t *testing.T) {
	db, err := store.Open(store.Options{Dir: "/data", FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	org, backend, err := db.CreateOrg("acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := db.AddAPIKey(org.ID, store.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	oc := NewCache(db, 8)
	for round := range 2 { // the store's answer, then the cached one
		for key, want := range map[string]store.Scope{backend: store.ScopeBackend, admin: store.ScopeAdmin} {
			ce, err := oc.APIKey([]byte(key))
			if err != nil {
				t.Fatal(err)
			}
			if ce.Stored.ID != org.ID || ce.Scope != want {
				t.Errorf("round %d: key -> %s %s, want %s %s", round, ce.Stored.ID, ce.Scope, org.ID, want)
			}
		}
	}
	if keys, _ := oc.Len(); keys != 2 {
		t.Errorf("%d keys cached, want 2", keys)
	}
}
