# babl - a Unix-pipe microservice mesh.  See README.md.
#
#   make            build babl, meshd and meshd-sandbox into build/
#   make check      unit + integration tests, then the same under ASan+UBSan
#   make demo       start a local meshd with example services, run a pipeline
#   make stop       stop the demo node
#   make asan       sanitizer build into build-asan/
#   make fuzz       build and briefly run the libFuzzer harnesses (clang)
#   make bench      scripts/bench
#   make install PREFIX=/usr/local DESTDIR=

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CPPFLAGS += -D_GNU_SOURCE -Ibabl -Imeshd
B       ?= build
PREFIX  ?= /usr/local
BINDIR   = $(PREFIX)/bin
SBINDIR  = $(PREFIX)/sbin
LIBEXECDIR = $(PREFIX)/libexec/babl
MANDIR   = $(PREFIX)/share/man

NNG_LIBS := $(shell pkg-config --libs nng 2>/dev/null || echo -lnng)
DEP_CFLAGS := $(shell pkg-config --cflags libsodium lmdb libseccomp lua5.4 libcrypto 2>/dev/null)
DEP_LIBS := $(NNG_LIBS) $(shell pkg-config --libs libsodium 2>/dev/null || echo -lsodium) -lpthread
MESHD_LIBS := $(shell pkg-config --libs lmdb libseccomp lua5.4 libcrypto 2>/dev/null || echo -llmdb -lseccomp -llua5.4 -lcrypto) $(DEP_LIBS)

ALL_CFLAGS = $(CPPFLAGS) $(DEP_CFLAGS) $(WARN) $(CFLAGS) -MMD -MP \
	-DBABL_LIBEXECDIR='"$(LIBEXECDIR)"'

LIB_SRC   := $(filter-out babl/babl.c,$(wildcard babl/*.c))
MESHD_SRC := $(filter-out meshd/main.c meshd/sandbox-exec.c meshd/lua-worker.c,$(wildcard meshd/*.c))
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
HELPER_SRC := $(wildcard tests/helpers/*.c)

LIB_OBJ   := $(LIB_SRC:%.c=$(B)/obj/%.o)
MESHD_OBJ := $(MESHD_SRC:%.c=$(B)/obj/%.o)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
HELPER_BIN := $(HELPER_SRC:tests/helpers/%.c=$(B)/tests/%)

PROGS = $(B)/babl $(B)/meshd $(B)/meshd-sandbox
ifneq ($(wildcard meshd/lsb.c),)
PROGS += $(B)/meshd-lua
endif

all: $(PROGS) $(UNIT_BIN) $(HELPER_BIN)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/libbabl.a: $(LIB_OBJ)
	rm -f $@; ar rcs $@ $^

$(B)/libmeshd.a: $(MESHD_OBJ)
	rm -f $@; ar rcs $@ $^

$(B)/babl: $(B)/obj/babl/babl.o $(B)/libbabl.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

$(B)/meshd: $(B)/obj/meshd/main.o $(B)/libmeshd.a $(B)/libbabl.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(MESHD_LIBS)

# The Lua worker: one per running Lua service, started through the launcher.
$(B)/meshd-lua: $(B)/obj/meshd/lua-worker.o $(B)/libmeshd.a $(B)/libbabl.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(MESHD_LIBS)

# The launcher stays small: libc only, no nng, no threads.  It runs once
# per call, so its start-up counts: it is linked statically where it can be
# (no dynamic loading), and against musl where musl-gcc is installed
# (package musl-tools), because a static glibc program spends a few hundred
# microseconds at start probing CPU caches with cpuid, which traps in a VM.
# Sanitizer builds link it dynamically against glibc.  MUSL_CC= turns musl
# off.  musl-gcc sees no kernel headers of its own: it gets links to the
# system's linux/ and asm/ directories.
SANITIZED := $(findstring sanitize,$(CFLAGS))
STATIC_LAUNCHER ?= $(if $(SANITIZED),,$(if $(wildcard /usr/lib/x86_64-linux-gnu/libc.a /usr/lib/libc.a),-static))
MUSL_CC ?= $(if $(SANITIZED),,$(shell command -v musl-gcc 2>/dev/null))
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
KERNEL_HDRS := $(and $(wildcard /usr/include/linux/mount.h),$(wildcard /usr/include/$(MULTIARCH)/asm/unistd.h))
ifneq ($(and $(MUSL_CC),$(KERNEL_HDRS)),)
$(B)/meshd-sandbox: meshd/sandbox-exec.c meshd/sbx.h
	@mkdir -p $(B)/musl-inc
	ln -sfn /usr/include/linux $(B)/musl-inc/linux
	ln -sfn /usr/include/asm-generic $(B)/musl-inc/asm-generic
	ln -sfn /usr/include/$(MULTIARCH)/asm $(B)/musl-inc/asm
	$(MUSL_CC) -D_GNU_SOURCE -Imeshd -isystem $(B)/musl-inc $(WARN) $(CFLAGS) $(LDFLAGS) \
		-static -o $@ meshd/sandbox-exec.c
else
$(B)/meshd-sandbox: $(B)/obj/meshd/sandbox-exec.o
	$(CC) $(CFLAGS) $(LDFLAGS) $(STATIC_LAUNCHER) -o $@ $^
endif

$(B)/tests/%: $(B)/obj/tests/unit/%.o $(B)/libmeshd.a $(B)/libbabl.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(MESHD_LIBS)

$(B)/tests/%: $(B)/obj/tests/helpers/%.o $(B)/libbabl.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

# (edits log entries: meshd's codecs)
$(B)/tests/logedit: $(B)/obj/tests/helpers/logedit.o $(B)/libmeshd.a $(B)/libbabl.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(MESHD_LIBS)

deps:
	@scripts/install-deps --check >/dev/null 2>&1 || scripts/install-deps

check: deps
	$(MAKE) all
	tests/run $(B)
	$(MAKE) asan
	BABL_ASAN=1 tests/run build-asan

ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
asan:
	$(MAKE) B=build-asan CFLAGS="$(ASAN_FLAGS)" all

fuzz: deps
	tests/fuzz/run

demo: deps all
	scripts/demo

stop:
	scripts/demo stop

bench: deps all
	scripts/bench

install: $(PROGS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBEXECDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(B)/babl $(DESTDIR)$(BINDIR)/babl
	install -m 755 $(B)/meshd $(DESTDIR)$(SBINDIR)/meshd
	install -m 755 $(B)/meshd-sandbox $(DESTDIR)$(LIBEXECDIR)/meshd-sandbox
	install -m 755 $(B)/meshd-lua $(DESTDIR)$(LIBEXECDIR)/meshd-lua
	install -m 644 contrib/man/babl.1 $(DESTDIR)$(MANDIR)/man1/babl.1
	install -m 644 contrib/man/meshd.8 $(DESTDIR)$(MANDIR)/man8/meshd.8

clean:
	rm -rf build build-asan build-fuzz

.PHONY: all deps check asan fuzz demo stop bench install clean
.SECONDARY:

-include $(shell find $(B) -name '*.d' 2>/dev/null)

# The deterministic Raft simulation: make sim SEEDS=N [FROM=S] [STEPS=K]
SEEDS ?= 1000
FROM  ?= 1
STEPS ?= 1000
$(B)/sim: $(B)/obj/tests/sim/sim.o $(B)/obj/tests/sim/simcore.o $(B)/libmeshd.a $(B)/libbabl.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(MESHD_LIBS)

sim: $(B)/sim
	$(B)/sim --seeds $(SEEDS) --from $(FROM) --steps $(STEPS)

.PHONY: sim
