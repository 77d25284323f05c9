package store

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// MasterKeyFile is the master key's file name in the data directory, where
// init creates it unless told another path.
const MasterKeyFile = "master.key"

// MasterKeyPath is the default master key file of the data directory dir.
func MasterKeyPath(dir string) string { return filepath.Join(dir, MasterKeyFile) }

// A master key file is one text line:
//
//	countersign-master-key-v1 <standard base64 of the 32 key bytes>\n
//
// rather than the raw 32 bytes, because the name says what the file is (a
// TLS key or any other 32-byte file given by mistake is refused by name, not
// taken as a key), the version lets a later format (several keys, for
// rotation) be told apart, and text survives being pasted into a secret
// manager or a deployment template. The final newline is optional, since
// such tools often add or strip one.
const masterKeyPrefix = "countersign-master-key-v1 "

// masterKeyLineSize is the line without its newline: 44 is the padded
// base64 length of 32 bytes.
const masterKeyLineSize = len(masterKeyPrefix) + 44

var (
	// ErrMasterKeyExists is returned by CreateMasterKey when the file is
	// already there: a master key is never replaced, since every value
	// sealed under it would be lost with it.
	ErrMasterKeyExists = errors.New("store: master key file already exists (it is never overwritten)")
	// ErrMasterKeyMissing is returned by LoadMasterKey when there is no file.
	ErrMasterKeyMissing = errors.New("store: master key file does not exist")
	// ErrMasterKeyExposed is returned by LoadMasterKey for a file whose mode
	// lets group or others read or write it.
	ErrMasterKeyExposed = errors.New("store: master key file is accessible to group or others")
	// ErrMasterKeyFormat is returned by LoadMasterKey for a file that is not
	// the one line CreateMasterKey writes.
	ErrMasterKeyFormat = errors.New("store: master key file is not a countersign master key")
)

// CreateMasterKey writes a new master key of 32 bytes from random
// (crypto/rand when nil) to path, readable by its owner alone, and makes the
// file and its directory entry durable before returning. It refuses a path
// that exists (ErrMasterKeyExists), and leaves no file behind when it fails.
func CreateMasterKey(path string, random io.Reader) (err error) {
	if random == nil {
		random = rand.Reader
	}
	var key [MasterKeySize]byte
	defer clear(key[:])
	if _, err := io.ReadFull(random, key[:]); err != nil {
		return fmt.Errorf("store: master key: reading randomness: %w", err)
	}
	line := make([]byte, 0, masterKeyLineSize+1)
	line = append(line, masterKeyPrefix...)
	line = base64.StdEncoding.AppendEncode(line, key[:])
	line = append(line, '\n')
	defer clear(line)

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s", ErrMasterKeyExists, path)
	}
	if err != nil {
		return fmt.Errorf("store: master key: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	if _, err = f.Write(line); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("store: master key: writing %s: %w", path, err)
	}
	return nil
}

// syncDir makes a new directory entry durable, so a crash after
// CreateMasterKey returns cannot lose the file.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// LoadMasterKey reads the master key file at path and returns a Sealer for
// its key. It refuses a missing file (ErrMasterKeyMissing), one that group
// or others may read or write (ErrMasterKeyExposed), and one that is not
// exactly the line CreateMasterKey writes (ErrMasterKeyFormat); every error
// names the path and none shows the file's bytes.
func LoadMasterKey(path string) (*Sealer, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrMasterKeyMissing, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: master key: %w", err)
	}
	defer f.Close()
	// The checks read the opened file, not the path again, so a file
	// swapped in between cannot pass them for another.
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: master key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrMasterKeyFormat, path)
	}
	// Windows reports no Unix permissions: its ACLs are the operator's.
	if perm := st.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%w: %s has mode %04o; want 0600 or 0400 (chmod 600 %s)", ErrMasterKeyExposed, path, perm, path)
	}
	if size := st.Size(); size != int64(masterKeyLineSize) && size != int64(masterKeyLineSize)+1 {
		return nil, masterKeyFormatError(path, sizeProblem(size))
	}
	// Reading one byte more than the longest valid file tells a file that
	// grew since Stat apart without reading all of it.
	var buf [masterKeyLineSize + 2]byte
	defer clear(buf[:])
	n, err := io.ReadFull(f, buf[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("store: master key: reading %s: %w", path, err)
	}
	var key [MasterKeySize]byte
	defer clear(key[:])
	if problem := parseMasterKey(buf[:n], &key); problem != "" {
		return nil, masterKeyFormatError(path, problem)
	}
	return NewSealer(key[:], nil)
}

func masterKeyFormatError(path, problem string) error {
	return fmt.Errorf("%w: %s %s; want the one line %q that countersign init writes",
		ErrMasterKeyFormat, path, problem, masterKeyPrefix+"<base64 of 32 bytes>")
}

func sizeProblem(size int64) string {
	return fmt.Sprintf("is %d bytes, not %d (or %d without the newline)", size, masterKeyLineSize+1, masterKeyLineSize)
}

// parseMasterKey decodes a master key file's content into key, or says
// what is wrong with it without showing its bytes.
func parseMasterKey(b []byte, key *[MasterKeySize]byte) (problem string) {
	switch {
	case len(b) == masterKeyLineSize+1 && b[masterKeyLineSize] == '\n':
		b = b[:masterKeyLineSize]
	case len(b) == masterKeyLineSize+1:
		return "ends in a byte that is not a newline"
	case len(b) != masterKeyLineSize:
		return sizeProblem(int64(len(b)))
	}
	if string(b[:len(masterKeyPrefix)]) != masterKeyPrefix {
		return fmt.Sprintf("does not start with %q", masterKeyPrefix)
	}
	var raw [MasterKeySize + 2]byte
	defer clear(raw[:])
	n, err := base64.StdEncoding.Strict().Decode(raw[:], b[len(masterKeyPrefix):])
	if err != nil || n != MasterKeySize {
		return "holds no base64 of 32 bytes after its name"
	}
	copy(key[:], raw[:n])
	return ""
}
