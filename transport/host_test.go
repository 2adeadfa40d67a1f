package transport

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

func TestAddrsAreFullDialableMultiaddrs(t *testing.T) {
	// Default listen addresses: 0.0.0.0 with kernel-chosen ports.
	h := newTestHost(t, func(c *Config) { c.ListenAddrs = nil })
	addrs := h.Addrs()
	var tcp, quic, loop bool
	for _, a := range addrs {
		tpt, id := peer.SplitAddr(a)
		if id != h.ID() {
			t.Errorf("%s does not end in /p2p/%s", a, h.ID())
		}
		if manet.IsIPUnspecified(tpt) {
			t.Errorf("%s is an unspecified address", a)
		}
		if port, err := tpt.ValueForProtocol(ma.P_TCP); err == nil {
			tcp = tcp || port != "0"
		}
		if _, err := tpt.ValueForProtocol(ma.P_QUIC_V1); err == nil {
			quic = true
		}
		loop = loop || manet.IsIPLoopback(tpt)
	}
	if !tcp || !quic || !loop {
		t.Fatalf("want TCP (with a real port), QUIC and loopback addresses, got %v", addrs)
	}
}

func TestConnectErrorsNameTheProblem(t *testing.T) {
	h := newTestHost(t, nil)
	other := testPeerID(t).String()
	for _, tc := range []struct {
		addr  string
		is    error
		hints []string
	}{
		{"", ErrInvalidMultiaddr, []string{"empty", multiaddrExample}},
		{"10.0.0.2:4001", ErrInvalidMultiaddr, []string{`"10.0.0.2:4001"`, multiaddrExample}},
		{"/ip4/999.0.0.1/tcp/4001/p2p/" + other, ErrInvalidMultiaddr, []string{"999.0.0.1", multiaddrExample}},
		{"/ip4/10.0.0.2/tcp/notaport/p2p/" + other, ErrInvalidMultiaddr, []string{"notaport", multiaddrExample}},
		{"/ip4/10.0.0.2/tcp/4001/p2p/NotAPeerID", ErrInvalidMultiaddr, []string{"NotAPeerID", multiaddrExample}},
		{"/ip4/10.0.0.2/tcp/4001", ErrMissingPeerID, []string{"/p2p/<peer-id>", multiaddrExample}},
		{"/p2p/" + other, ErrInvalidMultiaddr, []string{"only a peer ID", multiaddrExample}},
		{"/ip4/127.0.0.1/tcp/4001/p2p/" + h.ID().String(), ErrInvalidMultiaddr, []string{"own peer ID"}},
	} {
		err := h.Connect(context.Background(), tc.addr)
		if !errors.Is(err, tc.is) {
			t.Errorf("Connect(%q) = %v, want %v", tc.addr, err, tc.is)
			continue
		}
		for _, hint := range tc.hints {
			if !strings.Contains(err.Error(), hint) {
				t.Errorf("Connect(%q) error %q does not mention %q", tc.addr, err, hint)
			}
		}
		if _, err := h.AddPeer(tc.addr); !errors.Is(err, tc.is) {
			t.Errorf("AddPeer(%q) = %v, want %v", tc.addr, err, tc.is)
		}
	}
	if len(h.Peers()) != 0 {
		t.Fatalf("invalid addresses reached the peer book: %v", h.Peers())
	}
}

func TestGaterRefusesPeerInBothDirections(t *testing.T) {
	a := newTestHost(t, nil)
	c := newTestHost(t, nil)
	b := newTestHost(t, func(cfg *Config) {
		cfg.Gater = func(p peer.ID) bool { return p != a.ID() }
	})

	// b refuses to dial a.
	err := b.Connect(context.Background(), tcpAddr(t, a.Host))
	if err == nil || !strings.Contains(err.Error(), "refused by the gater") {
		t.Fatalf("b.Connect(a) = %v, want a gater refusal", err)
	}
	// a may try; b drops the connection once a is authenticated.
	_ = a.Connect(context.Background(), tcpAddr(t, b.Host))
	eventually(t, "a and b disconnected", func() bool { return !a.connected(b.ID()) && !b.connected(a.ID()) })
	if _, err := a.Request(context.Background(), b.ID(), "/meridian/test/1.0.0", []byte("hi")); err == nil {
		t.Fatal("a reached b through a request despite b's gater")
	}
	if a.Send(b.ID(), []byte("hi")) {
		t.Fatal("Send to a refused peer reported success")
	}
	// Others are unaffected.
	connectHosts(t, c.Host, a.Host)
	eventually(t, "c and a to be members of each other", func() bool {
		return slices.Contains(memberIDs(c.Host), a.ID()) && slices.Contains(memberIDs(a.Host), c.ID())
	})
	connectHosts(t, c.Host, b.Host)
	if !b.connected(c.ID()) {
		t.Fatal("b refused c, which its gater admits")
	}
	// c's join hands b the whole membership, a included; b keeps a out.
	eventually(t, "b to list c", func() bool { return slices.Contains(memberIDs(b.Host), c.ID()) })
	eventually(t, "c to list b", func() bool { return slices.Contains(memberIDs(c.Host), b.ID()) })
	if slices.Contains(memberIDs(b.Host), a.ID()) {
		t.Fatal("b lists a, which its gater refuses, as a member")
	}
	for _, p := range b.Peers() {
		if p.ID == a.ID() {
			t.Fatal("b remembered a, which its gater refuses, in its peer book")
		}
	}
}

