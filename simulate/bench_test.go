package simulate

import (
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// BenchmarkWAN runs scenarios/wan-1000.toml (1,000 sites, 20,000 writes
// over 2,000 Items) and reports wall time, events per second, edit
// deliveries and the peak heap. SIM_NODES, SIM_WRITES and SIM_DEGREE shrink
// or reshape it: `make bench-sim` runs it as is.
func BenchmarkWAN(b *testing.B) {
	sc, err := LoadScenario("scenarios/wan-1000.toml")
	if err != nil {
		b.Fatal(err)
	}
	for _, o := range []struct{ env, path string }{{"SIM_NODES", "nodes"}, {"SIM_WRITES", "workload.writes"}, {"SIM_DEGREE", "degree"}} {
		if v := os.Getenv(o.env); v != "" {
			if err := sc.Set(o.path, v); err != nil {
				b.Fatal(err)
			}
		}
	}
	for i := 0; i < b.N; i++ {
		var peak uint64
		stop := make(chan bool)
		go func() { // sample the heap while the run goes
			var ms runtime.MemStats
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
					runtime.ReadMemStats(&ms)
					if ms.HeapInuse > peak {
						peak = ms.HeapInuse
					}
				}
			}
		}()
		start := time.Now()
		s, err := New(sc, Options{Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		rep, err := s.Run()
		if err != nil {
			b.Fatal(err)
		}
		wall := time.Since(start)
		close(stop)
		if !rep.Result.OK {
			b.Logf("run failed:\n%s", rep.Summary())
		}
		b.ReportMetric(wall.Seconds(), "s/run")
		b.ReportMetric(float64(rep.Result.Events)/wall.Seconds(), "events/s")
		b.ReportMetric(float64(rep.Totals.EditsDelivered), "edit-deliveries")
		b.ReportMetric(float64(peak)/(1<<30), "GiB-peak-heap")
		b.Logf("%s nodes=%s", rep.Summary(), strconv.Itoa(sc.Nodes))
	}
}
