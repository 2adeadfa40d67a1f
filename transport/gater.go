package transport

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// gater is the libp2p ConnectionGater: it applies Config.Gater and the
// back-off of peers cut off by Disconnect, in both directions.
type gater struct {
	allow func(peer.ID) bool

	mu    sync.Mutex
	until map[peer.ID]time.Time // peer → end of its disconnect back-off
}

func newGater(allow func(peer.ID) bool) *gater {
	return &gater{allow: allow, until: make(map[peer.ID]time.Time)}
}

// permitted reports whether p may be dialled or accepted now.
func (g *gater) permitted(p peer.ID) bool {
	return !g.backingOff(p) && (g.allow == nil || g.allow(p))
}

func (g *gater) backingOff(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, ok := g.until[p]
	if !ok {
		return false
	}
	if time.Now().Before(t) {
		return true
	}
	delete(g.until, p)
	return false
}

func (g *gater) block(p peer.ID, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.until[p] = time.Now().Add(d)
}

func (g *gater) InterceptPeerDial(p peer.ID) bool { return g.permitted(p) }

func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.permitted(p) }

// InterceptAccept allows every inbound connection: the peer is not known
// before the security handshake, so the decision waits for InterceptSecured.
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.permitted(p)
}

func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

func (g *gater) unblock(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.until, p)
}
