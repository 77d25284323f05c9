package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// clock is an injectable Options.Now that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.UnixMilli(1_763_800_000_000)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// openMem opens a store on a fresh in-memory filesystem with a test clock.
func openMem(t testing.TB) (*DB, *clock) {
	t.Helper()
	c := newClock()
	db, err := Open(Options{Dir: "db", FS: vfs.NewMem(), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, c
}

// openCrashable is a store on a file system the test can crash
// (CrashClone); the test closes it.
func openCrashable(t testing.TB) (*DB, *vfs.MemFS, *clock) {
	t.Helper()
	fs := vfs.NewCrashableMem()
	c := newClock()
	db, err := Open(Options{Dir: "db", FS: fs, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return db, fs, c
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t testing.TB, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("error = %v, want %v", got, want)
	}
}

// newOrg creates an organization and returns it with its API key.
func newOrg(t testing.TB, db *DB, name string) (Org, string) {
	t.Helper()
	o, key, err := db.CreateOrg(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return o, key
}

// newSession creates a session for user "u" and returns it with its token.
func newSession(t testing.TB, db *DB, org OrgID, csid string) (Session, string) {
	t.Helper()
	s, token, err := db.CreateSession(org, csid, "u", "a")
	if err != nil {
		t.Fatal(err)
	}
	return s, token
}

// fmtFields prints fields readably for comparisons and failures.
func fmtFields(fs []FieldValue) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "{%q %q %d}", f.Key, f.Value, f.TS)
	}
	return b.String()
}

// countKind counts the raw keys of one record kind, bypassing the API.
func countKind(t testing.TB, db *DB, kind byte) int {
	t.Helper()
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{kind}, UpperBound: []byte{kind + 1}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	check(t, it.Close())
	return n
}

// rawContains reports whether needle appears in any key or value.
func rawContains(t testing.TB, db *DB, needle []byte) bool {
	t.Helper()
	it, err := db.pdb.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if bytes.Contains(it.Key(), needle) || bytes.Contains(it.Value(), needle) {
			return true
		}
	}
	return false
}

func TestOpenOptions(t *testing.T) {
	_, err := Open(Options{FS: vfs.NewMem()})
	wantErr(t, err, ErrNoDir)
	_, err = Open(Options{Dir: "db", FS: vfs.NewMem(), Durability: 7})
	wantErr(t, err, ErrDurability)

	for _, c := range []struct {
		s    string
		want Durability
		err  error
	}{{"sync", Sync, nil}, {"", Sync, nil}, {"relaxed", Relaxed, nil}, {"fast", Sync, ErrDurability}} {
		d, err := ParseDurability(c.s)
		if d != c.want || !errors.Is(err, c.err) {
			t.Errorf("ParseDurability(%q) = %v, %v", c.s, d, err)
		}
		if err == nil && c.s != "" && d.String() != c.s {
			t.Errorf("%v.String() = %q", d, d.String())
		}
	}

	db, err := Open(Options{Dir: "db", FS: vfs.NewMem(), Durability: Relaxed})
	check(t, err)
	if db.wo != pebble.NoSync || db.ttl != DefaultSessionTTL {
		t.Fatalf("relaxed store: wo=%v ttl=%v", db.wo, db.ttl)
	}
	check(t, db.Close())
}

func TestCloseAndMetrics(t *testing.T) {
	db, _ := openMem(t)
	o, key := newOrg(t, db, "acme")
	if st, ok := db.Stats(); !ok || st.DiskBytes == 0 || st.WALWrittenBytes == 0 || st.Memtables == 0 {
		t.Fatalf("stats: %+v, %v", st, ok)
	}
	check(t, db.Close())
	check(t, db.Close()) // twice is harmless

	_, err := db.OrgByAPIKey([]byte(key))
	wantErr(t, err, ErrClosed)
	_, _, err = db.CreateSession(o.ID, "csid-0001", "u", "a")
	wantErr(t, err, ErrClosed)
	_, err = db.SweepExpired(0)
	wantErr(t, err, ErrClosed)
	if st, ok := db.Stats(); ok {
		t.Fatalf("stats after close: %+v", st)
	}
}