func TestDisconnectLogsReasonAndBacksOff(t *testing.T) {
	a := newTestHost(t, nil)
	b := newTestHost(t, nil)
	connectHosts(t, a.Host, b.Host)
	a.Disconnect(b.ID(), "revoked by the authority")
	if _, ok := a.logs.find(0, "disconnecting peer", map[string]string{"peer": b.ID().String(), "reason": "revoked by the authority"}); !ok {
		t.Fatal("Disconnect did not log the peer and the reason")
	}
	eventually(t, "a and b disconnected", func() bool { return !a.connected(b.ID()) && !b.connected(a.ID()) })
	err := a.Connect(context.Background(), tcpAddr(t, b.Host))
	if err == nil || !strings.Contains(err.Error(), "back-off") {
		t.Fatalf("a.Connect(b) during back-off = %v, want a back-off error", err)
	}
	// b may redial; a refuses it while the back-off lasts.
	_ = b.Connect(context.Background(), tcpAddr(t, a.Host))
	eventually(t, "b's redial refused", func() bool { return !a.connected(b.ID()) && !b.connected(a.ID()) })
}

func TestConfigErrorsNameTheSetting(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "DataDir"},
		{Config{DataDir: t.TempDir(), ListenAddrs: []string{"0.0.0.0:4001"}}, "/ip4/0.0.0.0/tcp/4001"},
		{Config{DataDir: t.TempDir(), Protocol: "sync"}, "/name/version"},
	} {
		_, err := New(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error mentioning %q", tc.cfg, err, tc.want)
		}
	}
}

func TestCloseIsIdempotentAndStopsTheHost(t *testing.T) {
	a := newTestHost(t, nil)
	b := newTestHost(t, nil)
	connectHosts(t, a.Host, b.Host)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if a.Send(b.ID(), []byte("x")) {
		t.Fatal("Send succeeded after Close")
	}
	if err := a.Connect(context.Background(), tcpAddr(t, b.Host)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Connect after Close = %v, want ErrClosed", err)
	}
}

func TestPeerEventsReportFirstConnectAndLastDisconnect(t *testing.T) {
	var mu sync.Mutex
	var evs []PeerEvent
	got := func() []PeerEvent {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(evs)
	}
	box := newInbox()
	a := newTestHost(t, func(c *Config) {
		c.Handler = box.handler
		c.OnPeerEvent = func(ev PeerEvent) {
			mu.Lock()
			defer mu.Unlock()
			evs = append(evs, ev)
		}
	})
	b := newTestHost(t, nil)
	connectHosts(t, b.Host, a.Host)
	eventually(t, "a connected event", func() bool { return slices.Equal(got(), []PeerEvent{{b.ID(), true}}) })
	if !slices.Equal(a.ConnectedPeers(), []peer.ID{b.ID()}) {
		t.Fatalf("ConnectedPeers = %v, want [%s]", a.ConnectedPeers(), b.ID())
	}
	// Config.Handler is in place without SetHandler.
	if !b.Send(a.ID(), []byte("hello")) {
		t.Fatal("Send refused")
	}
	eventually(t, "the frame delivered to Config.Handler", func() bool { return slices.Equal(box.from(b.ID()), []string{"hello"}) })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a disconnected event", func() bool {
		return slices.Equal(got(), []PeerEvent{{b.ID(), true}, {b.ID(), false}})
	})
}
