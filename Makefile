# baton build. `make` builds the BPF objects and the TypeScript; `make test`
# and `make demo` run scripts/setup first (a no-op when everything is there).
CLANG      ?= clang
BUILD      := build
BPF_CFLAGS := -target bpf -O2 -g -Wall -Werror -I bpf/include -I bpf -I $(BUILD) \
              -I /usr/include/$(shell uname -m)-linux-gnu \
              -D__TARGET_ARCH_x86 -mcpu=v3
BPFTOOL    ?= bpftool
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
BPF_SRC    := $(wildcard bpf/*.c)
BPF_OBJ    := $(patsubst bpf/%.c,$(BUILD)/bpf/%.o,$(BPF_SRC))
BPF_HDR    := $(shell find bpf/include bpf/lib -name '*.h' 2>/dev/null)
# Every test file; `make test TESTS=test/unit/x.test.ts` runs a subset.
TESTS      ?= $(shell find test/unit test/datapath test/e2e test/cli test/sdk test/api test/store -name '*.test.ts' | sort)

.PHONY: all bpf ts lint format setup test demo demo-migrate demo-cluster bench clean distclean

all: bpf ts

bpf: $(BPF_OBJ)

$(BUILD)/bpf/%.o: bpf/%.c $(BPF_HDR)
	@mkdir -p $(dir $@)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# Kernel types for CO-RE programs (those that read kernel structs), from the
# running kernel's BTF; relocations make the objects portable across kernels.
$(BUILD)/vmlinux.h: $(VMLINUX_BTF)
	@mkdir -p $(dir $@)
	$(BPFTOOL) btf dump file $< format c > $@.tmp
	@mv $@.tmp $@

$(BUILD)/bpf/tcp_probe.o: $(BUILD)/vmlinux.h

ts: node_modules/.package-lock.json
	npx tsc -p tsconfig.json

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# Lint and format check of the TypeScript and JSON (biome.jsonc); part of
# `make test`, so CI fails on either. `make format` applies the fixes.
lint: node_modules/.package-lock.json
	npx biome check --error-on-warnings .

format: node_modules/.package-lock.json
	npx biome check --write .

setup:
	@scripts/setup

test: setup
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory lint
	@mkdir -p $(BUILD)
	node --import tsx --test --test-concurrency=1 \
	  --test-reporter=spec --test-reporter-destination=stdout \
	  --test-reporter=tap --test-reporter-destination=$(BUILD)/test-results.tap \
	  $(TESTS)

demo: setup
	@$(MAKE) --no-print-directory all
	node --import tsx scripts/demo.ts

# The migrate block of the demo alone: a connection moved to a back end's agent, replies bypassing the LB.
demo-migrate: setup
	@$(MAKE) --no-print-directory all
	node --import tsx scripts/demo-migrate.ts

# The cluster block of the demo alone: 2 LBs + Redis behind ECMP, a rehash survived.
demo-cluster: setup
	@$(MAKE) --no-print-directory all
	node --import tsx scripts/demo-cluster.ts

# Benchmarks (docs/benchmarks.md): `make bench` runs the full suite (at most
# 15 minutes on 2 cores; results in bench/results/<date>/), `make bench-quick`
# or `make bench BENCH=quick` a smoke run (at most 3 minutes; build/bench/).
# bench/setup adds HAProxy, which only the benchmarks need.
BENCH ?= full
bench: setup
	@bench/setup
	@$(MAKE) --no-print-directory bpf
	node --import tsx bench/run.ts $(if $(filter quick,$(BENCH)),--quick)

.PHONY: bench-quick
bench-quick:
	@$(MAKE) --no-print-directory bench BENCH=quick

clean:
	rm -rf $(BUILD) dist

distclean: clean
	rm -rf node_modules