// TestStats: the statistics follow what the store did: a flush writes a
// table.
func TestStats(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-stats")
	must[uint32](t)(db.AppendEvents(o.ID, "csid-stats", nil, [][]byte{[]byte("frame-0")}, false))
	check(t, db.pdb.Flush())
	st, ok := db.Stats()
	if !ok || st.Flushes == 0 || st.Tables == 0 || st.TableBytes == 0 || st.DiskBytes < st.TableBytes || st.DamagedFrames != 0 {
		t.Fatalf("stats after a flush: %+v, %v", st, ok)
	}
}

// TestCloseWaitsForCalls: Close during a Frames callback waits for it, and a
// call made from inside the callback while Close waits answers ErrClosed
// rather than deadlocking.
func TestCloseWaitsForCalls(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-0001")
	must[uint32](t)(db.AppendEvents(o.ID, "csid-0001", nil, [][]byte{[]byte("f0")}, false))

	inside, closing := make(chan struct{}), make(chan error)
	go func() {
		<-inside
		closing <- db.Close()
	}()
	err := db.Frames(o.ID, "csid-0001", 0, func(uint32, []byte) error {
		close(inside)
		// Wait until Close has started (it cannot finish while we are here).
		for db.inflight.Load() >= 0 {
			time.Sleep(time.Millisecond)
		}
		_, err := db.OrgByID(o.ID)
		wantErr(t, err, ErrClosed)
		return nil
	})
	check(t, err)
	check(t, <-closing)
}

func TestLayoutVersion(t *testing.T) {
	fs := vfs.NewMem()
	db, err := Open(Options{Dir: "db", FS: fs})
	check(t, err)
	check(t, db.pdb.Set(metaKey(), []byte{99}, pebble.Sync))
	check(t, db.Close())
	_, err = Open(Options{Dir: "db", FS: fs})
	wantErr(t, err, ErrFormat)
}

// TestLayoutUpgrade: a store of layout 1 opens and is marked with this
// code's layout, so that a binary of layout 1 refuses it from then on.
func TestLayoutUpgrade(t *testing.T) {
	fs := vfs.NewMem()
	db, err := Open(Options{Dir: "db", FS: fs})
	check(t, err)
	check(t, db.pdb.Set(metaKey(), []byte{1}, pebble.Sync))
	check(t, db.Close())
	db, err = Open(Options{Dir: "db", FS: fs})
	check(t, err)
	v, closer, err := db.pdb.Get(metaKey())
	check(t, err)
	if len(v) != 1 || v[0] != layoutVersion {
		t.Errorf("layout after opening a layout-1 store: %v, want %d", v, layoutVersion)
	}
	check(t, closer.Close())
	check(t, db.Close())
}

// fixture writes one of every record through the API and returns what a
// reader should find.
type fixture struct {
	org       Org
	key, key2 string
	sess      Session
	token     string
	fields    []FieldValue
	frames    [][]byte
	agg       []byte
	tmpl      []byte
	dec       Decision
	idem      []byte
	reqHash   [32]byte
}

func writeFixture(t testing.TB, db *DB) *fixture {
	t.Helper()
	f := &fixture{}
	var err error
	f.org, f.key, err = db.CreateOrg("acme", []byte(`{"minScore":7000}`))
	check(t, err)
	f.key2 = must[string](t)(db.AddAPIKey(f.org.ID, ScopeBackend))
	check(t, db.BindCert(f.org.ID, [32]byte{1, 2, 3}))
	f.org.CertFingerprints = [][32]byte{{1, 2, 3}}
	f.sess, f.token, err = db.CreateSession(f.org.ID, "csid-fixture", "user-1", "wire")
	check(t, err)
	f.fields = []FieldValue{
		{Key: []byte("amount"), Value: []byte(`"35.00"`), TS: 1},
		{Key: []byte("payee"), Value: []byte(`6`), TS: 2},
	}
	f.frames = [][]byte{bytes.Repeat([]byte("frame0 "), 100), []byte("frame1"), {}}
	must[uint32](t)(db.AppendEvents(f.org.ID, f.sess.CSID, f.fields, f.frames, true))
	f.agg = []byte("aggregate bytes")
	check(t, db.SaveAggregate(f.org.ID, f.sess.CSID, f.agg, 2))
	f.tmpl = []byte("template bytes")
	check(t, db.PutTemplate(f.org.ID, "user-1", f.tmpl))
	f.dec = Decision{
		ID: db.NewDecisionID(), OrgID: f.org.ID, CSID: f.sess.CSID, UserID: "user-1",
		CreatedAt: 42, Verified: true, Score: 8500, Response: []byte(`{"success":true}`),
	}
	f.idem = []byte("idem-1")
	f.reqHash = [32]byte{9}
	check(t, db.PutDecision(&f.dec, f.idem, f.reqHash))
	return f
}

