# npa: the two commands (README "Quick start").
#
#   make test   install missing Debian packages, then configure, build and run every suite:
#               the release preset, the asan preset (ASan+UBSan, every suite) and the tsan
#               preset (ThreadSanitizer, the suites labelled `concurrent` or `switching`),
#               the fuzz stage and the cross stage (arm64 and big-endian s390x under QEMU)
#   make demo   install missing packages, build the release preset's npa-demo and run it
#
# Other targets: deps, build, test-release, test-asan, test-tsan, test-cross, test-debug, bench,
# format, format-check, clean, help. Presets live in CMakePresets.json; build trees in build/.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
# The suites share two cores: run the stages one after the other, each building with -j$(JOBS).
.NOTPARALLEL:

CMAKE ?= cmake
CTEST ?= ctest
# CI machines have two cores; raise for a bigger workstation (make test JOBS=8).
JOBS ?= 2

# GCC 12's ThreadSanitizer cannot map its shadow memory when the kernel randomises mmap
# with more than 28 bits (vm.mmap_rnd_bits = 32 on recent kernels) and dies with
# "unexpected memory mapping". Running the TSan suites with address randomisation off
# (setarch -R) avoids it; where setarch is unavailable the suites run as they are.
TSAN_LAUNCHER := $(shell setarch "$$(uname -m)" -R true >/dev/null 2>&1 && echo setarch "$$(uname -m)" -R)

DEMO := build/release/bin/npa-demo

.PHONY: help deps build demo bench test test-release test-asan test-tsan test-cross test-debug \
        format format-check clean fuzz soak test-fuzz test-guest

help:
	@echo "npa make targets:"
	@echo "  make test     install missing packages; build and run the release, guest, asan, tsan, fuzz and cross stages"
	@echo "  make demo     install missing packages; build and run $(DEMO)"
	@echo "  make deps     install missing Debian packages (scripts/install-deps.sh)"
	@echo "  make build    configure and build the release preset"
	@echo "  make bench    run the benchmarks (benchmarks/run.sh)"
	@echo "  make fuzz     fuzz every target for FUZZ_SECONDS (default 300) each (scripts/fuzz.sh)"
	@echo "  make soak     the long soaks: SOAK_SWITCHES (default 100000) switches under faults, each"
	@echo "  make test-release | test-guest | test-asan | test-tsan | test-fuzz | test-cross | test-debug   one stage"
		@echo "  make format-check | format   clang-format (check only | rewrite)"
	@echo "  make clean    remove build/"

deps:
	scripts/install-deps.sh

# configure + build + ctest for one preset: $(call preset_suite,<preset>,<launcher>,<ctest args>)
define preset_suite
	@echo "==> [$(1)] configure, build, test"
	@t0=$$(date +%s); \
	$(CMAKE) --preset $(1) && \
	$(CMAKE) --build --preset $(1) --parallel $(JOBS) && \
	$(2) $(CTEST) --preset $(1) -j $(JOBS) --output-on-failure $(3) && \
	echo "==> [$(1)] passed in $$(( $$(date +%s) - t0 )) s" || \
	{ echo "==> [$(1)] FAILED after $$(( $$(date +%s) - t0 )) s"; exit 1; }
endef

test: deps
	@t0=$$(date +%s); \
	$(MAKE) --no-print-directory test-release test-guest test-asan test-tsan test-fuzz test-cross && \
	echo "make test: release, guest, asan, tsan, fuzz and cross stages passed in $$(( $$(date +%s) - t0 )) s" || \
	{ echo "make test: FAILED after $$(( $$(date +%s) - t0 )) s (see the first FAILED stage above)"; exit 1; }

test-release:
	$(call preset_suite,release,,)

# The asan test preset leaves out the labels compile_fail, packaging and headers: they run
# no npa code (compilers and CMake only), so sanitizers add nothing to what stage 1 proved.
# For the same reason the asan preset does not build the header checks (NPA_HEADER_CHECKS=OFF),
# and it compiles at -O1 -g1 (line tables are all a sanitizer report needs): the build is the
# stage's cost, and this halves it (one large test source, measured alone: 65 s at -O2 -g, 32 s).
# At -O1 GCC 12 warns maybe-uninitialized inside libstdc++'s <regex>; the release stage
# keeps that warning for npa's own code.
test-asan:
	$(call preset_suite,asan,,)

