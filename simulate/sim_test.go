package simulate

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"meridian/crdt"
)

func loadScenario(t *testing.T, path string) Scenario {
	t.Helper()
	sc, err := LoadScenario(path)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func run(t *testing.T, sc Scenario, seed uint64) *Report {
	t.Helper()
	s, err := New(sc, Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Run()
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func reportJSON(t *testing.T, r *Report) []byte {
	t.Helper()
	b, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSameSeedGivesTheSameReportAndAnotherSeedAnotherRun(t *testing.T) {
	sc := loadScenario(t, "scenarios/partition-heal.toml")
	a := reportJSON(t, run(t, sc, 7))
	b := reportJSON(t, run(t, sc, 7))
	if !bytes.Equal(a, b) {
		t.Fatal("two runs with seed 7 produced different reports")
	}
	c := reportJSON(t, run(t, sc, 8))
	if bytes.Equal(a, c) {
		t.Fatal("seeds 7 and 8 produced the same report")
	}
	// And the files written from it are byte-identical too.
	d1, d2 := t.TempDir(), t.TempDir()
	if err := run(t, sc, 7).WriteFiles(d1); err != nil {
		t.Fatal(err)
	}
	if err := run(t, sc, 7).WriteFiles(d2); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"report.json", "series.csv", "latency.csv", "sites.csv", "divergence.svg", "latency.svg", "sites.svg"} {
		if !bytes.Equal(readFile(t, d1, f), readFile(t, d2, f)) {
			t.Fatalf("%s differs between two runs of one seed", f)
		}
	}
}

func TestPartitionHealConverges(t *testing.T) {
	rep := run(t, loadScenario(t, "scenarios/partition-heal.toml"), 1)
	if !rep.Result.OK || !rep.Result.Converged {
		t.Fatalf("run failed:\n%s", rep.Summary())
	}
	if rep.Totals.Writes == 0 || rep.Totals.EditsDelivered == 0 || rep.Totals.Partitions == 0 {
		t.Fatalf("the run did nothing: %+v", rep.Totals)
	}
}

// A merge that keeps overwritten writes is a real bug a developer could
// make; the checkers must catch it, and the same seed must catch it again.
func TestCheckersCatchABrokenMerge(t *testing.T) {
	crdt.InjectMergeFault(true)
	defer crdt.InjectMergeFault(false)
	sc := loadScenario(t, "scenarios/partition-heal.toml")
	first := run(t, sc, 3)
	if first.Result.OK {
		t.Fatalf("a broken merge went unnoticed:\n%s", first.Summary())
	}
	again := run(t, sc, 3)
	if !bytes.Equal(reportJSON(t, first), reportJSON(t, again)) {
		t.Fatal("replaying the failing seed did not reproduce the failure exactly")
	}
	found := false
	for _, v := range first.Result.Violations {
		if strings.Contains(v, "overwrote it") {
			found = true
		}
	}
	if !found {
		t.Fatalf("expected a 'not a join of real writes' violation, got %v / %v", first.Result.Violations, first.Failures)
	}
}

func TestSetChangesOneOptionAndRejectsUnknownOnes(t *testing.T) {
	sc := loadScenario(t, "scenarios/partition-heal.toml")
	if err := sc.Set("network.loss", "0.2"); err != nil {
		t.Fatal(err)
	}
	if err := sc.Set("nodes", "9"); err != nil {
		t.Fatal(err)
	}
	if err := sc.Set("duration", "5s"); err != nil {
		t.Fatal(err)
	}
	if sc.Network.Loss != 0.2 || sc.Nodes != 9 || sc.Duration.Ms() != 5000 || len(sc.Events) != 1 {
		t.Fatalf("after Set: loss %g nodes %d duration %s events %d", sc.Network.Loss, sc.Nodes, sc.Duration, len(sc.Events))
	}
	for _, bad := range [][2]string{{"network.lost", "0.1"}, {"nodes", "many"}, {"network.loss", "2"}} {
		if err := sc.Set(bad[0], bad[1]); err == nil {
			t.Fatalf("Set(%s, %s) accepted", bad[0], bad[1])
		}
	}
	opts := strings.Join(sc.Options(), "\n")
	if !strings.Contains(opts, "network.loss=0.2") || !strings.Contains(opts, "nodes=9") {
		t.Fatalf("options do not show the values:\n%s", opts)
	}
}

func TestBadScenariosAreRejectedWithTheReason(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"nodes = 0\n":             "nodes must be at least 1",
		"[network]\nloss = 1.5\n": "network.loss must be a probability",
		"[network]\nlatency = { dist = \"gaussian\" }\n":                     "dist must be constant, uniform or lognormal",
		"duration = \"soon\"\n":                                              "not a duration",
		"[[events]]\nat = \"1s\"\nkind = \"meteor\"\n":                       "unknown kind",
		"[[events]]\nat = \"1s\"\nkind = \"partition\"\nmode = \"thirds\"\n": "mode must be",
		"[[events]]\nat = \"1s\"\nkind = \"crash\"\nsites = [99]\n":          "site 99 out of range",
		"nodez = 3\n": "unknown keys nodez",
	}
	for body, want := range cases {
		path := dir + "/bad.toml"
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadScenario(path)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("scenario %q: err = %v; want it to say %q", body, err, want)
		}
	}
}

// A site whose clock runs far beyond the allowed skew gets its writes held
// by everyone else, and the report says so and names the waiting replicas.
func TestWritesFromAClockTooFarAheadAreHeld(t *testing.T) {
	sc := loadScenario(t, "scenarios/partition-heal.toml")
	sc.Events = []Event{{At: Duration(5e9), Kind: "skew", Sites: []int{2}, Skew: Duration(20 * 60 * 1e9)}}
	sc.Liveness = Duration(10e9)
	rep := run(t, sc, 5)
	if rep.Totals.Held == 0 {
		t.Fatalf("no batch was held for clock skew: %+v", rep.Totals)
	}
	if rep.Result.OK {
		t.Fatal("writes timestamped 20 minutes ahead cannot be applied within the liveness bound")
	}
	named := false
	for _, f := range rep.Failures {
		if strings.Contains(f, "batches waiting") {
			named = true
		}
	}
	if !named {
		t.Fatalf("failures do not name the waiting replicas: %v", rep.Failures)
	}
}

func TestSweepGridAndRows(t *testing.T) {
	a, err := ParseAxis("network.loss=0,0.1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ParseAxis("seed=1,2,3")
	grid := Grid([]Axis{a, b})
	if len(grid) != 6 || grid[0][0] != "0" || grid[5][1] != "3" {
		t.Fatalf("grid %v", grid)
	}
	if _, err := ParseAxis("loss"); err == nil {
		t.Fatal("an axis without values was accepted")
	}
	rep := run(t, loadScenario(t, "scenarios/partition-heal.toml"), 1)
	row := SweepRow([]string{"0", "1"}, rep)
	if got, want := len(strings.Split(row, ",")), len(strings.Split(SweepHeader([]Axis{a, b}), ",")); got != want {
		t.Fatalf("row has %d columns, header %d", got, want)
	}
}

// Every example scenario in the repository passes (the 1,000-site WAN at a
// tenth of its size, so the suite stays fast).
func TestExampleScenariosPass(t *testing.T) {
	files, _ := filepath.Glob("scenarios/*.toml")
	if len(files) < 5 {
		t.Fatalf("expected the five example scenarios, found %v", files)
	}
	for _, f := range files {
		sc := loadScenario(t, f)
		if sc.Nodes > 50 {
			_ = sc.Set("nodes", "20")
			_ = sc.Set("workload.writes", "1500")
			_ = sc.Set("duration", "30s")
		}
		rep := run(t, sc, 11)
		if !rep.Result.OK {
			t.Errorf("%s:\n%s", f, rep.Summary())
		}
	}
}

// Under an authority the real replicas enforce its records as they travel:
// Customers written before their grant are refused by the writer, batches
// of sites whose grant has not arrived wait and are applied once it does
// (across a partition), writes under a deprecated version are applied and
// flagged — and every replica still converges, reproducibly.
func TestAuthorityActionsConvergeAndAreEnforced(t *testing.T) {
	sc := loadScenario(t, "scenarios/authority.toml")
	for _, seed := range []uint64{1, 7, 21} {
		rep := run(t, sc, seed)
		tot := rep.Totals
		if !rep.Result.OK {
			t.Fatalf("seed %d:\n%s", seed, rep.Summary())
		}
		if tot.Records != 9 || tot.RefusedWrites == 0 || tot.Flagged == 0 {
			t.Fatalf("seed %d: records %d, refused %d, flagged %d — the authority's rules were not exercised", seed, tot.Records, tot.RefusedWrites, tot.Flagged)
		}
		if again := run(t, sc, seed); string(reportJSON(t, again)) != string(reportJSON(t, rep)) {
			t.Fatalf("seed %d: the same seed gave another report", seed)
		}
	}
	bad := sc
	bad.Authority = false
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "authority = true") {
		t.Fatalf("a grant event without an authority: %v", err)
	}
}
