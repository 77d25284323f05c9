package store

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nyaruka/phonenumbers"

	"github.com/countersign/countersign/engine/approval"
)

// User is a person an organization asks for approvals: the id the
// organization knows them by, how to reach them (a mobile number, unique in
// the organization, and an e-mail address, unique too), a display name, and
// how many registered devices they have. What the approval engine keeps
// about them between approvals (failures, lock) is their UserState
// (userstate.go), a record of its own because it changes with every answer.
type User struct {
	OrgID     OrgID
	UserID    string // 1 to approval.MaxUserIDLen bytes
	Mobile    string // E.164 ("+14155550100"); "" when none
	Email     string // lowercase; "" when none
	Name      string
	CreatedAt int64 // unix ms
	Devices   int   // registered devices not revoked
}

// UserPatch is UpdateUser's change, with PATCH semantics: a nil field keeps
// its value, a pointer to "" clears it.
type UserPatch struct {
	Mobile, Email, Name *string
}

// Page sizes of the paged lists (ListUsers, ApprovalsOfUser): a limit of
// zero or less means DefaultPageLimit, and one above MaxPageLimit is
// MaxPageLimit.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 1000
)

// Errors of the user family.
var (
	// ErrUserID: a user id to create is empty or longer than
	// approval.MaxUserIDLen (a lookup of one answers ErrNotFound).
	ErrUserID = fmt.Errorf("store: user id must be 1 to %d bytes", approval.MaxUserIDLen)
	// ErrMobile: not a phone number phonenumbers knows as valid; wrapped
	// with the number and what is wrong with it.
	ErrMobile = errors.New("store: invalid mobile number")
	// ErrEmail: not an e-mail address; wrapped with the address.
	ErrEmail = errors.New("store: invalid e-mail address")
	// ErrMobileTaken: another user of the organization has the mobile number.
	ErrMobileTaken = errors.New("store: mobile number belongs to another user")
	// ErrEmailTaken: another user of the organization has the e-mail address.
	ErrEmailTaken = errors.New("store: e-mail address belongs to another user")
	// ErrCursor: a list cursor this store did not hand out.
	ErrCursor = errors.New("store: invalid list cursor")
)

// Stripe domains of the approval families. A user's stripe serialises
// everything written about the user: the user record (its device count),
// devices, activation, approvals and user state. The directory stripe,
// one per organization, serialises the changes of mobile numbers and
// e-mail addresses, which must be unique across users; the calls that take
// both take them in stripe order (lockUserDirectory).
const (
	domainUser    = 'u'
	domainUserDir = 'U'
)

// maxMobileInput bounds what NormalizeMobile parses: far above any phone
// number, well below what would make parsing costly.
const maxMobileInput = 64

