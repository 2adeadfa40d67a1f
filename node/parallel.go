package node

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// parallel is the replica's Config.Parallel: f(0) … f(n-1) on up to
// GOMAXPROCS goroutines (the calling one among them), returning when all
// are done. Small loops run in order: spreading them costs more than it
// saves.
func parallel(n int, f func(i int)) {
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
