package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// viewThrough reads a session and its fields the way validate does, through
// a fresh Reader (and so, the session cache), and renders what it got.
func viewThrough(db *DB, org OrgID, csid string) string {
	r := db.NewReader()
	defer r.Close()
	var s Session
	if err := r.SessionInPlace(org, csid, &s); err != nil {
		return "error " + err.Error()
	}
	fields, err := r.SessionFields(&s, nil)
	return renderView(&s, fields, err)
}

// viewOfPebble reads the same from Pebble, bypassing the cache.
func viewOfPebble(db *DB, org OrgID, csid string) string {
	var s Session
	if err := db.SessionInto(org, csid, &s); err != nil {
		return "error " + err.Error()
	}
	fields, err := db.SessionFields(&s, nil)
	return renderView(&s, fields, err)
}

func renderView(s *Session, fields []FieldValue, err error) string {
	e := *s
	e.reuse = sessionReuse{}
	return fmt.Sprintf("%v fields %s %v", e, fmtFields(fields), err)
}

func cached(db *DB, org OrgID, csid string) bool {
	o := org
	return db.sc.get(appendSessionKey(nil, o, csid)) != nil
}

// TestSessionCacheAgreesWithPebble drives sessions through random writes
// (new fields, a field replaced, repeated names in one call, frames, final,
// aggregate saves, expiry and sweeps, evictions) and checks after every step
// that a read through the cache answers exactly what Pebble holds.
func TestSessionCacheAgreesWithPebble(t *testing.T) {
	db, c := openMem(t)
	o, _ := newOrg(t, db, "acme")
	rng := rand.New(rand.NewPCG(11, 12))
	csids := []string{"s-0", "s-1", "s-2", "s-3"}
	for _, csid := range csids {
		newSession(t, db, o.ID, csid)
	}
	names := []string{"amount", "payee", "Amount", "notes", "zz", "a"}
	hits := 0
	for step := range 3000 {
		csid := csids[rng.IntN(len(csids))]
		switch op := rng.IntN(10); {
		case op < 5:
			var fs []FieldValue
			for i := rng.IntN(4); i > 0; i-- {
				fs = append(fs, FieldValue{Key: []byte(names[rng.IntN(len(names))]),
					Value: fmt.Appendf(nil, "%d", rng.IntN(1000)), TS: int64(step)})
			}
			var frames [][]byte
			if rng.IntN(3) == 0 {
				frames = [][]byte{fmt.Appendf(nil, "frame-%d", step)}
			}
			_, err := db.AppendEvents(o.ID, csid, fs, frames, rng.IntN(20) == 0)
			if err != nil && err != ErrExpired {
				t.Fatal(err)
			}
		case op < 7:
			var s Session
			if db.SessionInto(o.ID, csid, &s) == nil {
				err := db.SaveAggregate(o.ID, csid, fmt.Appendf(nil, "agg-%d", step), s.FramesReceived)
				if err != nil && err != ErrStale {
					t.Fatal(err)
				}
			}
		case op < 8:
			// Evict everything: the next reads miss and fill.
			for i := range db.sc.shards {
				sh := &db.sc.shards[i]
				sh.mu.Lock()
				clear(sh.m)
				sh.bytes = 0
				sh.mu.Unlock()
			}
		case op < 9 && step%300 == 0:
			c.Advance(DefaultSessionTTL / 2)
			if _, err := db.SweepExpired(0); err != nil {
				t.Fatal(err)
			}
		}
		for _, csid := range csids {
			wasCached := cached(db, o.ID, csid)
			got, want := viewThrough(db, o.ID, csid), viewOfPebble(db, o.ID, csid)
			if got != want {
				t.Fatalf("step %d %s (cached %v):\n got %s\nwant %s", step, csid, wasCached, got, want)
			}
			if wasCached {
				hits++
			}
		}
	}
	if hits < 1000 {
		t.Fatalf("only %d reads were answered from the cache", hits)
	}
}

