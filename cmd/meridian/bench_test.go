package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Mesh benchmarks: real meridian processes on loopback (make bench-mesh).
// All five processes share this machine's two cores with the load
// generator.

// lagQuantiles reads the propagation-lag histograms of the given sites and
// returns interpolated quantiles in milliseconds.
func lagQuantiles(t testing.TB, sites []*site, qs ...float64) []float64 {
	counts := map[float64]float64{} // upper bound → cumulative count
	for _, s := range sites {
		c, err := newClient(s.dir)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := c.raw(context.Background(), "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(strings.NewReader(raw))
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "meridian_propagation_lag_seconds_bucket{") {
				continue
			}
			i := strings.Index(line, `le="`)
			j := strings.Index(line[i+4:], `"`)
			leS := line[i+4 : i+4+j]
			le := math.Inf(1)
			if leS != "+Inf" {
				le, _ = strconv.ParseFloat(leS, 64)
			}
			v, _ := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
			counts[le] += v
		}
	}
	var bounds []float64
	for b := range counts {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	total := counts[math.Inf(1)]
	out := make([]float64, len(qs))
	for k, q := range qs {
		target := q * total
		prevB, prevC := 0.0, 0.0
		for _, b := range bounds {
			if counts[b] >= target {
				if math.IsInf(b, 1) {
					out[k] = prevB * 1000
				} else {
					frac := 0.0
					if counts[b] > prevC {
						frac = (target - prevC) / (counts[b] - prevC)
					}
					out[k] = (prevB + frac*(b-prevB)) * 1000
				}
				break
			}
			prevB, prevC = b, counts[b]
		}
	}
	return out
}

// writeLoad issues single-document writes on s at rate per second (0: as
// fast as workers allow) until n are acknowledged; fields per write.
func writeLoad(t testing.TB, s *site, n, rate, workers, fields int, prefix string) time.Duration {
	c, err := newClient(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Duration(0)
	if rate > 0 {
		interval = time.Second / time.Duration(rate)
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if interval > 0 {
					if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
						time.Sleep(d)
					}
				}
				var b strings.Builder
				b.WriteString("{")
				for f := 0; f < fields; f++ {
					if f > 0 {
						b.WriteString(",")
					}
					fmt.Fprintf(&b, `"field_%02d":"v%d"`, f, i)
				}
				b.WriteString("}")
				name := fmt.Sprintf("%s-%06d", prefix, i%5000)
				if err := c.call(context.Background(), "PUT", resourcePath("Item", name), []byte(b.String()), nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func BenchmarkMeshLatencyAt1000WritesPerSecond(b *testing.B) {
	for i := 0; i < b.N; i++ {
		sites := mesh(b, 5)
		waitMesh(b, sites)
		const writes = 10000
		took := writeLoad(b, sites[0], writes, 1000, 32, 3, "LAT")
		converged(b, 60*time.Second, "Item", sites...)
		q := lagQuantiles(b, sites[1:], 0.5, 0.99)
		b.ReportMetric(float64(writes)/took.Seconds(), "writes/s")
		b.ReportMetric(q[0], "p50-ms")
		b.ReportMetric(q[1], "p99-ms")
	}
}

func BenchmarkMeshThroughputOneWriterFourReaders(b *testing.B) {
	for i := 0; i < b.N; i++ {
		sites := mesh(b, 5)
		waitMesh(b, sites)
		const writes, fields = 40000, 10
		start := time.Now()
		writeLoad(b, sites[0], writes, 0, 256, fields, "THR")
		converged(b, 120*time.Second, "Item", sites...)
		took := time.Since(start)
		b.ReportMetric(float64(writes*fields)/took.Seconds(), "field-updates/s")
		b.ReportMetric(float64(writes)/took.Seconds(), "writes/s")
	}
}

func BenchmarkCatchUpAfterMissing100kUpdates(b *testing.B) {
	for i := 0; i < b.N; i++ {
		sites := mesh(b, 2)
		waitMesh(b, sites)
		a, late := sites[0], sites[1]
		late.must("network", "pause")
		const updates = 100000
		writeLoad(b, a, updates, 0, 64, 1, "CU")
		before := late.metric("meridian_bytes_in_total")
		start := time.Now()
		late.must("network", "resume")
		converged(b, 300*time.Second, "Item", a, late)
		took := time.Since(start)
		got := late.metric("meridian_bytes_in_total") - before
		// The changed state: the 5,000 Items the updates touched, as JSON.
		c, err := newClient(a.dir)
		if err != nil {
			b.Fatal(err)
		}
		changed := 0
		for d := 0; d < 5000; d++ {
			raw, err := c.raw(context.Background(), resourcePath("Item", fmt.Sprintf("CU-%06d", d)))
			if err != nil {
				b.Fatal(err)
			}
			changed += len(raw)
		}
		b.ReportMetric(took.Seconds(), "catch-up-s")
		b.ReportMetric(got/(1<<20), "MiB-received")
		b.ReportMetric(float64(changed)/(1<<20), "MiB-changed-state-json")
	}
}

// waitMesh waits until every site is connected to every other.
func waitMesh(t testing.TB, sites []*site) {
	for _, s := range sites {
		waitFor(t, 30*time.Second, s.name+" fully connected", func() bool {
			n := 0
			for _, p := range s.status().Peers {
				if p.Connected {
					n++
				}
			}
			return n == len(sites)-1
		})
	}
}
