package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// Protocol IDs. The version is part of the ID: a peer speaking another
// version of a protocol is told so by a closed stream and a log line, never
// by misparsed bytes.
const (
	// DefaultProtocol carries Send/SetHandler frames.
	DefaultProtocol protocol.ID = "/meridian/sync/1.0.0"
	// MemberlistPacketProtocol carries memberlist's best-effort packets, one
	// short stream per packet.
	MemberlistPacketProtocol protocol.ID = "/meridian/memberlist/packet/1.0.0"
	// MemberlistStreamProtocol carries memberlist's reliable streams
	// (push/pull state exchange, TCP-style fallback pings).
	MemberlistStreamProtocol protocol.ID = "/meridian/memberlist/stream/1.0.0"
)

// DefaultMaxFrameSize is the default cap on one frame's payload.
const DefaultMaxFrameSize = 16 << 20

// DefaultListenAddrs are used when Config.ListenAddrs is empty: TCP and QUIC
// on all IPv4 interfaces, on ports chosen by the kernel.
var DefaultListenAddrs = []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}

// Config configures a Host. The zero value plus DataDir is a working
// configuration; each field's comment ends with its default.
type Config struct {
	// DataDir holds identity.key and peers.json. Required.
	DataDir string

	// Identity is the node key. Default: LoadOrCreateIdentity(DataDir).
	Identity crypto.PrivKey

	// ListenAddrs are multiaddrs to listen on; port 0 picks a free port.
	// Default: DefaultListenAddrs (TCP and QUIC on 0.0.0.0, port 0).
	ListenAddrs []string

	// Gater decides whether a peer may connect, in either direction. It is
	// called on every dial and every authenticated inbound connection, from
	// many goroutines, so it must be fast and safe for concurrent use (the
	// node consults the authority's admissions here). Default: nil, accept
	// every peer.
	Gater func(peer.ID) bool

	// Serves decides, per inbound stream, whether a peer may use a protocol
	// (sync, memberlist, or one served by HandleRequests); a refused stream
	// is reset. The node lets peers the authority has not admitted use only
	// the handshake. Called from many goroutines. Default: nil, serve all.
	Serves func(peer.ID, protocol.ID) bool

	// Protocol is the protocol ID of Send and SetHandler. It must end in a
	// version ("/name/1.0.0"); streams for other versions of the same name are
	// closed with a logged reason. Default: DefaultProtocol.
	Protocol protocol.ID

	// MaxFrameSize caps one frame's payload on every framed protocol; a peer
	// announcing a larger frame is disconnected. Default: 16 MiB.
	MaxFrameSize int

	// SendQueueSize is the number of frames queued per peer by Send before it
	// reports false. Default: 256.
	SendQueueSize int

	// WriteTimeout bounds one frame write; a peer that does not drain its
	// stream in time loses that stream (and the frame). Default: 30s.
	WriteTimeout time.Duration

	// RequestTimeout bounds a Request or the serving of one when the caller's
	// context has no deadline. Default: 30s.
	RequestTimeout time.Duration

	// DisconnectBackoff is how long a peer cut off by Disconnect (or for a
	// protocol violation) is neither dialled nor accepted. Default: 30s.
	DisconnectBackoff time.Duration

	// RedialMin and RedialMax bound the exponential back-off between dials of
	// an unreachable peer-book peer. Defaults: 1s and 1m.
	RedialMin, RedialMax time.Duration

	// ConnLow and ConnHigh are the connection manager's watermarks: above
	// ConnHigh connections it trims back to ConnLow, never touching peers in
	// the peer book (they are protected). A Meridian mesh has tens to a few
	// hundred sites. Defaults: 200 and 400.
	ConnLow, ConnHigh int

	// Logger receives the package's logs. Default: slog.Default().
	Logger *slog.Logger

	// Memberlist tunes membership. The transport owns and overwrites Name,
	// Transport, Delegate, Events, Logger, LogOutput, BindAddr, BindPort,
	// AdvertiseAddr and AdvertisePort. Default: DefaultMemberlistConfig().
	Memberlist *memberlist.Config

	// Handler receives inbound frames from the start, before New returns
	// and the peer book is dialled; SetHandler replaces it. Default: nil
	// (frames are counted and dropped until SetHandler).
	Handler Handler

	// OnPeerEvent is called when the first connection to a peer opens and
	// when the last one closes (the node starts anti-entropy on connect). It
	// shares OnMemberEvent's goroutine and rules. Default: nil.
	OnPeerEvent func(PeerEvent)

	// OnMemberEvent is called for every join, leave and update of another
	// member, one event at a time from one goroutine, after the host has
	// recorded the member's addresses and started dialling it. It must not
	// block for long. Default: nil.
	OnMemberEvent func(MemberEvent)

	// PrometheusRegisterer, when set, receives libp2p's own metrics (swarm,
	// resource manager, …). Default: nil, libp2p metrics disabled.
	PrometheusRegisterer prometheus.Registerer
}