// TestSessionCacheRefusesAStaleFill is the race the generation guards
// against: a Reader takes its view, a write commits after it, and the
// Reader then misses and would fill the cache from its older view.
func TestSessionCacheRefusesAStaleFill(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "s-1")
	check(t, db.PutTemplate(o.ID, "u", []byte("t")))
	db.sc.shards = [sessionCacheShards]cacheShard{} // nothing cached
	for i := range db.sc.shards {
		db.sc.shards[i].m = make(map[string]*cacheSlot)
	}

	r := db.NewReader()
	defer r.Close()
	must[[]byte](t)(r.TemplateInto(o.ID, "u", nil)) // the view is taken here
	must[uint32](t)(db.AppendEvents(o.ID, "s-1", []FieldValue{{Key: []byte("amount"), Value: []byte("5")}}, nil, false))
	var s Session
	check(t, r.SessionInPlace(o.ID, "s-1", &s))
	fields, err := r.SessionFields(&s, nil)
	if err != nil || len(fields) != 0 {
		t.Fatalf("the old view: %s %v", fmtFields(fields), err) // a snapshot: the write is not in it
	}
	if cached(db, o.ID, "s-1") {
		t.Fatal("a view older than a write filled the cache")
	}
	if got, want := viewThrough(db, o.ID, "s-1"), viewOfPebble(db, o.ID, "s-1"); got != want || !bytes.Contains([]byte(got), []byte("amount")) {
		t.Fatalf("after the write:\n got %s\nwant %s", got, want)
	}
	if !cached(db, o.ID, "s-1") {
		t.Fatal("a fresh view did not fill the cache")
	}
}

// TestSessionCacheExpiry: a cached session past its expiry answers
// ErrExpired like a stored one.
func TestSessionCacheExpiry(t *testing.T) {
	db, c := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "s-1")
	if !cached(db, o.ID, "s-1") {
		t.Fatal("a new session is not cached")
	}
	c.Advance(DefaultSessionTTL)
	if got := viewThrough(db, o.ID, "s-1"); got != "error "+ErrExpired.Error() {
		t.Fatalf("expired session through the cache: %s", got)
	}
	if _, err := db.SweepExpired(0); err != nil {
		t.Fatal(err)
	}
	if cached(db, o.ID, "s-1") {
		t.Fatal("a swept session is still cached")
	}
}

// TestSessionCacheBudget: past its byte budget the cache evicts, and reads
// stay right.
func TestSessionCacheBudget(t *testing.T) {
	c := newClock()
	db, err := Open(Options{Dir: "db", FS: vfs.NewMem(), Now: c.Now, SessionCacheBytes: 64 * 1024})
	check(t, err)
	defer db.Close()
	o, _ := newOrg(t, db, "acme")
	big := bytes.Repeat([]byte("9"), 900)
	for i := range 400 {
		csid := fmt.Sprintf("s-%03d", i)
		newSession(t, db, o.ID, csid)
		must[uint32](t)(db.AppendEvents(o.ID, csid, []FieldValue{{Key: []byte("notes"), Value: big}}, nil, false))
	}
	total, n := 0, 0
	for i := range db.sc.shards {
		total += db.sc.shards[i].bytes
		n += len(db.sc.shards[i].m)
	}
	if total > 64*1024+sessionCacheShards*2048 || n >= 400 {
		t.Fatalf("cache holds %d bytes in %d entries over a 64 KiB budget", total, n)
	}
	for i := range 400 {
		csid := fmt.Sprintf("s-%03d", i)
		if got, want := viewThrough(db, o.ID, csid), viewOfPebble(db, o.ID, csid); got != want {
			t.Fatalf("%s:\n got %s\nwant %s", csid, got, want)
		}
	}
}

// TestSessionCacheConcurrent: events, aggregate saves and validate-style
// reads on the same sessions at once (run it with -race); every read sees a
// state Pebble held, and once the writes stop, cache and Pebble agree.
func TestSessionCacheConcurrent(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	csids := []string{"s-0", "s-1", "s-2"}
	for _, csid := range csids {
		newSession(t, db, o.ID, csid)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				csid := csids[(w+i)%len(csids)]
				f := FieldValue{Key: fmt.Appendf(nil, "f%d", i%5), Value: fmt.Appendf(nil, "%d", i)}
				if _, err := db.AppendEvents(o.ID, csid, []FieldValue{f}, [][]byte{[]byte("x")}, false); err != nil {
					t.Error(err)
					return
				}
				var s Session
				if db.SessionInto(o.ID, csid, &s) == nil {
					_ = db.SaveAggregate(o.ID, csid, []byte("a"), s.FramesReceived)
				}
			}
		}()
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, csid := range csids {
					r := db.NewReader()
					var s Session
					if err := r.SessionInPlace(o.ID, csid, &s); err != nil {
						t.Error(err)
					}
					fields, err := r.SessionFields(&s, nil)
					if err != nil || len(fields) > 5 {
						t.Errorf("%s: %d fields, %v", csid, len(fields), err)
					}
					_ = r.Close()
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	for _, csid := range csids {
		got, want := viewThrough(db, o.ID, csid), viewOfPebble(db, o.ID, csid)
		if got != want {
			t.Fatalf("%s after the writes:\n got %s\nwant %s", csid, got, want)
		}
	}
}

