# Entry points. `make demo` runs the main job end to end on emulated cards; `make test` runs
# every test. Both install missing Debian packages first (scripts/install-deps is idempotent).
.PHONY: all deps build test demo asan asan-test fuzz bench release clean format tidy

JOBS ?= 2

all: build

deps:
	@scripts/install-deps

build: deps
	cmake --preset default >/dev/null
	cmake --build --preset default -j $(JOBS)

test: build
	ctest --preset default

demo: build
	scripts/demo build/bin

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

format:
	git ls-files '*.cpp' '*.h' | xargs clang-format -i

tidy: build
	scripts/run-clang-tidy build

clean:
	rm -rf build build-asan build-release build-fuzz
