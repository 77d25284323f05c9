package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/klauspost/compress/zstd"
)

// Durability says whether an acknowledged write has reached stable storage.
type Durability uint8

const (
	// Sync commits every acknowledged write with an fsync of the WAL
	// (pebble.Sync). Pebble groups the syncs of concurrent commits, so the
	// cost is shared by everyone writing at the same moment. The default.
	Sync Durability = iota
	// Relaxed commits without waiting for the fsync (pebble.NoSync): a crash
	// of the machine (not of the process) can lose the last acknowledged
	// writes. For experiments only; never the default or a headline figure.
	Relaxed
)

// String names the durability as the --durability flag spells it.
func (d Durability) String() string {
	switch d {
	case Sync:
		return "sync"
	case Relaxed:
		return "relaxed"
	}
	return fmt.Sprintf("durability(%d)", uint8(d))
}

// ParseDurability reads the --durability flag's spelling ("sync" or
// "relaxed").
func ParseDurability(s string) (Durability, error) {
	switch s {
	case "sync", "":
		return Sync, nil
	case "relaxed":
		return Relaxed, nil
	}
	return Sync, ErrDurability
}

// Size limits. They are sanity guards against absurd inputs, not the API's
// limits (the server enforces those, far lower): a record this large would
// still be stored correctly, but nothing legitimate comes close.
const (
	// MaxKeyBytes bounds every caller-chosen id that becomes part of a key:
	// csid, userID, field name, decision id, idempotency key.
	MaxKeyBytes = 1 << 10
	// MaxFrameBytes bounds one frame, and what the zstd decoder will
	// produce when reading back one stored compressed.
	MaxFrameBytes = 1 << 20
	// MaxValueBytes bounds every other variable-size value: a field value, an
	// aggregate, a template, a policy, a decision's response, an org name.
	MaxValueBytes = 4 << 20
)

// Errors. Lookups answer ErrNotFound for another organization's records
// exactly as for missing ones, so a caller cannot tell them apart.
var (
	// ErrNotFound: no such record in this organization (it may exist in
	// another; that is deliberately indistinguishable).
	ErrNotFound = errors.New("store: not found")
	// ErrExists: the id is taken (a csid, ever; an idempotency key).
	ErrExists = errors.New("store: already exists")
	// ErrExpired: the session's ExpiresAt has passed (swept or not).
	ErrExpired = errors.New("store: session expired")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrCorrupt: a stored value (or key) does not decode; never a panic.
	ErrCorrupt = errors.New("store: corrupt record")
	// ErrEmptyID: a csid, userID, field name or decision id was empty.
	ErrEmptyID = errors.New("store: empty id")
	// ErrKeyTooLong: an id that becomes part of a key exceeds MaxKeyBytes.
	ErrKeyTooLong = errors.New("store: key too long")
	// ErrTooLarge: a value exceeds MaxFrameBytes or MaxValueBytes, or a
	// session would exceed 2^32-1 frames.
	ErrTooLarge = errors.New("store: value too large")
	// ErrFrameLimit is AppendEventsOnce's answer (as a *LimitError) when
	// the frames it would store take the session past the caller's
	// maxFrames.
	ErrFrameLimit = errors.New("store: session frame limit")
	// ErrFieldLimit is AppendEventsOnce's answer (as a *LimitError) when
	// the field names it would add take the session past the caller's
	// maxFields.
	ErrFieldLimit = errors.New("store: session field limit")
	// ErrFinal is AppendEventsOnce's answer for a session marked final
	// when the call would add anything it does not already hold.
	ErrFinal = errors.New("store: session is final")
	// ErrStale is SaveAggregate's answer to an aggregate covering fewer
	// frames than the stored one: it would move the session backwards.
	ErrStale = errors.New("store: aggregate older than the stored one")
	// ErrUnreceived is SaveAggregate's answer to an aggregate claiming frames
	// the session never received.
	ErrUnreceived = errors.New("store: aggregate covers frames not received")
	// ErrNoDir: Options.Dir was empty.
	ErrNoDir = errors.New("store: no data directory")
	// ErrFormat: the directory holds a database of a key layout this code
	// does not know (written by a newer countersign).
	ErrFormat = errors.New("store: unsupported data layout version")
	// ErrDurability: not one of Sync or Relaxed.
	ErrDurability = errors.New("store: durability must be sync or relaxed")
	// ErrRandom: Options.Rand failed (crypto/rand cannot).
	ErrRandom = errors.New("store: random source failed")
	// ErrFatal: Pebble gave up (its logger's Fatalf: a write to the log
	// failed, say). The call that met it panics with an error wrapping
	// ErrFatal, since a write may be visible without being durable; every
	// later call answers ErrFatal. Only a restart, which recovers the store
	// from its log, makes it usable again.
	ErrFatal = errors.New("store: fatal storage error")
	// ErrFull: a write to the disk failed for want of space (ENOSPC or
	// EDQUOT). The store has failed as for ErrFatal, which every error
	// naming ErrFull also wraps (failure.go).
	ErrFull = errors.New("store: disk full")
	// ErrCloseTimeout: Close gave up waiting for a failed store to close
	// (failure.go). Nothing acknowledged is lost: the next Open recovers it
	// from the log.
	ErrCloseTimeout = errors.New("store: the failed store did not close in time; the next open recovers it from its log")
)