// A cached session's fields are shared with readers: the snapshot must not
// change when a later write publishes another one.
func TestSessionCacheSnapshotsAreImmutable(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "s-1")
	must[uint32](t)(db.AppendEvents(o.ID, "s-1", []FieldValue{{Key: []byte("amount"), Value: []byte("1")}}, nil, false))
	r := db.NewReader()
	defer r.Close()
	var s Session
	check(t, r.SessionInPlace(o.ID, "s-1", &s))
	fields := must[[]FieldValue](t)(r.SessionFields(&s, nil))
	before := fmtFields(fields)
	snapshot := reflect.ValueOf(s.reuse.cached).Pointer()
	must[uint32](t)(db.AppendEvents(o.ID, "s-1", []FieldValue{{Key: []byte("amount"), Value: []byte("2")}, {Key: []byte("b"), Value: []byte("3")}}, nil, false))
	if after := fmtFields(fields); after != before {
		t.Fatalf("a reader's fields changed under it: %s -> %s", before, after)
	}
	if o2 := o.ID; reflect.ValueOf(db.sc.get(appendSessionKey(nil, o2, "s-1"))).Pointer() == snapshot {
		t.Fatal("the write did not publish a new snapshot")
	}
}

// TestSessionInPlaceViewsTheSnapshot: a cached session read in place copies
// neither its aggregate nor its ids, and a later read into the same Session
// (from Pebble, into the Session's own buffer) leaves the snapshot intact.
func TestSessionInPlaceViewsTheSnapshot(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	for _, csid := range []string{"s-1", "s-2"} {
		newSession(t, db, o.ID, csid)
		check(t, db.SaveAggregate(o.ID, csid, []byte("aggregate of "+csid), 0))
	}
	r := db.NewReader()
	defer r.Close()
	var s Session
	check(t, r.SessionInPlace(o.ID, "s-1", &s))
	snap := s.reuse.cached
	if snap == nil {
		t.Fatal("s-1 is not cached")
	}
	// inside: b's bytes are snap.rec's (b[0] is at or after its start, and
	// the last byte before its end).
	inside := func(b []byte) bool {
		start, end := uintptr(unsafe.Pointer(unsafe.SliceData(snap.rec))), uintptr(len(snap.rec))
		p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		return len(b) > 0 && p >= start && p+uintptr(len(b)) <= start+end
	}
	user := unsafe.Slice(unsafe.StringData(s.UserID), len(s.UserID))
	if !inside(s.Aggregate) || !inside(user) || string(s.Aggregate) != "aggregate of s-1" {
		t.Fatalf("the aggregate %q or user %q was copied", s.Aggregate, s.UserID)
	}
	before := slices.Clone(snap.rec)
	check(t, db.SessionInPlace(o.ID, "s-2", &s)) // no Reader: from Pebble
	if string(s.Aggregate) != "aggregate of s-2" || inside(s.Aggregate) {
		t.Fatalf("read from Pebble: %q", s.Aggregate)
	}
	if !bytes.Equal(before, snap.rec) {
		t.Fatalf("a later read wrote into the snapshot: %q -> %q", before, snap.rec)
	}
}

