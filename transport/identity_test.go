package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestIdentityIsCreatedOwnerOnlyAndReloadedIdentically(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node") // does not exist yet
	k1, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, IdentityFileName))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("identity.key has mode %04o, want 0600", perm)
	}
	if k1.Type() != crypto.Ed25519 {
		t.Fatalf("key type %s, want Ed25519", k1.Type())
	}
	k2, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Fatal("reloaded key differs from the created one")
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".identity-*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left behind: %v", leftovers)
	}
}

func TestIdentityRefusesGroupOrWorldReadableKey(t *testing.T) {
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		dir := t.TempDir()
		if _, err := LoadOrCreateIdentity(dir); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, IdentityFileName)
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateIdentity(dir)
		if !errors.Is(err, ErrInsecureKeyFile) {
			t.Fatalf("mode %04o: got %v, want ErrInsecureKeyFile", mode, err)
		}
		if !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("mode %04o: error does not say how to fix it: %v", mode, err)
		}
	}
}

func TestIdentityRefusesMalformedKey(t *testing.T) {
	secp, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secpBytes, err := crypto.MarshalPrivateKey(secp)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{
		"garbage":   []byte("this is not a key"),
		"empty":     nil,
		"secp256k1": secpBytes,
		"huge":      make([]byte, maxKeyFileSize+1),
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, IdentityFileName), content, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateIdentity(dir); !errors.Is(err, ErrMalformedKey) {
			t.Errorf("%s: got %v, want ErrMalformedKey", name, err)
		}
		// The bad file is kept for the operator to inspect, not replaced.
		got, _ := os.ReadFile(filepath.Join(dir, IdentityFileName))
		if len(got) != len(content) {
			t.Errorf("%s: key file was rewritten", name)
		}
	}
}

func TestRawEd25519KeySignsForTheSiteID(t *testing.T) {
	key, err := LoadOrCreateIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := Ed25519PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("delta batch")
	sig := ed25519.Sign(raw, msg)
	ok, err := key.GetPublic().Verify(msg, sig)
	if err != nil || !ok {
		t.Fatalf("libp2p public key does not verify the raw key's signature: ok=%v err=%v", ok, err)
	}
	site, err := SiteID(key)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.Decode(site)
	if err != nil {
		t.Fatalf("site ID %q is not a peer ID: %v", site, err)
	}
	if !id.MatchesPrivateKey(key) {
		t.Fatal("site ID does not match the key")
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := pub.Verify(msg, sig); !ok {
		t.Fatal("the public key embedded in the site ID does not verify the signature")
	}
}