// Options configures Open. The zero value plus Dir is a production
// configuration.
type Options struct {
	Dir string // data directory, created if missing
	// FS is the file system the store runs on: nil means the OS; tests
	// pass vfs.NewMem(), or an errorfs wrapping one to make the disk fail
	// or stall. It is the one Pebble type in the store's API, kept because
	// those tests inject faults through it; it goes with the other
	// Pebble-specific options when they are split out of Options.
	FS         vfs.FS
	Durability Durability    // Sync unless the operator asked otherwise
	SessionTTL time.Duration // default 30m
	// IdempotencyTTL is how long an idempotency key is remembered after
	// the decision made with it: 0 means DefaultIdempotencyTTL, a negative
	// value forever.
	IdempotencyTTL time.Duration
	// WALSyncInterval is the least time between two WAL fsyncs under Sync
	// durability (see walMinSyncInterval in options.go for why it exists and
	// what it costs). Zero means the default, DefaultWALSyncInterval; a
	// negative value turns the wait off.
	WALSyncInterval time.Duration
	// WALSync is how WAL syncs are issued (WALSyncAuto: through io_uring
	// where the kernel allows it, so that waiting for one does not hold a
	// P; see uring_linux.go).
	WALSync WALSyncMethod
	// SessionCacheBytes bounds the session cache (sessioncache.go) that
	// validate reads sessions and fields from: 0 means
	// DefaultSessionCacheBytes, a negative value turns it off.
	SessionCacheBytes int
	// DeviceCacheBytes bounds the cache of active devices by token hash
	// (devicecache.go) that authenticates the authenticator app's calls:
	// 0 means DefaultDeviceCacheBytes, a negative value turns it off.
	DeviceCacheBytes int
	// CacheBytes sizes Pebble's block cache (default 64 MiB). Sessions and
	// org records are read on every request, so they should stay cached.
	CacheBytes int64
	Now        func() time.Time // nil: time.Now
	Rand       io.Reader        // nil: crypto/rand
	// Sealer seals the secrets the store must read back (TOTP seeds) under
	// the deployment's master key. Without one the store keeps no such
	// secret: ActivateDevice creates no TOTP seed and TOTPSeed answers
	// ErrNoSealer. countersign serve always passes one.
	Sealer *Sealer
	// Logger receives what the background sweeper has to say (sessions
	// swept, errors); nil discards it.
	Logger *slog.Logger
}

// DefaultSessionTTL is how long a session lives when Options.SessionTTL is 0.
const DefaultSessionTTL = 30 * time.Minute

// DefaultIdempotencyTTL is how long an idempotency key is remembered when
// Options.IdempotencyTTL is 0: a day, as payment APIs commonly keep them,
// long past any client's retries, and not for ever (one record per key).
const DefaultIdempotencyTTL = 24 * time.Hour

// layoutVersion is the key and record layout this code writes. 2: session
// records of format 03 with the aggregate in a record of its own (kind
// 0x15), which a binary of layout 1 would read as corrupt. A layout-1 store
// opens (its records all still read) and is marked 2, so that an older
// binary then refuses it with ErrFormat instead of misreading it.
const layoutVersion = 2

// oldestLayout is the oldest layout this code opens.
const oldestLayout = 1

