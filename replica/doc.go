// Package replica is the pure replication state machine of one site, in
// the style of etcd-io/raft: it owns the version vectors, the causal buffer,
// anti-entropy, tombstone collection and the layout of the durable store,
// and does no IO of its own.
//
// It may import crdt and the standard library; the Badger store
// (badger.go) is the one file set that imports Badger. No wall clock, no
// global randomness, no goroutines, no network: time arrives through Tick,
// randomness through Config.Rand, messages through Step, and everything the
// caller must do comes out of Ready. A driver that wants a Ready's
// per-document hashing and encoding spread over cores passes a loop as
// Config.Parallel; the output is identical either way.
//
// The driving loop (node and simulate both run exactly this):
//
//	r, err := replica.New(replica.Config{Site: me, Signer: signer}, store)
//	for {
//		select {
//		case <-ticker.C:
//			r.Tick(nowMs())
//		case m := <-inbox: // decoded with replica.DecodeMessage, From set by the transport
//			_ = r.Step(m)
//		case edit := <-proposals:
//			dot, err := r.Propose(edit) // visible at once, durable after the next Ready
//		case id := <-connected:
//			r.AddPeer(id)
//		}
//		if !r.HasReady() {
//			continue
//		}
//		rd, err := r.Ready()
//		store.Apply(rd.Writes)          // 1. persist atomically, BEFORE anything else
//		for _, m := range rd.Messages { // 2. send
//			send(m.To, replica.EncodeMessage(&m))
//		}
//		bridge.Apply(rd.Changes)        // 3. converged documents changed
//		log(rd.Events)                  // 4. rejections, holds, divergences
//		ack(rd.Acked)                   //    local edits now durable
//		r.Advance(rd)
//	}
//
// Protocol: a local edit is sealed with the others of its Ready into a
// signed batch and pushed to connected peers that may read its doctype.
// A receiver delivers a batch after the writes it depends on (buffering it
// and pulling the gap otherwise), holds it if its timestamp is too far
// ahead of the local clock, and rejects it if its signature does not
// verify. Anti-entropy compares version-vector digests and pulls missing
// (site, seq) ranges, which are served from state through a dot index:
// only writes still live travel, so storage and catch-up cost are bounded
// by the state, not by its history.
package replica
