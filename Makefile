# dedup - build, test, install.
#   make                 build/dedup-agent and build/dedup-server
#   make test            unit + end-to-end tests
#   make asan            the same under AddressSanitizer + UBSan (build-asan/)
#   make asan-build      only build build-asan/ (CI: with -j2, before make asan)
#   make install PREFIX=/usr DESTDIR=...
#   make deb             .deb packages in $(O)/deb/ (dpkg-buildpackage, lintian)
#   make rpm             .rpm packages in $(O)/rpm/ (rpmbuild --nodeps)
#   make bench           the benchmark against restic and borg (long)
#   make bench-rados     rados bench beside the RADOS backend's own figures
#   make bench-multife   1, 2, 3 front-ends on one pool (ingest, CPU, RADOS ops)
#   make bench-server    N concurrent clients against one server, and a
#                        synthetic index of DD_BENCH_CHUNKS (50M) chunks
#   make fuzz            libFuzzer harnesses, FUZZ_SECONDS each (clang)
#   V=1 for verbose, WERROR=1 to turn warnings into errors.

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
DATADIR ?= $(PREFIX)/share/dedup
MANDIR  ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
O       ?= build

CC      ?= cc
PKG_CONFIG ?= pkg-config
OPT     ?= -O2 -g
SAN     ?=
CFLAGS  ?=
LDFLAGS ?=

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wno-unused-parameter -Wformat=2
ifeq ($(WERROR),1)
WARN += -Werror
endif

PKGS := libmicrohttpd jansson libzstd libarchive libcurl openssl fuse3
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
DD_CFLAGS := -std=gnu11 $(OPT) $(SAN) $(WARN) -pthread -MMD -MP \
             -Ishared -I$(O) -D_FILE_OFFSET_BITS=64 \
             -DDD_SYSCONFDIR='"$(SYSCONFDIR)"' $(PKG_CFLAGS) $(CFLAGS)

LIBS_COMMON := $(shell $(PKG_CONFIG) --libs libzstd openssl jansson) -pthread
# LevelDB from its static archive, so that the server can ask it to read
# its tables with pread, not mmap (server/store/ldbenv.c): its shared
# library does not export the switch. LEVELDB_SHARED=1 links the shared
# library where there is no archive (Fedora's leveldb-devel ships none);
# the server then maps its tables, and says so in its log.
ifeq ($(LEVELDB_SHARED),1)
LIBS_LEVELDB := -lleveldb
LEVELDB_LINK := shared
else
LEVELDB_A := $(shell $(CC) -print-file-name=libleveldb.a)
ifeq ($(LEVELDB_A),libleveldb.a)
$(error no libleveldb.a found (Debian: libleveldb-dev); LEVELDB_SHARED=1 links the shared library, and the server then maps its index tables)
endif
SNAPPY_SO := $(firstword $(filter /%,$(shell $(CC) -print-file-name=libsnappy.so) \
                                     $(shell $(CC) -print-file-name=libsnappy.so.1)))