// DB is countersign's store. All methods are safe for concurrent use.
type DB struct {
	pdb *pebble.DB
	wo  *pebble.WriteOptions
	ttl time.Duration
	// idemTTL: how long an idempotency key is remembered; 0 for ever.
	idemTTL time.Duration
	now     func() time.Time
	rand    io.Reader
	log     *slog.Logger
	sealer  *Sealer // nil: no sealed secrets (Options.Sealer)
	// randMu guards an injected Options.Rand, which need not be safe for
	// concurrent use; crypto/rand is and does not take it.
	randMu sync.Mutex
	// lastID is the last decision id made, so the next rises above it.
	lastID idClock

	// inflight counts calls in progress; Close subtracts closingBias, so a
	// negative count means closing and every new call answers ErrClosed.
	// Close then waits on drained for the calls in flight, so no call reaches
	// Pebble after it is closed (Pebble panics then). A counter rather than
	// an RWMutex: entering never blocks, so a callback that calls back into
	// the store while Close waits gets ErrClosed instead of a deadlock, and
	// concurrent calls never exclude each other.
	inflight atomic.Int64
	// redeliveryLookups counts the frame re-delivery records appendEvents
	// looked up: one per frame of AppendEventsOnce, except repeats within
	// the call and frames at or above a known seq floor (sessioncache.go);
	// the tests read it. It sits beside inflight, which every call writes
	// anyway, rather than on orgGen's line, which every authenticated
	// request reads.
	redeliveryLookups atomic.Uint64
	drained           chan struct{}
	drainedOnce       sync.Once
	closeOnce         sync.Once
	closeErr          error

	// yield makes background table writers give way to requests; every
	// call entering the store tells it one is being served (yield.go).
	yield *yielder
	uring *uringSyncer // the WAL's syncs (walsync.go)
	// uringTables syncs table files, on a ring of its own (fs.go).
	uringTables *uringSyncer
	// sc is the session cache; nil when Options turned it off.
	sc *sessionCache
	// dc is the device cache; nil when Options turned it off.
	dc *deviceCache
	// afterDeviceRead, set by tests only, runs between a DeviceByToken's
	// read from Pebble and its fill of the cache: where a write racing
	// with it must win (devicecache.go).
	afterDeviceRead func()

	// failureState says whether the store has failed for good, and why
	// (failure.go).
	failureState

	// damagedFrames counts stored frames Frames skipped because they do not
	// decompress (see DamagedFrames).
	damagedFrames atomic.Uint64

	stripes [numStripes]stripe

	// orgGen counts changes to organizations and their credentials (see
	// OrgGeneration).
	orgGen atomic.Uint64

	zdec *zstd.Decoder

	outboxState // webhook subscriptions' cache and the outbox (outbox.go)
	expiryState // the approval and activation code sweeps (expirysweep.go)
}

