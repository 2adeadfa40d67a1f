package replica

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"

	"meridian/crdt"
)

// Config configures a Replica. Zero values take the defaults named in each
// field's comment (see EnsureDefaults).
type Config struct {
	// Site is this replica's site ID. Required.
	Site crdt.SiteID
	// Signer signs the batches of local edits with the site's key. Required.
	Signer crdt.Signer
	// Verifier checks the signature of every batch received.
	// Default: crdt.PeerIDVerifier (the key embedded in libp2p peer IDs).
	Verifier crdt.Verifier
	// Rand is the only source of randomness (which peers to sync with).
	// Default: a PCG seeded from the site ID, so runs are reproducible.
	Rand *rand.Rand
	// MaxClockSkewMs holds batches timestamped further than this ahead of
	// the local clock. Default: 5 minutes.
	MaxClockSkewMs int64
	// SyncIntervalMs is the period of anti-entropy rounds. Default: 5 s.
	SyncIntervalMs int64
	// SyncFanout is how many connected peers each round syncs with.
	// Default: 3.
	SyncFanout int
	// Parallel, when set, calls f(0) … f(n-1), possibly at once on several
	// goroutines, and returns when all have returned. A Ready hands it
	// independent per-document work (register digests, record encoding,
	// leaf hashes); the results are the same with or without it. The
	// replica starts no goroutine itself: the driver decides (the node
	// uses its cores; the simulator leaves it nil).
	Parallel func(n int, f func(i int))
	// MaxBatchEdits bounds the local edits sealed into one signed batch.
	// Default: 4096.
	MaxBatchEdits int
	// MaxMessageBytes bounds one pushed or served message (estimated).
	// One local edit may be at most half of it: bigger edits are refused
	// by Propose (ErrTooLarge), so every write fits in a message.
	// Default: 4 MiB.
	MaxMessageBytes int
	// MaxBuffered bounds batches waiting for their causal dependencies or
	// held for clock skew; beyond it the oldest is dropped and anti-entropy
	// fetches it again later. Default: 4096.
	MaxBuffered int
	// DocCacheSize bounds the decoded documents kept in memory (a few KiB
	// each). Default: 20,000.
	DocCacheSize int
	// CanRead reports whether a peer may receive a doctype. Default: every
	// peer reads everything (until the authority's grants exist).
	CanRead func(peer crdt.SiteID, doctype string) bool
	// Accept decides whether edits an origin made to a doctype under a
	// master version may be applied here: nil applies them; an error
	// wrapping ErrWait keeps them until Recheck (a grant not arrived yet);
	// one wrapping ErrFlag applies them and reports why; any other error
	// rejects them. It also judges local edits. Default: accept everything.
	Accept func(origin crdt.SiteID, doctype string, version uint64) error
	// VersionOf returns the master version this site writes a doctype
	// under (0: none). Default: 0.
	VersionOf func(doctype string) uint64
	// Filter, when it returns a function for a peer and doctype, limits what
	// the peer receives of the doctype to the documents the function
	// accepts; an accepted document this site changes is sent to the peer
	// whole, so a document that becomes visible arrives complete.
	// Default: no filter.
	Filter func(peer crdt.SiteID, doctype string) func(d *crdt.Doc) bool
	// History is how many past writes of each document History returns,
	// for `meridian doc history`. The store keeps a ring of History records
	// per document, each the writes one Ready brought, so it stays bounded.
	// Default: 0, none.
	History int
	// TombstoneGCIntervalMs is how often removed-row tombstones that every
	// known consumer acknowledged are collected. Default: 60 s.
	TombstoneGCIntervalMs int64
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.Verifier == nil {
		c.Verifier = crdt.PeerIDVerifier{}
	}
	if c.Rand == nil {
		h := fnv.New64a()
		h.Write([]byte(c.Site))
		c.Rand = rand.New(rand.NewPCG(h.Sum64(), 0x6d6572696469616e))
	}
	if c.MaxClockSkewMs == 0 {
		c.MaxClockSkewMs = 5 * 60 * 1000
	}
	if c.SyncIntervalMs == 0 {
		c.SyncIntervalMs = 5000
	}
	if c.SyncFanout == 0 {
		c.SyncFanout = 3
	}
	if c.MaxBatchEdits == 0 {
		c.MaxBatchEdits = 4096
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 4 << 20
	}
	if c.MaxBuffered == 0 {
		c.MaxBuffered = 4096
	}
	if c.DocCacheSize == 0 {
		c.DocCacheSize = 20_000
	}
	if c.TombstoneGCIntervalMs == 0 {
		c.TombstoneGCIntervalMs = 60_000
	}
}

// Validate reports the first thing wrong with the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Site == "":
		return errors.New("replica: Config.Site is empty")
	case c.Signer == nil:
		return errors.New("replica: Config.Signer is nil")
	case c.Signer.Site() != c.Site:
		return fmt.Errorf("replica: signer is for site %s, config for %s", c.Signer.Site(), c.Site)
	case c.MaxBatchEdits < 1 || c.MaxBatchEdits > crdt.MaxBatchEdits:
		return fmt.Errorf("replica: MaxBatchEdits %d out of range 1..%d", c.MaxBatchEdits, crdt.MaxBatchEdits)
	case c.MaxClockSkewMs < 0 || c.SyncIntervalMs < 0:
		return errors.New("replica: negative interval")
	}
	return nil
}