# Only the concurrent suites (ring stress, shell and device threads) and the switching
# suites (shell_test, shell_drain_test, shell_paths_test, shell_sim_test: every trigger, 10,000 switches) are worth TSan's
# 5-15x slowdown, so only their programs are built (scripts/ctest-targets.py answers `all` whenever a
# selected test is not a plain program under build/tsan/bin).
test-tsan:
	@echo "==> [tsan] configure, build, test"
	@t0=$$(date +%s); \
	$(CMAKE) --preset tsan && \
	targets=$$($(CTEST) --preset tsan -L 'concurrent|switching' --show-only=json-v1 | \
	           scripts/ctest-targets.py build/tsan) && \
	echo "==> [tsan] building: "$$targets && \
	$(CMAKE) --build --preset tsan --parallel $(JOBS) --target $$targets && \
	$(TSAN_LAUNCHER) $(CTEST) --preset tsan -j $(JOBS) --output-on-failure -L 'concurrent|switching' && \
	echo "==> [tsan] passed in $$(( $$(date +%s) - t0 )) s" || \
	{ echo "==> [tsan] FAILED after $$(( $$(date +%s) - t0 )) s"; exit 1; }

# The cross stage: the core, the sim adapter, the shipped plugins, the conformance kit and
# plugin images, built with Debian's cross compilers for arm64 (little-endian, weakly
# ordered) and s390x (big-endian) and run under QEMU's user mode (cmake/cross, presets
# cross-arm64 and cross-s390x). Only the suites that need no DPDK and no Linux networking,
# and only their programs are built. The layout tests check bytes, so a missing byte swap
# fails on s390x; the threaded suites (ring stress, sim and igbvf threads, shell threads) run
# on both, with fewer stress items (QEMU is 5-20x slower). QEMU's user mode on x86 does not
# reorder memory as arm64 does: ordering is ThreadSanitizer's job (stage 4). The cross
# presets build with -O1 (inlining and scheduling on, about 40% less compile time than -O3),
# which keeps the stage to a few minutes on two cores.
# Plugin images: the simnic and igbvf images are compiled for the target, packed and signed
# by a pack tool the cross tree builds for this machine (adapters/image/tools), and loaded
# by the target's loader under QEMU (libsodium for the target: adapters/image/deps.sh).
# CROSS_IMAGE_CHECKS are tests without a program of their own (the pack tool on the
# target's ELF); image_bad_fixtures builds their inputs. The simnic conformance run and the
# LOAD_PLUGIN test are left out to keep the stage short: they take the loader path that
# image_loader_test, image_shell_test and the igbvf kit run already take on both machines.
# Cost, measured in one clean run without ccache: the whole stage took 10.2 CPU-minutes
# (user + sys, both machines), of which the image targets are 15% (arm64) and 18% (s390x)
# of the build's edge time and their tests about 10 s per machine: about 4-4.5 minutes on
# an idle two-core machine, where the stage took about 3.5 before.
CROSS_PRESETS ?= cross-arm64 cross-s390x
CROSS_TESTS := core_index_ring core_gen_ring core_fixed_pool core_buffer_lifetime core_status \
               core_endian core_concepts core_index_ring_stress core_gen_ring_stress \
               sim_parts_test sim_conformance_test sim_threaded_test \
               vmxnet3_conformance_test vmxnet3_device_test \
               igbvf_conformance_test igbvf_layout_test igbvf_mailbox_test igbvf_hostile_test \
               igbvf_threaded_test shell_threads_test \
               core_virtio_split_ring core_virtio_packed_ring virtio_net_device_test \
               virtio_net_conformance_test virtio_net_offload_test vmxnet3_offload_test \
               igbvf_offload_test \
               image_loader_test image_shell_test image_igbvf_conformance_test
CROSS_IMAGE_CHECKS := image_reproducible image_pack_refuses_imports image_pack_refuses_constructor \
                      image_pack_refuses_plain
