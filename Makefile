# Boxer build.  `make` builds ./boxer; `make check` runs every test; see README.
CC ?= cc
CLANG ?= clang
PY ?= /usr/bin/python3
VERSION := 0.1.0

WARN := -Wall -Wextra -Werror -Wshadow -Wconversion -Wno-sign-conversion \
        -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -Wvla \
        -Werror=implicit-function-declaration -Wnull-dereference
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE= -DBOXER_VERSION=\"$(VERSION)\" $(WARN) $(CFLAGS) \
              -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE -I.
LDFLAGS ?=
ALL_LDFLAGS := -pie -Wl,-z,relro,-z,now $(LDFLAGS)

# Every module but main; tests and fuzzers link the modules they need.
LIB_SRCS := $(filter-out boxer.c,$(wildcard *.c))
B := build

.PHONY: all static check unit integration typecheck asan valgrind fuzz fuzz-run fuzz-long fuzz-seeds fuzz-limits \
        clean run deps format bench install manlint
BIN ?= boxer
all: $(BIN)

$(B)/%.o: %.c $(wildcard *.h) | $(B)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B):
	mkdir -p $(B)

$(BIN): $(B)/boxer.o $(LIB_SRCS:%.c=$(B)/%.o) $(B)/box_init_blob.o $(B)/ui_blob.o
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^

# The in-box PID 1 (boxinit/, outside LIB_SRCS): a static musl program,
# embedded into boxer as a C array (box_bundle.c declares it weak, so tests and
# fuzzers link without it).  od+awk, not xxd: xxd is not always installed.
MUSL_CC ?= musl-gcc
$(B)/box_init: boxinit/box_init.c | $(B)
	$(MUSL_CC) -static -Os -s -Wall -Wextra -Werror -o $@ $<
$(B)/box_init_blob.c: $(B)/box_init
	{ echo '/* generated from boxinit/box_init.c */'; \
	  echo 'const unsigned char box_init_bin[] = {'; \
	  od -An -v -tu1 $< | awk '{for (i = 1; i <= NF; i++) printf "%s,", $$i; print ""}'; \
	  echo '};'; \
	  echo "const unsigned long box_init_bin_len = $$(wc -c < $<);"; } > $@.tmp && mv $@.tmp $@
$(B)/box_init_blob.o: $(B)/box_init_blob.c
	$(CC) -fPIE -c -o $@ $<

