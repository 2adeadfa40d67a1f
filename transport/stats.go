package transport

import (
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"
)

// PeerStats counts framed traffic with one peer since the host started.
// Bytes count payloads, without the 4-byte frame header. Membership
// (memberlist) traffic is not counted.
type PeerStats struct {
	FramesIn, BytesIn   uint64 // frames received on Config.Protocol and request protocols
	FramesOut, BytesOut uint64 // frames written to the peer's stream

	DroppedQueueFull    uint64 // Send returned false: the peer's queue was full
	DroppedNotConnected uint64 // Send returned false: no connection to the peer
	DroppedUnsent       uint64 // Send returned true, but the stream failed or the peer went away first
	DroppedNoHandler    uint64 // received while no handler was set
	ProtocolErrors      uint64 // oversized or truncated frames, unsupported protocol versions
}

type peerCounters struct {
	framesIn, bytesIn, framesOut, bytesOut               atomic.Uint64
	droppedQueueFull, droppedNotConnected, droppedUnsent atomic.Uint64
	droppedNoHandler, protocolErrors                     atomic.Uint64
}

func (c *peerCounters) snapshot() PeerStats {
	return PeerStats{
		FramesIn: c.framesIn.Load(), BytesIn: c.bytesIn.Load(),
		FramesOut: c.framesOut.Load(), BytesOut: c.bytesOut.Load(),
		DroppedQueueFull: c.droppedQueueFull.Load(), DroppedNotConnected: c.droppedNotConnected.Load(),
		DroppedUnsent: c.droppedUnsent.Load(), DroppedNoHandler: c.droppedNoHandler.Load(),
		ProtocolErrors: c.protocolErrors.Load(),
	}
}

func (c *peerCounters) in(n int) {
	c.framesIn.Add(1)
	c.bytesIn.Add(uint64(n))
}

func (c *peerCounters) out(n int) {
	c.framesOut.Add(1)
	c.bytesOut.Add(uint64(n))
}

// statsTable holds one peerCounters per peer ever seen. Sites are few
// (tens to hundreds), so entries are never removed.
type statsTable struct {
	mu    sync.RWMutex
	peers map[peer.ID]*peerCounters
}

func newStatsTable() *statsTable { return &statsTable{peers: make(map[peer.ID]*peerCounters)} }

func (t *statsTable) peer(p peer.ID) *peerCounters {
	t.mu.RLock()
	c, ok := t.peers[p]
	t.mu.RUnlock()
	if ok {
		return c
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok = t.peers[p]; !ok {
		c = new(peerCounters)
		t.peers[p] = c
	}
	return c
}

// Stats returns a snapshot of the traffic counters of every peer the host has
// exchanged frames with, or tried to. Node exports them as metrics.
func (h *Host) Stats() map[peer.ID]PeerStats {
	h.stats.mu.RLock()
	defer h.stats.mu.RUnlock()
	out := make(map[peer.ID]PeerStats, len(h.stats.peers))
	for p, c := range h.stats.peers {
		out[p] = c.snapshot()
	}
	return out
}