// Open opens (creating if needed) the store in o.Dir.
func Open(o Options) (*DB, error) {
	if o.Dir == "" {
		return nil, ErrNoDir
	}
	if o.Durability > Relaxed {
		return nil, ErrDurability
	}
	db := &DB{ttl: o.SessionTTL, now: o.Now, rand: o.Rand, sealer: o.Sealer, wo: pebble.Sync, log: o.Logger,
		drained: make(chan struct{}), yield: newYielder()}
	db.outboxSignal = make(chan struct{}, 1)
	db.failed = make(chan struct{})
	if o.Durability == Relaxed {
		db.wo = pebble.NoSync
	}
	if db.ttl <= 0 {
		db.ttl = DefaultSessionTTL
	}
	switch {
	case o.IdempotencyTTL == 0:
		db.idemTTL = DefaultIdempotencyTTL
	case o.IdempotencyTTL > 0:
		db.idemTTL = o.IdempotencyTTL
	}
	switch {
	case o.SessionCacheBytes == 0:
		db.sc = newSessionCache(DefaultSessionCacheBytes)
	case o.SessionCacheBytes > 0:
		db.sc = newSessionCache(o.SessionCacheBytes)
	}
	switch {
	case o.DeviceCacheBytes == 0:
		db.dc = newDeviceCache(DefaultDeviceCacheBytes)
	case o.DeviceCacheBytes > 0:
		db.dc = newDeviceCache(o.DeviceCacheBytes)
	}
	if db.now == nil {
		db.now = time.Now
	}
	if db.log == nil {
		db.log = slog.New(slog.DiscardHandler)
	}
	var err error
	// Frames are stored as they come (appendStoredFrame); the decoder reads
	// those stored zstd-compressed before. It refuses to produce more than
	// a frame may hold, so a damaged or hostile blob cannot make it
	// allocate without bound.
	db.zdec, err = zstd.NewReader(nil,
		zstd.WithDecoderMaxMemory(MaxFrameBytes),
		zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)))
	if err != nil {
		return nil, err
	}

	cacheBytes := o.CacheBytes
	if cacheBytes <= 0 {
		cacheBytes = 64 << 20
	}
	cache := pebble.NewCache(cacheBytes)
	defer cache.Unref() // Open takes its own reference.
	fs := o.FS
	if fs == nil {
		fs = vfs.Default
	}
	if err := db.setupWALSync(o.WALSync, fs); err != nil {
		db.zdec.Close()
		return nil, err
	}
	po := &pebble.Options{
		FS:                 storeFS{FS: fs, y: db.yield, sy: db.uring, tsy: db.uringTables, db: db},
		Cache:              cache,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{db.log},
	}
	// Set apart from the literal above (which is being tuned separately):
	// the logger must mark this DB dead before Fatalf panics.
	po.Logger = deadOnFatal{pebbleLogger: pebbleLogger{db.log}, db: db}
	// Bloom filters (Pebble builds none by default), for the reads that look
	// for keys usually absent (has: a frame's re-delivery record, a new
	// csid) through readNewest: a table that cannot hold the key then costs
	// a filter probe instead of an index and a data block. Not on the last
	// level: Pebble consults L6 filters only for iterators that ask
	// (IterOptions.UseL6Filters), which Get cannot, so there they would cost
	// 10 bits a key and build time for nothing.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	po.Levels[len(po.Levels)-1].FilterPolicy = pebble.NoFilterPolicy
	// Frames (2 KiB each, a session's several dozen) are most of what is
	// written, and are never rewritten: in blob files they are written
	// once, and compactions move a reference instead of the bytes through
	// every level (the transaction scenario's profile had a fifth of the
	// server's CPU in compactions rewriting them). Aggregates (4 KiB and
	// more) too: a session's is rewritten by every post that scores
	// frames (a flush writes every version of a key, but only the newest
	// to a blob file, the older ones into the table's value blocks, which
	// the next compaction drops), and validate reads it from the session
	// cache. Every other record (the session record, some 120 bytes without
	// its aggregate, read by every request) stays in its tables
	// (spanPolicy).
	po.Experimental.SpanPolicyFunc = spanPolicy
	po.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           minSeparatedValue,
			MaxBlobReferenceDepth: 10,
			RewriteMinimumAge:     5 * time.Minute,
			TargetGarbageRatio:    0.2,
		}
	}
	applyPebbleOptions(po, db, o.WALSyncInterval)
	// Table writers must not pause while Pebble holds writes back for them
	// (yield.go).
	po.EventListener = &pebble.EventListener{
		WriteStallBegin: func(pebble.WriteStallBeginInfo) { db.yield.stall.Store(true) },
		WriteStallEnd:   func() { db.yield.stall.Store(false) },
		// A flush or compaction that cannot write fails the store, and
		// Pebble's retries of it are not logged each (failure.go).
		BackgroundError: db.backgroundError,
	}
	db.pdb, err = pebble.Open(o.Dir, po)
	if err != nil {
		db.zdec.Close()
		db.closeWALSync()
		return nil, err
	}
	if err := db.checkLayout(); err != nil {
		_ = db.pdb.Close()
		db.closeWALSync()
		db.zdec.Close()
		return nil, err
	}
	return db, nil
}

// minSeparatedValue is the smallest value kept in a blob file: a stored
// frame (a 512-d one is about 2 KiB) and an aggregate (twice that) are.
const minSeparatedValue = 1024

// spanPolicy separates the values of the frame and aggregate key ranges
// (kindFrame, kindAggregate) into blob files, and keeps every other
// record's values in its tables.
func spanPolicy(start []byte) (pebble.SpanPolicy, []byte, error) {
	inTables := pebble.SpanPolicy{ValueStoragePolicy: pebble.ValueStorageLowReadLatency}
	switch {
	case len(start) == 0 || start[0] < kindFrame:
		return inTables, spanBounds[0], nil
	case start[0] == kindFrame:
		return pebble.SpanPolicy{}, spanBounds[1], nil
	case start[0] < kindAggregate:
		return inTables, spanBounds[2], nil
	case start[0] == kindAggregate:
		return pebble.SpanPolicy{}, spanBounds[3], nil
	}
	return inTables, nil, nil
}

