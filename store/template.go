package store

import (
	"errors"
)

// Template returns the user's enrolled face template (opaque to the store).
// ErrNotFound if the user has none.
func (db *DB) Template(orgIDs, userID string) ([]byte, error) {
	t, err := db.TemplateInto(orgIDs, userID, nil)
	if err == nil && t == nil {
		t = []byte{}
	}
	return t, err
}

// TemplateInto appends the user's template to dst and returns it: Template
// into a caller's reused buffer, so that reading a template allocates
// nothing once the buffer has grown. ErrNotFound (and dst unchanged) if the
// user has none.
func (db *DB) TemplateInto(orgIDs, userID string, dst []byte) ([]byte, error) {
	return db.templateInto(nil, orgIDs, userID, dst)
}

// templateInto reads through rd, or (nil) an iterator of its own. Through
// rd it reads the cache first (templates are kept there beside sessions,
// whole, absences included; every template write drops its entry).
func (db *DB) templateInto(rd *Reader, orgIDs, userID string, dst []byte) ([]byte, error) {
	org, ok := parseOrgID(orgIDs)
	if !ok || userID == "" || len(userID) > MaxKeyBytes {
		return dst, ErrNotFound
	}
	if err := db.enter(); err != nil {
		return dst, err
	}
	defer db.exit()
	s := acquireScratch()
	defer releaseScratch(s)
	s.key = appendTemplateKey(s.key[:0], org, userID)
	useCache := rd != nil && db.sc != nil
	if useCache {
		if e := db.sc.get(s.key); e != nil {
			if e.absent {
				return dst, ErrNotFound
			}
			return append(dst, e.rec...), nil
		}
	}
	v, closer, err := db.readVia(rd, s.key)
	if useCache && (err == nil || errors.Is(err, ErrNotFound)) {
		// rd.gen was noted when its view was opened, by this read or an
		// earlier one.
		db.sc.fill(s.key, rd.gen, newCachedTemplate(v, err != nil))
	}
	if err != nil {
		return dst, err
	}
	dst = append(dst, v...)
	return dst, closer.Close()
}

// dropTemplate removes a user's template from the cache after a write of it.
func (db *DB) dropTemplate(key []byte) {
	if db.sc != nil {
		db.sc.write(key, func(*cachedSession) *cachedSession { return nil })
	}
}

// PutTemplate stores (replacing) the user's template, synced.
func (db *DB) PutTemplate(orgIDs, userID string, tmpl []byte) error {
	org, ok := parseOrgID(orgIDs)
	switch {
	case !ok:
		return ErrNotFound
	case userID == "":
		return ErrEmptyID
	case len(userID) > MaxKeyBytes:
		return ErrKeyTooLong
	case len(tmpl) > MaxValueBytes:
		return ErrTooLarge
	}
	if err := db.enter(); err != nil {
		return err
	}
	defer db.exit()
	s := acquireScratch()
	defer releaseScratch(s)
	b := db.pdb.NewBatch()
	s.key = appendTemplateKey(s.key[:0], org, userID)
	_ = b.Set(s.key, tmpl, nil)
	err := db.commit(b)
	if err == nil {
		db.dropTemplate(s.key)
	}
	return err
}

// DeleteTemplate removes the user's template (an operator's reset, after
// which the user enrolls afresh), synced. ErrNotFound if there was none.
func (db *DB) DeleteTemplate(orgIDs, userID string) error {
	org, ok := parseOrgID(orgIDs)
	if !ok || userID == "" || len(userID) > MaxKeyBytes {
		return ErrNotFound
	}
	if err := db.enter(); err != nil {
		return err
	}
	defer db.exit()
	s := acquireScratch()
	defer releaseScratch(s)
	s.key = appendTemplateKey(s.key[:0], org, userID)
	if ok, err := db.has(s.key); err != nil || !ok {
		if err == nil {
			err = ErrNotFound
		}
		return err
	}
	b := db.pdb.NewBatch()
	_ = b.Delete(s.key, nil)
	err := db.commit(b)
	if err == nil {
		db.dropTemplate(s.key)
	}
	return err
}
