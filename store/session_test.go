package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

var collectTokenRE = regexp.MustCompile(`^cst_[A-Za-z0-9_-]{43}$`)

func TestCreateSession(t *testing.T) {
	db, c := openMem(t)
	o, _ := newOrg(t, db, "acme")
	s, token, err := db.CreateSession(o.ID, "csid-0001", "user-1", "wire")
	check(t, err)
	if !collectTokenRE.MatchString(token) {
		t.Fatalf("token %q", token)
	}
	now := c.Now().UnixMilli()
	want := Session{OrgID: o.ID, CSID: "csid-0001", UserID: "user-1", Action: "wire",
		CollectTokenHash: sha256.Sum256([]byte(token)), CreatedAt: now, ExpiresAt: now + DefaultSessionTTL.Milliseconds()}
	if fmt.Sprint(s) != fmt.Sprint(want) {
		t.Fatalf("created %+v, want %+v", s, want)
	}
	got := must[Session](t)(db.Session(o.ID, "csid-0001"))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read %+v, want %+v", got, want)
	}
	if rawContains(t, db, []byte(token)) {
		t.Fatal("collect token stored in clear")
	}

	if !db.CheckCollectToken(&got, []byte(token)) {
		t.Fatal("token rejected")
	}
	forged := []byte(token)
	forged[20] ^= 1
	for _, bad := range [][]byte{nil, forged, []byte(token[:40]), []byte("csk_" + token[4:])} {
		if db.CheckCollectToken(&got, bad) {
			t.Fatalf("forged token %q accepted", bad)
		}
	}
	if db.CheckCollectToken(&Session{}, []byte(token)) {
		t.Fatal("token accepted by a zero session")
	}

	// Unknown org; bad ids.
	_, _, err = db.CreateSession(OrgID{}, "csid-0002", "u", "a")
	wantErr(t, err, ErrNotFound)
	_, _, err = db.CreateSession(o.ID, "", "u", "a")
	wantErr(t, err, ErrEmptyID)
	_, _, err = db.CreateSession(o.ID, string(make([]byte, MaxKeyBytes+1)), "u", "a")
	wantErr(t, err, ErrKeyTooLong)
	_, err = db.Session(o.ID, "csid-none")
	wantErr(t, err, ErrNotFound)
}

func TestCSIDReuse(t *testing.T) {
	db, c := openMem(t)
	o, _ := newOrg(t, db, "acme")
	other, _ := newOrg(t, db, "globex")
	newSession(t, db, o.ID, "csid-0001")
	must[uint32](t)(db.AppendEvents(o.ID, "csid-0001", []FieldValue{{Key: []byte("k"), Value: []byte("1")}}, [][]byte{[]byte("f")}, false))

	_, _, err := db.CreateSession(o.ID, "csid-0001", "u", "a")
	wantErr(t, err, ErrExists)
	// csids are unique per organization: another org may use the same one.
	newSession(t, db, other.ID, "csid-0001")

	c.Advance(DefaultSessionTTL)
	_, _, err = db.CreateSession(o.ID, "csid-0001", "u", "a")
	wantErr(t, err, ErrExists)

	if n := must[int](t)(db.SweepExpired(0)); n != 2 {
		t.Fatalf("swept %d, want 2", n)
	}
	_, _, err = db.CreateSession(o.ID, "csid-0001", "u", "a")
	wantErr(t, err, ErrExists)
	_, err = db.Session(o.ID, "csid-0001")
	wantErr(t, err, ErrExpired)
}

func TestExpiryOnRead(t *testing.T) {
	c := newClock()
	db, err := Open(Options{Dir: t.TempDir(), Now: c.Now, SessionTTL: time.Minute})
	check(t, err)
	defer db.Close()
	o, _ := newOrg(t, db, "acme")
	s, _ := newSession(t, db, o.ID, "csid-0001")
	if s.ExpiresAt != s.CreatedAt+time.Minute.Milliseconds() {
		t.Fatalf("ExpiresAt %d CreatedAt %d", s.ExpiresAt, s.CreatedAt)
	}
	c.Advance(time.Minute - time.Millisecond)
	must[Session](t)(db.Session(o.ID, "csid-0001"))
	must[uint32](t)(db.AppendEvents(o.ID, "csid-0001", nil, [][]byte{[]byte("f")}, false))

	c.Advance(time.Millisecond) // now == ExpiresAt: expired
	_, err = db.Session(o.ID, "csid-0001")
	wantErr(t, err, ErrExpired)
	_, err = db.AppendEvents(o.ID, "csid-0001", nil, [][]byte{[]byte("f")}, false)
	wantErr(t, err, ErrExpired)
	_, err = db.Fields(o.ID, "csid-0001", nil)
	wantErr(t, err, ErrExpired)
	wantErr(t, db.Frames(o.ID, "csid-0001", 0, func(uint32, []byte) error { return nil }), ErrExpired)
	wantErr(t, db.SaveAggregate(o.ID, "csid-0001", nil, 1), ErrExpired)

	// Nothing was swept: expiry is a property of reading, not of the sweep.
	if countKind(t, db, kindFrame) != 1 {
		t.Fatal("frame gone before the sweep")
	}
}

