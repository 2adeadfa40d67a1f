package node

import (
	"crypto/ed25519"
	"testing"

	"meridian/crdt"
)

func seedHandshake(t testing.TB) []byte {
	_, key := testKey(1)
	r := &crdt.Record{Kind: crdt.RecordAdmit, Mesh: "m", Site: siteOf(2), Admit: true, Issued: 1000}
	r.Sign(key)
	raw, err := handshakeEnc.Marshal(handshake{Version: 1, Mesh: "m", Records: [][]byte{crdt.EncodeRecord(r), crdt.EncodeRecord(r)}})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// FuzzDecodeHandshake: the handshake is the one thing a stranger may send;
// its decoder must never panic and must keep its limits.
func FuzzDecodeHandshake(f *testing.F) {
	good := seedHandshake(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{0x83, 0x02, 0x61, 0x6d, 0x80}) // version 2
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := DecodeHandshake(data)
		if err != nil {
			return
		}
		if h.Version != handshakeVersion || len(h.Records) > maxHandshakeRecords {
			t.Fatalf("accepted %+v", h)
		}
		again, err := handshakeEnc.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		h2, err := DecodeHandshake(again)
		if err != nil || h2.Mesh != h.Mesh || len(h2.Records) != len(h.Records) {
			t.Fatalf("re-encoded handshake does not decode the same: %v", err)
		}
	})
}

func TestDecodeHandshakeRefusesOtherVersionsAndTooManyRecords(t *testing.T) {
	raw, _ := handshakeEnc.Marshal(handshake{Version: 2, Mesh: "m"})
	if _, err := DecodeHandshake(raw); err == nil {
		t.Fatal("version 2 accepted")
	}
	many := handshake{Version: 1, Mesh: "m", Records: make([][]byte, maxHandshakeRecords+1)}
	raw, _ = handshakeEnc.Marshal(many)
	if _, err := DecodeHandshake(raw); err == nil {
		t.Fatal("too many records accepted")
	}
	if _, err := DecodeHandshake(seedHandshake(t)); err != nil {
		t.Fatal(err)
	}
}

// testKey returns a deterministic ed25519 key pair.
func testKey(n byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = n
	priv := ed25519.NewKeyFromSeed(seed)
	return priv.Public().(ed25519.PublicKey), priv
}

func siteOf(n byte) crdt.SiteID {
	pub, _ := testKey(n)
	return crdt.PeerIDFromPublicKey(pub)
}