# The web console (ui/, issue 18), embedded the same way: one array per file
# and the table ui.c serves from (ui.c declares it weak, as above).
UI_FILES := $(sort $(wildcard ui/*.html ui/*.css ui/*.js ui/vendor/*))
$(B)/ui_blob.c: $(UI_FILES) Makefile | $(B)
	{ echo '/* generated from ui/ */'; echo '#include "ui.h"'; \
	  i=0; for f in $(UI_FILES); do \
	    echo "static const unsigned char f$$i[] = {"; \
	    od -An -v -tu1 $$f | awk '{for (i = 1; i <= NF; i++) printf "%s,", $$i; print ""}'; \
	    echo '0};'; i=$$((i + 1)); done; \
	  echo 'const struct ui_file ui_files[] = {'; \
	  i=0; for f in $(UI_FILES); do \
	    echo "{\"$${f#ui/}\", f$$i, $$(wc -c < $$f)},"; i=$$((i + 1)); done; \
	  echo '};'; \
	  echo "const unsigned long ui_files_n = $(words $(UI_FILES));"; } > $@.tmp && mv $@.tmp $@
$(B)/ui_blob.o: $(B)/ui_blob.c ui.h
	$(CC) -fPIE -I. -c -o $@ $<

# Static single binary: glibc static works for everything Boxer calls (no NSS:
# Boxer never resolves user or host names).
static: boxer-static
boxer-static: $(addprefix $(B)/static-,$(addsuffix .o,$(basename boxer.c $(LIB_SRCS)))) $(B)/box_init_blob.o $(B)/ui_blob.o
	$(CC) -static -o $@ $^
$(B)/static-%.o: %.c $(wildcard *.h) | $(B)
	$(CC) $(filter-out -fPIE,$(ALL_CFLAGS)) -c -o $@ $<

# ---- unit tests (Check) ----
# The modules each unit test links (kept explicit so a module under
# construction never breaks another module's tests).
DEPS_test_json := json json_write util err
DEPS_test_util := util err
DEPS_test_log := log util err
DEPS_test_multipart := multipart util err
DEPS_test_httpparse := httpparse util err
DEPS_test_store := store store_upload store_capture util err
DEPS_test_cgroup := cgroup cgroup_setup util err
DEPS_test_imgref := imgref util err
DEPS_test_config := config json json_write util imgref err
DEPS_test_loop := loop util err
DEPS_test_oci := oci json json_write util imgref store store_upload store_capture log err
DEPS_test_proc := proc loop util err
DEPS_test_image := image image_pull image_disk sha256 imgref json json_write proc loop util cgroup cgroup_setup store store_upload store_capture log err
DEPS_test_net := net netlink net_text proc loop util log err
DEPS_test_route := route
DEPS_test_err := err
DEPS_test_api_v1run := api_run run run_teardown pool run_outputs stream_events infeed b64dec run_discard run_recover runsc_ns net netlink net_text oci image image_pull image_disk sha256 imgref json json_write proc loop util cgroup cgroup_setup store store_upload store_capture config log err
DEPS_test_run_multipart := run_multipart multipart api_run run run_teardown pool run_outputs stream_events infeed b64dec run_discard run_recover runsc_ns net netlink net_text oci image image_pull image_disk sha256 imgref json json_write proc loop util cgroup cgroup_setup store store_upload store_capture config log err
DEPS_test_exec_log := exec_log stream_events json json_write util err
DEPS_test_b64dec := b64dec
DEPS_test_infeed := infeed loop util err
DEPS_test_cli_http := cli_http cli_hosts util err
DEPS_test_cli_hosts := cli_hosts cli_http util err
DEPS_test_ws := ws sha1 httpparse util err
DEPS_test_wsauth := wsauth
DEPS_test_attach_req := attach_req httpparse util err

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/%)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt -lpthread)

.SECONDEXPANSION:
$(B)/test_%: tests/unit/test_%.c tests/unit/guard.h tests/unit/check_main.h $$(addprefix $(B)/,$$(addsuffix .o,$$(DEPS_test_$$*))) | $(B)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -o $@ $< $(filter %.o,$^) $(CHECK_LIBS)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; CK_FORK=yes ./$$t; done

# ---- integration tests (real binary, real runsc, real registry) ----
integration: $(BIN)
	BOXER_BIN=$(CURDIR)/$(BIN) $(PY) -m pytest -q $(PYTEST_ARGS)

# The Python SDK is typed: mypy --strict on the package (Debian's mypy).
typecheck:
	cd sdk/python && mypy --strict src/boxer

check: unit typecheck manlint integration

# The manual (mdoc) must be clean for mandoc's linter, style messages included.
manlint:
	mandoc -T lint -W style boxer.1

