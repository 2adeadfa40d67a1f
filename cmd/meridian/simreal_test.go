package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"meridian/simulate"
)

// The same small scenario — three sites, one cut off for 10 s while all
// write, then healed — run by the simulator and by three real processes:
// both must converge, and the times are logged side by side (README).
func TestSimulatorAgreesWithARealMesh(t *testing.T) {
	sc, err := simulate.LoadScenario(scenarioDir + "/three-site-partition.toml")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulate.New(sc, simulate.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := sim.Run()
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Result.OK {
		t.Fatalf("simulation failed:\n%s", rep.Summary())
	}

	sites := mesh(t, 3)
	waitMesh(t, sites)
	clients := make([]*client, 3)
	for i, s := range sites {
		if clients[i], err = newClient(s.dir); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 1))
	stop := make(chan bool)
	var wg sync.WaitGroup
	wg.Add(1)
	writes := 0
	go func() { // 50 writes/s on random sites, as the scenario's workload
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			c := clients[rng.IntN(3)]
			body := fmt.Sprintf(`{"item_name":"v%d","description":"d%d"}`, rng.IntN(1e6), rng.IntN(1e6))
			if err := c.call(context.Background(), "PUT", resourcePath("Item", fmt.Sprintf("ITEM-%05d", rng.IntN(50))), []byte(body), nil); err != nil {
				t.Error(err)
				return
			}
			writes++
		}
	}()
	time.Sleep(5 * time.Second)
	sites[2].must("network", "pause")
	time.Sleep(10 * time.Second)
	close(stop)
	wg.Wait()
	heal := time.Now()
	sites[2].must("network", "resume")
	converged(t, 30*time.Second, "Item", sites...)
	real := time.Since(heal)
	t.Logf("three sites, site 2 cut off for 10 s under 50 writes/s, then healed:")
	t.Logf("  simulator (seed 1): %d writes, converged %d ms after the heal (sampled every %s)",
		rep.Totals.Writes, rep.Result.ConvergedAfterHealMs, sc.Sample)
	t.Logf("  real mesh:          %d writes, converged %d ms after the heal (polled every 50 ms, incl. the CLI's own latency)",
		writes, real.Milliseconds())
	if real > 3*time.Duration(sc.SyncInterval) {
		t.Fatalf("the real mesh took %s to converge, more than three sync intervals: the simulator's model (%d ms) is far off", real, rep.Result.ConvergedAfterHealMs)
	}
}
