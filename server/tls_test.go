package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/countersign/countersign/store"
)

// testPKI is a CA, a server certificate for 127.0.0.1 and two client
// certificates, made in the test.
type testPKI struct {
	dir              string
	caPool           *x509.CertPool
	caFile           string
	certFile         string
	keyFile          string
	clientA, clientB tls.Certificate
	rogue            tls.Certificate // a client certificate from another CA
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), caPool: x509.NewCertPool()}
	caKey, caCert := selfSigned(t, "countersign test CA")
	p.caPool.AddCert(caCert)
	p.caFile = writePEM(t, p.dir, "ca.pem", "CERTIFICATE", caCert.Raw)

	srvKey, srvDER := issue(t, caCert, caKey, "server", x509.ExtKeyUsageServerAuth, func(c *x509.Certificate) {
		c.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	})
	p.certFile = writePEM(t, p.dir, "server.pem", "CERTIFICATE", srvDER)
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	p.keyFile = writePEM(t, p.dir, "server-key.pem", "EC PRIVATE KEY", keyDER)

	clientCert := func(caCert *x509.Certificate, caKey *ecdsa.PrivateKey, name string) tls.Certificate {
		k, der := issue(t, caCert, caKey, name, x509.ExtKeyUsageClientAuth, nil)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	p.clientA = clientCert(caCert, caKey, "backend-a")
	p.clientB = clientCert(caCert, caKey, "backend-b")
	rogueKey, rogueCA := selfSigned(t, "rogue CA")
	p.rogue = clientCert(rogueCA, rogueKey, "backend-a")
	return p
}

func selfSigned(t *testing.T, cn string) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return k, c
}

var serial int64 = 100

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, usage x509.ExtKeyUsage, edit func(*x509.Certificate)) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return k, der
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func spki(t *testing.T, c tls.Certificate) [32]byte {
	t.Helper()
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(x.RawSubjectPublicKeyInfo)
}

// client returns an HTTPS client presenting certs[0] (if any) whatever CAs
// the server asks for, so that a certificate of another CA is really sent.
func (p *testPKI) client(certs ...tls.Certificate) *http.Client {
	conf := &tls.Config{RootCAs: p.caPool, MinVersion: tls.VersionTLS12}
	if len(certs) > 0 {
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
}

func httpDo(t *testing.T, c *http.Client, method, url, body string, hdr ...string) (int, string, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	q, _ := http.NewRequest(method, url, rd)
	if body != "" {
		q.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		q.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(q)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), nil
}

// TestTLSAndBoundCertificates: TLS with optional client certificates, and an
// organization whose API key is bound to a client certificate.
func TestTLSAndBoundCertificates(t *testing.T) {
	p := newPKI(t)
	e := newEnv(t, withConfig(func(c *Config) {
		c.TLSCert, c.TLSKey, c.ClientCA = p.certFile, p.keyFile, p.caFile
	}))
	addr := e.serveTCP()
	base := "https://" + addr
	s := e.newSessionTLS(t, p, base)
	body := string(e.validateBody(s, false))

	// Without a binding, the key works with or without a client certificate.
	for _, c := range []*http.Client{p.client(), p.client(p.clientB)} {
		if st, b, err := httpDo(t, c, "POST", base+"/v1/validate", body, "apikey", e.apiKey); err != nil || st != 200 {
			t.Fatalf("unbound key over TLS: %d %s %v", st, b, err)
		}
	}
	// A certificate from another CA is refused in the handshake.
	if _, _, err := httpDo(t, p.client(p.rogue), "GET", base+"/healthz", ""); err == nil {
		t.Error("a client certificate of an unknown CA was accepted")
	}

	// Bind backend-a's certificate to the organization.
	if err := e.db.BindCert(e.org.ID, spki(t, p.clientA)); err != nil {
		t.Fatal(err)
	}
	st, b, err := httpDo(t, p.client(p.clientA), "POST", base+"/v1/validate", body, "apikey", e.apiKey)
	if err != nil || st != 200 {
		t.Errorf("bound certificate: %d %s %v", st, b, err)
	}
	for name, c := range map[string]*http.Client{"no certificate": p.client(), "another certificate": p.client(p.clientB)} {
		st, b, err := httpDo(t, c, "POST", base+"/v1/validate", body, "apikey", e.apiKey)
		if err != nil || st != 401 || !strings.Contains(b, `"errorCode":"client_certificate_required"`) {
			t.Errorf("%s: %d %s %v", name, st, b, err)
		}
		st, _, _ = httpDo(t, c, "GET", base+"/v1/sessions/"+s.csid, "", "apikey", e.apiKey)
		if st != 401 {
			t.Errorf("%s, session status: %d", name, st)
		}
	}
	// Without TLS at all (the same handler behind a plain listener).
	ln := fasthttputil.NewInmemoryListener()
	plain := &fasthttp.Server{Handler: e.srv.Handler()}
	go func() { _ = plain.Serve(ln) }()
	defer plain.Shutdown()
	pc := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	r := doWith(t, pc, "http://x", req{path: "/v1/validate", body: []byte(body), headers: e.withKey()})
	if r.status != 401 || r.errorCode() != "client_certificate_required" {
		t.Errorf("plain HTTP with a bound key: %s", r)
	}
	// The SDK side (client id) is not affected by the binding.
	if st, b, _ := httpDo(t, p.client(), "POST", base+"/v1/sessions", `{"csid":"tls-sdk-0002","userID":"u","action":"a"}`, "x-client-id", e.org.CID); st != 201 {
		t.Errorf("SDK call: %d %s", st, b)
	}
}

func (e *testEnv) newSessionTLS(t *testing.T, p *testPKI, base string) session {
	st, b, err := httpDo(t, p.client(), "POST", base+"/v1/sessions", `{"csid":"tls-sdk-0001","userID":"u1","action":"a"}`, "x-client-id", e.org.CID)
	if err != nil || st != 201 {
		t.Fatalf("create session over TLS: %d %s %v", st, b, err)
	}
	var tok string
	if i := strings.Index(b, `"collectToken":"`); i >= 0 {
		tok = b[i+len(`"collectToken":"`):]
		tok = tok[:strings.IndexByte(tok, '"')]
	}
	return session{csid: "tls-sdk-0001", token: tok, userID: "u1"}
}

// TestMTLSRequired: with RequireClientCert, a handshake without a valid
// client certificate fails and one with it is served.
func TestMTLSRequired(t *testing.T) {
	p := newPKI(t)
	e := newEnv(t, withConfig(func(c *Config) {
		c.TLSCert, c.TLSKey, c.ClientCA, c.RequireClientCert = p.certFile, p.keyFile, p.caFile, true
	}))
	base := "https://" + e.serveTCP()
	if _, _, err := httpDo(t, p.client(), "GET", base+"/healthz", ""); err == nil {
		t.Error("served without a client certificate")
	}
	if _, _, err := httpDo(t, p.client(p.rogue), "GET", base+"/healthz", ""); err == nil {
		t.Error("served with a certificate of another CA")
	}
	if st, b, err := httpDo(t, p.client(p.clientA), "GET", base+"/healthz", ""); err != nil || st != 200 {
		t.Errorf("with a client certificate: %d %s %v", st, b, err)
	}
	// Plain HTTP to a TLS port gets nothing useful.
	if st, _, err := httpDo(t, &http.Client{Timeout: 2 * time.Second}, "GET", "http://"+strings.TrimPrefix(base, "https://")+"/healthz", ""); err == nil && st == 200 {
		t.Error("plain HTTP served on the TLS port")
	}
}

// TestTLSPerIPLimit: connections over the cap are refused through TLS with 429.
func TestTLSPerIPLimit(t *testing.T) {
	p := newPKI(t)
	e := newEnv(t, withConfig(func(c *Config) {
		c.TLSCert, c.TLSKey, c.MaxConnsPerIP = p.certFile, p.keyFile, 1
	}))
	addr := e.serveTCP()
	held, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: p.caPool})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_, _ = io.WriteString(held, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, 512)
	if n, err := held.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") {
		t.Fatalf("first connection: %q %v", buf[:n], err)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.caPool}, DisableKeepAlives: true}}
	st, b, err := httpDo(t, c, "GET", "https://"+addr+"/healthz", "")
	if err != nil || st != 429 || !strings.Contains(b, "too_many_connections") {
		t.Errorf("second connection: %d %s %v", st, b, err)
	}
}

