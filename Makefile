# The README's commands, as a thin layer over CMake and scripts/: each target first
# installs the Debian packages it needs (scripts/deps.sh), then builds into build/.
#
#   make [build]   build the library, tests, examples and benchmarks (RelWithDebInfo)
#   make test      the whole suite: plain, ASan+UBSan, TSan (threads), install check
#   make demo      run the seeds tour (examples/seeds/tour.sh), WEFT_TIME_SCALE=0.1;
#                  with PICTURES=DIR, also draw the seeds' timelines into DIR
#   make pictures  draw the seeds' timelines (WEFT_TRACE + tools/weft-timeline) into
#                  $(PICTURES), default docs/pictures
#   make bench     build, then say how to compare weft with its peers
#   make install   install into $(PREFIX) (default /usr/local; DESTDIR is honoured)
#   make clean     remove every build directory

PREFIX ?= /usr/local
JOBS ?= 2
WEFT_TIME_SCALE ?= 0.1
export WEFT_TIME_SCALE

# The tests need Criterion; a plain build or the demo should not, so they build the
# tests only where Criterion is already installed.
HAVE_CRITERION := $(shell { pkg-config --exists criterion 2>/dev/null || test -f /usr/include/criterion/criterion.h; } && echo ON || echo OFF)

.PHONY: all build test demo pictures bench install clean

all: build

build:
	@bash scripts/deps.sh build
	cmake -S . -B build -DWEFT_BUILD_TESTS=$(HAVE_CRITERION)
	cmake --build build -j$(JOBS)

test:
	@JOBS=$(JOBS) bash scripts/test.sh

demo: build
	@bash scripts/deps.sh demo
	bash examples/seeds/tour.sh build/examples/seeds
	@if [ -n "$(PICTURES)" ]; then bash scripts/deps.sh python3 && bash scripts/seed_pictures.sh "$(PICTURES)" build/examples/seeds; \
	else echo "(make demo PICTURES=DIR, or make pictures, also draws the seeds' timelines as SVG)"; fi

# The seeds' lessons as timelines (docs/pictures holds the committed ones).
pictures: build
	@bash scripts/deps.sh python3
	bash scripts/seed_pictures.sh "$(or $(PICTURES),docs/pictures)" build/examples/seeds

bench: build
	@echo
	@echo "Benchmark programs are in build/bench. To run them beside asyncio, uvloop, libuv, Go and Node"
	@echo "(../shared/peers/README.md lists what the peers need; build them once with build.sh):"
	@echo
	@echo "  ../shared/peers/build.sh"
	@echo "  WEFT_BENCH=$(CURDIR)/build/bench ../shared/peers/run.sh             # every workload, ~25 min"
	@echo "  WEFT_BENCH=$(CURDIR)/build/bench ONLY='weft|libuv|go' ../shared/peers/run.sh switch spawn"
	@echo
	@test -d ../shared/peers || echo "(../shared/peers is not beside this checkout here; see docs/benchmarks.md)"

# Not `install: build`: under sudo that would reconfigure build/ as root. An existing
# build is only brought up to date.
install:
	@test -f build/CMakeCache.txt || $(MAKE) --no-print-directory build
	cmake --build build -j$(JOBS)
	cmake --install build --prefix "$(PREFIX)"
	@if [ -z "$$DESTDIR" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

clean:
	rm -rf build build-asan build-tsan
