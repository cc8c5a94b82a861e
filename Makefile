# Thin wrapper over meson/ninja. `make run` and `make check` are the README's two commands.
BUILD ?= build
PREFIX ?= /usr/local
DEPS_STAMP := $(BUILD)/.deps-ok

.PHONY: all deps build install run check unit integration clean format bench

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
	python3 -m pytest -v tests/integration

check: deps
	$(MAKE) build MESON_ARGS="--werror"
	$(MAKE) unit
	$(MAKE) integration

bench: install
	bash scripts/deps.sh --bench
	python3 bench/launch.py

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c')

clean:
	rm -rf $(BUILD)