// TestTemplateCacheAgreesWithPebble: random template writes (put, delete,
// an enrolling decision) between reads through Readers, some of them with
// views taken before the write; every read answers what Pebble held when
// the Reader's view was taken, and a fresh Reader what Pebble holds now.
func TestTemplateCacheAgreesWithPebble(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	rng := rand.New(rand.NewPCG(21, 22))
	users := []string{"u-0", "u-1", "u-2"}
	render := func(b []byte, err error) string { return fmt.Sprintf("%q %v", b, err) }
	fromPebble := func(user string) string { return render(db.TemplateInto(o.ID, user, nil)) }
	hits := 0
	for step := range 2000 {
		user := users[rng.IntN(len(users))]
		old := db.NewReader()
		wantOld := map[string]string{}
		for _, u := range users {
			wantOld[u] = fromPebble(u)
		}
		_, _, _ = old.Idempotent(o.ID, []byte("k")) // takes the view (never cached)
		t.Cleanup(func() { _ = old.Close() })       // before the store's Close, if a check fails
		switch rng.IntN(4) {
		case 0:
			check(t, db.PutTemplate(o.ID, user, fmt.Appendf(nil, "t-%d", step)))
		case 1:
			if err := db.DeleteTemplate(o.ID, user); err != nil && err != ErrNotFound {
				t.Fatal(err)
			}
		case 2:
			d := Decision{ID: db.NewDecisionID(), OrgID: o.ID, CSID: "c", UserID: user, Response: []byte{1},
				Template: fmt.Appendf(nil, "enrolled-%d", step), TemplateUser: user}
			check(t, db.PutDecision(&d, nil, [32]byte{}))
		}
		for _, u := range users {
			if got := render(old.TemplateInto(o.ID, u, nil)); got != wantOld[u] {
				t.Fatalf("step %d %s through the older view: %s, want %s", step, u, got, wantOld[u])
			}
		}
		_ = old.Close()
		for _, u := range users {
			k := o.ID
			if db.sc.get(appendTemplateKey(nil, k, u)) != nil {
				hits++
			}
			r := db.NewReader()
			got := render(r.TemplateInto(o.ID, u, nil))
			_ = r.Close()
			if want := fromPebble(u); got != want {
				t.Fatalf("step %d %s: %s, want %s", step, u, got, want)
			}
		}
	}
	if hits < 1000 {
		t.Fatalf("only %d template reads were answered from the cache", hits)
	}
}

// A session whose snapshot would pass maxSnapshotBytes is not cached (each
// events post would copy it all), and reads of it stay right.
func TestSessionCacheSkipsLargeSessions(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "s-big")
	val := bytes.Repeat([]byte("7"), 4096)
	for i := range 20 {
		must[uint32](t)(db.AppendEvents(o.ID, "s-big", []FieldValue{{Key: fmt.Appendf(nil, "f%02d", i), Value: val}}, nil, false))
	}
	if cached(db, o.ID, "s-big") {
		t.Fatal("an 80 KiB session is cached")
	}
	for range 2 { // the second read would hit a fill
		if got, want := viewThrough(db, o.ID, "s-big"), viewOfPebble(db, o.ID, "s-big"); got != want {
			t.Fatalf("got %s\nwant %s", got, want)
		}
	}
	if cached(db, o.ID, "s-big") {
		t.Fatal("a read filled the cache with an 80 KiB session")
	}
}

// With the cache off, Readers read Pebble and answer the same.
func TestSessionCacheOff(t *testing.T) {
	c := newClock()
	db, err := Open(Options{Dir: "db", FS: vfs.NewMem(), Now: c.Now, SessionCacheBytes: -1})
	check(t, err)
	defer db.Close()
	if db.sc != nil {
		t.Fatal("a cache with SessionCacheBytes < 0")
	}
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "s-1")
	must[uint32](t)(db.AppendEvents(o.ID, "s-1", []FieldValue{{Key: []byte("amount"), Value: []byte("5")}}, nil, false))
	check(t, db.PutTemplate(o.ID, "u", []byte("t")))
	if got, want := viewThrough(db, o.ID, "s-1"), viewOfPebble(db, o.ID, "s-1"); got != want || !bytes.Contains([]byte(got), []byte("amount")) {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	r := db.NewReader()
	defer r.Close()
	if got, err := r.TemplateInto(o.ID, "u", nil); err != nil || string(got) != "t" {
		t.Fatalf("template: %q %v", got, err)
	}
}

// A session read through one Reader and its fields through another, older
// one: the fields come from the older view, so nothing is filled.
func TestSessionCacheFillNeedsOneView(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	newSession(t, db, o.ID, "s-1")
	old := db.NewReader()
	defer old.Close()
	_, _, _ = old.Idempotent(o.ID, []byte("k")) // older view
	must[uint32](t)(db.AppendEvents(o.ID, "s-1", []FieldValue{{Key: []byte("amount"), Value: []byte("5")}}, nil, false))
	for i := range db.sc.shards { // a miss from here on
		db.sc.shards[i].m = make(map[string]*cacheSlot)
		db.sc.shards[i].bytes = 0
	}
	fresh := db.NewReader()
	defer fresh.Close()
	var s Session
	check(t, fresh.SessionInPlace(o.ID, "s-1", &s))
	if _, err := old.SessionFields(&s, nil); err != nil {
		t.Fatal(err)
	}
	if cached(db, o.ID, "s-1") {
		t.Fatal("a record from one view was published with fields from an older one")
	}
}
