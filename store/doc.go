// Package store keeps countersign's durable state in one Pebble database:
// organizations and their credentials, sessions with their collected fields,
// frames and biometric aggregate, enrolled templates, decisions and
// idempotency records. It is the only package that imports Pebble, so the
// key layout and the record encodings below are private to it.
//
// # Durability
//
// Every write a caller is told succeeded was committed with pebble.Sync
// (unless the database was opened with Relaxed durability), and every API
// call is one atomic batch. No global lock is held across a commit, so
// concurrent callers' syncs are grouped by Pebble's commit pipeline.
// Read-modify-write of one session (or one organization, or one idempotency
// key) is serialised by a striped mutex chosen by a hash of its identity.
//
// # Key layout
//
// A key is one record-kind byte, then (for tenant records) the 8-byte
// organization id, then the record's own id parts. Every part except the
// last is fixed-width or length-prefixed with a uvarint, and the last part
// runs to the end of the key. So a key decodes unambiguously (decodeKey), and
// a prefix that ends on a part boundary, which is the only kind of prefix the
// store ever scans, covers exactly the records under it: no id, whatever
// bytes it holds, can make one session's fields appear under another's.
//
// The organization id is Org.ID's 8 bytes (OrgID; 16 hex characters where
// people see it); the zero OrgID names no organization. lp(x) is
// uvarint(len(x)) followed by x; be32 and be64 are big-endian, so integer
// parts sort numerically.
//
//	kind  name         key after the kind byte              value
//	0x00  meta         "layout"                             layout version (1 byte)
//	0x01  org          org                                  org record
//	0x02  org-by-cid   cid                                  org
//	0x03  org-by-key   sha256(api key)                      api key record (org, hash, created)
//	0x04  org-doc      org doc kind (1 byte: rules, settings)  version, updated, canonical JSON
//	0x05  org-key      org keyID                            key listing (created, scope, name, prefix, hash)
//	0x10  session      org lp(csid)                         session record (format 01 held its aggregate); tombstone once swept
//	0x11  field        org lp(csid) name                    ts, raw JSON value
//	0x12  frame        org lp(csid) be32(arrival index)     0x00 frame bytes (zstd(frame bytes) if stored before)
//	0x13  expiry       be64(expiresAt ms) org csid          empty
//	0x14  frame-seq    org lp(csid) be64(seq) digest16      be32(arrival index)
//	0x15  aggregate    org lp(csid)                         be32(frames scored) biometric aggregate bytes, opaque
//	0x20  template     org userID                           template bytes, opaque
//	0x30  decision     org decisionID                       decision record
//	0x31  idempotency  org idempotency key                  request hash, decision id
//	0x32  idem-expiry  be64(expiresAt ms) org idempotency key  empty
//	0x33  decision-by-user  org lp(userID) decisionID      empty
//	0x40  user         org userID                           user record (created, devices, mobile, e-mail, name)
//	0x41  user-by-mobile  org E.164 mobile                  userID
//	0x42  user-by-email   org lowercase e-mail              userID
//	0x43  user-state   org userID                           approval.AppendUserState bytes
//	0x44  device       org deviceID                         device record
//	0x45  device-by-user  org lp(userID) deviceID           empty
//	0x46  device-by-token  sha256(device token)             org, token hash, deviceID
//	0x47  activation   sha256(activation code)              org, code hash, created, expires, userID
//	0x48  totp-seed    org userID                           the user's TOTP seed, sealed (Sealer) with this key as additional data
//	0x49  code-expiry  be64(expiresAt ms) sha256(activation code)  empty
//	0x50  approval     org approvalID                       approval.AppendApproval bytes
//	0x51  approval-by-user  org lp(userID) be64(createdAt ns) approvalID  empty
//	0x52  pending      org lp(userID) be64(createdAt ns) approvalID  be64(expiresAt ns)
//	0x53  approval-expiry  be64(expiresAt ms, rounded up) org approvalID  empty
//	0x60  webhook      org webhookID                        subscription (created, format, events, url, sealed secret)
//	0x61  outbox       be64(due ns) org lp(eventID) webhookID  created, attempts, event, body
//	0x62  delivery     org lp(webhookID) be64(seq)          one attempt of the delivery log
//
// Nine kinds are not organization-first, by necessity: org-by-cid,
// org-by-key, device-by-token and activation resolve a credential to its
// organization before the organization is known, and expiry, idem-expiry,
// code-expiry, approval-expiry and outbox are ordered by time so
// the sweeps and the delivery worker read only what is due (a
// key expires Options.IdempotencyTTL after its decision, whose id carries
// the time it was made). None of them is ever answered to a caller
// without going through the organization's own records.
//
// Field keys end with the field name as sent, so iterating a session's
// fields yields them sorted by name; frame keys end with a fixed-width index,
// so iterating a session's frames yields them in arrival order. A frame-seq
// key records that the session holds a frame with that seq whose stored
// bytes have that digest (the first 16 bytes of their SHA-256);
// AppendEventsOnce writes one with each frame it stores and skips a frame
// whose key exists, which is how a client's retry of a request is not stored
// twice.
//
// # Records
//
// Values are compact binary, written by append-style encoders and parsed in
// place by bounds-checked decoders: a damaged value is ErrCorrupt, never a
// panic. The formats are listed in records.go. The first byte of every structured value is a tag naming its
// format, so a future format can be told apart from this one. A decision's
// answer is opaque to the store: the server keeps a compact record of it
// (server/decisionrec.go) and renders the JSON from that; logs written
// before records existed hold the JSON answer itself. The only JSON the
// store writes is an organization's policy, kept as the operator wrote it.
//
// # Reads on the request path
//
// A validate reads a session, its fields and a template, and writes a
// decision, and does so without allocating once its buffers have grown:
// SessionInPlace, SessionFields, TemplateInto and AssignDecisionID fill
// values and buffers the caller reuses, and PutDecision's batch comes from
// Pebble's pool. The copying reads (Session, Fields, Template,
// NewDecisionID) remain for callers that keep what they read. A Reader's
// point reads go through its iterator rather than pebble.DB.Get, which
// allocates for every sstable it consults (see read); reads made without
// a Reader, off the validate path, use Get, which stops at a record's
// newest version (readNewest). Organizations are not read per request at
// all: the server caches what a credential resolves to, and OrgGeneration
// tells it when the cache is stale. Through a Reader, sessions with their
// fields, and templates, come from the session cache when it has them
// (sessioncache.go), so a validate of a session this process has been
// receiving events for reads nothing from Pebble.
//
// # Writes and the disk
//
// Table files are written by writers that give way to requests while the
// store is serving (yield.go), and the WAL is synced through io_uring where
// the kernel allows it (uring_linux.go), so a sync in flight does not hold
// the goroutine's P; both matter most on one core. Every write acknowledged
// to a client is synced; sweeps and aggregate saves, whose loss a crash
// only undoes, are not.
//
// # Users, devices and approvals
//
// A user's records (the user, its devices, its approvals, its state) are
// written under the user's stripe, so the approval engine's transitions,
// which read and write an approval and its user's state together, never
// interleave for one user (engine/approval's "Serialisation"). Both
// engine records carry a Version the store compares before it writes and
// raises with every write, so a write based on a stale read is refused
// (ErrConflict) rather than lost. Mobile numbers and e-mail addresses are
// unique per organization through their index records, which are changed
// under the organization's directory stripe as well as the user's. The
// pending index lists each user's pending approvals oldest first, with
// their expiry, so admission counts them and the device's long poll finds
// them without reading decided ones; an approval leaves it in the batch
// that decides it. Active devices are authenticated from memory (the
// device cache, devicecache.go, keyed by token hash): every write of a
// device drops its entry after the commit, so a revoked device's next call
// is refused. The engine's records (approval, user-state) keep their own
// format byte in place of the store's tag; the family's own formats, in
// the notation of records.go, are
//
//	user        01 created:8 uvarint(devices) lp(mobile) lp(email) name...
//	device      01 flags created:8 revoked:8 publicKey:32 tokenHash:32 lp(userID) lp(platform) lp(appVersion) lp(model) pushToken...
//	dev token   01 org:8 tokenHash:32 deviceID...
//	activation  01 org:8 codeHash:32 created:8 expires:8 userID...
//
// with device flags bit 0 jailbroken, and times in unix ms (the engine's
// records and the approval index keys hold unix ns, as the engine does).
//
// # Sessions
//
// A csid is unique within its organization forever. The session record is
// the proof that a csid was used: the sweep replaces an expired session's
// record with a small tombstone and deletes its fields, frames and
// aggregate, so the csid stays taken and the session keeps answering
// ErrExpired rather than ErrNotFound.
package store
