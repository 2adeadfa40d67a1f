package transport

import (
	"slices"
	"sync"
	"testing"

	"github.com/hashicorp/memberlist"
	"github.com/libp2p/go-libp2p/core/peer"
)

// eventLog records member events delivered to Config.OnMemberEvent.
type eventLog struct {
	mu  sync.Mutex
	evs []MemberEvent
}

func (l *eventLog) record(ev MemberEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, ev)
}

func (l *eventLog) has(kind MemberEventKind, p peer.ID, withAddrs bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.evs, func(ev MemberEvent) bool {
		return ev.Kind == kind && ev.Peer == p && (!withAddrs || len(ev.Addrs) > 0)
	})
}

func memberIDs(h *Host) []peer.ID {
	var ids []peer.ID
	for _, m := range h.Members() {
		ids = append(ids, m.ID)
	}
	return ids
}

func sameIDs(a, b []peer.ID) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestHostsToldOnePeerEachLearnTheWholeMesh(t *testing.T) {
	var events [3]eventLog
	var hosts [3]*testHost
	for i := range hosts {
		hosts[i] = newTestHost(t, func(c *Config) { c.OnMemberEvent = events[i].record })
	}
	a, b, c := hosts[0], hosts[1], hosts[2]
	// b knows a, c knows b: a and c never hear of each other from an operator.
	connectHosts(t, b.Host, a.Host)
	connectHosts(t, c.Host, b.Host)

	for i, h := range hosts {
		var others []peer.ID
		for j, o := range hosts {
			if j != i {
				others = append(others, o.ID())
			}
		}
		eventually(t, "host "+h.ID().String()+" to see both others", func() bool { return sameIDs(memberIDs(h.Host), others) })
		for _, m := range h.Members() {
			if len(m.Addrs) == 0 {
				t.Fatalf("member %s has no addresses in %s's view", m.ID, h.ID())
			}
		}
	}
	// a and c connect (whichever dials first), a hears of c's join with its
	// addresses, and a's peer book learns c: three things that happen on
	// different goroutines, so each is awaited.
	eventually(t, "a and c to connect, learnt only through membership", func() bool { return a.connected(c.ID()) })
	eventually(t, "a join event with addresses for c at a", func() bool { return events[0].has(MemberJoin, c.ID(), true) })
	var learnt *PeerInfo
	eventually(t, "a's peer book to learn c with addresses", func() bool {
		for _, p := range a.Peers() {
			if p.ID == c.ID() {
				learnt = &p
			}
		}
		return learnt != nil && len(learnt.Addrs) > 0
	})
	if learnt.Source != SourceLearnt {
		t.Fatalf("a's peer book entry for c = %+v, want a learnt peer (no operator ever gave a c's address)", learnt)
	}

	// A graceful leave reaches every member.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a to see c leave", func() bool { return events[0].has(MemberLeave, c.ID(), false) })
	eventually(t, "a's and b's members to drop c", func() bool {
		return sameIDs(memberIDs(a.Host), []peer.ID{b.ID()}) && sameIDs(memberIDs(b.Host), []peer.ID{a.ID()})
	})
}

func TestMemberlistTransportRoutesByPeerID(t *testing.T) {
	var _ memberlist.NodeAwareTransport = (*mlTransport)(nil)
	h := newTestHost(t, nil)
	p := testPeerID(t)
	if memberAddr(p) != memberAddr(p) || memberAddr(p) == memberAddr(h.ID()) {
		t.Fatal("synthetic member addresses are not stable and distinct")
	}
	if got, err := h.mlt.resolve(memberlist.Address{Name: p.String(), Addr: "[fd00::1]:1"}); err != nil || got != p {
		t.Fatalf("resolve by name = %s, %v; want %s (the name wins over the address)", got, err, p)
	}
	if got, err := h.mlt.resolve(memberlist.Address{Addr: memberAddr(p)}); err != nil || got != p {
		t.Fatalf("resolve by the synthetic address of a known peer = %s, %v; want %s", got, err, p)
	}
	if _, err := h.mlt.resolve(memberlist.Address{Addr: "[fd00::2]:7946"}); err == nil {
		t.Fatal("an unknown name-less address resolved")
	}
	ip, port, err := h.mlt.FinalAdvertiseAddr("0.0.0.0", 1)
	if err != nil || !ip.Equal(memberIP(h.ID())) || port != memberPort {
		t.Fatalf("FinalAdvertiseAddr = %s, %d, %v", ip, port, err)
	}
}