// verify reads every record of f back and compares.
func (f *fixture) verify(t testing.TB, db *DB) {
	t.Helper()
	for _, key := range []string{f.key, f.key2} {
		o := must[Org](t)(db.OrgByAPIKey([]byte(key)))
		if fmt.Sprint(o) != fmt.Sprint(f.org) {
			t.Fatalf("org = %+v, want %+v", o, f.org)
		}
	}
	s := must[Session](t)(db.Session(f.org.ID, f.sess.CSID))
	if !db.CheckCollectToken(&s, []byte(f.token)) || s.FramesReceived != 3 || s.FramesScored != 2 ||
		!s.Final || !bytes.Equal(s.Aggregate, f.agg) || s.UserID != "user-1" || s.Action != "wire" {
		t.Fatalf("session = %+v", s)
	}
	fields := must[[]FieldValue](t)(db.Fields(f.org.ID, f.sess.CSID, nil))
	if fmtFields(fields) != fmtFields(f.fields) {
		t.Fatalf("fields = %s, want %s", fmtFields(fields), fmtFields(f.fields))
	}
	var frames [][]byte
	check(t, db.Frames(f.org.ID, f.sess.CSID, 0, func(i uint32, raw []byte) error {
		if int(i) != len(frames) {
			t.Fatalf("frame index %d, want %d", i, len(frames))
		}
		frames = append(frames, bytes.Clone(raw))
		return nil
	}))
	if fmt.Sprint(frames) != fmt.Sprint(f.frames) {
		t.Fatalf("frames = %q", frames)
	}
	if tm := must[[]byte](t)(db.Template(f.org.ID, "user-1")); !bytes.Equal(tm, f.tmpl) {
		t.Fatalf("template = %q", tm)
	}
	d := must[Decision](t)(db.Decision(f.org.ID, f.dec.ID))
	if fmt.Sprint(d) != fmt.Sprint(f.dec) {
		t.Fatalf("decision = %+v, want %+v", d, f.dec)
	}
	d, h, err := db.Idempotent(f.org.ID, f.idem)
	check(t, err)
	if d.ID != f.dec.ID || h != f.reqHash {
		t.Fatalf("idempotent = %+v %x", d, h)
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	db, err := Open(Options{Dir: dir, Now: c.Now})
	check(t, err)
	f := writeFixture(t, db)
	f.verify(t, db)
	check(t, db.Close())

	db, err = Open(Options{Dir: dir, Now: c.Now})
	check(t, err)
	defer db.Close()
	f.verify(t, db)
	orgs := must[[]Org](t)(db.Orgs())
	if len(orgs) != 1 || orgs[0].ID != f.org.ID {
		t.Fatalf("orgs = %+v", orgs)
	}
}

// TestCrashDurability simulates a machine crash with Pebble's crashable
// in-memory filesystem: the clone keeps exactly what was fsynced. Every
// write acknowledged under Sync durability survives; the same writes under
// Relaxed durability do not, which shows the test can tell the difference.
func TestCrashDurability(t *testing.T) {
	for _, d := range []Durability{Sync, Relaxed} {
		t.Run(d.String(), func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			c := newClock()
			db, err := Open(Options{Dir: "db", FS: fs, Now: c.Now, Durability: d})
			check(t, err)
			f := writeFixture(t, db)
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
			check(t, db.Close()) // too late: the crash already happened

			db, err = Open(Options{Dir: "db", FS: crashed, Now: c.Now})
			check(t, err)
			defer db.Close()
			if d == Sync {
				f.verify(t, db)
				return
			}
			if _, err := db.OrgByID(f.org.ID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("relaxed write survived a crash with nothing synced: %v", err)
			}
		})
	}
}