func TestSaveAggregate(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-0001")
	must[uint32](t)(db.AppendEvents(o.ID, "csid-0001", nil, [][]byte{{1}, {2}, {3}}, false))

	wantErr(t, db.SaveAggregate(o.ID, "csid-0001", []byte("a4"), 4), ErrUnreceived)
	check(t, db.SaveAggregate(o.ID, "csid-0001", []byte("a2"), 2))
	wantErr(t, db.SaveAggregate(o.ID, "csid-0001", []byte("a1"), 1), ErrStale)
	check(t, db.SaveAggregate(o.ID, "csid-0001", []byte("a2 rescored"), 2)) // equal: a rescore replaces
	s := must[Session](t)(db.Session(o.ID, "csid-0001"))
	if s.FramesScored != 2 || string(s.Aggregate) != "a2 rescored" || s.Pending() != 1 {
		t.Fatalf("session %+v", s)
	}
	check(t, db.SaveAggregate(o.ID, "csid-0001", []byte("a3"), 3))
	// SessionInto reuses the caller's aggregate buffer.
	buf := make([]byte, 0, 64)
	dst := Session{Aggregate: buf}
	check(t, db.SessionInto(o.ID, "csid-0001", &dst))
	if string(dst.Aggregate) != "a3" || &dst.Aggregate[:1][0] != &buf[:1][0] || dst.FramesScored != 3 {
		t.Fatalf("SessionInto %+v", dst)
	}
	// The aggregate survives later events (they rewrite the session record).
	must[uint32](t)(db.AppendEvents(o.ID, "csid-0001", nil, [][]byte{{4}}, false))
	if s := must[Session](t)(db.Session(o.ID, "csid-0001")); string(s.Aggregate) != "a3" || s.FramesReceived != 4 {
		t.Fatalf("session %+v", s)
	}
	wantErr(t, db.SaveAggregate(o.ID, "csid-0001", make([]byte, MaxValueBytes+1), 4), ErrTooLarge)
	wantErr(t, db.SaveAggregate(o.ID, "csid-none", nil, 0), ErrNotFound)
}

// The request path reads into reused values: SessionInPlace here, and
// SessionFields, TemplateInto and AssignDecisionID beside their families.
// They must answer exactly what the copying reads answer, keep tenancy,
// and reuse their buffers.
func TestSessionInPlace(t *testing.T) {
	db, c := openMem(t)
	o, _ := newOrg(t, db, "acme")
	other, _ := newOrg(t, db, "globex")
	_, _, err := db.CreateSession(o.ID, "csid-0001", "user-1", "wire")
	check(t, err)
	_, _, err = db.CreateSession(o.ID, "csid-0002", "a-much-longer-user-id-2", "payee-change")
	check(t, err)
	check(t, db.SaveAggregate(o.ID, "csid-0001", nil, 0))

	var s Session
	for _, csid := range []string{"csid-0001", "csid-0002", "csid-0001"} {
		check(t, db.SessionInPlace(o.ID, csid, &s))
		want := must[Session](t)(db.Session(o.ID, csid))
		got := s
		got.reuse = sessionReuse{}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("in place %+v\nwant     %+v", got, want)
		}
	}
	// The views share s's buffer: the next read overwrites them.
	check(t, db.SessionInPlace(o.ID, "csid-0001", &s))
	user := s.UserID
	check(t, db.SessionInPlace(o.ID, "csid-0002", &s))
	if user == "user-1" {
		t.Fatal("the user id survived the next read: not a view of the reused buffer")
	}
	// SessionInto's strings are the caller's to keep.
	check(t, db.SessionInto(o.ID, "csid-0001", &s))
	user = s.UserID
	check(t, db.SessionInto(o.ID, "csid-0002", &s))
	if user != "user-1" {
		t.Fatalf("SessionInto's user id changed to %q", user)
	}

	wantErr(t, db.SessionInPlace(other.ID, "csid-0001", &s), ErrNotFound)
	wantErr(t, db.SessionInPlace(o.ID, "csid-none", &s), ErrNotFound)
	wantErr(t, db.SessionInPlace(OrgID{}, "csid-0001", &s), ErrNotFound)
	c.Advance(DefaultSessionTTL)
	wantErr(t, db.SessionInPlace(o.ID, "csid-0001", &s), ErrExpired)
}

