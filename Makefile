# Qentrah Connect: `make dev` runs the app, `make test` runs every check. Both install what a
# fresh machine lacks first (each step skips itself when the right version is there).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO_LEPTOS_VERSION := 0.3.10
WASM_BINDGEN_VERSION := 0.2.130
WASM_TARGET := wasm32-unknown-unknown

# Cargo-installed tools, then the npm-installed wasm-opt (binaryen 132: Debian's 108 silently
# breaks release bundles) and Playwright.
export PATH := $(CURDIR)/end2end/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)
export CARGO_TERM_COLOR ?= never

TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
APP_BIN := $(TARGET_DIR)/release/qentrah-connect
# Playwright tests the release browser bundle (what wasm-opt touches) served by the server and
# dev Workspace the integration tests already built: a second, optimized build of the server
# costs half an hour cold and tests nothing the debug build does not.
E2E_APP_BIN := $(TARGET_DIR)/debug/qentrah-connect
E2E_WORKSPACE_BIN := $(TARGET_DIR)/debug/qentrah-dev-workspace
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# $(call stage,NAME,COMMAND): runs COMMAND, printing how long it took.
stage = start=$$(date +%s); echo "==> $(1)"; $(2); echo "<== $(1): $$(( $$(date +%s) - start ))s"

.PHONY: bench help dev test tools tools-rust tools-e2e tools-fuzz fmt-check clippy unit-and-integration release bundle e2e fuzz clean

help:
	@echo "make dev    run the app on PARTNER_APP_URL (default http://localhost:3001), rebuilding on change"
	@echo "make test   fmt, clippy (ssr + hydrate), unit and integration tests, release build, Playwright, fuzzing"
	@echo "make bench  benchmarks: measured ratio, target, met or not (BENCHMARKS.md)"

## ---- Set-up -------------------------------------------------------------------------------

tools: tools-rust tools-e2e tools-fuzz

# Tools are built for build time, not run time: cargo-leptos's own release profile (fat LTO, one
# codegen unit) spends ten minutes linking on one core, and what these tools do (run cargo,
# wasm-bindgen and wasm-opt, minify a stylesheet) is not measurably slower at opt-level 1.
# Cargo lets configuration (these variables) override a package's manifest profile.
CARGO_INSTALL := CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=false cargo install

CARGO_FUZZ_VERSION := 0.13.2
tools-fuzz:
	@if ! cargo fuzz --version 2>/dev/null | grep -qF '$(CARGO_FUZZ_VERSION)'; then \
	  echo "--> installing cargo-fuzz $(CARGO_FUZZ_VERSION) (about 2 minutes)"; \
	  $(CARGO_INSTALL) cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION); fi

tools-rust:
	@if ! rustup target list --installed | grep -qx '$(WASM_TARGET)'; then \
	  echo "--> installing the $(WASM_TARGET) target"; rustup target add $(WASM_TARGET); fi
	@if ! rustup component list --installed | grep -q '^clippy'; then rustup component add clippy; fi
	@if ! rustup component list --installed | grep -q '^rustfmt'; then rustup component add rustfmt; fi
	@if ! cargo leptos --version 2>/dev/null | grep -qF '$(CARGO_LEPTOS_VERSION)'; then \
	  echo "--> installing cargo-leptos $(CARGO_LEPTOS_VERSION) (about 10 minutes on 2 cores; progress follows)"; \
	  $(CARGO_INSTALL) cargo-leptos --locked --version $(CARGO_LEPTOS_VERSION); fi
	@# No --locked: wasm-bindgen-cli 0.2.130's lock names a version the registry lacks.
	@if ! wasm-bindgen --version 2>/dev/null | grep -qF '$(WASM_BINDGEN_VERSION)'; then \
	  echo "--> installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (about 3 minutes)"; \
	  $(CARGO_INSTALL) wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION); fi