# `make install PREFIX=/usr/local DESTDIR=...`: the binary (server and
# client), its manual page, the systemd unit (its ExecStart and
# ExecStartPre naming the installed binary) and a loopback-only
# /etc/boxer/config.json, never over an existing one.  The unit and the
# configuration are outside PREFIX: systemd and the unit look there.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
SYSTEMDUNITDIR ?= /lib/systemd/system
install: $(BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/boxer
	install -m 0644 boxer.1 $(DESTDIR)$(MANDIR)/man1/boxer.1
	sed -e 's|/usr/local/bin/boxer|$(BINDIR)/boxer|g' \
	    -e 's|/etc/boxer/config.json|$(SYSCONFDIR)/boxer/config.json|g' \
	    deploy/systemd/boxer.service > $(DESTDIR)$(SYSTEMDUNITDIR)/boxer.service.tmp
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/boxer.service.tmp
	mv $(DESTDIR)$(SYSTEMDUNITDIR)/boxer.service.tmp $(DESTDIR)$(SYSTEMDUNITDIR)/boxer.service
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/boxer
	test -e $(DESTDIR)$(SYSCONFDIR)/boxer/config.json || \
	    install -m 0640 deploy/systemd/config.json $(DESTDIR)$(SYSCONFDIR)/boxer/config.json

# Same tests with the server and unit tests built with ASan+UBSan.
PYTEST_ARGS ?= tests/integration sdk/python/tests
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
asan:
	$(MAKE) B=build-asan BIN=boxer-asan CFLAGS="-O1 -g $(SAN)" LDFLAGS="$(SAN)" unit boxer-asan
	BOXER_BIN=$(CURDIR)/boxer-asan $(PY) -m pytest -q $(ASAN_PYTEST_ARGS)
# CI must stay under an hour, so the sanitizer passes take the suites that
# drive the most C paths rather than every suite twice.  ASan leaves out
# what adds no C path of its own: the Python SDK's suites (the same
# requests as the server suites), the browser, HAProxy, deploy-file and
# example suites, the soak and the 50-cycle box test (plain pass only).
ASAN_PYTEST_ARGS ?= tests/integration \
  --ignore tests/integration/test_ui.py --ignore tests/integration/test_haproxy.py \
  --ignore tests/integration/test_deploy.py --ignore tests/integration/test_examples.py \
  --ignore tests/integration/test_soak.py \
  --deselect tests/integration/test_boxes_life.py::test_50_cycles_leave_nothing_behind

# Integration suites with every server under valgrind memcheck: any error
# or leak makes the server's exit check fail.
valgrind: $(BIN)
	BOXER_VALGRIND=1 BOXER_BIN=$(CURDIR)/$(BIN) $(PY) -m pytest -q $(VALGRIND_PYTEST_ARGS)
# Valgrind (about 20x slower per server instruction) takes the suites of
# the HTTP layer, /run, boxes, streams, input, terminals, the Unix socket,
# scale-out and crash recovery; the rest run under ASan and plainly.
VG := tests/integration
VALGRIND_PYTEST_ARGS ?= $(VG)/test_core.py $(VG)/test_run.py $(VG)/test_hostile_clients.py \
  $(VG)/test_browser_safety.py $(VG)/test_boxes.py $(VG)/test_boxes_api.py \
  $(VG)/test_streams.py $(VG)/test_exec_input.py $(VG)/test_terminal.py \
  $(VG)/test_unix_socket.py $(VG)/test_scale.py $(VG)/test_crash.py $(VG)/test_teardown.py \
  $(VG)/test_run_multipart.py $(VG)/test_box_pool.py \
  --deselect $(VG)/test_run_multipart.py::test_big_part_rss_flat_outputs_returned \
  --deselect $(VG)/test_run_multipart.py::test_v1_run_body_follows_max_request_body_bytes

# ---- fuzzing (libFuzzer, clang) ----
# Every module is compiled once with coverage and ASan/UBSan, and each harness
# fuzz/fuzz_<name>.c is linked against all of them.  `make fuzz-run` runs
# each harness for FUZZ_SECS seconds (or FUZZ_RUNS executions) with its
# corpus in fuzz/corpus-<name>/ (not in git) plus its seeds (fuzz/seeds/ and
# the generated near-limit seeds), prints the executions count, and fails
# when any harness finds a crash, a leak, a timeout or an out-of-memory (the
# input is left as fuzz/crash-<name>-*).  `make fuzz-long` runs each harness
# until it has executed FUZZ_LONG_RUNS inputs, keeping the corpus.
FUZZ_SRCS := $(wildcard fuzz/fuzz_*.c)
FUZZ_NAMES := $(FUZZ_SRCS:fuzz/%.c=%)
FUZZ_BINS := $(FUZZ_NAMES:%=$(B)/fuzz/%)
FUZZ_OPT ?= -O2
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE= -g $(FUZZ_OPT) -I. -fno-omit-frame-pointer \
               -fsanitize=address,undefined -fno-sanitize-recover=all \
               -DBOXER_VERSION=\"$(VERSION)\"
FUZZ_OBJS := $(LIB_SRCS:%.c=$(B)/fuzz/obj/%.o)
.SECONDARY: $(FUZZ_OBJS)
$(B)/fuzz/obj/%.o: %.c $(wildcard *.h)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<
$(B)/fuzz/fuzz_%: fuzz/fuzz_%.c $(FUZZ_OBJS) $(wildcard *.h)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJS)
fuzz: $(FUZZ_BINS)

