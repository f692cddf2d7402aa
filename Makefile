# rcptwall build.
#
#   sudo make run    install missing packages, build, run with the default policy
#   sudo make test   install missing packages, build, run every test
#   make             build build/rcptwall
#   make bench       benchmarks (not part of test)
#   make fuzz        libFuzzer targets for a bounded time (FUZZ_SECONDS)
#   make vmtest      BPF tests inside QEMU on Debian's 6.1 kernel and this one
#
# Pipeline for the kernel side (as libbpf-bootstrap): vmlinux.h from the
# running kernel's BTF -> clang -target bpf -> bpftool gen object ->
# bpftool gen skeleton; the user objects include the skeletons, so the
# rcptwall binary carries its BPF programs.
#
# New files need no Makefile edit: user/*.c (except main.c) go into
# librcptwall.a, every tests/unit/test_*.c and tests/bpf/test_*.c becomes a
# cmocka binary linked with it, tests/fuzz/fuzz_*.c a libFuzzer target,
# bench/bench_*.c a benchmark binary, tests/e2e/*.sh an end-to-end test.

.DELETE_ON_ERROR:
# Keep the generated BPF objects and skeletons: they are inputs of many rules.
.SECONDARY:
.SUFFIXES:

CC       ?= gcc
CLANG    ?= clang
BPFTOOL  ?= bpftool
ARCH     := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
BUILD    := build
ASAN     := $(BUILD)/asan

PKGS     := libbpf libnftables libpsl libidn2 icu-uc icu-i18n inih jansson
LIBS     := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lelf -lz -lm
WARN     := -Wall -Wextra -Wshadow -Wformat=2 -Wno-unused-parameter
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 $(WARN) -Werror -D_GNU_SOURCE -Iinclude -Iuser -I$(BUILD)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

