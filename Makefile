# 47Sentry build.  `make` builds everything into build/; `make test` runs
# every test (kernel tests need root and BPF: they fail, not skip, under CI).

BUILD    ?= build
GEN      := $(BUILD)/gen
CC       ?= cc
CLANG    ?= clang
BPFTOOL  ?= bpftool
FLEX     ?= flex
BISON    ?= bison
ARCH_INC := /usr/include/$(shell $(CC) -dumpmachine)

CSTD     := -std=c11 -D_GNU_SOURCE
WARN     := -Wall -Wextra -Werror
OPT      ?= -O2 -g
SAN      ?=
CFLAGS   := $(CSTD) $(WARN) $(OPT) $(SAN) -I. -I$(GEN) -MMD -MP
# libyaml: sentryd's configuration; libmicrohttpd: its HTTP server;
# jansson: the REST API's JSON (and sentryctl's reading of it); libsystemd:
# sd_notify; libcurl (sentryctl only): the API client.
LDLIBS   := -lbpf -lelf -lz -lcrypto -lyaml -lmicrohttpd -ljansson -lsystemd
LDFLAGS  := $(SAN)
# Generated lexer/parser code is not ours to lint.
GEN_CFLAGS := $(CSTD) -Wall -Werror -Wno-unused-function -Wno-sign-compare \
              $(OPT) $(SAN) -I. -I$(GEN) -Icompiler -MMD -MP

BPF_CFLAGS := -target bpf -O2 -g -Wall -Wextra -Werror -I. -I$(ARCH_INC) \
              -D__BPF__ -mcpu=v3