// TestAdminClientCertBindings: over TLS with backend-a's certificate an
// operator binds it (and backend-b's) through PUT /admin/v1/client-certs;
// from then on the backend key works with either and is refused without
// one; a set leaving out the connection's own certificate is refused 409;
// an empty set unbinds.
func TestAdminClientCertBindings(t *testing.T) {
	p := newPKI(t)
	e := newEnv(t, withConfig(func(c *Config) {
		c.TLSCert, c.TLSKey, c.ClientCA = p.certFile, p.keyFile, p.caFile
	}))
	adminKey, err := e.db.AddAPIKey(e.org.ID, store.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	base := "https://" + e.serveTCP()
	a, b := spki(t, p.clientA), spki(t, p.clientB)
	admin := func(c *http.Client, method, body string) (int, string) {
		st, out, err := httpDo(t, c, method, base+"/admin/v1/client-certs", body, "Authorization", "Bearer "+adminKey)
		if err != nil {
			t.Fatal(err)
		}
		return st, out
	}
	set := fmt.Sprintf(`{"spkiSHA256":["%x","%X"]}`, a, b)
	if st, out := admin(p.client(p.clientA), "PUT", set); st != 200 || out != fmt.Sprintf(`{"spkiSHA256":["%x","%x"]}`, a, b) {
		t.Fatalf("PUT bindings: %d %s", st, out)
	}
	if st, out := admin(p.client(p.clientB), "GET", ""); st != 200 || !strings.Contains(out, fmt.Sprintf("%x", a)) {
		t.Fatalf("GET bindings: %d %s", st, out)
	}
	sessions := func(c *http.Client) int {
		st, _, err := httpDo(t, c, "GET", base+"/v1/sessions/none-00000001", "", "apikey", e.apiKey)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if sessions(p.client(p.clientB)) != 404 || sessions(p.client()) != 401 {
		t.Fatal("the bindings are not in force")
	}
	if st, out := admin(p.client(p.clientA), "PUT", fmt.Sprintf(`{"spkiSHA256":["%x"]}`, b)); st != 409 || !strings.Contains(out, "cert_binding_lockout") {
		t.Fatalf("a set without the connection's certificate: %d %s", st, out)
	}
	if st, out := admin(p.client(p.clientA), "PUT", `{"spkiSHA256":[]}`); st != 200 || out != `{"spkiSHA256":[]}` {
		t.Fatalf("unbinding: %d %s", st, out)
	}
	if sessions(p.client()) != 404 {
		t.Fatal("the key is still bound after unbinding")
	}
}
