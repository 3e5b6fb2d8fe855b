# iclock: a plain Makefile. `make` builds the library and the tool,
# `make test` runs every test, `make asan` runs them under ASan+UBSan,
# `make bench` runs the benchmarks, `make demo` is the README's main job.

CC      ?= cc
PKGS    := openblas cmocka inih libxxhash zlib libcjson libmicrohttpd lmdb
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
OPT     ?= -O2 -march=native
CFLAGS  ?= $(OPT) -g -std=c17 -Wall -Wextra -D_GNU_SOURCE $(EXTRA_CFLAGS)
CPPFLAGS += -Iinclude -Isrc $(PKG_CFLAGS)
LDLIBS  := $(PKG_LIBS) -lpthread -lm
B       ?= build

LIB_SRC   := $(sort $(wildcard src/*.c))
TOOL_SRC  := $(sort $(wildcard tools/*.c))
TEST_SRC  := $(sort $(wildcard tests/test_*.c))
BENCH_SRC := $(sort $(wildcard bench/bench_*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
TOOL_OBJ := $(TOOL_SRC:%.c=$(B)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(B)/tests/%)
BENCHES  := $(BENCH_SRC:bench/%.c=$(B)/bench/%)
TEST_HELPERS := $(filter-out tests/test_%.c,$(wildcard tests/*.c))
TEST_HELPER_OBJ := $(TEST_HELPERS:%.c=$(B)/%.o)

.PHONY: all deps test asan bench demo clean fixtures bench-serve bench-all pictures
all: $(B)/iclock

deps:
	bash scripts/deps.sh

$(B)/%.o: %.c include/iclock.h $(wildcard src/*.h) $(wildcard tests/*.h) $(wildcard bench/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(B)/libiclock.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	ar rcs $@ $^

$(B)/iclock: $(TOOL_OBJ) $(B)/libiclock.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(B)/tests/%: $(B)/tests/%.o $(TEST_HELPER_OBJ) $(B)/libiclock.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(B)/bench/%: $(B)/bench/%.o $(B)/libiclock.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# Every test binary runs from the project root (fixtures under tests/data);
# the tool is built first because some tests drive it as a user would.
test: $(B)/iclock $(TESTS)
	@fail=0; for t in $(TESTS); do \
	  echo "== $$t"; \
	  ICLOCK_BIN=$(B)/iclock $$t || { echo "FAILED: $$t"; fail=1; }; \
	done; \
	if [ $$fail -ne 0 ]; then echo "make test: some tests FAILED"; exit 1; fi; \
	echo "make test: all test programs passed"

asan:
	$(MAKE) test B=build-asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"

bench: $(B)/iclock $(BENCHES)
	@for b in $(BENCHES); do ICLOCK_BIN=$(B)/iclock $$b || exit 1; done

# The server under load: rank requests with 100 candidates while ~1,000
# events/s stream in (wrk; docs/PERFORMANCE.md, "Serving").
bench-serve: $(B)/iclock
	bash bench/bench_serve.sh $(B)/iclock

# Everything of docs/PERFORMANCE.md side by side, the Python comparisons
# (PyTorch, pandas) included; one JSON object per line. ARGS is passed on,
# e.g. make bench-all ARGS="--memory" or ARGS="--coretype SKYLAKEX".
bench-all: $(B)/iclock $(BENCHES)
	bash scripts/bench_all.sh --build $(B) $(ARGS)

# Regenerates the reference fixtures the tests compare against (PyTorch and
# sklearn, from Debian's packages: scripts/deps.sh --with-python).
fixtures:
	/usr/bin/python3 tools/reference/dcnv2_reference.py tests/data/model_fixture.txt
	/usr/bin/python3 tools/reference/metrics_reference.py

# Every SVG under docs/img/, drawn by iclock itself from the real check-in
# logs in ../shared/data (imported into $(B)/real; docs/EXPERIMENTS.md).
pictures: $(B)/iclock
	bash scripts/real_experiments.sh --iclock $(B)/iclock --out $(B)/real --img docs/img --only pictures

demo: deps $(B)/iclock
	$(B)/iclock demo

clean:
	rm -rf build build-asan
