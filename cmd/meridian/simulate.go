package main

import (
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"runtime/debug"

	"github.com/spf13/cobra"
	"meridian/crdt"
	"meridian/simulate"
)

func newSimulateCmd() *cobra.Command {
	var (
		scenario string
		seedFlag string
		nodes    int
		duration string
		out      string
		sweeps   []string
		verify   bool
		quiet    bool
		fault    bool
	)
	cmd := &cobra.Command{
		Use:   "simulate --scenario FILE [--seed N] [--nodes N] [--duration D] [--out DIR] [--sweep param=a,b,c]…",
		Short: "Run the real replication code on simulated sites, reproducibly from a seed",
		Long: `Runs the replica state machine of every simulated site with simulated time,
network, disks, crashes and clocks, all driven by one 64-bit seed: the same
seed and options give a byte-identical report. It prints SEED= and every
option first, checks safety throughout and convergence after the final heal,
writes report.json, CSV files and SVG plots into --out, and prints the exact
command that replays a failing run. See docs/simulate.md for the scenario schema.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if scenario == "" {
				return errors.New("--scenario FILE is required (examples in simulate/scenarios/)")
			}
			// A simulation is a batch job: trade memory for less GC.
			debug.SetGCPercent(400)
			if fault {
				crdt.InjectMergeFault(true)
			}
			sc, err := simulate.LoadScenario(scenario)
			if err != nil {
				return err
			}
			if nodes > 0 {
				if err := sc.Set("nodes", strconv.Itoa(nodes)); err != nil {
					return err
				}
			}
			if duration != "" {
				if err := sc.Set("duration", duration); err != nil {
					return err
				}
			}
			seed, err := parseSeed(seedFlag)
			if err != nil {
				return err
			}
			if out == "" {
				out = filepath.Join("sim-out", fmt.Sprintf("%s-%d", sc.Name, seed))
			}
			w := cmd.OutOrStdout()
			var progress = cmd.ErrOrStderr()
			if quiet {
				progress = nil
			}
			replay := func(seed uint64, extra ...string) string {
				parts := []string{"meridian simulate --scenario", shellQuote(scenario), "--seed", strconv.FormatUint(seed, 10)}
				if nodes > 0 {
					parts = append(parts, "--nodes", strconv.Itoa(nodes))
				}
				if duration != "" {
					parts = append(parts, "--duration", duration)
				}
				if verify {
					parts = append(parts, "--verify")
				}
				if fault {
					parts = append(parts, "--inject-broken-merge")
				}
				return strings.Join(append(parts, extra...), " ")
			}
			if len(sweeps) == 0 {
				fmt.Fprintf(w, "SEED=%d\n", seed)
				for _, o := range sc.Options() {
					fmt.Fprintln(w, o)
				}
				start := time.Now()
				rep, err := runOne(sc, seed, verify, progress)
				if err != nil {
					return err
				}
				if err := rep.WriteFiles(out); err != nil {
					return err
				}
				fmt.Fprint(w, rep.Summary())
				fmt.Fprintf(w, "%d events in %.1fs wall (%.0f events/s); report in %s\n",
					rep.Result.Events, time.Since(start).Seconds(), float64(rep.Result.Events)/time.Since(start).Seconds(), out)
				if !rep.Result.OK {
					fmt.Fprintf(w, "replay: %s\n", replay(seed))
					return errors.New("simulation failed")
				}
				return nil
			}
			return runSweep(cmd, sc, seed, sweeps, out, verify, progress, replay)
		},
	}
	cmd.Flags().StringVar(&scenario, "scenario", "", "scenario file (TOML; see docs/simulate.md)")
	cmd.Flags().StringVar(&seedFlag, "seed", "", "64-bit seed (default: a random one, printed)")
	cmd.Flags().IntVar(&nodes, "nodes", 0, "override the scenario's number of sites")
	cmd.Flags().StringVar(&duration, "duration", "", "override the workload duration (e.g. 30s)")
	cmd.Flags().StringVar(&out, "out", "", "directory for the report (default sim-out/NAME-SEED)")
	cmd.Flags().StringArrayVar(&sweeps, "sweep", nil, "run a grid: param=a,b,c (repeatable; param is a scenario option path or seed)")
	cmd.Flags().BoolVar(&verify, "verify", false, "sign and verify batches with real ed25519 keys (slower)")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress lines")
	cmd.Flags().BoolVar(&fault, "inject-broken-merge", false, "run with a deliberately broken merge (to see the checkers fail)")
	_ = cmd.Flags().MarkHidden("inject-broken-merge")
	return cmd
}

func runOne(sc simulate.Scenario, seed uint64, verify bool, progress interface{ Write([]byte) (int, error) }) (*simulate.Report, error) {
	opt := simulate.Options{Seed: seed, Verify: verify}
	if progress != nil {
		opt.Progress = progress
	}
	s, err := simulate.New(sc, opt)
	if err != nil {
		return nil, err
	}
	return s.Run()
}

func runSweep(cmd *cobra.Command, base simulate.Scenario, seed uint64, sweeps []string, out string, verify bool,
	progress interface{ Write([]byte) (int, error) }, replay func(uint64, ...string) string) error {
	var axes []simulate.Axis
	for _, s := range sweeps {
		a, err := simulate.ParseAxis(s)
		if err != nil {
			return err
		}
		axes = append(axes, a)
	}
	grid := simulate.Grid(axes)
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "SEED=%d\n", seed)
	for _, o := range base.Options() {
		fmt.Fprintln(w, o)
	}
	for _, a := range axes {
		fmt.Fprintf(w, "sweep %s=%s\n", a.Path, strings.Join(a.Values, ","))
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	lines := []string{simulate.SweepHeader(axes)}
	fmt.Fprintln(w, lines[0])
	failed := 0
	for i, combo := range grid {
		sc, runSeed := base, seed
		for j, v := range combo {
			if axes[j].Path == "seed" {
				s, err := parseSeed(v)
				if err != nil {
					return err
				}
				runSeed = s
				continue
			}
			if err := sc.Set(axes[j].Path, v); err != nil {
				return err
			}
		}
		if progress != nil {
			fmt.Fprintf(progress, "run %d/%d: %s\n", i+1, len(grid), strings.Join(combo, " "))
		}
		rep, err := runOne(sc, runSeed, verify, nil)
		if err != nil {
			return err
		}
		row := simulate.SweepRow(combo, rep)
		lines = append(lines, row)
		fmt.Fprintln(w, row)
		if !rep.Result.OK {
			failed++
			var sets []string
			for j, v := range combo {
				if axes[j].Path != "seed" {
					sets = append(sets, fmt.Sprintf("%s=%s", axes[j].Path, v))
				}
			}
			fmt.Fprintf(w, "  run %d failed: %s\n", i+1, rep.Failures[0])
			if len(sets) > 0 {
				fmt.Fprintf(w, "  replay: %s --sweep %s\n", replay(runSeed), strings.Join(sets, " --sweep "))
			} else {
				fmt.Fprintf(w, "  replay: %s\n", replay(runSeed))
			}
		}
	}
	path := filepath.Join(out, "sweep.csv")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d runs, %d failed; CSV in %s\n", len(grid), failed, path)
	if failed > 0 {
		return fmt.Errorf("%d of %d runs failed", failed, len(grid))
	}
	return nil
}

func parseSeed(s string) (uint64, error) {
	if s == "" {
		var b [8]byte
		if _, err := crand.Read(b[:]); err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint64(b[:]) >> 1, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("--seed wants a non-negative 64-bit integer, not %q", s)
	}
	return v, nil
}

func shellQuote(s string) string {
	if strings.ContainsAny(s, " '\"$`\\") {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return s
}
