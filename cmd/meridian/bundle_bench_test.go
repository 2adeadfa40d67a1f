package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkBundle100kItems exports a bundle of 100,000 Items from one site
// and imports it into a fresh one (make bench-bundle): bytes, export time,
// and the import rate into the store.
func BenchmarkBundle100kItems(b *testing.B) {
	const items = 100_000
	a := newSite(b, "A")
	a.start()
	start := time.Now()
	bulkPut(b, a, 0, items, "bundled item")
	b.Logf("wrote %d Items in %s", items, time.Since(start).Round(time.Millisecond))
	dir := b.TempDir()
	file := filepath.Join(dir, "all.bdl")
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		t0 := time.Now()
		a.must("bundle", "export", "--all", "-o", file)
		export := time.Since(t0)
		st, err := os.Stat(file)
		if err != nil {
			b.Fatal(err)
		}
		c := newSite(b, "C")
		c.start()
		b.Cleanup(func() {
			if b.Failed() {
				b.Logf("---- C log (tail)\n%s", tail(c.log.String(), 3000))
			}
		})
		t1 := time.Now()
		c.must("bundle", "import", file)
		imp := time.Since(t1)
		if got := digestOf(c.status(), "Item"); got != digestOf(a.status(), "Item") {
			b.Fatalf("the imported site differs: %s vs %s", got, digestOf(a.status(), "Item"))
		}
		b.ReportMetric(float64(st.Size())/(1<<20), "bundle-MiB")
		b.ReportMetric(export.Seconds(), "export-s")
		b.ReportMetric(imp.Seconds(), "import-s")
		b.ReportMetric(float64(items)/imp.Seconds(), "imported-items/s")
		c.kill()
	}
}
