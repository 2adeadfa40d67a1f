package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func TestFramesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	payloads := [][]byte{{}, []byte("x"), bytes.Repeat([]byte("ab"), 40_000), make([]byte, 3*readChunk+7)}
	for _, p := range payloads {
		if err := WriteFrame(&buf, p, DefaultMaxFrameSize); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range payloads {
		got, err := ReadFrame(&buf, DefaultMaxFrameSize)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got %d bytes, want %d", i, len(got), len(want))
		}
	}
	if _, err := ReadFrame(&buf, DefaultMaxFrameSize); err != io.EOF {
		t.Fatalf("after the last frame: got %v, want io.EOF", err)
	}
}

// failAfter fails the test if more than n bytes are read: an oversized
// frame must be refused from its header alone.
type failAfter struct {
	t testing.TB
	r io.Reader
	n int
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		f.t.Fatal("ReadFrame read past the header of an oversized frame")
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestReadFrameRefusesOversizedFrameFromItsHeader(t *testing.T) {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 1025)
	r := &failAfter{t: t, r: io.MultiReader(bytes.NewReader(hdr[:]), strings.NewReader(strings.Repeat("z", 2000))), n: 4}
	_, err := ReadFrame(r, 1024)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
	if !strings.Contains(err.Error(), "1025") || !strings.Contains(err.Error(), "1024") {
		t.Fatalf("error should give the announced size and the limit: %v", err)
	}
}

func TestReadFrameReportsTruncation(t *testing.T) {
	full := []byte{0, 0, 0, 10, 1, 2, 3}
	for _, in := range [][]byte{full[:2], full} {
		_, err := ReadFrame(bytes.NewReader(in), 1024)
		if !errors.Is(err, ErrFrameTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("input %v: got %v, want ErrFrameTruncated wrapping io.ErrUnexpectedEOF", in, err)
		}
	}
}

func TestReadFramePassesOtherReadErrorsThrough(t *testing.T) {
	boom := errors.New("stream reset")
	_, err := ReadFrame(io.MultiReader(bytes.NewReader([]byte{0, 0, 0, 9, 1}), errReader{boom}), 1024)
	if !errors.Is(err, boom) || errors.Is(err, ErrFrameTruncated) {
		t.Fatalf("got %v, want the reader's own error", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestWriteFrameRefusesOversizedPayloadAndWritesNothing(t *testing.T) {
	var buf bytes.Buffer
	err := WriteFrame(&buf, make([]byte, 11), 10)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
	if buf.Len() != 0 {
		t.Fatalf("%d bytes written for a refused frame", buf.Len())
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c', 0, 0})
	f.Add([]byte{0, 0, 0, 5, 'a'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	const limit = 1 << 12
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			before := r.Len()
			payload, err := ReadFrame(r, limit)
			if err == io.EOF {
				if before != 0 {
					t.Fatalf("io.EOF with %d bytes unread", before)
				}
				return
			}
			if err != nil {
				if !errors.Is(err, ErrFrameTooLarge) && !errors.Is(err, ErrFrameTruncated) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			if len(payload) > limit {
				t.Fatalf("payload of %d bytes exceeds the limit %d", len(payload), limit)
			}
			consumed := in[len(in)-before : len(in)-r.Len()]
			var again bytes.Buffer
			if err := WriteFrame(&again, payload, limit); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Bytes(), consumed) {
				t.Fatalf("re-encoding %x gave %x", consumed, again.Bytes())
			}
		}
	})
}

func testPeerID(t testing.TB) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestNodeMetaCarriesAddressesWithinTheLimit(t *testing.T) {
	id := testPeerID(t)
	var addrs []ma.Multiaddr
	for _, s := range []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/10.1.2.3/udp/4001/quic-v1", "/ip4/8.8.4.4/tcp/4001", "/ip6/::1/tcp/9"} {
		addrs = append(addrs, ma.StringCast(s))
	}
	got, err := decodeMeta(id, encodeMeta(addrs, 512))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(addrs) || got[0].String() != "/ip4/8.8.4.4/tcp/4001" {
		t.Fatalf("got %v: want all %d addresses, the public one first", got, len(addrs))
	}
	small := encodeMeta(addrs, 24)
	if len(small) > 24 {
		t.Fatalf("metadata of %d bytes exceeds the 24-byte limit", len(small))
	}
	if got, err := decodeMeta(id, small); err != nil || len(got) == 0 || len(got) == len(addrs) {
		t.Fatalf("a tight limit should keep some addresses, not all: %v %v", got, err)
	}
}

func FuzzDecodeMeta(f *testing.F) {
	id := testPeerID(f)
	f.Add(encodeMeta([]ma.Multiaddr{ma.StringCast("/ip4/1.2.3.4/tcp/1")}, 512))
	f.Add([]byte{0x82, 0x02, 0x80})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		addrs, _ := decodeMeta(id, in)
		for _, a := range addrs {
			if _, pid := peer.SplitAddr(a); pid != "" {
				t.Fatalf("decoded address %s keeps a /p2p/ part", a)
			}
		}
	})
}