BPF_SRCS  := $(wildcard bpf/*.bpf.c)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS     := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))
LIB_SRCS  := $(filter-out user/main.c,$(wildcard user/*.c))
LIB_OBJS  := $(patsubst user/%.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
ASAN_OBJS := $(patsubst user/%.c,$(ASAN)/obj/%.o,$(LIB_SRCS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
BPFT_SRCS := $(wildcard tests/bpf/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
BPFT_BINS := $(patsubst tests/bpf/%.c,$(BUILD)/tests/%,$(BPFT_SRCS))
ASAN_BINS := $(patsubst tests/unit/%.c,$(ASAN)/tests/%,$(UNIT_SRCS)) \
             $(patsubst tests/bpf/%.c,$(ASAN)/tests/%,$(BPFT_SRCS))
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
BENCH_SRCS := $(wildcard bench/bench_*.c)
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
HEADERS   := $(wildcard include/rcptwall/*.h user/*.h)

.PHONY: all deps run test test-build bench fuzz vmtest clean
all: $(BUILD)/rcptwall

deps:
	@./scripts/install-deps.sh

# The default target of `sudo make run`: monitor every interface that is up
# with the embedded policy. Extra arguments: make run ARGS="--enforce".
run: deps
	@$(MAKE) --no-print-directory all
	./$(BUILD)/rcptwall run $(ARGS)

test: deps
	@$(MAKE) --no-print-directory test-build
	BUILD=$(BUILD) ./scripts/run-tests.sh

test-build: $(BUILD)/rcptwall $(UNIT_BINS) $(BPFT_BINS) $(ASAN_BINS) $(BENCH_BINS)

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BINS)
	BUILD=$(BUILD) ./scripts/run-bench.sh

FUZZ_SECONDS ?= 60
fuzz: deps
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	./scripts/run-fuzz.sh $(FUZZ_SECONDS)

vmtest: deps
	@$(MAKE) --no-print-directory test-build
	./scripts/vmtest.sh

clean:
	rm -rf $(BUILD)

# ---- kernel side -----------------------------------------------------------

$(BUILD)/vmlinux.h: | $(BUILD)
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@

$(BUILD)/bpf/%.tmp.o: bpf/%.bpf.c $(BUILD)/vmlinux.h $(wildcard bpf/*.h) include/rcptwall/rcptwall.h | $(BUILD)/bpf
	$(CLANG) -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_$(ARCH) -D__BPF__ \
		-Iinclude -I$(BUILD) -c $< -o $@

# The TLS uprobes advance a flow's plaintext offset with an atomic
# fetch-and-add, which needs BPF ISA v3 (kernel 5.12+).
$(BUILD)/bpf/tls_uprobe.tmp.o: CLANG += -mcpu=v3
# Its test speaks TLS itself, with both libraries the probes attach to.
$(BUILD)/tests/test_tls_uprobe $(ASAN)/tests/test_tls_uprobe: LIBS += -lssl -lcrypto -lgnutls -lpthread
# Its benchmark measures the probes on the real libssl too.
$(BUILD)/bench/bench_uprobe: LIBS += -lssl -lcrypto -lpthread

$(BUILD)/bpf/%.bpf.o: $(BUILD)/bpf/%.tmp.o
	$(BPFTOOL) gen object $@ $<

$(BUILD)/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@

# ---- user side ---------------------------------------------------------------

$(BUILD)/obj/%.o: user/%.c $(HEADERS) $(SKELS) | $(BUILD)/obj
	$(CC) $(CFLAGS) -c $< -o $@

$(ASAN)/obj/%.o: user/%.c $(HEADERS) $(SKELS) | $(ASAN)/obj
	$(CC) $(CFLAGS) $(SANFLAGS) -c $< -o $@

$(BUILD)/librcptwall.a: $(LIB_OBJS)
	ar rcs $@ $^

$(ASAN)/librcptwall.a: $(ASAN_OBJS)
	ar rcs $@ $^

$(BUILD)/rcptwall: $(BUILD)/obj/main.o $(BUILD)/librcptwall.a
	$(CC) $(CFLAGS) $^ $(LIBS) -o $@

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/librcptwall.a $(HEADERS) | $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests $< $(BUILD)/librcptwall.a $(LIBS) -lcmocka -o $@

$(BUILD)/tests/%: tests/bpf/%.c $(BUILD)/librcptwall.a $(HEADERS) $(SKELS) | $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests $< $(BUILD)/librcptwall.a $(LIBS) -lcmocka -o $@

$(ASAN)/tests/%: tests/unit/%.c $(ASAN)/librcptwall.a $(HEADERS) | $(ASAN)/tests
	$(CC) $(CFLAGS) $(SANFLAGS) -Itests $< $(ASAN)/librcptwall.a $(LIBS) -lcmocka -o $@

$(ASAN)/tests/%: tests/bpf/%.c $(ASAN)/librcptwall.a $(HEADERS) $(SKELS) | $(ASAN)/tests
	$(CC) $(CFLAGS) $(SANFLAGS) -Itests $< $(ASAN)/librcptwall.a $(LIBS) -lcmocka -o $@

$(BUILD)/bench/%: bench/%.c $(BUILD)/librcptwall.a $(HEADERS) | $(BUILD)/bench
	$(CC) $(CFLAGS) -Ibench $< $(BUILD)/librcptwall.a $(LIBS) -o $@

# libFuzzer needs clang; the library is rebuilt with the fuzzer's
# instrumentation so coverage reaches into it.
FUZZFLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -Iinclude -Iuser -I$(BUILD) \
             -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_SRCS) $(HEADERS) $(SKELS) | $(BUILD)/fuzz
	$(CLANG) $(FUZZFLAGS) $< $(LIB_SRCS) $(LIBS) -o $@

$(BUILD) $(BUILD)/bpf $(BUILD)/obj $(ASAN)/obj $(BUILD)/tests $(ASAN)/tests $(BUILD)/bench $(BUILD)/fuzz:
	mkdir -p $@