LIBS_LEVELDB := $(LEVELDB_A) $(SNAPPY_SO) -lstdc++ -lm
LEVELDB_LINK := static
endif
LIBS_SERVER := $(LIBS_COMMON) $(shell $(PKG_CONFIG) --libs libmicrohttpd libarchive libcurl) $(LIBS_LEVELDB)
LIBS_AGENT  := $(LIBS_COMMON) $(shell $(PKG_CONFIG) --libs libcurl libarchive fuse3)

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_SRC    := $(wildcard shared/*.c)
# The server in layers, each using only those below it (docs/HACKING.md):
# store/ (chunks, index, packs) < repo/ (what a repository holds) < api/
# (HTTPS and routes) < cmd/ (one file per verb) < main.c.
SERVER_DIRS := server server/store server/repo server/api server/cmd
SERVER_INC := $(addprefix -I,$(SERVER_DIRS))
# backend_rados.c is a separate module, never part of the server binary.
SERVER_SRC := $(filter-out server/store/backend_rados.c,\
              $(foreach d,$(SERVER_DIRS),$(wildcard $(d)/*.c)))
AGENT_SRC  := $(wildcard agent/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)

LIB_OBJ    := $(LIB_SRC:%.c=$(O)/%.o)
SERVER_OBJ := $(SERVER_SRC:%.c=$(O)/%.o) $(O)/web_assets.o
# The backend seam, linked into unit tests and the bench driver too.
BACKEND_OBJ := $(O)/server/store/backend.o $(O)/server/store/backend_dir.o
AGENT_OBJ  := $(AGENT_SRC:%.c=$(O)/%.o)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(O)/tests/%)
LIBDEDUP   := $(O)/libdedup.a

WEB_FILES  := $(wildcard web/*)

all: $(O)/dedup-agent $(O)/dedup-server

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(DD_CFLAGS) -c -o $@ $<

$(O)/server/%.o: server/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(DD_CFLAGS) $(SERVER_INC) -c -o $@ $<

$(LIBDEDUP): $(LIB_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

# The status page is compiled into the server so a bare binary serves it.
$(O)/web_assets.c: $(WEB_FILES) tests/embed.sh
	@mkdir -p $(dir $@)
	$(Q)sh tests/embed.sh $(WEB_FILES) > $@

$(O)/web_assets.o: $(O)/web_assets.c
	$(Q)$(CC) $(DD_CFLAGS) $(SERVER_INC) -c -o $@ $<

$(O)/dedup-server: $(SERVER_OBJ) $(LIBDEDUP)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(OPT) $(SAN) -o $@ $^ $(LIBS_SERVER) $(LDFLAGS)

$(O)/dedup-agent: $(AGENT_OBJ) $(LIBDEDUP)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(OPT) $(SAN) -o $@ $^ $(LIBS_AGENT) $(LDFLAGS)

$(O)/tests/%: tests/unit/%.c tests/unit/unit.h $(LIBDEDUP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(DD_CFLAGS) -Itests/unit -o $@ $< $(LIBDEDUP) $(LIBS_SERVER) $(LIBS_AGENT) $(LDFLAGS)

# A unit test of a server module links that module and the log it uses.
SERVER_UNIT_OBJ := $(O)/server/api/conns.o $(O)/server/log.o
$(O)/tests/test_conns $(O)/tests/test_conns_model: $(O)/tests/%: tests/unit/%.c tests/unit/unit.h $(SERVER_UNIT_OBJ) $(LIBDEDUP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(DD_CFLAGS) -Itests/unit $(SERVER_INC) -o $@ $< $(SERVER_UNIT_OBJ) $(LIBDEDUP) $(LIBS_SERVER) $(LDFLAGS)

# A unit test of the store (or the snapshots' table) links the whole
# server but its main().
$(O)/tests/test_store_many $(O)/tests/test_store_verify \
$(O)/tests/test_snapshots: $(O)/tests/%: tests/unit/%.c tests/unit/unit.h $(filter-out $(O)/server/main.o,$(SERVER_OBJ)) $(LIBDEDUP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(DD_CFLAGS) -Itests/unit $(SERVER_INC) -o $@ $< $(filter-out $(O)/server/main.o,$(SERVER_OBJ)) $(LIBDEDUP) $(LIBS_SERVER) $(LDFLAGS)

# ldbenv.o is rebuilt (and the server relinked) when the choice changes.
ifeq ($(LEVELDB_LINK),static)
$(O)/server/store/ldbenv.o: DD_CFLAGS += -DDD_LEVELDB_STATIC
endif
$(O)/leveldb-link: FORCE
	@mkdir -p $(dir $@)
	@echo $(LEVELDB_LINK) | cmp -s - $@ || echo $(LEVELDB_LINK) > $@
$(O)/server/store/ldbenv.o: $(O)/leveldb-link

# dedup-server sync's checks of what a source sends (server/repo/syncwire.c)
# and its requests to a serving process (syncask.c), each included by its
# test.
$(O)/tests/test_syncwire $(O)/tests/test_syncask: DD_CFLAGS += $(SERVER_INC)

# ---- storage backends (server/store/backend*.h, docs/STORAGE.md) ----
# The directory backend is part of the server. The RADOS backend is a
# separate module, built only where librados' header is found, loaded with
# dlopen from $(MODULEDIR) (or $DEDUP_BACKEND_DIR): the server never links
# librados.
LIBDIR    ?= $(PREFIX)/lib
MODULEDIR ?= $(LIBDIR)/dedup
LIBS_SERVER += -ldl
$(O)/server/store/backend.o: DD_CFLAGS += -DBACKEND_MODULE_DIR='"$(MODULEDIR)"'
HAVE_RADOS := $(shell echo '\#include <rados/librados.h>' | \
	$(CC) -E -x c - >/dev/null 2>&1 && echo 1)
ifeq ($(HAVE_RADOS),1)
RADOS_MODULE := $(O)/dedup-backend-rados.so
endif
all: $(RADOS_MODULE)

$(O)/dedup-backend-rados.so: server/store/backend_rados.c server/store/backend.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(DD_CFLAGS) -fPIC -shared -Iserver/store -o $@ $< -lrados $(LDFLAGS)

$(O)/tests/test_backend: tests/unit/test_backend.c tests/unit/unit.h $(BACKEND_OBJ) $(LIBDEDUP) $(RADOS_MODULE)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(DD_CFLAGS) -Itests/unit -Iserver/store -o $@ $< $(BACKEND_OBJ) $(LIBDEDUP) $(LIBS_SERVER) $(LDFLAGS)

# Packs through the backend (server/store/packio.c) on the directory backend.
$(O)/tests/test_packio: tests/unit/test_packio.c tests/unit/unit.h $(BACKEND_OBJ) $(O)/server/store/packio.o $(LIBDEDUP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(DD_CFLAGS) -Itests/unit -Iserver/store -o $@ $< $(BACKEND_OBJ) $(O)/server/store/packio.o $(LIBDEDUP) $(LIBS_SERVER) $(LDFLAGS)

# The backend's own throughput beside `rados bench` (tests/bench/rados-bench.sh).
$(O)/bench/backend-bench: tests/bench/backend_bench.c $(BACKEND_OBJ) $(LIBDEDUP) $(RADOS_MODULE)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(DD_CFLAGS) -Iserver/store -o $@ $< $(BACKEND_OBJ) $(LIBDEDUP) $(LIBS_SERVER) $(LDFLAGS)

# A unit test of an agent module links that module.
# The backup's in-order ring of reading threads (agent/reorder.c).
$(O)/tests/test_reorder: tests/unit/test_reorder.c tests/unit/unit.h $(O)/agent/reorder.o $(LIBDEDUP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(DD_CFLAGS) -Itests/unit -Iagent -o $@ $< $(O)/agent/reorder.o $(LIBDEDUP) $(LIBS_COMMON) $(LDFLAGS)

$(O)/tests/test_holes: tests/unit/test_holes.c tests/unit/unit.h $(O)/agent/holes.o $(LIBDEDUP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(DD_CFLAGS) -Itests/unit -Iagent -o $@ $< $(O)/agent/holes.o $(LIBDEDUP) $(LDFLAGS)

# The server's load generator and the synthetic index writer
# (tests/bench/server-bench.sh); built with the tests so that the smoke
# run of `make test` (t0910) keeps them working.
BENCH_TOOLS := $(O)/bench/server-bench $(O)/bench/synth-index
$(O)/bench/server-bench: tests/bench/server_bench.c tests/bench/synth_ids.h $(LIBDEDUP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(DD_CFLAGS) -o $@ $< $(LIBDEDUP) $(LIBS_AGENT) $(LDFLAGS)

$(O)/bench/synth-index: tests/bench/synth_index.c tests/bench/synth_ids.h $(LIBDEDUP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(DD_CFLAGS) -o $@ $< $(LIBDEDUP) $(LIBS_SERVER) $(LDFLAGS)

tests: $(UNIT_BIN) $(BENCH_TOOLS)

test: all tests
	$(Q)O=$(O) bash tests/run.sh

ASAN_VARS = O=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
asan:
	$(MAKE) $(ASAN_VARS) test

# only the sanitizer build (CI builds it with -j2, then runs `make asan`
# without -j, so the tests see the same make environment as `make test`)
asan-build:
	$(MAKE) $(ASAN_VARS) all tests

bench: all
	O=$(O) bash tests/bench/bench.sh

# rados bench write/seq beside the RADOS backend's own append/read, on a
# throw-away single-node Ceph (docs/STORAGE.md)
bench-rados: all
	O=$(O) bash tests/bench/rados-bench.sh

# 1, 2 and 3 front-ends on one pool: aggregate ingest, CPU per GB per
# front-end, backend operations per GB (docs/STORAGE.md)
bench-multife: all
	O=$(O) bash tests/bench/multife-bench.sh

# The server alone: N = 1, 4, 16, 64 clients sending pre-built bundles,
# and the missing-query, RSS and GC on a synthetic index of
# DD_BENCH_CHUNKS chunks (default 50 million; docs/BENCHMARKS.md).
bench-server: all $(BENCH_TOOLS)
	O=$(O) bash tests/bench/server-bench.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(DATADIR)/web
	install -m 0755 $(O)/dedup-agent $(DESTDIR)$(BINDIR)/dedup-agent
	install -m 0755 $(O)/dedup-server $(DESTDIR)$(SBINDIR)/dedup-server
	install -m 0644 $(WEB_FILES) $(DESTDIR)$(DATADIR)/web/
	install -d $(DESTDIR)$(SYSCONFDIR)/dedup
	install -m 0644 conf/server.conf.example $(DESTDIR)$(DATADIR)/server.conf.example
	install -m 0644 conf/agent.conf.example $(DESTDIR)$(DATADIR)/agent.conf.example
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8
	install -m 0644 docs/man/dedup-agent.1 $(DESTDIR)$(MANDIR)/man1/dedup-agent.1
	install -m 0644 docs/man/dedup-server.8 $(DESTDIR)$(MANDIR)/man8/dedup-server.8
	$(if $(RADOS_MODULE),install -d $(DESTDIR)$(MODULEDIR))
	$(if $(RADOS_MODULE),install -m 0644 $(RADOS_MODULE) $(DESTDIR)$(MODULEDIR)/)

# ---- packages (packaging/debian, packaging/dedup.spec) ----
# Both build from a copy of these sources, so a package never contains
# anything that is not in them, whatever lies around in the checkout.
PKG_SRC := Makefile README.md agent shared server web conf docs packaging \
           tests/embed.sh
VERSION := $(shell sed -n 's/^\#define DD_VERSION "\(.*\)"/\1/p' shared/proto.h)
# The packaging runs make again; it must not inherit this make's O= or -j.
PKG_ENV := env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES -u O -u WERROR \
           -u V -u OPT -u SAN -u DESTDIR -u PREFIX -u BINDIR -u SBINDIR -u DATADIR \
           -u MANDIR -u SYSCONFDIR

# dpkg-buildpackage wants debian/ at the top of the source tree: it gets a
# copy (cp -L: the unit files there are links into conf/). The .debs land
# in $(O)/deb/; lintian, when installed, fails the target on any error.
deb:
	rm -rf $(O)/deb
	mkdir -p $(O)/deb/src
	tar -cf - --exclude-vcs $(PKG_SRC) | tar -xf - -C $(O)/deb/src
	cp -rL packaging/debian $(O)/deb/src/debian
	cd $(O)/deb/src && $(PKG_ENV) dpkg-buildpackage -us -uc -b
	if command -v lintian >/dev/null; then \
		lintian --fail-on error $(O)/deb/dedup_$(VERSION)_*.changes; \
	else echo "lintian not installed: not run"; fi

# rpmbuild on Debian cannot resolve Fedora's dependency names: --nodeps
# (the spec's Requires are still recorded in the packages).
rpm:
	rm -rf $(O)/rpm
	mkdir -p $(O)/rpm/SOURCES
	tar -czf $(O)/rpm/SOURCES/dedup-$(VERSION).tar.gz --exclude-vcs \
		--transform 's,^,dedup-$(VERSION)/,' $(PKG_SRC)
	$(PKG_ENV) rpmbuild -bb --nodeps --define "_topdir $(abspath $(O)/rpm)" \
		packaging/dedup.spec
	cp $(O)/rpm/RPMS/*/dedup-*.rpm $(O)/rpm/
	for p in $(O)/rpm/dedup-*.rpm; do echo "$$p:"; rpm -qpl "$$p"; done

# ---- fuzzing (tests/fuzz, docs/FUZZING.md) ----
# libFuzzer harnesses built with clang (ASan + UBSan) into $(O)/fuzz/, each
# run for FUZZ_SECONDS from the seeds in tests/fuzz/corpus/; FUZZ_SECONDS=0
# only builds them.
FUZZ_SECONDS ?= 20
fuzz: $(O)/web_assets.c
	O=$(O) FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh

clean:
	rm -rf $(O) build-asan

.PHONY: FORCE all tests test asan asan-build bench bench-rados bench-multife bench-server install clean deb rpm fuzz

-include $(LIB_OBJ:.o=.d) $(SERVER_OBJ:.o=.d) $(AGENT_OBJ:.o=.d) $(UNIT_BIN:=.d) $(RADOS_MODULE:.so=.d)

FORCE:
