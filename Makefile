# rtm: build, test, run. `make help` lists the targets.
#
# Sources are found by directory, so adding a file needs no Makefile edit:
#   common/*.c   -> $(B)/libcommon.a   (tokens, TURN, config, log, store: shared by all)
#   broker/*.c cluster/*.c mint-api/*.c rtmd/*.c -> $(B)/rtmd
#   sdk-c/src/*.c -> $(B)/librtm.so.1 + $(B)/librtm.a ; sdk-c/tool/*.c -> $(B)/rtm
#   tests/unit/test_*.c -> $(B)/tests/test_*   (each links libcommon + librtm.a)
#   tests/sdk/test_*.c  -> $(B)/tests/sdk_test_*
#   tests/fault/test_*.c -> $(B)/tests/test_* (with the allocation-failure hook; run as unit tests)
#   tests/fuzz/fuzz_*.c -> $(B)/fuzz/replay_* (gcc: replays tests/fuzz/corpus/*/ in make test)
#                          build-fuzz/fuzz/fuzz_* (clang libFuzzer + ASan/UBSan: make fuzz)
# B (the build directory) lets several builds live side by side: `make B=build-asan SAN=1`.

B        ?= build
PREFIX   ?= /usr/local
SAN      ?=
PKGS     := libwebsockets libjwt jansson sqlite3 libpq libcrypto
# only rtmd (and the fuzz harnesses built on its objects) link hiredis (cluster mode) and libssl
# (rtmd/listen.c reloads TLS certificates); librtm and the tools do not
RTMD_PKGS := hiredis libssl
CC       ?= cc
OPT      ?= -O2
CFLAGS_BASE := -std=gnu11 -g $(OPT) -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
               -fPIC -Icommon -Ibroker -Imint-api -Icluster -Isdk-c/include $(shell pkg-config --cflags $(PKGS) $(RTMD_PKGS) 2>/dev/null)
ifeq ($(FUZZ),1)
CFLAGS_BASE += -fsanitize=fuzzer-no-link
endif
ifeq ($(SAN),1)
CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDSAN    := -fsanitize=address,undefined
endif
CFLAGS   += $(CFLAGS_BASE)
# libev ships no .pc file
LDLIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -lm -lpthread
RTMD_LIBS := $(shell pkg-config --libs $(RTMD_PKGS) 2>/dev/null)
LDFLAGS  += $(LDSAN)