# The core under kernel-style flags for the target (arm64: atomics inline, no libgcc helpers),
# linked without the C++ runtime and loaded under QEMU.
CROSS_KERNEL_STYLE := npa_headers_kernel_style npa_kernel_style_load
CROSS_KERNEL_STYLE_CHECKS := headers_kernel_style_link
CROSS_STRESS_ITEMS ?= 1000000
CROSS_REGEX := ^($(shell echo $(CROSS_TESTS) $(CROSS_IMAGE_CHECKS) $(CROSS_KERNEL_STYLE_CHECKS) | tr ' ' '|'))$$

test-cross:
	@for p in $(CROSS_PRESETS); do \
	  echo "==> [$$p] configure, build, test"; \
	  t0=$$(date +%s); \
	  $(CMAKE) --preset $$p && \
	  $(CMAKE) --build --preset $$p --parallel $(JOBS) --target $(CROSS_TESTS) image_bad_fixtures \
	      $(CROSS_KERNEL_STYLE) && \
	  NPA_STRESS_ITEMS=$(CROSS_STRESS_ITEMS) $(CTEST) --preset $$p -j $(JOBS) --output-on-failure \
	      -R '$(CROSS_REGEX)' && \
	  echo "==> [$$p] passed in $$(( $$(date +%s) - t0 )) s" || \
	  { echo "==> [$$p] FAILED after $$(( $$(date +%s) - t0 )) s"; exit 1; }; \
	done

test-debug:
	$(call preset_suite,debug,,)

# Bounded fuzzing (clang, libFuzzer + ASan + UBSan): every target in fuzz/ for
# FUZZ_TEST_SECONDS each from its committed seeds (about 1.5 minutes of fuzzing in all).
FUZZ_TEST_SECONDS ?= 10
FUZZ_SECONDS ?= 300
test-fuzz:
	scripts/fuzz.sh $(FUZZ_TEST_SECONDS)

# Long runs on demand (not in CI): fuzzing for FUZZ_SECONDS per target; the soak with
# SOAK_SWITCHES switches (docs/reliability.md records both).
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

SOAK_SWITCHES ?= 100000
soak: deps
	scripts/soak.sh $(SOAK_SWITCHES)

# The guest stage (tests/guest/README.md): static programs run inside a Linux guest that
# QEMU boots (TCG) with emulated vmxnet3 and igb NICs. Its own build tree, configured from the
# release preset with NPA_GUEST_TESTS=ON, so the release suite does not pick the tests up.
# The first run downloads Debian's kernel package into build/guest/ (about 70 MB, once).
# GUEST_KMOD=OFF leaves out the kernel module (adapters/linux/kmod) and its guest test.
GUEST_BUILD := build/guest-tests
GUEST_KMOD ?= ON
test-guest: deps
	@echo "==> [guest] configure, build, test"
	@t0=$$(date +%s); \
	$(CMAKE) --preset release -B $(GUEST_BUILD) -DNPA_GUEST_TESTS=ON -DNPA_GUEST_KMOD=$(GUEST_KMOD) -DNPA_BUILD_BENCHMARKS=OFF && \
	$(CMAKE) --build $(GUEST_BUILD) --parallel $(JOBS) --target npa-guest-tests && \
	$(CTEST) --test-dir $(GUEST_BUILD) -L guest --output-on-failure && \
	echo "==> [guest] passed in $$(( $$(date +%s) - t0 )) s" || \
	{ echo "==> [guest] FAILED after $$(( $$(date +%s) - t0 )) s"; exit 1; }

build: deps
	$(CMAKE) --preset release
	$(CMAKE) --build --preset release --parallel $(JOBS)

demo: deps
	$(CMAKE) --preset release
	@$(CMAKE) --build --preset release --parallel $(JOBS) --target npa-demo || \
	{ echo "make demo: could not build the npa-demo target (defined by adapters/sim)"; exit 1; }
	$(DEMO)

bench: deps
	@if [ ! -x benchmarks/run.sh ]; then \
	  echo "make bench: benchmarks/run.sh is missing or not executable"; exit 1; fi
	benchmarks/run.sh

# Tracked C++ sources, except those with requires-expressions, which clang-format 14 (the
# Debian 12 version) mangles (see .clang-format).
FORMAT_FILES = $(shell git grep -L -w requires -- '*.hpp' '*.cpp' '*.h' 2>/dev/null)

format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

format:
	clang-format -i $(FORMAT_FILES)

clean:
	rm -rf build
