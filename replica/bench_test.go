package replica

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"meridian/crdt"
)

// itemEdit returns a realistic edit of an Item: created with 20 fields and
// three child tables of two rows, or three fields updated.
func itemEdit(i int, create bool) []crdt.Op {
	if !create {
		return []crdt.Op{
			{Kind: crdt.OpSet, Field: "description", Value: crdt.Str(fmt.Sprintf("revision %d", i))},
			{Kind: crdt.OpSet, Field: "standard_rate", Value: crdt.MustDec(fmt.Sprintf("%d.%02d", i%997, i%100))},
			{Kind: crdt.OpSet, Field: "disabled", Value: crdt.Int(int64(i % 2))},
		}
	}
	ops := []crdt.Op{{Kind: crdt.OpCreate}}
	for f, name := range []string{"item_code", "item_name", "item_group", "stock_uom", "description", "brand",
		"country_of_origin", "customs_tariff_number", "sales_uom", "purchase_uom", "valuation_method", "naming_series"} {
		ops = append(ops, crdt.Op{Kind: crdt.OpSet, Field: name, Value: crdt.Str(fmt.Sprintf("%s %d/%d", name, i, f))})
	}
	for _, name := range []string{"standard_rate", "valuation_rate", "opening_stock", "weight_per_unit"} {
		ops = append(ops, crdt.Op{Kind: crdt.OpSet, Field: name, Value: crdt.MustDec(fmt.Sprintf("%d.5", i%1000))})
	}
	for _, name := range []string{"is_stock_item", "include_item_in_manufacturing", "disabled", "has_variants"} {
		ops = append(ops, crdt.Op{Kind: crdt.OpSet, Field: name, Value: crdt.Int(int64(i % 2))})
	}
	for _, table := range []string{"barcodes", "uoms", "item_defaults"} {
		for r := 0; r < 2; r++ {
			row := fmt.Sprintf("%.2s%06d%d", table, i, r)
			ops = append(ops,
				crdt.Op{Kind: crdt.OpSet, Table: table, Row: row, Field: crdt.IdxField, Value: crdt.Int(int64(r + 1))},
				crdt.Op{Kind: crdt.OpSet, Table: table, Row: row, Field: "value", Value: crdt.Str(fmt.Sprintf("%s-%d-%d", table, i, r))})
		}
	}
	return ops
}

// BenchmarkLocalEditsDurable measures 100,000 local edits through the
// replica and Badger with fsync: 10,000 Items created, then 90,000 updates
// of three fields each, 1,000 edits per Ready (one Badger transaction),
// each Ready persisted while the next edits are proposed.
func BenchmarkLocalEditsDurable(b *testing.B) {
	const items, edits, perReady = 10_000, 100_000, 1000
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		store, err := OpenBadger(b.TempDir(), BadgerOptions{})
		if err != nil {
			b.Fatal(err)
		}
		d := newDriver(b, store, "A", func(c *Config) { c.Parallel = parallelLoop })
		rng := rand.New(rand.NewPCG(1, 2))
		// Persist each Ready on another goroutine while the next edits are
		// proposed, as the node does; an edit counts once its Ready is synced.
		var inflight *Ready
		done := make(chan error, 1)
		finish := func() {
			if inflight == nil {
				return
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			d.r.Advance(*inflight)
			inflight = nil
		}
		// The edits are made up before the clock starts: it times the
		// replica and Badger, not the generation of test data.
		names, ops := make([]string, edits), make([][]crdt.Op, edits)
		for i := range edits {
			names[i] = fmt.Sprintf("ITEM-%05d", i%items)
			if i >= items {
				names[i] = fmt.Sprintf("ITEM-%05d", rng.IntN(items))
			}
			ops[i] = itemEdit(i, i < items)
		}
		b.StartTimer()
		start := time.Now()
		for i := 0; i < edits; i++ {
			d.propose(names[i], ops[i]...)
			if (i+1)%perReady == 0 {
				finish()
				rd, err := d.r.Ready()
				if err != nil {
					b.Fatal(err)
				}
				inflight = &rd
				go func() { done <- store.Apply(rd.Writes) }()
			}
		}
		finish()
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(edits)/elapsed.Seconds(), "edits/s")
		store.Close()
	}
}

// BenchmarkStorePer100kItems reports the store's bytes (logical and on
// disk) and the replica's heap for 100,000 Items.
func BenchmarkStorePer100kItems(b *testing.B) {
	const items, perReady = 100_000, 2000
	for n := 0; n < b.N; n++ {
		dir := b.TempDir()
		store, err := OpenBadger(dir, BadgerOptions{NoSyncWrites: true})
		if err != nil {
			b.Fatal(err)
		}
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		d := newDriver(b, store, crdt.SiteID("12D3KooWC9UsZyMUiEYQDNQ4RTC7kAyJxbhdxCT6gc23YDBjBh4d"))
		for i := 0; i < items; i++ {
			d.propose(fmt.Sprintf("ITEM-%06d", i), itemEdit(i, true)...)
			if (i+1)%perReady == 0 {
				d.cycle()
			}
		}
		if err := store.Compact(); err != nil {
			b.Fatal(err)
		}
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		logical, keys := logicalSize(b, store)
		b.ReportMetric(float64(logical)/(1<<20), "MiB-stored")
		b.ReportMetric(float64(diskUsage(b, dir))/(1<<20), "MiB-disk")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-heap")
		b.ReportMetric(float64(keys), "keys")
		runtime.KeepAlive(d)
		store.Close()
	}
}

// parallelLoop is a driver's Config.Parallel, as the node has it.
func parallelLoop(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n/32)
	if workers < 2 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	var next atomic.Int64
	work := func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= n {
				return
			}
			f(i)
		}
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Go(work)
	}
	work()
	wg.Wait()
}