COMMON_SRC := $(wildcard common/*.c)
RTMD_SRC   := $(wildcard broker/*.c cluster/*.c mint-api/*.c rtmd/*.c)
SDK_SRC    := $(wildcard sdk-c/src/*.c)
TOOL_SRC   := $(wildcard sdk-c/tool/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
SDKT_SRC   := $(wildcard tests/sdk/test_*.c)
BENCH_SRC  := $(wildcard bench/*.c)
FAULT_SRC  := $(wildcard tests/fault/test_*.c)
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC))
SCHEMA_SQL := $(sort $(wildcard schema/[0-9]*.sql))
PG_SCHEMA_SQL := $(sort $(wildcard schema/pg/[0-9]*.sql))

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))
COMMON_OBJ := $(call obj,$(COMMON_SRC)) $(B)/obj/schema_sql.o $(B)/obj/schema_pg_sql.o
RTMD_OBJ   := $(call obj,$(RTMD_SRC))
SDK_OBJ    := $(call obj,$(SDK_SRC))
TOOL_OBJ   := $(call obj,$(TOOL_SRC))
UNIT_BIN   := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
SDKT_BIN   := $(patsubst tests/sdk/%.c,$(B)/tests/sdk_%,$(SDKT_SRC))
# The daemon's objects without its main(), for the fuzz harnesses.
DAEMON_OBJ := $(filter-out $(B)/obj/rtmd/%,$(RTMD_OBJ))
FUZZ_SUPPORT := $(B)/obj/tests/fuzz/support.o
FUZZ_REPLAY := $(addprefix $(B)/fuzz/replay_,$(FUZZ_NAMES))
FAULT_BIN  := $(patsubst tests/fault/%.c,$(B)/tests/%,$(FAULT_SRC))
# Allocations of rtm's own objects go through tests/fault/failalloc.c.
FAULT_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup
# sdk_* harnesses link librtm (its internals share names with the broker's).
fuzz_libs = $(if $(filter sdk_%,$(1)),$(B)/librtm.a,$(B)/fuzz/libbenv.a $(B)/librtmd.a $(B)/libcommon.a $(RTMD_LIBS))

# librtm.so exports what rtm.h declares (RTM_EXPORT) and nothing else: its
# objects, libcommon's included, are built with hidden visibility.
HIDDEN_CFLAGS := -fvisibility=hidden
$(B)/obj/common/%.o $(B)/obj/sdk-c/src/%.o: CFLAGS += $(HIDDEN_CFLAGS)
# The version lives in rtm.h (RTM_VERSION_*): the soname's major and rtm.pc follow it.
RTM_VERSION := $(shell sed -n 's/^\#define RTM_VERSION_STRING "\(.*\)"/\1/p' sdk-c/include/rtm.h)
SDK_SONAME := librtm.so.$(firstword $(subst ., ,$(RTM_VERSION)))

.PHONY: FORCE all deps test-deps run-deps run test asan valgrind bench install clean help lint deb fuzz fuzz-build
# Targets that install packages run the build in a sub-make, because the
# pkg-config flags above are read when make starts (before apt-get ran).
all: $(B)/rtmd $(B)/rtm $(B)/$(SDK_SONAME) $(B)/librtm.a $(B)/rtm.pc $(UNIT_BIN) $(SDKT_BIN) $(FUZZ_REPLAY) $(FAULT_BIN) $(if $(BENCH_SRC),$(B)/rtm-bench-raw)

help:
	@echo "make          build everything into $(B)/ (-Wall -Wextra -Werror, debug symbols)"
	@echo "make run      start rtmd on the embedded default (creates var/ on first start)"
	@echo "make test     run every test (unit, integration, sdk-c, coturn, Chromium)"
	@echo "make asan     build with ASan+UBSan into build-asan/ and run the tests on it"
	@echo "make valgrind run the unit and sdk-c tests, and the daemon in the integration tests, under valgrind"
	@echo "make fuzz FUZZ_SECONDS=60   run every libFuzzer target (clang, ASan+UBSan) N seconds each; fails on a finding"
	@echo "make bench    mint, fan-out, pairs and connect benchmarks (prints figures, no thresholds)"
	@echo "make install PREFIX=/usr/local   install librtm (shared+static), rtm.h, rtm.pc, rtm, rtmd"
	@echo "make deb      build/rtm_<version>_amd64.deb with rtmd.service (docs/PACKAGING.md)"

deps:
	@scripts/deps.sh build
test-deps:
	@scripts/deps.sh test
run-deps:
	@scripts/deps.sh run

# Objects depend on the flags, not only on their sources: $(FLAGS_STAMP) holds
# the compiler and every flag an object can be built with, and is rewritten only
# when that text changes, so a CFLAGS change (say -fvisibility=hidden on
# librtm's objects) rebuilds what a stale build dir holds, and nothing otherwise.
FLAGS_STAMP := $(B)/flags.stamp
$(FLAGS_STAMP): FORCE
	@mkdir -p $(dir $@)
	@printf '%s\n' '$(subst ','\'',$(FLAGS_TEXT))' | cmp -s - $@ || \
		printf '%s\n' '$(subst ','\'',$(FLAGS_TEXT))' > $@
FORCE:

$(B)/obj/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The migrations are compiled in, so the daemon needs no files at run time.
$(B)/obj/schema_sql.c: $(SCHEMA_SQL) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	scripts/embed-sql.sh $(SCHEMA_SQL) > $@
$(B)/obj/schema_pg_sql.c: $(PG_SCHEMA_SQL) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	scripts/embed-sql.sh --name rtm_pg_schema_migrations $(PG_SCHEMA_SQL) > $@
$(B)/obj/schema_sql.o $(B)/obj/schema_pg_sql.o: $(B)/obj/%.o: $(B)/obj/%.c $(FLAGS_STAMP)
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/libcommon.a: $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/rtmd: $(RTMD_OBJ) $(B)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $(RTMD_OBJ) $(B)/libcommon.a $(LDLIBS) $(RTMD_LIBS)

$(B)/$(SDK_SONAME): $(SDK_OBJ) $(B)/libcommon.a
	$(CC) $(LDFLAGS) -shared -Wl,-soname,$(SDK_SONAME) -o $@ $(SDK_OBJ) $(B)/libcommon.a $(LDLIBS)
	ln -sf $(SDK_SONAME) $(B)/librtm.so

$(B)/librtm.a: $(SDK_OBJ) $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/rtm.pc: sdk-c/rtm.pc.in sdk-c/include/rtm.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(RTM_VERSION)|g' $< > $@

$(B)/rtm: $(TOOL_OBJ) $(B)/librtm.a
	$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(B)/librtm.a $(LDLIBS)

$(B)/librtmd.a: $(DAEMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

# broker_env.o (a broker without sockets) as an archive: linked only where used.
$(B)/fuzz/libbenv.a: $(B)/obj/tests/fuzz/broker_env.o
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^

$(B)/fuzz/replay_%: $(B)/obj/tests/fuzz/fuzz_%.o $(B)/obj/tests/fuzz/replay.o $(FUZZ_SUPPORT) $(B)/fuzz/libbenv.a $(B)/librtmd.a $(B)/libcommon.a $(B)/librtm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(B)/obj/tests/fuzz/replay.o $(FUZZ_SUPPORT) $(call fuzz_libs,$*) $(LDLIBS)

# The SDK harness reads librtm's private header.
FUZZ_CFLAGS  := -Isdk-c/src
FAULT_CFLAGS := -Itests/fuzz
$(B)/obj/tests/fuzz/%.o: CFLAGS += $(FUZZ_CFLAGS)
$(B)/obj/tests/fault/%.o: CFLAGS += $(FAULT_CFLAGS)
# Expanded here, once: a prerequisite inherits its target's CFLAGS += above,
# so a lazily expanded text would change with the object that asked first.
FLAGS_TEXT := $(CC) $(CFLAGS) | $(LDFLAGS) | hidden: $(HIDDEN_CFLAGS) | fuzz: $(FUZZ_CFLAGS) | fault: $(FAULT_CFLAGS)

# Kept between builds (make would delete them as intermediates, and the flags
# stamp's forced check would then compile them again on the next make).
.SECONDARY: $(call obj,$(UNIT_SRC) $(SDKT_SRC) $(FAULT_SRC) $(BENCH_SRC)) $(FUZZ_SUPPORT) $(B)/obj/tests/fuzz/replay.o $(B)/obj/tests/fuzz/broker_env.o $(patsubst %,$(B)/obj/tests/fuzz/fuzz_%.o,$(FUZZ_NAMES))

# rtmd/listen.o: the connect test listens as rtmd does.
FAULT_LINK := $(B)/obj/tests/fault/failalloc.o $(FUZZ_SUPPORT) $(B)/obj/rtmd/listen.o $(B)/fuzz/libbenv.a $(B)/librtmd.a $(B)/libcommon.a
$(FAULT_BIN): $(B)/tests/%: $(B)/obj/tests/fault/%.o $(FAULT_LINK)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(FAULT_WRAP) -o $@ $< $(FAULT_LINK) $(RTMD_LIBS) $(LDLIBS)

# libFuzzer binaries: only in a build made with FUZZ=1 (see the fuzz target).
$(B)/fuzz/fuzz_%: $(B)/obj/tests/fuzz/fuzz_%.o $(FUZZ_SUPPORT) $(B)/fuzz/libbenv.a $(B)/librtmd.a $(B)/libcommon.a $(B)/librtm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_SUPPORT) $(call fuzz_libs,$*) $(LDLIBS)

$(B)/rtm-bench-raw: $(call obj,$(BENCH_SRC)) $(B)/librtm.a
	$(CC) $(LDFLAGS) -o $@ $(call obj,$(BENCH_SRC)) $(B)/librtm.a $(LDLIBS)

$(B)/tests/%: $(B)/obj/tests/unit/%.o $(B)/librtm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(B)/librtm.a $(LDLIBS)

# rtm bench's WebSocket engine is the tool's, not librtm's.
$(B)/tests/test_wsgen: $(B)/obj/tests/unit/test_wsgen.o $(B)/obj/sdk-c/tool/wsgen.o $(B)/librtm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/sdk_%: $(B)/obj/tests/sdk/%.o $(B)/librtm.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(B)/librtm.a $(LDLIBS)

run: run-deps
	@$(MAKE) --no-print-directory $(B)/rtmd $(B)/rtm
	@scripts/run.sh $(B)

test: test-deps
	@$(MAKE) --no-print-directory all
	@RTM_BUILD=$(B) tests/run.sh

asan: test-deps
	$(MAKE) B=build-asan SAN=1 OPT=-O1 all
	RTM_BUILD=build-asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 tests/run.sh

valgrind: test-deps
	@$(MAKE) --no-print-directory all
	RTM_BUILD=$(B) RTM_VALGRIND=1 tests/run.sh

bench: test-deps
	@$(MAKE) --no-print-directory all
	@RTM_BUILD=$(B) bench/run.sh

# Every libFuzzer target FUZZ_SECONDS seconds, one after another (2 shared
# cores), with ASan+UBSan; new inputs go to build-fuzz/, findings fail the run.
FUZZ_SECONDS ?= 60
fuzz-build: test-deps
	$(MAKE) --no-print-directory B=build-fuzz CC=clang SAN=1 FUZZ=1 OPT=-O1 $(addprefix build-fuzz/fuzz/fuzz_,$(FUZZ_NAMES))
fuzz: fuzz-build
	tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_NAMES)

install: deps
	@$(MAKE) --no-print-directory all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(B)/$(SDK_SONAME) $(DESTDIR)$(PREFIX)/lib/
	ln -sf $(SDK_SONAME) $(DESTDIR)$(PREFIX)/lib/librtm.so
	install -m 0644 $(B)/librtm.a $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 sdk-c/include/rtm.h $(DESTDIR)$(PREFIX)/include/
	# from the template, so the .pc names this PREFIX even if $(B)/rtm.pc was built for another
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(RTM_VERSION)|g' sdk-c/rtm.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/rtm.pc
	install -m 0755 $(B)/rtm $(B)/rtmd $(DESTDIR)$(PREFIX)/bin/

# rtm_<version>_<arch>.deb in $(B)/: rtmd, rtm, librtm, rtm.h, rtm.pc, the web files,
# man pages from --help, rtmd.service (packaging/). Needs help2man and dpkg-dev.
deb:
	@scripts/deps.sh deb
	@$(MAKE) --no-print-directory all
	@scripts/mkdeb.sh $(B)

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability -Icommon -Isdk-c/include common broker cluster mint-api rtmd sdk-c

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