# Each harness's -max_len is above the largest size limit its code can
# reach, so the fuzzer can produce inputs on both sides of every limit:
#   b64dec     no limit of its own (the caller bounds the text)
#   cgproc     the 4096-byte output (byte 1's top bit)
#   attachreq  ATTACH_BYTES_MAX 8192, ATTACH_VALUE_MAX 4096, 256 cmd / 64 env values
#   clihosts   CLI_HOSTS_LINE_MAX 4096 (a longer line skipped); names 253 bytes
#   cliresp    CLI_HEAD_MAX 64 KiB of head; CLI_TRAILER_MAX 8192; CLI_CHUNK_LINE_MAX 1024
#   config     CONFIG_MAX_BYTES 1 MiB (413); 100000 values; 1024-entry lists
#   events     no limit of its own (one event's data; a small log of 300-555 B)
#   httpparse  DEFAULT_MAX_HEADER_BYTES 32768; request line 8192;
#              CHUNK_MAX_TRAILER 8192
#   imgref     IMGREF_MAX 255
#   json       the harness's own 64 KiB max_bytes (413); 4096 values
#   multipart  MP_MAX_PART_HEADER 8192 (2-byte split: at most 65535)
#   netlink    16-bit attribute lengths (64 KiB)
#   runmp      its own 4 KiB request part and 256-byte files (413); MP_MAX_PART_HEADER 8192
#   route      no limit of its own; the server's paths are at most 8192
#   runreq     run_max_body: RUN_MAX_BODY 4 MiB + 2 KiB (the harness's stdin_limit_bytes 1024) (413); RUN_MAX_STRING 256 KiB; counts
#   storepath  STORE_PATH_MAX 4096
#   v1run      as runreq (the /run request it maps to): RUN_MAX_BODY 4 MiB
#   ws         its own max_text 1 KiB and max_message 4 KiB (1009); control 125
# A new harness needs its line here (fuzz-run stops otherwise).
FUZZ_MAX_LEN_fuzz_attachreq := 16384
FUZZ_MAX_LEN_fuzz_b64dec := 4096
FUZZ_MAX_LEN_fuzz_cgproc := 8192
FUZZ_MAX_LEN_fuzz_clihosts := 16384
FUZZ_MAX_LEN_fuzz_cliresp := 81920
FUZZ_MAX_LEN_fuzz_config := 1049600
FUZZ_MAX_LEN_fuzz_egress := 4096
FUZZ_MAX_LEN_fuzz_events := 8192
FUZZ_MAX_LEN_fuzz_httpparse := 40960
FUZZ_MAX_LEN_fuzz_imgref := 4096
FUZZ_MAX_LEN_fuzz_json := 66560
FUZZ_MAX_LEN_fuzz_multipart := 16384
FUZZ_MAX_LEN_fuzz_netlink := 69632
FUZZ_MAX_LEN_fuzz_route := 8192
FUZZ_MAX_LEN_fuzz_runmp := 16384
FUZZ_MAX_LEN_fuzz_runreq := 4198400
FUZZ_MAX_LEN_fuzz_storepath := 8192
FUZZ_MAX_LEN_fuzz_v1run := 4195328
FUZZ_MAX_LEN_fuzz_ws := 16384
FUZZ_MAX_LEN_fuzz_wsauth := 8192
# name:max_len pairs for the shell loops (recursive: checked only when used).
FUZZ_TABLE = $(foreach n,$(FUZZ_NAMES),$(n):$(or $(FUZZ_MAX_LEN_$(n)),$(error no FUZZ_MAX_LEN_$(n) in the Makefile)))