// spanBounds are where spanPolicy's spans end (shared: Pebble only reads them).
var spanBounds = [...][]byte{{kindFrame}, {kindFrame + 1}, {kindAggregate}, {kindAggregate + 1}}

// checkLayout records the key layout version in a new database, marks one
// of an older layout this code reads as of its own, and refuses to open one
// written with a layout this code does not know.
func (db *DB) checkLayout() error {
	key := metaKey()
	v, closer, err := db.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return db.pdb.Set(key, []byte{layoutVersion}, pebble.Sync)
	}
	if err != nil {
		return err
	}
	if len(v) != 1 || v[0] < oldestLayout || v[0] > layoutVersion {
		closer.Close()
		return ErrFormat
	}
	older := v[0] < layoutVersion
	closer.Close()
	if older {
		return db.pdb.Set(key, []byte{layoutVersion}, pebble.Sync)
	}
	return nil
}

// Close waits for calls in flight, then closes the database. Later calls
// answer ErrClosed. Closing twice is harmless. Once the store has failed
// (Failed), Close waits at most a few seconds and then answers
// ErrCloseTimeout, leaving the rest to the process's exit: a failed store
// may never finish closing.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.closeErr = db.closeBounded(func() error {
			if db.inflight.Add(-closingBias) != -closingBias {
				<-db.drained
			}
			err := db.pdb.Close()
			db.closeWALSync() // after Pebble's last sync
			db.zdec.Close()
			return err
		})
	})
	return db.closeErr
}

// OrgGeneration counts the changes this DB has made to organizations and
// their credentials (CreateOrg, AddAPIKey, SetOrgPolicy, BindCert). It
// lets a caller cache what it resolved from an API key or a client id: an
// entry read when the generation was g is current as long as the
// generation is still g. Read the generation before the lookup whose
// result is cached; the store bumps it after the change is committed, so a
// lookup that raced a change is tagged with the older generation and is
// never served after it.
//
// Only this process's writes are counted. Nothing else can write: Pebble
// locks the data directory, so `countersign org` and friends run only
// while no server has the store open.
func (db *DB) OrgGeneration() uint64 { return db.orgGen.Load() }

// orgChanged marks a committed change to an organization or credential.
func (db *DB) orgChanged() { db.orgGen.Add(1) }

// nowMs is the store's clock in unix milliseconds.
func (db *DB) nowMs() int64 { return db.now().UnixMilli() }

// random fills p from Options.Rand or crypto/rand.
func (db *DB) random(p []byte) error {
	if db.rand == nil {
		_, _ = rand.Read(p) // crypto/rand.Read never fails; it crashes the program instead
		return nil
	}
	db.randMu.Lock()
	defer db.randMu.Unlock()
	if _, err := io.ReadFull(db.rand, p); err != nil {
		return fmt.Errorf("%w: %v", ErrRandom, err)
	}
	return nil
}

// read is pebble.DB.Get done with an iterator: the value of key, valid
// until the returned closer is closed. Missing keys are ErrNotFound.
//
// Get allocates a filter slice for every sstable it consults (Pebble v2
// builds its per-table options without the scratch its iterators carry), so
// a read that reaches the LSM's lower levels, which every read does in
// steady state, costs one allocation per table. An iterator's level
// iterators bring their own scratch, and SeekPrefixGE consults the same
// bloom filters Get does, at about Get's cost (BenchmarkPointRead). But an
// iterator positions itself in every level, where Get stops at the newest
// version: readNewest is for records rewritten often.
func (db *DB) read(key []byte) ([]byte, io.Closer, error) {
	it, err := db.pdb.NewIter(nil)
	if err != nil {
		return nil, nil, err
	}
	if !it.SeekPrefixGE(key) || !bytes.Equal(it.Key(), key) {
		if err := it.Close(); err != nil {
			return nil, nil, err
		}
		return nil, nil, ErrNotFound
	}
	v, err := it.ValueAndErr()
	if err != nil {
		_ = it.Close()
		return nil, nil, err
	}
	return v, it, nil
}

