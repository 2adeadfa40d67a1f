package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const scenarioDir = "../../simulate/scenarios"

func TestSimulatePrintsTheSeedFirstAndWritesTheReport(t *testing.T) {
	out := t.TempDir()
	text, err := meridian(t, "simulate", "--scenario", filepath.Join(scenarioDir, "partition-heal.toml"), "--seed", "99", "--out", out, "--quiet")
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if !strings.HasPrefix(text, "SEED=99\n") {
		t.Fatalf("output does not start with SEED=99:\n%s", text)
	}
	for _, want := range []string{"nodes=5", "network.loss=0.01", "PASS: partition-heal"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, f := range []string{"report.json", "series.csv", "latency.csv", "sites.csv", "divergence.svg", "latency.svg", "sites.svg"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
}

func TestFailingSimulationPrintsItsReplayCommand(t *testing.T) {
	scenario := filepath.Join(scenarioDir, "partition-heal.toml")
	text, err := meridian(t, "simulate", "--scenario", scenario, "--seed", "3", "--out", t.TempDir(), "--quiet", "--inject-broken-merge")
	if err == nil {
		t.Fatalf("a broken merge passed:\n%s", text)
	}
	want := "replay: meridian simulate --scenario " + scenario + " --seed 3 --inject-broken-merge"
	if !strings.Contains(text, want) {
		t.Fatalf("no replay command %q in:\n%s", want, text)
	}
	// Running the replay command reproduces the same failure.
	again, _ := meridian(t, "simulate", "--scenario", scenario, "--seed", "3", "--out", t.TempDir(), "--quiet", "--inject-broken-merge")
	first := text[strings.Index(text, "FAIL:"):strings.Index(text, "events in")]
	second := again[strings.Index(again, "FAIL:"):strings.Index(again, "events in")]
	if first != second {
		t.Fatalf("replay differs:\n%s\n---\n%s", first, second)
	}
}

func TestSimulateSweepWritesOneRowPerRun(t *testing.T) {
	out := t.TempDir()
	text, err := meridian(t, "simulate", "--scenario", filepath.Join(scenarioDir, "partition-heal.toml"), "--seed", "1",
		"--sweep", "network.loss=0,0.05", "--sweep", "seed=1,2", "--duration", "15s", "--out", out, "--quiet")
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	csv, err := os.ReadFile(filepath.Join(out, "sweep.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(csv)), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "network.loss,seed,") {
		t.Fatalf("sweep.csv:\n%s", csv)
	}
}

func TestSimulateRejectsBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"simulate"},
		{"simulate", "--scenario", "no-such-file.toml"},
		{"simulate", "--scenario", filepath.Join(scenarioDir, "partition-heal.toml"), "--seed", "-4"},
		{"simulate", "--scenario", filepath.Join(scenarioDir, "partition-heal.toml"), "--sweep", "network.lost=1,2"},
	} {
		text, err := meridian(t, args...)
		if err == nil || !strings.Contains(text, "meridian:") {
			t.Errorf("%v: err %v, output %q; want a clear error", args, err, text)
		}
	}
}
