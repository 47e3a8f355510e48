# Entry points. `make demo` runs the main job end to end on emulated cards; `make test` runs
# every test. Both install missing Debian packages first (scripts/install-deps is idempotent).
# `make demo` installs only the demo's packages and builds only what the demo runs (the three
# daemons and the demo driver) in build-demo/, at -O1 without debug info: the quickest first build.
# `make test` and `make build` build everything (every test and benchmark) in build/.
.PHONY: all deps deps-demo configure configure-demo build test demo demo-dra asan asan-test fuzz bench bench-footprint link-order release clean format tidy tidy-changed tidy-baseline

JOBS ?= 2

all: build

deps:
	@scripts/install-deps

deps-demo:
	@scripts/install-deps --demo

# Progress lines for a newcomer: what is being built and how long it usually takes (2 cores).
configure: deps
	@echo "== configure (CMake, build/): a few seconds"
	@cmake --preset default >/dev/null

build: configure
	@echo "== build everything: libraries, daemons, every test and benchmark (about 300 build steps: about 11 minutes on 2 idle cores from scratch, 12 with the Go clients' first build; seconds when up to date)"
	cmake --build --preset default -j $(JOBS)

test: build
	@echo "== run every test (ctest; about 2 minutes on 2 cores)"
	ctest --preset default

configure-demo: deps-demo
	@echo "== configure (CMake, build-demo/: -O1, no debug info): a few seconds"
	@cmake --preset demo >/dev/null

demo: configure-demo
	@echo "== build the demo: 3 daemons, the kubelet simulator, the API-server emulator and the demo driver (88 build steps: about 3.5 minutes on 2 idle cores from scratch, seconds when up to date)"
	cmake --build --preset demo -j $(JOBS) --target hyperaccel-demo
	@echo "== run the demo (a few seconds)"
	scripts/demo build-demo/bin

# The DRA path on emulated cards (docs/dra.md, "Kubelet plugin"): slices, a claim allocated to a
# 4-card arc, registration and NodePrepareResources through the fake kubelet, the CDI spec checked.
demo-dra: configure-demo
	@echo "== build the DRA demo: hyperaccel-dra-driver and the demo driver"
	cmake --build --preset demo -j $(JOBS) --target hyperaccel-demo-dra
	@echo "== run the DRA demo (a few seconds)"
	build-demo/bin/hyperaccel-demo-dra --bin-dir=build-demo/bin

asan: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)

asan-test: asan
	ctest --preset asan

fuzz: deps
	cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz -j $(JOBS)
	ctest --preset fuzz

release: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS)

bench: release
	bench/run build-release

# Memory (RSS/PSS/private) of each real daemon and the device plugin's gRPC latency, re-measured.
bench-footprint: deps
	@cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS) --target hyperaccel-footprint-bench
	build-release/bin/hyperaccel-footprint-bench --bin-dir=build-release/bin $(FOOTPRINT_ARGS)

# Re-record the daemons' hot functions (cmake/link-order/, cmake/LinkOrder.cmake); commit the lists.
link-order: release
	scripts/gen-link-order build-release

format:
	git ls-files '*.cpp' '*.h' | xargs clang-format -i

tidy: build
	scripts/run-clang-tidy build

# What CI checks: only the sources that can differ from the commit in .ci/tidy-baseline.
tidy-changed: build
	scripts/run-clang-tidy --since "$$(grep -Eo '^[0-9a-f]{40}' .ci/tidy-baseline | head -n 1)" build

# Checks the whole tree and, when it is clean and the working tree has no local changes, records
# HEAD in .ci/tidy-baseline (commit that file afterwards).
tidy-baseline: build
	@git diff --quiet HEAD -- || { echo "tidy-baseline: commit or stash local changes first"; exit 1; }
	scripts/run-clang-tidy build
	@sed -i -E "s/^[0-9a-f]{40}.*/$$(git rev-parse HEAD)/" .ci/tidy-baseline
	@echo "tidy-baseline: recorded $$(git rev-parse HEAD) in .ci/tidy-baseline"

clean:
	rm -rf build build-asan build-release build-fuzz build-demo
