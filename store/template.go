package store

import (
	"errors"
)

// Template returns the user's enrolled face template (opaque to the store).
// ErrNotFound if the user has none.
func (db *DB) Template(org OrgID, userID string) ([]byte, error) {
	t, err := db.TemplateInto(org, userID, nil)
	if err == nil && t == nil {
		t = []byte{}
	}
	return t, err
}

// TemplateInto appends the user's template to dst and returns it: Template
// into a caller's reused buffer, so that reading a template allocates
// nothing once the buffer has grown. ErrNotFound (and dst unchanged) if the
// user has none.
func (db *DB) TemplateInto(org OrgID, userID string, dst []byte) ([]byte, error) {
	return db.templateInto(nil, org, userID, dst)
}

// templateInto reads through rd, or (nil) an iterator of its own. Through
// rd it reads the cache first (templates are kept there beside sessions,
// whole, absences included; every template write drops its entry).
func (db *DB) templateInto(rd *Reader, org OrgID, userID string, dst []byte) ([]byte, error) {
	c, err := db.begin(org, lookupID(userID))
	if err != nil {
		return dst, err
	}
	defer c.end()
	c.key = appendTemplateKey(c.key[:0], c.org, userID)
	useCache := rd != nil && db.sc != nil
	if useCache {
		if e := db.sc.get(c.key); e != nil {
			if e.absent {
				return dst, ErrNotFound
			}
			return append(dst, e.rec...), nil
		}
	}
	v, closer, err := db.readVia(rd, c.key)
	if useCache && (err == nil || errors.Is(err, ErrNotFound)) {
		// rd.gen was noted when its view was opened, by this read or an
		// earlier one.
		db.sc.fill(c.key, rd.gen, newCachedTemplate(v, err != nil))
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
func (db *DB) PutTemplate(org OrgID, userID string, tmpl []byte) error {
	c, err := db.begin(org, templateArgs(userID, tmpl))
	if err != nil {
		return err
	}
	defer c.end()
	b := db.pdb.NewBatch()
	c.key = appendTemplateKey(c.key[:0], c.org, userID)
	_ = b.Set(c.key, tmpl, nil)
	err = db.commit(b)
	if err == nil {
		db.dropTemplate(c.key)
	}
	return err
}

// templateArgs is PutTemplate's argErr.
func templateArgs(userID string, tmpl []byte) error {
	switch {
	case userID == "":
		return ErrEmptyID
	case len(userID) > MaxKeyBytes:
		return ErrKeyTooLong
	case len(tmpl) > MaxValueBytes:
		return ErrTooLarge
	}
	return nil
}

// DeleteTemplate removes the user's template (an operator's reset, after
// which the user enrolls afresh), synced. ErrNotFound if there was none.
func (db *DB) DeleteTemplate(org OrgID, userID string) error {
	c, err := db.begin(org, lookupID(userID))
	if err != nil {
		return err
	}
	defer c.end()
	c.key = appendTemplateKey(c.key[:0], c.org, userID)
	if ok, err := db.has(c.key); err != nil || !ok {
		if err == nil {
			err = ErrNotFound
		}
		return err
	}
	b := db.pdb.NewBatch()
	_ = b.Delete(c.key, nil)
	err = db.commit(b)
	if err == nil {
		db.dropTemplate(c.key)
	}
	return err
}
