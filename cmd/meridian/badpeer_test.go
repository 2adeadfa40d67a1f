package main

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"meridian/transport"
)

// A hostile libp2p peer: it connects to a node and speaks nonsense.
func hostilePeer(t *testing.T, target string) (host.Host, peer.ID) {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	info, err := transport.ParsePeerAddr(target)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, info); err != nil {
		t.Fatal(err)
	}
	return h, info.ID
}

func sendRaw(t *testing.T, h host.Host, to peer.ID, proto string, data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, to, "/meridian/sync/1.0.0")
	if proto != "" {
		s, err = h.NewStream(ctx, to, protocolID(proto))
	}
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.Write(data)
	return err
}

func frame(payload []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
}

func TestHostilePeersAreDisconnectedWhileTheNodeServesOthers(t *testing.T) {
	sites := mesh(t, 2)
	a, b := sites[0], sites[1]
	waitFor(t, 10*time.Second, "A and B connected", func() bool {
		for _, p := range a.status().Peers {
			if p.Connected {
				return true
			}
		}
		return false
	})
	cases := []struct {
		name    string
		proto   string
		payload []byte
		logged  string
	}{
		{"garbage frame", "", frame([]byte("this is not CBOR")), "disconnecting a peer that sent a bad message"},
		{"unknown message version", "", frame([]byte{0x89, 0x09, 0x01, 0x60, 0x80, 0x80, 0x80, 0x80, 0x80, 0xf4}), "protocol version 9"},
		{"oversized frame", "", binary.BigEndian.AppendUint32(nil, 1<<31), "frame"},
		{"unknown protocol version", "/meridian/sync/9.0.0", frame([]byte{1}), "unsupported protocol version"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, id := hostilePeer(t, a.addr())
			_ = sendRaw(t, h, id, c.proto, c.payload)
			waitFor(t, 10*time.Second, "a logged reason", func() bool { return strings.Contains(a.log.String(), c.logged) })
			if c.proto == "" { // a bad frame costs the connection; a bad version only the stream
				waitFor(t, 10*time.Second, "the hostile peer to be disconnected", func() bool {
					return h.Network().Connectedness(id) != network.Connected
				})
			}
			// The node keeps serving its honest peer.
			name := "AFTER-" + strings.ReplaceAll(c.name, " ", "-")
			b.must("doc", "put", "Item", name, "--json", `{"item_name":"still fine"}`)
			waitFor(t, 10*time.Second, name+" on A", func() bool {
				out, err := a.run("doc", "get", "Item", name)
				return err == nil && strings.Contains(out, "still fine")
			})
		})
	}
}

func protocolID(s string) protocol.ID { return protocol.ID(s) }