// TestDeterministicRand: with Options.Rand injected, ids and secrets are
// reproducible, which the simulator and fixture generators rely on.
func TestDeterministicRand(t *testing.T) {
	run := func() (Org, string, string) {
		c := newClock()
		db, err := Open(Options{Dir: "db", FS: vfs.NewMem(), Now: c.Now, Rand: rand.NewChaCha8([32]byte{7})})
		check(t, err)
		defer db.Close()
		o, key, err := db.CreateOrg("acme", nil)
		check(t, err)
		return o, key, db.NewDecisionID()
	}
	o1, k1, d1 := run()
	o2, k2, d2 := run()
	if o1.ID != o2.ID || o1.CID != o2.CID || k1 != k2 || d1 != d2 {
		t.Fatalf("not reproducible: %v %v %v / %v %v %v", o1, k1, d1, o2, k2, d2)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

func TestRandFailure(t *testing.T) {
	db, err := Open(Options{Dir: "db", FS: vfs.NewMem(), Rand: failingReader{}})
	check(t, err)
	defer db.Close()
	_, _, err = db.CreateOrg("acme", nil)
	wantErr(t, err, ErrRandom)
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("NewDecisionID did not panic")
		}
	}()
	db.NewDecisionID()
}

// walFailure makes writes to the write-ahead log fail while on, and nothing
// else (so no background work of Pebble trips over it).
type walFailure struct{ on atomic.Bool }

func (w *walFailure) String() string { return "wal failure" }
func (w *walFailure) MaybeError(op errorfs.Op) error {
	if w.on.Load() && strings.HasSuffix(op.Path, ".log") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
		return errorfs.ErrInjected
	}
	return nil
}

// TestFatalRefusesLaterCalls: when Pebble gives up (a WAL write fails, so
// its Fatalf), the call that met it panics with an error wrapping
// ErrFatal, and every later call, read or write, answers ErrFatal even once
// the disk works again: the failed write may be readable from memory
// without being durable.
func TestFatalRefusesLaterCalls(t *testing.T) {
	broken := &walFailure{}
	db, err := Open(Options{Dir: "db", FS: errorfs.Wrap(vfs.NewMem(), broken), Now: newClock().Now})
	check(t, err)
	t.Cleanup(func() { _ = db.Close() })
	o, _ := newOrg(t, db, "acme")
	broken.on.Store(true)
	p := func() (p any) {
		defer func() { p = recover() }()
		_ = db.PutTemplate(o.ID, "u1", []byte("tmpl"))
		return nil
	}()
	perr, ok := p.(error)
	if !ok || !errors.Is(perr, ErrFatal) || !strings.Contains(perr.Error(), "pebble: ") {
		t.Fatalf("write whose WAL write fails: panic %v", p)
	}
	broken.on.Store(false)
	_, err = db.Template(o.ID, "u1")
	wantErr(t, err, ErrFatal)
	_, err = db.OrgByID(o.ID)
	wantErr(t, err, ErrFatal)
	wantErr(t, db.PutTemplate(o.ID, "u2", []byte("tmpl")), ErrFatal)
	if _, ok := db.Stats(); ok {
		t.Error("stats of a dead store")
	}
}

// Tables carry bloom filters, and a lookup of an absent key (has) probes
// them instead of searching each table's blocks.
func TestAbsentKeysProbeBloomFilters(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-present")
	check(t, db.pdb.Flush())
	org := o.ID
	before := db.pdb.Metrics().Filter.Hits
	for i := 0; i < 10; i++ {
		// As long as "csid-present" and sorting before it (csids are
		// length-prefixed), so that the key lies within the table's bounds
		// and only its filter can say it is absent: flushes cut tables at
		// the frames' key range (spanPolicy), so a table of sessions ends
		// at its last session.
		ok, err := db.has(appendSessionKey(nil, org, "csid-absen-"+string(rune('a'+i))))
		if err != nil || ok {
			t.Fatal(ok, err)
		}
	}
	if ok, err := db.has(appendSessionKey(nil, org, "csid-present")); err != nil || !ok {
		t.Fatal("the present session is not found", ok, err)
	}
	if hits := db.pdb.Metrics().Filter.Hits - before; hits < 10 {
		t.Fatalf("%d filter hits for 10 absent keys", hits)
	}
}