// readNewest is read done with pebble.DB.Get: the memtables, then the
// tables newest first, stopping at the first that holds key. An iterator
// positions itself in every level, so for a record rewritten often (an
// active session's, rewritten by every events post) it reads a block of
// each table still holding an old version; and with the bloom filters
// (Open) a table above the last level that cannot hold an absent key costs
// Get only a probe. Get
// allocates one small slice per table it consults, so the validate path,
// which allocates nothing, reads through iterators instead (read, Reader);
// the events path and the workers read here (PERF.md, "Reads that stop at
// the newest version").
func (db *DB) readNewest(key []byte) ([]byte, io.Closer, error) {
	v, closer, err := db.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil, ErrNotFound
	}
	return v, closer, err
}

// get copies out the value of key through fn, so that Pebble's buffer is
// released before get returns. Missing keys are ErrNotFound.
func (db *DB) get(key []byte, fn func(v []byte) error) error {
	return db.getVia(nil, key, fn)
}

// getVia is get reading through rd, or (nil) an iterator of its own.
func (db *DB) getVia(rd *Reader, key []byte, fn func(v []byte) error) error {
	v, closer, err := db.readVia(rd, key)
	if err != nil {
		return err
	}
	err = fn(v)
	if cerr := closer.Close(); err == nil {
		err = cerr
	}
	return err
}

// has says whether key exists.
func (db *DB) has(key []byte) (bool, error) {
	_, closer, err := db.readNewest(key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, closer.Close()
}

// commit applies b with the store's durability and releases it.
func (db *DB) commit(b *pebble.Batch) error {
	err := b.Commit(db.wo)
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	return err
}

// numStripes is the number of mutexes that serialise read-modify-write of
// one record. Two identities sharing a stripe only wait for each other; 256
// keeps that rare at the concurrency one process sees.
const numStripes = 256

// stripe is padded to a cache line so neighbouring stripes do not share one.
type stripe struct {
	sync.Mutex
	_ [64 - 8]byte
}

// Domains keep stripes of different record types from coinciding by
// construction for equal strings (they still may by hash, harmlessly).
const (
	domainSession = 's'
	domainOrg     = 'o'
	domainIdem    = 'i'
)

// lock takes the stripe of (domain, org, id) and returns it for Unlock.
func (db *DB) lock(domain byte, org OrgID, id string) *stripe {
	s := &db.stripes[stripeOf(domain, org, id)]
	s.Lock()
	return s
}

// lockBytes is lock for an id held in bytes, which a conversion to string
// would copy to the heap when it is longer than 32 bytes.
func (db *DB) lockBytes(domain byte, org OrgID, id []byte) *stripe {
	s := &db.stripes[stripeOf(domain, org, id)]
	s.Lock()
	return s
}

func stripeOf[T string | []byte](domain byte, org OrgID, id T) uint64 {
	// FNV-1a: allocation-free and good enough to spread ids over stripes.
	const prime = 1099511628211
	h := (uint64(14695981039346656037) ^ uint64(domain)) * prime
	for _, c := range org {
		h = (h ^ uint64(c)) * prime
	}
	for i := 0; i < len(id); i++ {
		h = (h ^ uint64(id[i])) * prime
	}
	return h % numStripes
}

// pebbleLogger sends Pebble's log lines to the store's slog.Logger instead
// of the standard library's global logger, so they are structured like the
// rest of the server's logs and silent in tests.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Info(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf must not return: Pebble calls it when continuing could damage the
// database. The standard logger would exit the process; a panic does too
// unless someone recovers it, and it carries a stack. The panic value is an
// error wrapping ErrFatal, so a recovering caller can tell it from a bug
// with errors.Is.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble")
	panic(fmt.Errorf("%w: pebble: %s", ErrFatal, msg))
}

// deadOnFatal is the logger Open gives Pebble: pebbleLogger, whose Fatalf
// first fails the DB, so that no call reaches Pebble again (a commit that
// failed may be readable from the memtable without being durable). Every
// commit that met one failed log write calls Fatalf; only the first is
// logged. When the disk is full the panic wraps ErrFull as well.
type deadOnFatal struct {
	pebbleLogger
	db *DB
}

func (p deadOnFatal) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.db.dead.Store(true)
	p.db.failOnce.Do(func() { close(p.db.failed) })
	if p.db.fatalLogged.CompareAndSwap(false, true) {
		p.l.Error(msg, "component", "pebble")
	}
	panic(fmt.Errorf("%w: pebble: %s", p.db.failure(), msg))
}
