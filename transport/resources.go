package transport

import (
	"maps"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
)

// newResourceManager builds libp2p's resource manager from its default
// limits, scaled to this machine's memory and file descriptors (AutoScale).
// On top of them, per peer:
//
//   - Config.Protocol: one long-lived stream each way, plus room for a
//     replacement while a reset one is torn down, so 8 streams per direction.
//     A peer opening more is misbehaving. 64 MiB bounds the receive windows
//     of a few 16 MiB frames in flight.
//   - memberlist packets: one short stream per packet; SWIM sends a handful
//     per probe interval, 64 concurrent leaves room for gossip bursts.
//   - memberlist streams: push/pull and fallback pings, a few at a time.
//
// Request protocols registered by HandleRequests get libp2p's per-protocol
// defaults (64 inbound streams per peer).
func newResourceManager(cfg Config) (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	// DefaultLimits is a package variable: clone its maps so that adding our
	// limits never mutates it (several hosts may be built concurrently).
	limits.ServiceLimits = maps.Clone(limits.ServiceLimits)
	limits.ServicePeerLimits = maps.Clone(limits.ServicePeerLimits)
	limits.ProtocolLimits = maps.Clone(limits.ProtocolLimits)
	limits.ProtocolPeerLimits = maps.Clone(limits.ProtocolPeerLimits)
	limits.PeerLimits = maps.Clone(limits.PeerLimits)
	libp2p.SetDefaultServiceLimits(&limits)

	limits.AddProtocolPeerLimit(cfg.Protocol,
		rcmgr.BaseLimit{StreamsInbound: 8, StreamsOutbound: 8, Streams: 16, Memory: 64 << 20},
		rcmgr.BaseLimitIncrease{})
	limits.AddProtocolPeerLimit(MemberlistPacketProtocol,
		rcmgr.BaseLimit{StreamsInbound: 64, StreamsOutbound: 64, Streams: 128, Memory: 4 << 20},
		rcmgr.BaseLimitIncrease{})
	limits.AddProtocolPeerLimit(MemberlistStreamProtocol,
		rcmgr.BaseLimit{StreamsInbound: 8, StreamsOutbound: 8, Streams: 16, Memory: 32 << 20},
		rcmgr.BaseLimitIncrease{})

	var opts []rcmgr.Option
	if cfg.PrometheusRegisterer == nil {
		opts = append(opts, rcmgr.WithMetricsDisabled())
	}
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()), opts...)
}

// newConnManager trims connections above cfg.ConnHigh down to cfg.ConnLow.
// New connections get libp2p's default one-minute grace period, and peer-book
// peers are protected, so trimming only ever drops incidental connections.
func newConnManager(cfg Config) (*connmgr.BasicConnMgr, error) {
	return connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh)
}
