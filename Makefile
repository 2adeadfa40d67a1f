# Meridian — see README.md. Every target works on a fresh clone.
GO      ?= go
PKGS    ?= ./...
FUZZTIME ?= 4s
BENCHTIME ?= 1x

.PHONY: all build test test-unit fuzz-smoke bench bench-mesh bench-sim bench-bridge bench-bundle lint demo clean

all: build

build:
	$(GO) build -o bin/meridian ./cmd/meridian

# The full test suite: unit, property, protocol, integration (real Badger,
# MariaDB, PostgreSQL, Redis), then every fuzz target briefly. Prints the
# real test count at the end.
test: test-unit fuzz-smoke

test-unit:
	@.ci/gotest $(PKGS)

# Each fuzz target runs for FUZZTIME on top of its seed corpus.
fuzz-smoke:
	@set -e; for spec in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs grep -ho '^func Fuzz[A-Za-z0-9_]*' /dev/null | sort -u | sed 's/func //'); do \
		pkg=$$(dirname $$(grep -rl --include='*_test.go' "^func $$spec(" . | head -1)); \
		echo "fuzz $$pkg $$spec ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$spec$$" -fuzztime $(FUZZTIME) $$pkg > .fuzz.log 2>&1 || { cat .fuzz.log; exit 1; }; \
	done; rm -f .fuzz.log; echo "fuzz-smoke: all targets passed"

# Speed and memory figures (see README "Benchmarks").
bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -benchmem ./crdt
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -benchmem ./replica

# Mesh benchmarks with real processes on loopback: latency at 1,000 writes/s
# (five sites), throughput one writer → four readers, catch-up of 100,000
# updates (minutes).
bench-mesh:
	$(GO) test -run '^$$' -bench BenchmarkMesh -benchtime 1x -timeout 30m ./cmd/meridian
	$(GO) test -run '^$$' -bench BenchmarkCatchUp -benchtime 1x -timeout 30m ./cmd/meridian

# The bridge: Items with three child rows each into MariaDB and PostgreSQL
# (batches of 500: 10,000 created, then updated twice), and the latency from
# a Desk-style UPDATE to the edit reaching a peer.
bench-bridge:
	$(GO) test -run '^$$' -bench BenchmarkApplyItems -benchtime 3x -timeout 20m ./bridge
	$(GO) test -run '^$$' -bench BenchmarkCaptureLatency -benchtime 1x -timeout 20m ./cmd/meridian

# Offline bundles: 100,000 Items exported from one site, imported into a fresh one.
bench-bundle:
	$(GO) test -run '^$$' -bench BenchmarkBundle100kItems -benchtime 1x -timeout 30m -v ./cmd/meridian

# The simulator's scale benchmark (long: minutes). SIM_NODES=100 make bench-sim for a quick look.
bench-sim:
	$(GO) test -run '^$$' -bench BenchmarkWAN -benchtime 1x -timeout 3h ./simulate

# Three sites on loopback, joined by multiaddr, writing at once, one cut off
# and reconnected, all converged (under a minute; cleans up after itself).
demo: build
	@BIN=bin/meridian scripts/demo.sh

lint:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin .test.log .fuzz.log
