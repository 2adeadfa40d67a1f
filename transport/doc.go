// Package transport is everything Meridian does on the network: the node's
// identity, a libp2p host, framed messaging between sites, membership of the
// mesh, and the peer book. Payloads are opaque bytes here; the replication
// protocol lives in replica and is wired to this package by node.
//
// # What it owns
//
//   - Identity: <DataDir>/identity.key, an ed25519 libp2p key (mode 0600).
//     The site ID is the peer ID; Ed25519PrivateKey gives the raw key the
//     replica signs with. See LoadOrCreateIdentity.
//   - The libp2p host: TCP and QUIC listeners, Noise, yamux, the connection
//     manager (peer-book peers are protected) and the resource manager
//     (limits in resources.go), and a connection gater that applies
//     Config.Gater and the back-off of disconnected peers in both directions.
//   - Framed messaging on Config.Protocol (default /meridian/sync/1.0.0):
//     each frame is a 4-byte big-endian length and the payload, capped at
//     Config.MaxFrameSize. Send never blocks: one bounded queue, one writer
//     goroutine and one long-lived stream per peer. Request/HandleRequests
//     carry request/response exchanges, one stream per request. A peer that
//     sends an oversized frame is disconnected; a truncated frame or a stream
//     for another version of a protocol is closed; each with a log line
//     naming the peer and the reason.
//   - Membership: hashicorp/memberlist over libp2p streams
//     (/meridian/memberlist/packet/1.0.0 and …/stream/1.0.0; no sockets of its
//     own). Node names are peer IDs, each node's multiaddrs travel in its
//     node metadata, so learning one peer is enough to find and dial all.
//     memberlist's IP:port addresses are synthetic (derived from the peer ID)
//     and never dialled; routing is by node name. Peers refused by
//     Config.Gater are kept out of the member list.
//   - The peer book: <DataDir>/peers.json, peers added by the operator and
//     peers learnt from membership, written atomically. A restarted host
//     re-dials them (with back-off) and rejoins the mesh through them.
//
// # What it may import
//
// The standard library, go-libp2p and go-multiaddr, hashicorp/memberlist,
// fxamacker/cbor (node metadata) and the Prometheus client (only to hand a
// registerer to libp2p). Never replica, crdt, bridge or node: imports point
// down, and this package knows nothing of what the bytes mean.
//
// # Goroutines
//
// New starts: one event loop (Config.OnMemberEvent and Config.OnPeerEvent
// run on it), one maintenance loop (redial and rejoin, peer-book saves), one
// address watcher, plus memberlist's own; on demand, one writer per peer
// with queued frames, short-lived ones per dial, join and memberlist packet.
// libp2p runs inbound stream handlers, and so the Handler, on its own
// goroutines. Close stops all of them and waits for them, so it must not be
// called from a callback.
//
// # Use
//
//	h, err := transport.New(ctx, transport.Config{
//		DataDir: dataDir,
//		Logger:  logger,
//		Gater:   authority.Admitted, // func(peer.ID) bool
//		Handler: func(from peer.ID, payload []byte) {
//			inbox <- message{from, payload} // decode and r.Step in the node loop
//		},
//		OnPeerEvent: func(ev transport.PeerEvent) {
//			if ev.Connected {
//				connected <- ev.Peer // start anti-entropy with it
//			}
//		},
//	})
//	if err != nil {
//		return err
//	}
//	defer h.Close()
//
//	if _, err := h.AddPeer("/ip4/10.0.0.2/tcp/4001/p2p/12D3KooW…"); err != nil {
//		return err // the error says what is wrong with the address
//	}
//
//	// In the node loop, after persisting rd.Writes:
//	for _, m := range rd.Messages {
//		if !h.Send(m.To, m.Bytes) {
//			// not connected or queue full: anti-entropy repairs it later
//		}
//	}
package transport