tools-e2e:
	@if [ ! -f end2end/node_modules/.package-lock.json ] || \
	    [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then \
	  echo "--> installing Playwright and binaryen (npm ci)"; \
	  cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund; fi
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "--> installing Debian's Chromium"; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; fi

.env:
	@cp .env.example .env
	@echo "--> created .env from .env.example (development values)"

## ---- Running ------------------------------------------------------------------------------

# The dev Workspace on QENTRAH_WORKSPACE_API_URL and the app on PARTNER_APP_URL (both from the
# environment, else .env); Ctrl-C stops both.
dev: tools-rust .env
	@grep -q '^DEV_WORKSPACE_WEBHOOK_SECRET=' .env || echo "note: .env has no DEV_WORKSPACE_WEBHOOK_SECRET, so the dev Workspace has no marketplace: copy the two webhook lines from .env.example"
	cargo build -p qentrah-dev-workspace
	@url="$${PARTNER_APP_URL:-$$(sed -n 's/^PARTNER_APP_URL=//p' .env | tail -n1)}"; \
	port="$$(echo "$$url" | sed -E 's#^[a-z]+://[^/:]+:?([0-9]*).*#\1#')"; \
	port="$${port:-80}"; \
	'$(TARGET_DIR)/debug/qentrah-dev-workspace' & workspace=$$!; \
	trap 'kill $$workspace 2>/dev/null || true' EXIT INT TERM; \
	echo "--> serving $$url (listening on 127.0.0.1:$$port)"; \
	LEPTOS_SITE_ADDR="127.0.0.1:$$port" cargo leptos watch

## ---- Checks -------------------------------------------------------------------------------

# Each stage prints its time, set-up included (on a fresh machine it is the longest).
test:
	@suite_start=$$(date +%s); \
	$(call stage,set-up (what this machine lacks),$(MAKE) --no-print-directory tools); \
	$(call stage,fmt,cargo fmt --all -- --check); \
	$(call stage,clippy,$(MAKE) --no-print-directory clippy); \
	$(call stage,unit and integration tests,$(MAKE) --no-print-directory unit-and-integration); \
	$(call stage,release browser bundle,$(MAKE) --no-print-directory bundle); \
	$(call stage,end-to-end (Playwright in Chromium),$(MAKE) --no-print-directory e2e); \
	$(call stage,fuzzing ($(FUZZ_SECONDS) s a target),$(MAKE) --no-print-directory fuzz); \
	echo "make test: $$(( $$(date +%s) - suite_start ))s in all"

# The app's server build needs `ssr`; the dev Workspace crate has no features.
SERVER_FEATURES := --workspace --features qentrah-connect/ssr

clippy:
	cargo clippy $(SERVER_FEATURES) --all-targets -- -D warnings
	cargo clippy -p qentrah-connect --lib --features hydrate --target $(WASM_TARGET) -- -D warnings

# Twice: every test on SQLite (with the multi-instance tests on PostgreSQL), then the integration
# suite again with each app on a PostgreSQL database of its own. Without a PostgreSQL server the
# second pass is skipped with a notice, unless REQUIRE_POSTGRES=1 (.ci/run) makes that a failure.
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/postgres
export TEST_POSTGRES_URL
POSTGRES_HOST_PORT = $(shell echo '$(TEST_POSTGRES_URL)' | sed -E 's#^[a-z]+://([^@/]*@)?([^:/?]+)(:([0-9]+))?.*#\2 \4#')

unit-and-integration:
	@if cargo nextest --version >/dev/null 2>&1; then \
	  cargo nextest run $(SERVER_FEATURES) --no-fail-fast; \
	else cargo test $(SERVER_FEATURES) --no-fail-fast; fi
	@set -- $(POSTGRES_HOST_PORT); host="$$1"; port="$${2:-5432}"; \
	if [ "$${REQUIRE_POSTGRES:-0}" != 1 ] && ! timeout 3 bash -c "exec 3<>/dev/tcp/$$host/$$port" 2>/dev/null; then \
	  echo "notice: PostgreSQL at $$host:$$port is not reachable: the PostgreSQL pass is skipped"; \
	else \
	  echo "--> the integration suite again, on PostgreSQL at $$host:$$port"; \
	  if cargo nextest --version >/dev/null 2>&1; then \
	    TEST_DATABASE=postgres cargo nextest run $(SERVER_FEATURES) --no-fail-fast \
	      -E 'binary(api) and not test(/^cluster::/)'; \
	  else TEST_DATABASE=postgres cargo test $(SERVER_FEATURES) --no-fail-fast --test api -- \
	      --skip cluster::; fi; \
	fi

# What ships: the optimized server and the browser bundle (`make bench` measures these).
release:
	cargo leptos build --release --precompress
	node scripts/bundle-sizes.mjs target/site/pkg

# What Playwright tests: the release browser bundle (wasm-release profile, wasm-opt, precompressed).
bundle:
	cargo leptos build --release --precompress --frontend-only
	node scripts/bundle-sizes.mjs target/site/pkg

# The debug server and dev Workspace with the test build's features (dev-dependencies included),
# so cargo reuses what `unit-and-integration` compiled and only links the two binaries.
e2e:
	cargo build $(SERVER_FEATURES) --bins --tests
	rm -rf target/e2e && mkdir -p target/e2e
	cd end2end && APP_BIN='$(E2E_APP_BIN)' WORKSPACE_BIN='$(E2E_WORKSPACE_BIN)' playwright test

# cargo-fuzz needs nightly-only flags; RUSTC_BOOTSTRAP lets the one stable toolchain accept them.
# No sanitizer: coverage-guided fuzzing for panics in safe Rust. `--dev`: the coverage flags make
# cargo rebuild every dependency, and an unoptimized build costs a fraction of an optimized one
# (fewer runs in the same seconds, and overflow checks on, which makes the fuzzer stricter).
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := workspace_response callback_params webhook_delivery
fuzz:
	@mkdir -p target
	@for target in $(FUZZ_TARGETS); do \
	  echo "--> fuzzing $$target for $(FUZZ_SECONDS) s"; \
	  RUSTC_BOOTSTRAP=1 cargo fuzz run --dev --fuzz-dir fuzz --sanitizer none $$target -- \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 \
	    > target/fuzz-$$target.log 2>&1 || { tail -n 60 target/fuzz-$$target.log; exit 1; }; \
	  grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units)' target/fuzz-$$target.log || true; \
	done

# Ratios against the network and machine floor; needs the release build (bundle, memory).
bench: tools release
	APP_BIN='$(APP_BIN)' cargo bench --features ssr --bench product
	cd end2end && APP_BIN='$(APP_BIN)' node bench/hydration.mjs

clean:
	cargo clean
	rm -rf target/site target/e2e end2end/test-results end2end/playwright-report
