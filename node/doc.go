// Package node runs one Meridian site: the replica driven by its loop, the
// Badger store, the libp2p host, the admin API, the authority's
// enforcement, the Frappe bridge and the verifier. It is the only package
// with goroutines, timers, sockets, disk and SQL handles; everything it
// decides about data it asks the pure packages (crdt, replica) to decide.
//
// # What it owns
//
//   - The loop (node.go): one goroutine owns the replica. Inbound frames,
//     peer events, admin calls and ticks are handled there; then one Ready
//     at a time goes to the persister goroutine, which applies its writes
//     in one Badger transaction and only then sends its messages; Advance
//     follows. While a Ready persists the loop keeps stepping (pipelined),
//     but takes no more messages once 1,500 documents wait for the next
//     Ready, so that every Ready fits in one transaction.
//   - The authority (authority.go, records.go): records from the reserved
//     doctype joined into a crdt.AuthorityState; the replica's hooks
//     (CanRead, Accept, VersionOf, Filter with CEL); the handshake with
//     peers not admitted; site reports.
//   - The bridge worker (bridge.go): applies what each Ready changed into
//     the site's database with the durable version vector, captures local
//     changes, retries the sync log, adopts, follows master versions.
//   - Offline bundles (bundle.go) and verification (verify.go).
//   - The admin API (api*.go), metrics (metrics.go), configuration
//     (config.go).
//
// # The driving loop, in short
//
//	for {
//		select { inbound → r.Step; peer up → handshake, r.AddPeer; call → f(r); persisted → advance; tick → r.Tick }
//		if !persisting && r.HasReady() { rd := r.Ready(); persister ← rd }  // store.Apply(rd.Writes), then send
//	}
//	advance: acknowledge durable edits; log events; r.Advance(rd); hand rd.Changes to the bridge; join new records
package node