// DefaultMemberlistConfig is memberlist's LAN configuration with shorter
// intervals, so that a mesh of a few nodes converges within seconds (on
// loopback in tests, and on real networks when a site comes up). Failure
// detection keeps the LAN timings: libp2p streams on an open connection cost
// about one round trip, like UDP.
func DefaultMemberlistConfig() *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	c.GossipInterval = 100 * time.Millisecond // spread joins and leaves in a few hundred ms (LAN: 200ms)
	c.GossipNodes = 3                         // as LAN
	c.PushPullInterval = 10 * time.Second     // full-state sync repairs missed gossip sooner (LAN: 30s)
	c.ProbeInterval = 1 * time.Second         // as LAN: one failure probe per second
	c.ProbeTimeout = 500 * time.Millisecond   // as LAN: one RTT over an open connection
	c.TCPTimeout = 5 * time.Second            // bounds a stream dial, which may need a new connection (LAN: 10s)
	c.GossipToTheDeadTime = 10 * time.Second  // stop gossiping to dead nodes sooner (LAN: 30s)
	c.DeadNodeReclaimTime = 10 * time.Second  // a restarted site reuses its name (peer ID) at once
	c.EnableCompression = true                // as LAN
	c.SecretKey = nil                         // libp2p's Noise already encrypts and authenticates
	return c
}

// withDefaults returns a copy of c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if len(c.ListenAddrs) == 0 {
		c.ListenAddrs = DefaultListenAddrs
	}
	if c.Protocol == "" {
		c.Protocol = DefaultProtocol
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.SendQueueSize == 0 {
		c.SendQueueSize = 256
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.DisconnectBackoff == 0 {
		c.DisconnectBackoff = 30 * time.Second
	}
	if c.RedialMin == 0 {
		c.RedialMin = time.Second
	}
	if c.RedialMax == 0 {
		c.RedialMax = time.Minute
	}
	if c.ConnLow == 0 {
		c.ConnLow = 200
	}
	if c.ConnHigh == 0 {
		c.ConnHigh = 400
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Memberlist == nil {
		c.Memberlist = DefaultMemberlistConfig()
	}
	return c
}

// validate reports the first unusable setting of a defaulted Config.
func (c Config) validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("transport: Config.DataDir is empty; give the node's data directory"))
	}
	for _, s := range c.ListenAddrs {
		if _, err := ma.NewMultiaddr(s); err != nil {
			errs = append(errs, fmt.Errorf("transport: listen address %q is not a multiaddr (%v); use a form like /ip4/0.0.0.0/tcp/4001 or /ip4/0.0.0.0/udp/4001/quic-v1", s, err))
		}
	}
	if err := checkVersioned(c.Protocol); err != nil {
		errs = append(errs, err)
	}
	if c.MaxFrameSize < 0 || c.MaxFrameSize > 1<<30 {
		errs = append(errs, fmt.Errorf("transport: Config.MaxFrameSize %d is outside 1 B – 1 GiB", c.MaxFrameSize))
	}
	if c.SendQueueSize < 0 {
		errs = append(errs, fmt.Errorf("transport: Config.SendQueueSize %d is negative", c.SendQueueSize))
	}
	if c.RedialMin > c.RedialMax {
		errs = append(errs, fmt.Errorf("transport: Config.RedialMin %s exceeds RedialMax %s", c.RedialMin, c.RedialMax))
	}
	if c.ConnLow > c.ConnHigh {
		errs = append(errs, fmt.Errorf("transport: Config.ConnLow %d exceeds ConnHigh %d", c.ConnLow, c.ConnHigh))
	}
	if c.Memberlist.UDPBufferSize > maxPacketSize {
		errs = append(errs, fmt.Errorf("transport: Memberlist.UDPBufferSize %d exceeds the packet cap %d", c.Memberlist.UDPBufferSize, maxPacketSize))
	}
	return errors.Join(errs...)
}

// checkVersioned requires a protocol ID of the form /name/…/version, so that
// protocolFamily can tell other versions of it apart.
func checkVersioned(p protocol.ID) error {
	s := string(p)
	i := strings.LastIndexByte(s, '/')
	if !strings.HasPrefix(s, "/") || i <= 0 || i == len(s)-1 {
		return fmt.Errorf("transport: protocol %q is not of the form /name/version (e.g. %s)", s, DefaultProtocol)
	}
	return nil
}

// protocolFamily is a protocol ID without its version, with the trailing
// slash: "/meridian/sync/1.0.0" → "/meridian/sync/".
func protocolFamily(p protocol.ID) string {
	s := string(p)
	return s[:strings.LastIndexByte(s, '/')+1]
}