# Seeds on both sides of each limit; megabytes, so generated, not in git.
FUZZ_LIMIT_SEEDS := $(B)/fuzz/seeds-limits
$(FUZZ_LIMIT_SEEDS)/.stamp: fuzz/gen_limit_seeds.py
	rm -rf $(FUZZ_LIMIT_SEEDS)
	$(PY) fuzz/gen_limit_seeds.py $(FUZZ_LIMIT_SEEDS)
	touch $@
fuzz-seeds: $(FUZZ_LIMIT_SEEDS)/.stamp

FUZZ_SECS ?= 60
FUZZ_RUNS ?= -1
FUZZ_ARGS ?= -rss_limit_mb=2048 -timeout=10
fuzz-run: fuzz fuzz-seeds
	@fail=0; for nl in $(FUZZ_TABLE); do n=$${nl%%:*}; ml=$${nl#*:}; \
	  mkdir -p fuzz/corpus-$$n $(FUZZ_LIMIT_SEEDS)/$$n; \
	  echo "== $$n ($(if $(filter 0,$(FUZZ_SECS)),$(FUZZ_RUNS) runs,$(FUZZ_SECS)s), max_len $$ml)"; \
	  start=$$(date +%s); \
	  if ./$(B)/fuzz/$$n -max_total_time=$(FUZZ_SECS) -runs=$(FUZZ_RUNS) -max_len=$$ml $(FUZZ_ARGS) \
	       -print_final_stats=1 -artifact_prefix=fuzz/crash-$$n- \
	       fuzz/corpus-$$n fuzz/seeds/$$n $(FUZZ_LIMIT_SEEDS)/$$n > $(B)/fuzz/$$n.log 2>&1; then \
	    grep -E 'stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' $(B)/fuzz/$$n.log; \
	    echo "last: $$(grep -E '^#[0-9]+' $(B)/fuzz/$$n.log | tail -n 1)"; \
	    echo "wall: $$(( $$(date +%s) - start ))s, corpus: $$(ls fuzz/corpus-$$n | wc -l) files"; \
	  else \
	    tail -n 60 $(B)/fuzz/$$n.log; echo "FAIL: $$n (log: $(B)/fuzz/$$n.log)"; fail=1; \
	  fi; done; exit $$fail

# The long campaign: every harness until it has run FUZZ_LONG_RUNS inputs (no
# time limit; hours on a shared machine), corpus kept in fuzz/corpus-<name>/
# so the next campaign starts where this one stopped.  The README's fuzzing
# section records the figures it prints.
FUZZ_LONG_RUNS ?= 10000000
fuzz-long:
	$(MAKE) fuzz-run FUZZ_SECS=0 FUZZ_RUNS=$(FUZZ_LONG_RUNS)

# Shows that the near-limit seeds reach every over-limit branch listed in
# fuzz/limits.txt: each harness is rebuilt with source coverage (no
# sanitizers), run once over its seeds, and each listed line must have run.
FUZZ_COV_FLAGS := -std=c11 -D_GNU_SOURCE= -g -O0 -I. -DBOXER_VERSION=\"$(VERSION)\" \
                  -fprofile-instr-generate -fcoverage-mapping
FUZZ_COV_OBJS := $(LIB_SRCS:%.c=$(B)/fuzz/cov/obj/%.o)
.SECONDARY: $(FUZZ_COV_OBJS)
$(B)/fuzz/cov/obj/%.o: %.c $(wildcard *.h)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_COV_FLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<
$(B)/fuzz/cov/fuzz_%: fuzz/fuzz_%.c $(FUZZ_COV_OBJS) $(wildcard *.h)
	$(CLANG) $(FUZZ_COV_FLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_COV_OBJS)
fuzz-limits: $(FUZZ_NAMES:%=$(B)/fuzz/cov/%) fuzz-seeds
	@B=$(B) SEEDS=$(FUZZ_LIMIT_SEEDS) TABLE="$(FUZZ_TABLE)" bash fuzz/limits.sh

# ---- convenience ----
deps:
	bash scripts/install-deps.sh

run:
	bash scripts/dev-run.sh

bench:
	@echo "see bench/README.md"

format:
	clang-format -i *.c *.h tests/unit/*.c fuzz/*.c

clean:
	rm -rf build build-asan boxer boxer-asan boxer-static
