# Zenith: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PY        := $(VENV)/bin/python
PIP       := $(VENV)/bin/pip
STAMP     := $(VENV)/.deps-stamp
S3S_FS    := target/s3tools/bin/s3s-fs
export CARGO_INCREMENTAL ?= 0
export CARGO_TARGET_DIR ?= $(CURDIR)/target

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP) ## Create .venv and install the Python tools and peers
	@true

nasm: ## Install the assembler of libjpeg-turbo's SIMD kernels (Debian's nasm) when missing
	@command -v nasm >/dev/null || { apt-get install -y -qq nasm >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nasm >/dev/null; }; } || echo "warning: nasm is not installed: JPEG decoding is built without its SIMD kernels"

build: $(STAMP) nasm ## Build the extension in release mode into the package (once per run)
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/maturin develop --release --quiet

cargo-test: nasm ## Run the Rust test suites (release profile, shares the extension's build)
	cargo test --release --workspace --exclude zenith-py

$(S3S_FS):
	CARGO_TARGET_DIR=$(CURDIR)/target/s3tools/build cargo install s3s-fs@0.14.1 --features binary --locked --root $(CURDIR)/target/s3tools

s3-server: $(S3S_FS) ## Install the S3-compatible test server (s3s-fs) into target/s3tools once
	@true

pytest: $(STAMP) $(S3S_FS) ## Run the Python test suite against the built extension
	$(PY) -m pytest -q python/tests

SOAK_TESTS := test_kill_resume.py test_jobs_reliability.py test_long_runs.py test_memory_bound.py \
	test_concurrency.py

soak: build $(S3S_FS) ## Longer kill, fault and leak runs than `test`: 10 kill seeds, 2,000 jobs, 1,000 epochs
	ZENITH_SOAK_SEEDS=10 ZENITH_SOAK_JOBS=500 ZENITH_SOAK_EPOCHS=1000 \
		$(PY) -m pytest -q --durations=0 $(addprefix python/tests/,$(SOAK_TESTS))

stubtest: $(STAMP) ## Check the type stubs against the compiled module
	$(PY) -m mypy.stubtest zenith._zenith --allowlist python/stubtest-allowlist.txt

lint: $(STAMP) nasm ## ruff, mypy, cargo fmt --check, clippy (workspace lints, warnings are errors)
	$(VENV)/bin/ruff check python bench examples
	$(VENV)/bin/python -m mypy
	cargo fmt --all --check
	cargo clippy --release --workspace --all-targets -- -D warnings

test: lint build cargo-test stubtest pytest ## Everything: lint gates, cargo tests, stub check, pytest (real files, real torch)

run: build ## Train a tiny model through zenith.torch.DataLoader and compare with torch's DataLoader
	$(PY) examples/train_demo.py

bench: build ## Generate the medium dataset and run the whole benchmark suite
	./bench/run_benchmarks.sh --all

bench-jobs: build ## Local job executor: 1,000 trivial command jobs, overhead per job and jobs/s
	$(PY) bench/jobs_benchmark.py

FUZZ_SECONDS ?= 30
FUZZ_TARGETS := parquet ipc_file ipc_stream csv tar npy image job_spec

# Each target reads its committed seeds (fuzz/corpus/<target>, never written) and grows its own
# corpus under fuzz/target/corpus/<target>; crashes land in fuzz/artifacts/<target>. The fuzz
# build has its own nightly, sanitizer-instrumented target dir (fuzz/target), never the shared one.
fuzz: ## Fuzz each format reader and the job Validator for FUZZ_SECONDS (30) s each; not part of `test`
	@fail=0; for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/target/corpus/$$t; \
	  echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
	  cargo +nightly fuzz run --fuzz-dir fuzz --target-dir $(CURDIR)/fuzz/target $$t \
	    fuzz/target/corpus/$$t fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	    || fail=1; \
	done; exit $$fail

clean: ## Remove build outputs (keeps .venv)
	cargo clean

.PHONY: help venv nasm build cargo-test pytest stubtest lint test run bench bench-jobs clean s3-server fuzz soak