// TestAggregateSaveIsNotSynced: an aggregate is derived data, saved without
// waiting for an fsync (SaveAggregate). A crash right after loses it and
// leaves the session's frames, which were synced, unscored; a synced write
// after the save carries it through, since the log is written in order.
func TestAggregateSaveIsNotSynced(t *testing.T) {
	db, fs, c := openCrashable(t)
	o, _ := newOrg(t, db, "acme")
	for _, csid := range []string{"csid-lost", "csid-kept"} {
		_, _, err := db.CreateSession(o.ID, csid, "alice", "pay")
		check(t, err)
		_, err = db.AppendEvents(o.ID, csid, nil, [][]byte{[]byte("f1"), []byte("f2")}, true)
		check(t, err)
	}
	check(t, db.SaveAggregate(o.ID, "csid-lost", []byte("agg"), 2))
	lost := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	check(t, db.SaveAggregate(o.ID, "csid-kept", []byte("agg"), 2))
	check(t, db.PutTemplate(o.ID, "alice", []byte("t"))) // synced
	kept := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	check(t, db.Close())

	for _, tc := range []struct {
		fs     *vfs.MemFS
		csid   string
		scored uint32
	}{{lost, "csid-lost", 0}, {kept, "csid-kept", 2}} {
		db, err := Open(Options{Dir: "db", FS: tc.fs, Now: c.Now})
		check(t, err)
		s, err := db.Session(o.ID, tc.csid)
		check(t, err)
		if s.FramesReceived != 2 || s.FramesScored != tc.scored {
			t.Errorf("%s after the crash: received %d scored %d, want 2 and %d", tc.csid, s.FramesReceived, s.FramesScored, tc.scored)
		}
		check(t, db.Close())
	}
}

// TestAggregateApart: the aggregate is kept in a record of its own, so the
// session record that every post rewrites stays small; every read (cached,
// through a Reader, through Pebble) returns it, and the sweep removes it.
func TestAggregateApart(t *testing.T) {
	db, c := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-apart")
	agg := bytes.Repeat([]byte{7}, 4200)
	_, _, scored, err := db.AppendEventsScored(o.ID, "csid-apart", nil, []FrameIn{{1, []byte("f1")}}, false, 0, 0, &Fold{Aggregate: agg})
	check(t, err)
	if !scored {
		t.Fatal("fold not taken")
	}
	key := appendSessionKey(nil, o.ID, "csid-apart")
	v, closer, err := db.readNewest(key)
	check(t, err)
	if len(v) > 128 || v[0] != tagSession {
		t.Fatalf("session record of %d bytes, format %02x; want at most 128, 03", len(v), v[0])
	}
	check(t, closer.Close())
	readsAggregate(t, db, o.ID, "csid-apart", agg)

	// A later post that folds nothing keeps it, and the cache keeps it.
	_, err = db.AppendEvents(o.ID, "csid-apart", []FieldValue{{Key: []byte("k"), Value: []byte(`1`)}}, nil, false)
	check(t, err)
	readsAggregate(t, db, o.ID, "csid-apart", agg)
	agg2 := bytes.Repeat([]byte{8}, 4300)
	check(t, db.SaveAggregate(o.ID, "csid-apart", agg2, 1))
	readsAggregate(t, db, o.ID, "csid-apart", agg2)

	c.Advance(DefaultSessionTTL)
	if n := must[int](t)(db.SweepExpired(0)); n != 1 || countKind(t, db, kindAggregate) != 0 {
		t.Fatalf("swept %d, %d aggregate records left", n, countKind(t, db, kindAggregate))
	}
}

// readsAggregate checks every read of the session answers agg: through
// Pebble (two Gets), through a Reader that misses the cache, and cached.
func readsAggregate(t *testing.T, db *DB, org OrgID, csid string, agg []byte) {
	t.Helper()
	var s Session
	check(t, db.SessionInto(org, csid, &s))
	if !bytes.Equal(s.Aggregate, agg) {
		t.Fatalf("SessionInto: aggregate of %d bytes, want %d", len(s.Aggregate), len(agg))
	}
	key := appendSessionKey(nil, org, csid)
	db.sc.write(key, func(*cachedSession) *cachedSession { return nil })
	rd := db.NewReader()
	defer rd.Close()
	for _, how := range []string{"a Reader's view", "the cache it filled"} {
		check(t, rd.SessionInPlace(org, csid, &s))
		if !bytes.Equal(s.Aggregate, agg) {
			t.Fatalf("through %s: aggregate of %d bytes, want %d", how, len(s.Aggregate), len(agg))
		}
		_ = must[[]FieldValue](t)(rd.SessionFields(&s, nil)) // fills the cache
		check(t, rd.Close())
	}
	if db.sc.get(key) == nil {
		t.Fatal("the read did not fill the cache")
	}
}

