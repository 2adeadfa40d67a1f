package replica

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"meridian/crdt"
)

// driver runs one replica over a durable store, as the node does.
type driver struct {
	t     testing.TB
	r     *Replica
	store DurableStore
	now   int64
}

func newDriver(t testing.TB, store DurableStore, site crdt.SiteID, opts ...func(*Config)) *driver {
	cfg := Config{Site: site, Signer: crdt.Ed25519Signer{ID: site, Key: keyFor(site)}, Verifier: crdt.KeyRing{}}
	for _, o := range opts {
		o(&cfg)
	}
	r, err := New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	d := &driver{t: t, r: r, store: store, now: 1_700_000_000_000}
	r.Tick(d.now)
	return d
}

func (d *driver) cycle() Ready {
	rd, err := d.r.Ready()
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.store.Apply(rd.Writes); err != nil {
		d.t.Fatal(err)
	}
	d.r.Advance(rd)
	return rd
}

// collect advances time past a collection round and persists what it found.
func (d *driver) collect() {
	d.now += 60_001
	d.r.Tick(d.now)
	d.cycle()
}

func (d *driver) propose(name string, ops ...crdt.Op) {
	if _, err := d.r.Propose(Proposal{Doctype: "Item", Name: name, Ops: ops}); err != nil {
		d.t.Fatal(err)
	}
}

