package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// IdentityFileName is the node's private key inside its data directory.
const IdentityFileName = "identity.key"

// maxKeyFileSize bounds what LoadOrCreateIdentity reads: a marshalled
// ed25519 key is 68 bytes, so anything much larger is not a key.
const maxKeyFileSize = 4096

// LoadOrCreateIdentity returns the node's ed25519 libp2p key stored in
// <dataDir>/identity.key, creating the directory (0700) and the key (0600) if
// the file does not exist. The file holds the key in libp2p's protobuf
// encoding (crypto.MarshalPrivateKey), the same form other libp2p tools read.
//
// It refuses a key file that group or others may read (ErrInsecureKeyFile),
// and one that is not a libp2p ed25519 private key (ErrMalformedKey): the key
// is the site's identity and signs its replication deltas.
func LoadOrCreateIdentity(dataDir string) (crypto.PrivKey, error) {
	if dataDir == "" {
		return nil, errors.New("transport: no data directory given for the identity key")
	}
	path := filepath.Join(dataDir, IdentityFileName)
	key, err := loadIdentity(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	return createIdentity(dataDir, path)
}

func loadIdentity(path string) (crypto.PrivKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("transport: open identity key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("transport: stat identity key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrMalformedKey, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; it must be readable by its owner only — run: chmod 600 %s",
			ErrInsecureKeyFile, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("transport: read identity key %s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes; restore the original key file or move it away to create a new identity",
			ErrMalformedKey, path, maxKeyFileSize)
	}
	key, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v; restore the original key file or move it away to create a new identity (the site ID will change)",
			ErrMalformedKey, path, err)
	}
	if _, err := Ed25519PrivateKey(key); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformedKey, path, err)
	}
	return key, nil
}

func createIdentity(dataDir, path string) (crypto.PrivKey, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("transport: create data directory: %w", err)
	}
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("transport: generate identity key: %w", err)
	}
	data, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("transport: marshal identity key: %w", err)
	}
	// Write a temporary file (CreateTemp uses mode 0600) and hard-link it into
	// place: the key file is never seen half-written, and if another process
	// created a key meanwhile, Link fails and we use that key instead of
	// overwriting it.
	tmp, err := os.CreateTemp(dataDir, ".identity-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("transport: create identity key: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("transport: create identity key: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("transport: write identity key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("transport: sync identity key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("transport: write identity key: %w", err)
	}
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadIdentity(path)
		}
		return nil, fmt.Errorf("transport: install identity key %s: %w", path, err)
	}
	syncDir(dataDir)
	return key, nil
}

// Ed25519PrivateKey returns the raw ed25519 private key behind a libp2p key,
// for signing with crypto/ed25519 (the replica signs its deltas with it).
func Ed25519PrivateKey(key crypto.PrivKey) (ed25519.PrivateKey, error) {
	if key == nil {
		return nil, errors.New("transport: no identity key")
	}
	if key.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("transport: identity key is of type %s; Meridian needs an ed25519 key", key.Type())
	}
	raw, err := key.Raw()
	if err != nil {
		return nil, fmt.Errorf("transport: read raw identity key: %w", err)
	}
	if len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("transport: raw ed25519 key has %d bytes, want %d", len(raw), ed25519.PrivateKeySize)
	}
	return ed25519.PrivateKey(raw), nil
}

// SiteID returns the site ID of a node key: its libp2p peer ID as a string
// (12D3KooW…).
func SiteID(key crypto.PrivKey) (string, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("transport: derive site ID: %w", err)
	}
	return id.String(), nil
}

// syncDir makes a rename or link in dir durable. Errors are ignored: not all
// file systems support fsync on directories, and the file itself is synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
