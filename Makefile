# Thin wrapper over meson/ninja. `make run` and `make check` are the README's two commands.
BUILD ?= build
# Debian's python3 (python3-pytest comes from deps.sh), whatever python3 comes first on PATH
PYTHON ?= /usr/bin/python3
PREFIX ?= /usr/local
DEPS_STAMP := $(BUILD)/.deps-ok

.PHONY: all deps build install run check unit integration sanitize fuzz format-check clean format bench

all: build

deps:
	bash scripts/deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --prefix=$(PREFIX) $(MESON_ARGS)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

install: build
	ninja -C $(BUILD) install >/dev/null

run: deps install
	bash scripts/run.sh

unit: build
	meson test -C $(BUILD) --print-errorlogs

integration: install
	$(PYTHON) -m pytest -v tests/integration

check: deps
	$(MAKE) format-check
	$(MAKE) build MESON_ARGS="--werror"
	$(MAKE) unit
	$(MAKE) sanitize
	$(MAKE) integration

# unit tests and fuzz-corpus replays again under ASan + UBSan
sanitize:
	test -f build-asan/build.ninja || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false --werror
	ninja -C build-asan
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 meson test -C build-asan --print-errorlogs

# coverage-guided fuzzing with clang's libFuzzer, FUZZ_SECONDS per harness
FUZZ_SECONDS ?= 30
fuzz:
	test -f build-fuzz/build.ninja || CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C build-fuzz
	for f in store-fsm api-body image-meta image-archive backup-import; do \
		mkdir -p build-fuzz/corpus-$$f && cp -n tests/fuzz/corpus/$$f/* build-fuzz/corpus-$$f/ ; \
		build-fuzz/tests/fuzz/fuzz-$$f -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus-$$f || exit 1; \
	done

format-check:
	clang-format --dry-run --Werror $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c')

bench: install
	bash scripts/deps.sh --bench
	$(PYTHON) bench/launch.py
	$(PYTHON) bench/net.py
	$(PYTHON) bench/sched.py --binary $(BUILD)/bench/sched/bench-sched
	$(PYTHON) bench/snapshot.py
	$(PYTHON) bench/exec_events.py

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c')

clean:
	rm -rf $(BUILD) build-asan build-fuzz