// logicalSize sums the bytes of every key and value the replica stores.
func logicalSize(t testing.TB, s Store) (int64, int) {
	var n int64
	keys := 0
	if err := s.Scan(nil, nil, func(k, v []byte) bool {
		n += int64(len(k) + len(v))
		keys++
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return n, keys
}

// diskUsage returns the bytes the directory's files occupy on disk
// (allocated blocks, so preallocated sparse files count what they use).
func diskUsage(t testing.TB, dir string) int64 {
	var total int64
	err := filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && !info.IsDir() {
			total += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

func TestMillionOverwritesKeepTheStoreBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a million edits; run without -short")
	}
	dir := t.TempDir()
	store, err := OpenBadger(dir, BadgerOptions{NoSyncWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	d := newDriver(t, store, "A")
	d.propose("ITEM-1", crdt.Op{Kind: crdt.OpCreate}, crdt.Op{Kind: crdt.OpSet, Field: "item_name", Value: crdt.Str("value 0000000")})
	d.cycle()
	d.collect()
	if err := store.Compact(); err != nil {
		t.Fatal(err)
	}
	firstLogical, firstKeys := logicalSize(t, store)
	firstDisk := diskUsage(t, dir)

	const total = 1_000_000
	const perReady = 1000
	var earlyLogical int64
	var earlyKeys int
	for i := 1; i <= total; i++ {
		d.propose("ITEM-1", crdt.Op{Kind: crdt.OpSet, Field: "item_name", Value: crdt.Str(fmt.Sprintf("value %07d", i))})
		if i%perReady == 0 {
			d.cycle()
		}
		if i == 10*perReady {
			d.collect()
			earlyLogical, earlyKeys = logicalSize(t, store)
		}
	}
	d.collect()
	if err := store.Compact(); err != nil {
		t.Fatal(err)
	}
	lastLogical, lastKeys := logicalSize(t, store)
	lastDisk := diskUsage(t, dir)
	t.Logf("after the first write: %d keys, %d bytes stored, %d bytes on disk", firstKeys, firstLogical, firstDisk)
	t.Logf("after %d overwrites:  %d keys, %d bytes stored, %d bytes on disk", total, lastKeys, lastLogical, lastDisk)

	t.Logf("after %d overwrites:     %d keys, %d bytes stored", 10*perReady, earlyKeys, earlyLogical)
	// The stored state is the state, not its history. The first overwrite
	// adds a constant (the creating edit stays live for the document's life
	// write, so two edits and their batch headers are indexed instead of
	// one); from then on nothing grows but a few bytes of larger sequence
	// numbers and timestamps.
	if lastKeys > firstKeys+4 || lastLogical > firstLogical+512 {
		t.Fatalf("store grew from %d keys / %d bytes to %d keys / %d bytes", firstKeys, firstLogical, lastKeys, lastLogical)
	}
	if lastKeys != earlyKeys || lastLogical > earlyLogical+16 {
		t.Fatalf("store grew between %d and %d overwrites: %d keys / %d bytes → %d keys / %d bytes", 10*perReady, total, earlyKeys, earlyLogical, lastKeys, lastLogical)
	}
	// On disk, after compaction, Badger keeps a bounded working set.
	if lastDisk > firstDisk+8<<20 {
		t.Fatalf("disk usage grew from %d to %d bytes", firstDisk, lastDisk)
	}
	doc, _ := d.r.Doc("Item", "ITEM-1")
	if got := doc.View().Fields["item_name"]; got != crdt.Str(fmt.Sprintf("value %07d", total)) {
		t.Fatalf("item_name = %v", got)
	}
}

func TestBadgerReopenResumesExactly(t *testing.T) {
	dir := t.TempDir()
	store, err := OpenBadger(dir, BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, store, "A")
	for i := 0; i < 50; i++ {
		d.propose(fmt.Sprintf("ITEM-%02d", i), crdt.Op{Kind: crdt.OpCreate}, crdt.Op{Kind: crdt.OpSet, Field: "item_name", Value: crdt.Str("x")})
	}
	d.cycle()
	// Proposed but never persisted: lost with the crash, never acknowledged.
	d.propose("ITEM-LOST", crdt.Op{Kind: crdt.OpCreate})
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	store, err = OpenBadger(dir, BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	d2 := newDriver(t, store, "A")
	vv := d2.r.VersionVector("Item")
	if got := vv["A"]; got == nil || got.Max != 50 || len(got.Extra) != 0 {
		t.Fatalf("version vector after reopen: %v; want A:50", vv)
	}
	if doc, _ := d2.r.Doc("Item", "ITEM-LOST"); doc.Exists() {
		t.Fatal("an edit that was never persisted survived")
	}
	// The next edit continues the sequence where the durable state stopped.
	dot, err := d2.r.Propose(Proposal{Doctype: "Item", Name: "ITEM-NEXT", Ops: []crdt.Op{{Kind: crdt.OpCreate}}})
	if err != nil || dot.Seq != 51 {
		t.Fatalf("next dot %v, %v; want A:51", dot, err)
	}
	d2.cycle()
	names, err := d2.r.Names("Item", "", 0)
	if err != nil || len(names) != 51 {
		t.Fatalf("names: %d, %v", len(names), err)
	}
	// The persisted digest survives a restart unchanged.
	g1, _ := d2.r.StateDigest("Item")
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	store3, err := OpenBadger(dir, BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store3.Close()
	d3 := newDriver(t, store3, "A")
	g2, _ := d3.r.StateDigest("Item")
	if g1 != g2 {
		t.Fatal("state digest changed across a restart")
	}
}

func TestBadgerRefusesASecondOpener(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBadger(dir, BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := OpenBadger(dir, BadgerOptions{}); err == nil {
		t.Fatal("a second process could open the same store")
	}
}

// A driver may spread a Ready's per-document work over goroutines
// (Config.Parallel); what the replica writes and signs must not change.
func TestParallelReadyWritesTheSame(t *testing.T) {
	run := func(par func(int, func(int))) [][]Write {
		d := newDriver(t, NewMemStore(), "A", func(c *Config) { c.Parallel = par })
		var out [][]Write
		for round := range 4 {
			for i := range 300 {
				name := fmt.Sprintf("ITEM-%04d", (i*7+round*13)%500)
				doc, _ := d.r.Doc("Item", name)
				ops := itemEdit(i+round*1000, !doc.Exists())
				if round == 3 && i%50 == 0 && doc.Exists() {
					ops = append(ops, crdt.Op{Kind: crdt.OpDelete}) // deletions too
				}
				d.propose(name, ops...)
			}
			out = append(out, d.cycle().Writes)
		}
		return out
	}
	var calls atomic.Int64
	seq := run(nil)
	par := run(func(n int, f func(int)) { calls.Add(1); parallelLoop(n, f) })
	if calls.Load() == 0 {
		t.Fatal("Parallel was never called")
	}
	for r := range seq {
		if len(seq[r]) != len(par[r]) {
			t.Fatalf("round %d: %d writes in order, %d in parallel", r, len(seq[r]), len(par[r]))
		}
		for i := range seq[r] {
			a, b := seq[r][i], par[r][i]
			if !bytes.Equal(a.Key, b.Key) || !bytes.Equal(a.Value, b.Value) || a.Delete != b.Delete {
				t.Fatalf("round %d write %d differs: %q vs %q", r, i, a.Key, b.Key)
			}
		}
	}
}

// The digest a replica keeps for a document is updated from the registers
// each Ready changed; it must always equal the digest of the content, through
// updates, deletions, re-creations and row removals.
func TestKeptDigestsMatchContent(t *testing.T) {
	d := newDriver(t, NewMemStore(), "A")
	set := func(f, v string) crdt.Op { return crdt.Op{Kind: crdt.OpSet, Field: f, Value: crdt.Str(v)} }
	row := func(r, v string) crdt.Op {
		return crdt.Op{Kind: crdt.OpSet, Table: "uoms", Row: r, Field: "uom", Value: crdt.Str(v)}
	}
	steps := [][]crdt.Op{
		{{Kind: crdt.OpCreate}, set("item_name", "a"), row("R1", "Nos")},
		{set("item_name", "b"), row("R2", "Box")},
		{set("item_name", "c")},
		{{Kind: crdt.OpRemoveRow, Table: "uoms", Row: "R1"}},
		{{Kind: crdt.OpDelete}},
		{{Kind: crdt.OpCreate}, set("item_name", "d"), row("R1", "Kg")},
		{set("item_name", "e")},
		{set("item_name", "f"), set("description", "x")},
		{{Kind: crdt.OpDelete}},
		{{Kind: crdt.OpCreate}, set("description", "y")},
		{set("item_name", "g")},
		{set("item_name", "h")},
	}
	for i, ops := range steps {
		d.propose("ITEM-1", ops...)
		d.cycle()
		e, err := d.r.load("Item", "ITEM-1")
		if err != nil {
			t.Fatal(err)
		}
		if content := e.doc.Digest(); e.digest != content {
			t.Fatalf("after step %d the kept digest %x differs from the content's %x", i+1, e.digest[:6], content[:6])
		}
	}
}