// TestSessionRecordOfOldFormat: a session record written before the
// aggregate had its own record (format 01, aggregate inline) still reads,
// and its next write moves the aggregate out.
func TestSessionRecordOfOldFormat(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-old01")
	_, err := db.AppendEvents(o.ID, "csid-old01", nil, [][]byte{[]byte("f1"), []byte("f2")}, false)
	check(t, err)
	key := appendSessionKey(nil, o.ID, "csid-old01")
	v, closer, err := db.readNewest(key)
	check(t, err)
	var r sessionRec
	check(t, parseSessionRec(v, &r))
	agg := bytes.Repeat([]byte{5}, 3000)
	r.scored, r.aggregate = 2, agg
	old := appendSessionRecInline(nil, &r)
	check(t, closer.Close())
	check(t, db.pdb.Set(key, old, pebble.Sync))
	db.sc.write(key, func(*cachedSession) *cachedSession { return nil })

	s := must[Session](t)(db.Session(o.ID, "csid-old01"))
	if s.FramesReceived != 2 || s.FramesScored != 2 || !bytes.Equal(s.Aggregate, agg) {
		t.Fatalf("format 01: received %d scored %d aggregate of %d bytes", s.FramesReceived, s.FramesScored, len(s.Aggregate))
	}
	readsAggregate(t, db, o.ID, "csid-old01", agg)

	// A post that folds nothing rewrites the record: the aggregate moves.
	_, stored, err := db.AppendEventsOnce(o.ID, "csid-old01", nil, []FrameIn{{3, []byte("f3")}}, false, 0, 0)
	check(t, err)
	if stored != 1 || countKind(t, db, kindAggregate) != 1 {
		t.Fatalf("stored %d; %d aggregate records, want 1", stored, countKind(t, db, kindAggregate))
	}
	v, closer, err = db.readNewest(key)
	check(t, err)
	if v[0] != tagSession {
		t.Fatalf("rewritten in format %02x", v[0])
	}
	check(t, closer.Close())
	readsAggregate(t, db, o.ID, "csid-old01", agg)
	if s := must[Session](t)(db.Session(o.ID, "csid-old01")); s.FramesReceived != 3 || s.FramesScored != 2 {
		t.Fatalf("after the move: received %d scored %d", s.FramesReceived, s.FramesScored)
	}
}

// TestAggregateOfAnotherRecord: an aggregate record whose count is not the
// session record's is a write between two Gets, read again, and damage
// when it persists (or through a Reader, whose view is one instant).
func TestAggregateOfAnotherRecord(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "csid-moved")
	_, err := db.AppendEvents(o.ID, "csid-moved", nil, [][]byte{[]byte("f1")}, false)
	check(t, err)
	check(t, db.SaveAggregate(o.ID, "csid-moved", []byte("agg"), 1))
	akey := appendAggregateKey(nil, o.ID, "csid-moved")
	check(t, db.pdb.Set(akey, append([]byte{0, 0, 0, 2}, "agg"...), pebble.Sync))
	db.sc.write(appendSessionKey(nil, o.ID, "csid-moved"), func(*cachedSession) *cachedSession { return nil })
	var s Session
	wantErr(t, db.SessionInto(o.ID, "csid-moved", &s), ErrCorrupt)
	rd := db.NewReader()
	defer rd.Close()
	wantErr(t, rd.SessionInPlace(o.ID, "csid-moved", &s), ErrCorrupt)
	if _, err := db.SessionFields(&s, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fields of a failed read: %v", err)
	}
}

// TestSpanPolicy: frames and aggregates go to blob files, nothing else.
func TestSpanPolicy(t *testing.T) {
	for kind := range 0x70 {
		p, end, err := spanPolicy([]byte{byte(kind), 1, 2})
		check(t, err)
		separated := p.ValueStoragePolicy != pebble.ValueStorageLowReadLatency
		if want := byte(kind) == kindFrame || byte(kind) == kindAggregate; separated != want {
			t.Errorf("kind %02x: separated %v", kind, separated)
		}
		if end != nil && bytes.Compare(end, []byte{byte(kind), 1, 2}) <= 0 {
			t.Errorf("kind %02x: span ends at %x, before its start", kind, end)
		}
	}
}