# ---- sources ---------------------------------------------------------------
COMPILER_SRC := $(filter-out compiler/main.c,$(wildcard compiler/*.c))
COMPILER_OBJ := $(COMPILER_SRC:%.c=$(BUILD)/%.o) \
                $(GEN)/sentry.tab.o $(GEN)/sentry.lex.o
RUNTIME_SRC  := $(filter-out runtime/sentryd.c runtime/sentryctl.c,$(wildcard runtime/*.c))
RUNTIME_OBJ  := $(RUNTIME_SRC:%.c=$(BUILD)/%.o)
BPF_SRC      := $(wildcard bpf/templates/*.bpf.c)
BPF_OBJ      := $(BPF_SRC:bpf/templates/%.bpf.c=$(BUILD)/bpf/%.bpf.o)
SKELS        := $(BPF_SRC:bpf/templates/%.bpf.c=$(GEN)/%.skel.h)

LIBCOMPILER  := $(BUILD)/libsentry-compiler.a
LIBRUNTIME   := $(BUILD)/libsentry-runtime.a

TEST_C_SRC   := $(wildcard tests/unit/*.c tests/kernel/*.c tests/tools/*.c)
TEST_BINS    := $(TEST_C_SRC:tests/%.c=$(BUILD)/tests/%)

BINS := $(BUILD)/sentry-compile $(BUILD)/sentryd $(BUILD)/sentryctl
# bench/flood is built with everything: tests/e2e/bench_flood.sh runs it.
BENCH_FLOOD := $(BUILD)/bench/flood $(BUILD)/bench/flood-client \
               $(BUILD)/bench/flood_gen.bpf.o $(BUILD)/bench/ringloss.bpf.o

.PHONY: all deps test test-unit test-golden test-kernel test-e2e demo \
        test-differential \
        clean golden-update test-sanitize fuzz fuzz-build
all: $(BINS) $(BPF_OBJ) $(TEST_BINS) $(BENCH_FLOOD)

# ---- generated parser ------------------------------------------------------
$(GEN)/sentry.tab.c $(GEN)/sentry.tab.h: grammar/sentry.y | $(GEN)
	$(BISON) -Wall -Werror --defines=$(GEN)/sentry.tab.h -o $(GEN)/sentry.tab.c $<
$(GEN)/sentry.lex.c $(GEN)/sentry.lex.h: grammar/sentry.l $(GEN)/sentry.tab.h | $(GEN)
	$(FLEX) --header-file=$(GEN)/sentry.lex.h -o $(GEN)/sentry.lex.c $<
$(GEN)/%.o: $(GEN)/%.c
	$(CC) $(GEN_CFLAGS) -c -o $@ $<

# The front end includes the generated headers.
$(COMPILER_SRC:%.c=$(BUILD)/%.o): $(GEN)/sentry.tab.h $(GEN)/sentry.lex.h

# ---- BPF ---------------------------------------------------------------------
$(BUILD)/bpf/%.bpf.o: bpf/templates/%.bpf.c bpf/sentry_abi.h | $(BUILD)/bpf
	$(CLANG) $(BPF_CFLAGS) -c -o $@ $<
$(GEN)/%.skel.h: $(BUILD)/bpf/%.bpf.o | $(GEN)
	$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@.tmp && mv $@.tmp $@
$(RUNTIME_OBJ): $(SKELS)

# The dashboard page, compiled into sentryd when runtime/dashboard.html
# exists at build time (GET / and /dashboard; 404 otherwise).
DASHBOARD := $(wildcard runtime/dashboard.html)
$(GEN)/dashboard_html.h: $(DASHBOARD) tools/embed.sh | $(GEN)
	./tools/embed.sh sn_dashboard_html $(DASHBOARD) > $@.tmp && mv $@.tmp $@
$(BUILD)/runtime/api.o: $(GEN)/dashboard_html.h

# ---- userspace ---------------------------------------------------------------
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<
$(LIBCOMPILER): $(COMPILER_OBJ)
	$(AR) rcs $@ $^
$(LIBRUNTIME): $(RUNTIME_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/sentry-compile: $(BUILD)/compiler/main.o $(LIBRUNTIME) $(LIBCOMPILER)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/sentryd: $(BUILD)/runtime/sentryd.o $(LIBRUNTIME) $(LIBCOMPILER)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/sentryctl: $(BUILD)/runtime/sentryctl.o $(LIBRUNTIME) $(LIBCOMPILER)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcurl
$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIBRUNTIME) $(LIBCOMPILER)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/tests/%.o: tests/%.c $(SKELS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(GEN) $(BUILD)/bpf:
	mkdir -p $@

# ---- dependencies (Debian) ---------------------------------------------------
deps:
	./tools/install-deps.sh

# ---- tests -------------------------------------------------------------------
# `make test` is the one command the README and CI run.
test: all
	./tests/run-all.sh

test-unit: all
	./tests/run-all.sh unit
test-golden: all
	./tests/run-all.sh golden
test-kernel: all
	./tests/run-all.sh kernel
test-e2e: all
	./tests/run-all.sh e2e

# The kernel differential test at full size (millions of frames; `make
# test` runs a CI-sized one).  DIFF_ARGS="--seed 7 --policies 50" etc.
DIFF_SEED ?= $(shell date +%s)
test-differential: all
	$(BUILD)/tests/kernel/test_differential --policies 1000 --packets 10000 \
		--seconds 300 --seed $(DIFF_SEED) $(DIFF_ARGS)

# Every suite again with the userspace built under ASan and UBSan (any
# report aborts the process, so the test fails).
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
             -fno-sanitize-recover=all
test-sanitize:
	$(MAKE) BUILD=build-san SAN="$(SAN_FLAGS)" OPT="-O1 -g" all
	BUILD=build-san ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1 ./tests/run-all.sh

# Coverage-guided fuzzing (libFuzzer, clang): the whole compiler on policy
# text, and the image reader on raw bytes.  FUZZ_SECONDS per target; new
# crashes land in build-fuzz/artifacts/ - fix, then commit the input under
# tests/fuzz/regressions/ (policy-* or image-*) so test_fuzz_regressions
# replays it forever.
FUZZ_BUILD   := build-fuzz
FUZZ_SAN     := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := policy image
fuzz-build:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=clang SAN="$(FUZZ_SAN)" OPT="-O1 -g" \
		$(FUZZ_BUILD)/libsentry-compiler.a
	for t in $(FUZZ_TARGETS); do \
		clang $(CSTD) $(WARN) -O1 -g -I. -fsanitize=fuzzer,address,undefined \
			-fno-sanitize-recover=all -o $(FUZZ_BUILD)/fuzz_$$t \
			tests/fuzz/fuzz_$$t.c $(FUZZ_BUILD)/libsentry-compiler.a -lcrypto \
			|| exit 1; \
	done
fuzz: fuzz-build
	./tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Rewrite expected golden outputs from the current build (review the diff!).
golden-update: all
	UPDATE=1 ./tests/golden/run.sh
	$(BUILD)/tests/unit/test_metrics --print > tests/golden/metrics/exposition.prom

# ---- demo --------------------------------------------------------------------
demo: all
	./tools/demo.sh

# ---- benchmarks ----------------------------------------------------------------
# sentry-compile beside `nft -c` on 1k/100k/1M prefixes (bench/compile.c says
# how; BENCHMARKS.md records runs).  BENCH_ARGS="--reps 3 --cases 1k" etc.
.PHONY: bench-compile
bench-compile: $(BUILD)/sentry-compile
	@mkdir -p $(BUILD)/bench
	$(CC) $(CSTD) $(WARN) -O2 -o $(BUILD)/bench/compile bench/compile.c
	$(BUILD)/bench/compile --sentry $(BUILD)/sentry-compile \
		--work $(BUILD)/bench/compile-work $(BENCH_ARGS)

# ns per packet via BPF_PROG_TEST_RUN: baseline, sentry, a plain LPM trie and
# xdp-filter at 10..1M prefixes (bench/verdict.c says how; needs root).
# BENCH_ARGS="--sizes 10,100k --family 4 --packets 5000" etc.
.PHONY: bench-verdict
$(BUILD)/bench/verdict.bpf.o: bench/verdict.bpf.c bpf/sentry_abi.h | $(BUILD)/bpf
	@mkdir -p $(BUILD)/bench
	$(CLANG) $(BPF_CFLAGS) -c -o $@ $<
$(BUILD)/bench/verdict: $(BUILD)/bench/verdict.o $(LIBRUNTIME) $(LIBCOMPILER)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/bench/verdict.o: $(SKELS)
bench-verdict: $(BUILD)/bench/verdict $(BUILD)/bench/verdict.bpf.o
	@mkdir -p $(BUILD)/bench/verdict-work
	$(BUILD)/bench/verdict --obj $(BUILD)/bench/verdict.bpf.o \
		--work $(BUILD)/bench/verdict-work $(BENCH_ARGS)

# Reload: initial load, diff apply, rename-to-verdict on the wire, beside
# `nft -f` (bench/reload.c says how; needs root).  BENCH_ARGS="--cases
# typical --iters 50" etc.
.PHONY: bench-reload
$(BUILD)/bench/reload: $(BUILD)/bench/reload.o $(LIBRUNTIME) $(LIBCOMPILER)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lpthread
$(BUILD)/bench/reload.o: $(SKELS)
$(BUILD)/bench/compile: bench/compile.c
	@mkdir -p $(BUILD)/bench
	$(CC) $(CSTD) $(WARN) -O2 -o $@ $<
bench-reload: $(BUILD)/bench/reload $(BUILD)/bench/compile $(BUILD)/sentryd $(BUILD)/sentry-compile
	$(BUILD)/bench/reload --compile $(BUILD)/bench/compile \
		--sentryd $(BUILD)/sentryd --work $(BUILD)/bench/reload-work $(BENCH_ARGS)

# Under a live-frames flood: 47Sentry beside nftables (netdev ingress, inet
# prerouting), iptables raw + ipset and no filter, with legitimate TCP
# beside it (bench/flood.c says how; needs root).
# BENCH_ARGS="--systems sentry,nft-netdev --seconds 3" etc.
.PHONY: bench-flood
$(BUILD)/bench/flood_gen.bpf.o: bench/flood_gen.bpf.c bench/flood_gen.h | $(BUILD)/bpf
	@mkdir -p $(BUILD)/bench
	$(CLANG) $(BPF_CFLAGS) -c -o $@ $<
$(BUILD)/bench/ringloss.bpf.o: bench/ringloss.bpf.c bench/ringloss.h | $(BUILD)/bpf
	@mkdir -p $(BUILD)/bench
	$(CLANG) $(BPF_CFLAGS) -c -o $@ $<
FLOOD_OBJ := $(addprefix $(BUILD)/bench/,flood.o flood_gen.o blocklist.o nscount.o \
                                         ringloss.o pcp.o)
$(BUILD)/bench/flood: $(FLOOD_OBJ) $(LIBRUNTIME) $(LIBCOMPILER)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lpthread
$(BUILD)/bench/flood.o: $(SKELS)
$(BUILD)/bench/flood-client: bench/flood_client.c
	@mkdir -p $(BUILD)/bench
	$(CC) $(CSTD) $(WARN) -O2 -o $@ $<
bench-flood: $(BENCH_FLOOD) $(BUILD)/sentryd $(BUILD)/tests/tools/probe
	$(BUILD)/bench/flood --gen-obj $(BUILD)/bench/flood_gen.bpf.o \
		--ringloss-obj $(BUILD)/bench/ringloss.bpf.o \
		--sentryd $(BUILD)/sentryd --probe $(BUILD)/tests/tools/probe \
		--client $(BUILD)/bench/flood-client --work $(BUILD)/bench/flood-work \
		$(BENCH_ARGS)

# ---- install -------------------------------------------------------------------
# `make install [DESTDIR=stage] [PREFIX=/usr]`: the programs, the systemd unit
# with these paths in it, and a starting configuration that is never
# overwritten (an operator's policy outlives upgrades).  The Kubernetes
# manifests and the Grafana dashboard go to the documentation directory.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
DOCDIR     ?= $(PREFIX)/share/doc/47sentry
CONFDIR    := $(DESTDIR)$(SYSCONFDIR)/47sentry

.PHONY: install uninstall
install: $(BINS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(DOCDIR)/kubernetes $(DESTDIR)$(DOCDIR)/grafana
	install -m 0755 $(BUILD)/sentry-compile $(BUILD)/sentryctl $(DESTDIR)$(BINDIR)
	install -m 0755 $(BUILD)/sentryd $(DESTDIR)$(SBINDIR)
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		-e 's|@DOCDIR@|$(DOCDIR)|g' deploy/systemd/47sentry.service.in \
		> $(DESTDIR)$(UNITDIR)/47sentry.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/47sentry.service
	install -m 0644 README.md SPEC.md $(DESTDIR)$(DOCDIR)
	install -m 0644 deploy/kubernetes/* $(DESTDIR)$(DOCDIR)/kubernetes
	install -m 0644 deploy/grafana/* $(DESTDIR)$(DOCDIR)/grafana
	install -d -m 0700 $(CONFDIR)
	test -e $(CONFDIR)/sentryd.yaml || \
		install -m 0600 policies/sentryd.yaml $(CONFDIR)/sentryd.yaml
	test -e $(CONFDIR)/policy.sentry || \
		install -m 0600 policies/host.sentry $(CONFDIR)/policy.sentry

# Leaves $(SYSCONFDIR)/47sentry (the operator's policy) and any attached
# filter alone: `sentryctl detach` first to remove enforcement.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/sentry-compile $(DESTDIR)$(BINDIR)/sentryctl \
		$(DESTDIR)$(SBINDIR)/sentryd $(DESTDIR)$(UNITDIR)/47sentry.service
	rm -rf $(DESTDIR)$(DOCDIR)

clean:
	rm -rf $(BUILD) build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