// NormalizeMobile returns the E.164 form ("+447911123456") of a mobile
// number given as "+CC..." (countryCode empty) or as a national number with
// its country calling code ("44" or "+44" and "07911 123456"). Spaces,
// dashes and parentheses are allowed, as people write numbers. A number
// phonenumbers does not consider valid for its country is refused, naming
// the number.
func NormalizeMobile(countryCode, number string) (string, error) {
	number = strings.TrimSpace(number)
	if number == "" {
		return "", fmt.Errorf("%w: empty", ErrMobile)
	}
	if len(number) > maxMobileInput || len(countryCode) > 8 {
		return "", fmt.Errorf("%w: longer than %d characters", ErrMobile, maxMobileInput)
	}
	var num *phonenumbers.PhoneNumber
	var err error
	cc := strings.TrimPrefix(strings.TrimSpace(countryCode), "+")
	if cc == "" {
		if !strings.HasPrefix(number, "+") {
			return "", fmt.Errorf("%w: %q has no country code (give +CC... or a country code)", ErrMobile, number)
		}
		num, err = phonenumbers.Parse(number, "ZZ")
	} else {
		code, cerr := strconv.Atoi(cc)
		region := phonenumbers.GetRegionCodeForCountryCode(code)
		if cerr != nil || code <= 0 || region == "ZZ" {
			return "", fmt.Errorf("%w: %q is not a country calling code", ErrMobile, countryCode)
		}
		switch {
		case strings.HasPrefix(number, "+"):
			num, err = phonenumbers.Parse(number, "ZZ")
		case region == "001":
			// Non-geographic codes (800, 882, ...) have no region to parse in.
			num, err = phonenumbers.Parse("+"+cc+number, "ZZ")
		default:
			num, err = phonenumbers.Parse(number, region)
		}
		if err == nil && int(num.GetCountryCode()) != code {
			return "", fmt.Errorf("%w: %q is not a number of country code %s", ErrMobile, number, cc)
		}
	}
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrMobile, number, err)
	}
	if !phonenumbers.IsValidNumber(num) {
		return "", fmt.Errorf("%w: %q is not a valid number for its country", ErrMobile, number)
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// maxEmailLen is the longest address SMTP carries (RFC 5321's 254).
const maxEmailLen = 254

// NormalizeEmail returns addr trimmed and lowercased, the form users are
// stored and looked up by, refusing what is not local@domain. It does not
// try to be RFC 5322: the organization's mailer is the judge of what
// delivers; this only keeps one address from being stored twice.
func NormalizeEmail(addr string) (string, error) {
	addr = strings.ToLower(strings.TrimSpace(addr))
	at := strings.LastIndexByte(addr, '@')
	switch {
	case addr == "":
		return "", fmt.Errorf("%w: empty", ErrEmail)
	case len(addr) > maxEmailLen:
		return "", fmt.Errorf("%w: longer than %d bytes", ErrEmail, maxEmailLen)
	case at <= 0 || at == len(addr)-1 || strings.IndexByte(addr, '@') != at:
		return "", fmt.Errorf("%w: %q is not local@domain", ErrEmail, addr)
	}
	for i := 0; i < len(addr); i++ {
		if c := addr[i]; c <= ' ' || c == 0x7f {
			return "", fmt.Errorf("%w: %q holds a space or control character", ErrEmail, addr)
		}
	}
	return addr, nil
}

// userContact normalises the mobile and e-mail of a user being written;
// empty stays empty (none).
func userContact(mobile, email string) (string, string, error) {
	var err error
	if mobile != "" {
		if mobile, err = NormalizeMobile("", mobile); err != nil {
			return "", "", err
		}
	}
	if email != "" {
		if email, err = NormalizeEmail(email); err != nil {
			return "", "", err
		}
	}
	return mobile, email, nil
}

// userIDArg refuses a user id no user may have.
func userIDArg(userID string) error {
	if userID == "" || len(userID) > approval.MaxUserIDLen {
		return ErrUserID
	}
	return nil
}

// lookupUserID is the argErr of a read by user id: an id no user can have
// is simply not found.
func lookupUserID(userID string) error {
	if userID == "" || len(userID) > approval.MaxUserIDLen {
		return ErrNotFound
	}
	return nil
}

// CreateUser stores a new user, with its mobile number normalised to E.164
// and its e-mail lowercased, and returns it as stored. ErrExists if the
// organization has a user with that id; ErrMobileTaken or ErrEmailTaken if
// another user has the number or the address; ErrNotFound if the
// organization does not exist.
func (db *DB) CreateUser(org OrgID, u User) (User, error) {
	mobile, email, argErr := userContact(u.Mobile, u.Email)
	if err := userIDArg(u.UserID); err != nil {
		argErr = err
	} else if len(u.Name) > MaxKeyBytes {
		argErr = ErrTooLarge
	}
	c, err := db.begin(org, argErr)
	if err != nil {
		return User{}, err
	}
	defer c.end()
	if err := db.orgExists(c); err != nil {
		return User{}, err
	}
	if st := db.lockUserDirectory(c, u.UserID); st != nil {
		defer st.Unlock()
	}
	c.key = appendUserKey(c.key[:0], c.org, u.UserID)
	if ok, err := db.has(c.key); err != nil || ok {
		if err == nil {
			err = ErrExists
		}
		return User{}, err
	}
	if err := db.contactFree(c, mobile, email); err != nil {
		return User{}, err
	}
	r := userRec{createdAt: db.nowMs(), mobile: []byte(mobile), email: []byte(email), name: []byte(u.Name)}
	b := db.pdb.NewBatch()
	c.val = appendUserRec(c.val[:0], &r)
	_ = b.Set(c.key, c.val, nil)
	setContactIndexes(b, c, u.UserID, mobile, email)
	if err := db.commit(b); err != nil {
		return User{}, err
	}
	return User{OrgID: org, UserID: u.UserID, Mobile: mobile, Email: email, Name: u.Name, CreatedAt: r.createdAt}, nil
}

// orgExists answers ErrNotFound unless c's organization exists, for the
// calls that create a record in it.
func (db *DB) orgExists(c *call) error {
	c.key = appendOrgKey(c.key[:0], c.org)
	ok, err := db.has(c.key)
	if err == nil && !ok {
		err = ErrNotFound
	}
	return err
}

// contactFree answers ErrMobileTaken or ErrEmailTaken when another user
// holds the number or the address ("" is none and always free).
func (db *DB) contactFree(c *call, mobile, email string) error {
	for _, ix := range [...]struct {
		kind  byte
		value string
		taken error
	}{{kindUserByMobile, mobile, ErrMobileTaken}, {kindUserByEmail, email, ErrEmailTaken}} {
		if ix.value == "" {
			continue
		}
		c.key2 = appendUserPart(c.key2[:0], ix.kind, c.org, ix.value)
		if ok, err := db.has(c.key2); err != nil || ok {
			if err == nil {
				err = ix.taken
			}
			return err
		}
	}
	return nil
}

// setContactIndexes adds to b the index records that resolve the mobile
// number and the e-mail address ("" for none) to userID.
func setContactIndexes(b *pebble.Batch, c *call, userID, mobile, email string) {
	if mobile != "" {
		c.key2 = appendUserPart(c.key2[:0], kindUserByMobile, c.org, mobile)
		_ = b.Set(c.key2, []byte(userID), nil)
	}
	if email != "" {
		c.key2 = appendUserPart(c.key2[:0], kindUserByEmail, c.org, email)
		_ = b.Set(c.key2, []byte(userID), nil)
	}
}

// deleteContactIndexes adds to b the deletion of those index records.
func deleteContactIndexes[T string | []byte](b *pebble.Batch, c *call, mobile, email T) {
	if len(mobile) > 0 {
		c.key2 = appendUserPart(c.key2[:0], kindUserByMobile, c.org, mobile)
		_ = b.Delete(c.key2, nil)
	}
	if len(email) > 0 {
		c.key2 = appendUserPart(c.key2[:0], kindUserByEmail, c.org, email)
		_ = b.Delete(c.key2, nil)
	}
}

// lockUserDirectory holds, until c ends, the user's stripe, and returns the
// organization's directory stripe, locked, for the caller to unlock (nil
// when the two are one stripe). It locks the lower-numbered stripe first:
// every call that holds two stripes takes them in that one order, so no two
// can each hold what the other waits for; every other call holds one and
// waits for none while holding it.
func (db *DB) lockUserDirectory(c *call, userID string) *stripe {
	u := stripeOf(domainUser, c.org, userID)
	d := stripeOf(domainUserDir, c.org, "")
	if u == d {
		c.hold(db.lock(domainUser, c.org, userID))
		return nil
	}
	first, second := &db.stripes[min(u, d)], &db.stripes[max(u, d)]
	first.Lock()
	second.Lock()
	if u < d {
		c.hold(first)
		return second
	}
	c.hold(second)
	return first
}

// User returns the organization's user. ErrNotFound if there is none, in
// this organization.
func (db *DB) User(org OrgID, userID string) (User, error) {
	c, err := db.begin(org, lookupUserID(userID))
	if err != nil {
		return User{}, err
	}
	defer c.end()
	return db.user(c, userID)
}

func (db *DB) user(c *call, userID string) (User, error) {
	u := User{OrgID: c.org, UserID: userID}
	c.key = appendUserKey(c.key[:0], c.org, userID)
	err := db.get(c.key, func(v []byte) error {
		var r userRec
		if err := parseUserRec(v, &r); err != nil {
			return err
		}
		u.Mobile, u.Email, u.Name = string(r.mobile), string(r.email), string(r.name)
		u.CreatedAt, u.Devices = r.createdAt, int(r.devices)
		return nil
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// UserByMobile returns the user with the mobile number, given in any form
// NormalizeMobile reads without a country code. ErrNotFound if no user of
// the organization has it; a malformed number is ErrMobile.
func (db *DB) UserByMobile(org OrgID, mobile string) (User, error) {
	m, err := NormalizeMobile("", mobile)
	return db.userByContact(org, kindUserByMobile, m, err)
}

// UserByEmail returns the user with the e-mail address, compared
// lowercase. ErrNotFound if no user of the organization has it; a
// malformed address is ErrEmail.
func (db *DB) UserByEmail(org OrgID, email string) (User, error) {
	e, err := NormalizeEmail(email)
	return db.userByContact(org, kindUserByEmail, e, err)
}

func (db *DB) userByContact(org OrgID, kind byte, value string, argErr error) (User, error) {
	c, err := db.begin(org, argErr)
	if err != nil {
		return User{}, err
	}
	defer c.end()
	var userID string
	c.key = appendUserPart(c.key[:0], kind, c.org, value)
	if err := db.get(c.key, func(v []byte) error { userID = string(v); return nil }); err != nil {
		return User{}, err
	}
	return db.user(c, userID)
}

// UpdateUser applies p to the user and returns the user as stored. A
// changed mobile number or e-mail address moves its index record in the
// same batch as the user record, so a lookup finds the user by the old
// value or by the new one, never by both or neither. ErrMobileTaken or
// ErrEmailTaken if another user has the new value; ErrNotFound if the
// organization has no such user.
func (db *DB) UpdateUser(org OrgID, userID string, p UserPatch) (User, error) {
	var mobile, email string
	var argErr error
	if p.Mobile != nil {
		mobile, _, argErr = userContact(*p.Mobile, "")
	}
	if p.Email != nil && argErr == nil {
		_, email, argErr = userContact("", *p.Email)
	}
	if p.Name != nil && len(*p.Name) > MaxKeyBytes && argErr == nil {
		argErr = ErrTooLarge
	}
	if err := lookupUserID(userID); err != nil {
		argErr = err
	}
	c, err := db.begin(org, argErr)
	if err != nil {
		return User{}, err
	}
	defer c.end()
	if st := db.lockUserDirectory(c, userID); st != nil {
		defer st.Unlock()
	}
	old, err := db.user(c, userID)
	if err != nil {
		return User{}, err
	}
	u := old
	if p.Mobile != nil {
		u.Mobile = mobile
	}
	if p.Email != nil {
		u.Email = email
	}
	if p.Name != nil {
		u.Name = *p.Name
	}
	var newMobile, newEmail, oldMobile, oldEmail string
	if u.Mobile != old.Mobile {
		newMobile, oldMobile = u.Mobile, old.Mobile
	}
	if u.Email != old.Email {
		newEmail, oldEmail = u.Email, old.Email
	}
	if err := db.contactFree(c, newMobile, newEmail); err != nil {
		return User{}, err
	}
	b := db.pdb.NewBatch()
	deleteContactIndexes(b, c, oldMobile, oldEmail)
	setContactIndexes(b, c, userID, newMobile, newEmail)
	c.key = appendUserKey(c.key[:0], c.org, userID)
	c.val = appendUserRec(c.val[:0], &userRec{createdAt: u.CreatedAt, devices: uint64(u.Devices),
		mobile: []byte(u.Mobile), email: []byte(u.Email), name: []byte(u.Name)})
	_ = b.Set(c.key, c.val, nil)
	if err := db.commit(b); err != nil {
		return User{}, err
	}
	return u, nil
}

// DeleteUser removes the user, its mobile and e-mail index records, its
// devices (which stop resolving by token) and its user state, and cancels
// its pending approvals, in one batch. Decided approvals stay, as the
// organization's audit trail. ErrNotFound if the organization has no such
// user.
func (db *DB) DeleteUser(org OrgID, userID string) error {
	c, err := db.begin(org, lookupUserID(userID))
	if err != nil {
		return err
	}
	defer c.end()
	if st := db.lockUserDirectory(c, userID); st != nil {
		defer st.Unlock()
	}
	b := db.pdb.NewBatch()
	var tokens [][32]byte
	c.key = appendUserKey(c.key[:0], c.org, userID)
	err = db.get(c.key, func(v []byte) error {
		var r userRec
		if err := parseUserRec(v, &r); err != nil {
			return err
		}
		deleteContactIndexes(b, c, r.mobile, r.email)
		return nil
	})
	if err == nil {
		_ = b.Delete(c.key, nil)
		c.key = appendUserStateKey(c.key[:0], c.org, userID)
		_ = b.Delete(c.key, nil)
		c.key = appendTOTPSeedKey(c.key[:0], c.org, userID)
		_ = b.Delete(c.key, nil)
		tokens, err = db.deleteDevicesOf(b, c, userID)
	}
	if err == nil {
		err = db.cancelPending(b, c, userID, "", db.now())
	}
	if err != nil {
		_ = b.Close()
		return err
	}
	err = db.commitEvents(b, c)
	// Whatever the commit's outcome, the devices' tokens are no longer
	// known to be active (devicecache.go).
	for i := range tokens {
		db.dropDevice(&tokens[i])
	}
	return err
}

// ListUsers returns a page of the organization's users, ordered by id, and
// the cursor of the next page ("" after the last). cursor is "" for the
// first page, else a next a previous call returned.
func (db *DB) ListUsers(org OrgID, limit int, cursor string) ([]User, string, error) {
	after, argErr := parseCursor(cursor)
	c, err := db.begin(org, argErr)
	if err != nil {
		return nil, "", err
	}
	defer c.end()
	var users []User
	c.key = appendUserKey(c.key[:0], c.org, "")
	next, err := db.scanPage(c.key, after, limit, false, func(id, v []byte) error {
		var r userRec
		if err := parseUserRec(v, &r); err != nil {
			return err
		}
		users = append(users, User{OrgID: org, UserID: string(id), Mobile: string(r.mobile),
			Email: string(r.email), Name: string(r.name), CreatedAt: r.createdAt, Devices: int(r.devices)})
		return nil
	})
	return users, next, err
}

// parseCursor reads a cursor scanPage made: base64url of the key suffix of
// the last record of the previous page. It is opaque to callers; this is
// only its spelling.
// beginUserPage begins a call listing a page of one user's records (an
// audit trail): the cursor's key suffix to start after, and the call, or
// the error of a bad cursor or user id.
func (db *DB) beginUserPage(org OrgID, userID, cursor string) (*call, []byte, error) {
	after, argErr := parseCursor(cursor)
	if err := lookupUserID(userID); err != nil {
		argErr = err
	}
	c, err := db.begin(org, argErr)
	return c, after, err
}

func parseCursor(cursor string) ([]byte, error) {
	if cursor == "" {
		return nil, nil
	}
	after, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(after) == 0 || len(after) > MaxKeyBytes+16 {
		return nil, ErrCursor
	}
	return after, nil
}

// scanPage calls fn with the suffix after prefix and the value of up to
// limit records under prefix, in key order (reverse: descending), starting
// after the suffix after (nil: from the first). It returns the cursor of
// the next page, "" when there is none. The suffix and value alias Pebble's
// buffers for the duration of fn.
func (db *DB) scanPage(prefix, after []byte, limit int, reverse bool, fn func(suffix, v []byte) error) (string, error) {
	switch {
	case limit <= 0:
		limit = DefaultPageLimit
	case limit > MaxPageLimit:
		limit = MaxPageLimit
	}
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(nil, prefix)})
	if err != nil {
		return "", err
	}
	start := append(append([]byte(nil), prefix...), after...)
	var valid bool
	switch {
	case after == nil && !reverse:
		valid = it.First()
	case after == nil:
		valid = it.Last()
	case !reverse:
		// The records after the cursor's: the first key above it.
		if valid = it.SeekGE(start); valid && string(it.Key()) == string(start) {
			valid = it.Next()
		}
	default:
		valid = it.SeekLT(start)
	}
	var last []byte
	n := 0
	for ; valid; n++ {
		if n == limit {
			return base64.RawURLEncoding.EncodeToString(last), it.Close()
		}
		v, err := it.ValueAndErr()
		if err == nil {
			last = append(last[:0], it.Key()[len(prefix):]...)
			err = fn(last, v)
		}
		if err != nil {
			_ = it.Close()
			return "", err
		}
		if reverse {
			valid = it.Prev()
		} else {
			valid = it.Next()
		}
	}
	return "", it.Close()
}

// userRec is a user record; slices alias the value.
type userRec struct {
	createdAt int64
	devices   uint64
	mobile    []byte
	email     []byte
	name      []byte
}

func appendUserRec(dst []byte, r *userRec) []byte {
	dst = append(dst, tagV1)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.createdAt))
	dst = binary.AppendUvarint(dst, r.devices)
	dst = appendLP(dst, r.mobile)
	dst = appendLP(dst, r.email)
	return append(dst, r.name...)
}

