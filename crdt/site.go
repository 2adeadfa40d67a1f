package crdt

import (
	"crypto/ed25519"
	"errors"
	"fmt"
)

const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

var base58Index = func() [256]int8 {
	var t [256]int8
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(base58Alphabet); i++ {
		t[base58Alphabet[i]] = int8(i)
	}
	return t
}()

// decodeBase58 decodes Bitcoin-alphabet base58 (what libp2p peer IDs use).
func decodeBase58(s string) ([]byte, error) {
	if len(s) == 0 || len(s) > 128 {
		return nil, errors.New("bad length")
	}
	zeros := 0
	for zeros < len(s) && s[zeros] == '1' {
		zeros++
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		v := base58Index[s[i]]
		if v < 0 {
			return nil, fmt.Errorf("character %q is not base58", s[i])
		}
		carry := int(v)
		for j := range out {
			carry += int(out[j]) * 58
			out[j] = byte(carry)
			carry >>= 8
		}
		for carry > 0 {
			out = append(out, byte(carry))
			carry >>= 8
		}
	}
	for i := 0; i < zeros; i++ {
		out = append(out, 0)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// PeerIDPublicKey extracts the ed25519 public key embedded in a libp2p peer
// ID: an identity multihash (code 0x00, length 36) of the protobuf
// PublicKey{Type: Ed25519, Data: 32 bytes}. Other key types are refused.
func PeerIDPublicKey(id string) (ed25519.PublicKey, error) {
	raw, err := decodeBase58(id)
	if err != nil {
		return nil, fmt.Errorf("site ID %q is not a base58 peer ID: %v", id, err)
	}
	// 0x00 0x24 | 0x08 0x01 0x12 0x20 | key
	if len(raw) != 38 || raw[0] != 0x00 || raw[1] != 36 || raw[2] != 0x08 || raw[3] != 0x01 || raw[4] != 0x12 || raw[5] != 0x20 {
		return nil, fmt.Errorf("site ID %q is not an ed25519 peer ID (12D3KooW…)", id)
	}
	return ed25519.PublicKey(append([]byte(nil), raw[6:]...)), nil
}

// PeerIDFromPublicKey returns the libp2p peer ID of an ed25519 public key.
func PeerIDFromPublicKey(pub ed25519.PublicKey) SiteID {
	raw := append([]byte{0x00, 36, 0x08, 0x01, 0x12, 0x20}, pub...)
	return SiteID(encodeBase58(raw))
}

func encodeBase58(b []byte) string {
	zeros := 0
	for zeros < len(b) && b[zeros] == 0 {
		zeros++
	}
	var digits []byte
	for _, c := range b {
		carry := int(c)
		for j := range digits {
			carry += int(digits[j]) << 8
			digits[j] = byte(carry % 58)
			carry /= 58
		}
		for carry > 0 {
			digits = append(digits, byte(carry%58))
			carry /= 58
		}
	}
	out := make([]byte, 0, zeros+len(digits))
	for i := 0; i < zeros; i++ {
		out = append(out, '1')
	}
	for i := len(digits) - 1; i >= 0; i-- {
		out = append(out, base58Alphabet[digits[i]])
	}
	return string(out)
}
