// Package simulate runs the real replica.Replica of many simulated sites
// with simulated time, network, disks and clocks, all driven by one 64-bit
// seed: the same seed gives byte-identical reports.
//
// # What it owns
//
//   - The event loop (sim.go): a priority queue of timed events — ticks,
//     Readies being persisted (a crash before that loses them), message
//     deliveries, workload writes, scenario events.
//   - The network model (network.go): per-link latency distributions,
//     loss, duplication, reordering, bandwidth, partitions, clogging.
//   - The workload (workload.go): Frappe-like Items and Customers, hot
//     keys, concurrent conflicting writes, deletes and re-creates.
//   - The authority (authority.go): signed records replicated as documents,
//     enforced by every site with the node's own decisions.
//   - The checkers (check.go): safety throughout, convergence after the
//     final heal; the report (report.go, svg.go) and sweeps (sweep.go).
//
// It starts no goroutines, reads no wall clock for the run itself and
// draws every random choice from the seed; see docs/simulate.md.
package simulate