func parseUserRec(v []byte, r *userRec) error {
	*r = userRec{}
	p := parser{b: v}
	if p.byte1() != tagV1 {
		return ErrCorrupt
	}
	r.createdAt = p.i64()
	r.devices = p.uvarint()
	r.mobile = p.lp()
	r.email = p.lp()
	r.name = p.rest()
	if !p.done() || r.devices > 1<<31 {
		return ErrCorrupt
	}
	return nil
}

// addDevices changes the user's device count by delta, adding the write
// to b and leaving the user's key in c.key. ErrNotFound if the user is
// gone (DeleteUser takes its devices with it, so a device outliving its
// user is not a state the store leaves).
func (db *DB) addDevices(b *pebble.Batch, c *call, userID string, delta int) error {
	c.key = appendUserKey(c.key[:0], c.org, userID)
	err := db.get(c.key, func(v []byte) error {
		var r userRec
		if err := parseUserRec(v, &r); err != nil {
			return err
		}
		if delta > 0 && int(r.devices)+delta > MaxDevicesPerUser {
			return ErrTooManyDevices
		}
		r.devices = uint64(max(int(r.devices)+delta, 0))
		c.val = appendUserRec(c.val[:0], &r)
		return nil
	})
	if err != nil {
		return err
	}
	return b.Set(c.key, c.val, nil)
}
