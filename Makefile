# srtgate build and test entry points.
#
#   make run     build (release) and run with conf/srtgate.yaml
#   make test    install the test peers if missing, build, run every test
#   make check   rustfmt check + clippy
#   make bench   CPU per delivered Mbit and added delay, against srt-live-transmit;
#                HLS segment serving against nginx, glass-to-glass latency in Chromium
#   make clean   remove build output

CARGO  ?= cargo
CONFIG ?= conf/srtgate.yaml
# Extra arguments for the test binaries, e.g. TEST_ARGS='--test-threads 1'.
TEST_ARGS ?=

# Real SRT peers the integration tests talk to (Debian package names).
TEST_PACKAGES := ffmpeg srt-tools gstreamer1.0-tools gstreamer1.0-plugins-base \
                 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav \
                 chromium nginx wrk
# npm packages: hls.js for the player page (html/), playwright-core for the
# browser tests (tests/browser/). Versions are pinned in their package.json;
# node_modules is git-ignored.
HLSJS     := html/node_modules/hls.js/dist/hls.min.js
PLAYWRIGHT := tests/browser/node_modules/playwright-core/package.json
# Needed to link Rust programs.
BUILD_PACKAGES := gcc libc6-dev

.PHONY: run test bench check clean toolchain build-deps test-deps web-deps npm _install-npm _install-build-packages

# apt-install the Debian packages in $(1) that are not installed yet. Runs
# nothing (not even apt-get update) when they all are. Uses sudo when not root.
define apt_install
	@missing=""; \
	if command -v dpkg >/dev/null 2>&1; then \
	  for p in $(1); do \
	    dpkg -s $$p 2>/dev/null | grep -q '^Status: install ok installed' || missing="$$missing $$p"; \
	  done; \
	else \
	  echo "note: not a Debian system; make sure these are installed: $(1)"; \
	fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" -eq 0 ]; then sudo=""; \
	  elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	  else echo "error: need root or sudo to install:$$missing" >&2; exit 1; fi; \
	  $$sudo apt-get update -q && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

toolchain:
	@command -v $(CARGO) >/dev/null 2>&1 || { \
	  echo "error: '$(CARGO)' not found. srtgate needs the Rust toolchain (cargo, rustc 1.80 or newer)." >&2; \
	  echo "       Install it with rustup, or your distribution's 'cargo' package, and make sure cargo is on PATH." >&2; \
	  exit 1; }

build-deps: toolchain
	@command -v cc >/dev/null 2>&1 || { echo "no C compiler/linker found (cc)"; $(MAKE) --no-print-directory _install-build-packages; }

_install-build-packages:
	$(call apt_install,$(BUILD_PACKAGES))

test-deps: web-deps $(PLAYWRIGHT)
	$(call apt_install,$(TEST_PACKAGES))

$(PLAYWRIGHT): tests/browser/package.json tests/browser/package-lock.json
	@$(MAKE) --no-print-directory npm
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# npm (and Node.js) from Debian's packages when missing.
npm:
	@command -v npm >/dev/null 2>&1 || { echo "npm not found"; $(MAKE) --no-print-directory _install-npm; }

_install-npm:
	$(call apt_install,nodejs npm)

web-deps: $(HLSJS)

$(HLSJS): html/package.json html/package-lock.json
	@$(MAKE) --no-print-directory npm
	cd html && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: build-deps web-deps
	$(CARGO) build --release
	exec target/release/srtgate -c $(CONFIG)

test: build-deps test-deps
	$(CARGO) build --release
	$(CARGO) test --release --no-fail-fast --tests -- $(TEST_ARGS)

bench: build-deps test-deps
	$(CARGO) build --release
	python3 tests/bench/bench.py
	python3 tests/bench/hls_bench.py

check: toolchain
	@$(CARGO) fmt --version >/dev/null 2>&1 || { echo "error: rustfmt missing (rustup component add rustfmt)" >&2; exit 1; }
	@$(CARGO) clippy --version >/dev/null 2>&1 || { echo "error: clippy missing (rustup component add clippy)" >&2; exit 1; }
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings

clean:
	$(CARGO) clean
