package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"
)

// BenchmarkCaptureLatency measures how long a Desk-style save (an UPDATE
// with a bumped modified) in a site's MariaDB takes to become an edit that
// has left the node: the time until a peer's replica holds it (loopback,
// default polling). make bench-bridge.
func BenchmarkCaptureLatency(b *testing.B) {
	url, db := throwawayDB(b, "mariadb")
	a := newSite(b, "A")
	bridgeConfig(b, a)
	a.start("--db", url)
	p := newSite(b, "P")
	p.start()
	p.must("peers", "add", a.addr())
	a.must("doc", "put", "Item", "LAT-1", "--json", `{"item_code": "LAT-1", "item_name": "v0"}`)
	waitFor(b, 30*time.Second, "LAT-1 in A's database and on P", func() bool {
		_, ok := column(b, db, "tabItem", "LAT-1", "name")
		return ok && p.field("Item", "LAT-1", "item_name") == "v0"
	})
	c, err := newClient(p.dir)
	if err != nil {
		b.Fatal(err)
	}
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	const samples = 40
	var lat []time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i := 1; i <= samples; i++ {
			want := fmt.Sprintf("v%d-%d", n, i)
			start := time.Now()
			if _, err := db.DB.Exec(context.Background(), "UPDATE `tabItem` SET `item_name` = ?, `modified` = ?, `modified_by` = 'clerk' WHERE `name` = 'LAT-1'",
				want, time.Now().In(kolkata).Format("2006-01-02 15:04:05.000000")); err != nil {
				b.Fatal(err)
			}
			for {
				var doc struct {
					Data map[string]any `json:"data"`
				}
				var raw json.RawMessage
				if err := c.call(context.Background(), "GET", resourcePath("Item", "LAT-1"), nil, &raw); err == nil {
					_ = json.Unmarshal(raw, &doc)
					if doc.Data["item_name"] == want {
						break
					}
				}
				if time.Since(start) > 20*time.Second {
					b.Fatalf("sample %d did not arrive", i)
				}
				time.Sleep(2 * time.Millisecond)
			}
			lat = append(lat, time.Since(start))
			time.Sleep(time.Duration(137*i%300) * time.Millisecond) // land anywhere in the poll interval
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
