# lichen — two commands for users: `make serve` and `make test`.
# Both do the whole set-up: system libev (via apt-get when its headers are
# missing), a .venv, and the package installed editable with its test extras.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.lichen-installed
EV_H   := $(firstword $(wildcard /usr/include/ev.h /usr/local/include/ev.h /opt/homebrew/include/ev.h))
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all setup libev testdeps serve test sanitize bench soak callgrind clean

all: test

libev:
ifeq ($(EV_H),)
	@if command -v apt-get >/dev/null 2>&1; then \
		echo "libev headers missing: installing libev-dev with apt-get"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq libev-dev; \
	else \
		echo "libev headers not found: install libev-dev (Debian/Ubuntu), libev-devel (Fedora) or 'brew install libev' (macOS)"; \
		exit 1; \
	fi
endif

$(PY):
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10) and "lichen needs Python 3.10 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml setup.py $(wildcard src/_ev/*) $(wildcard src/_http/*) | $(PY)
	$(MAKE) --no-print-directory libev
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(STAMP)

# Real peers used by the deployment tests: nginx and HAProxy in front of lichen.
TESTDEPS := nginx:nginx-light haproxy:haproxy

testdeps:
	@missing=""; for pair in $(TESTDEPS); do \
		command -v $${pair%%:*} >/dev/null 2>&1 || [ -x /usr/sbin/$${pair%%:*} ] || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		if command -v apt-get >/dev/null 2>&1; then \
			echo "installing$$missing for the deployment tests"; \
			$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $(SUDO) apt-get install -y -qq $$missing; \
		else \
			echo "the deployment tests need$$missing; install them with your package manager"; exit 1; \
		fi; \
	fi

serve: setup
	$(PY) -m lichen --bind 127.0.0.1:8000

test: setup testdeps
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory sanitize

# Sanitizer run, also the last step of `make test` (about 25 s): the C
# extensions lichen._ev, lichen._fasthead, lichen._fastenv and
# lichen._fastresponse (one per C file in src/_http/, each named in SAN_HTTP)
# rebuilt with AddressSanitizer and UBSan (every UB fatal) into $(SAN_DIR), the
# .venv build left alone; then the fast-lane, environ, response, loop and hub
# tests against them (tests/sanitize_plugin.py
# makes the imports pick them), with the ASan runtime preloaded and
# PYTHONMALLOC=malloc so that ASan also sees the buffers of Python objects.
# pytest captures only sys.stdout/err, so a report reaches the terminal; the
# first one ends the run with exit status 86. libstdc++ is preloaded as well:
# greenlet throws C++ exceptions, and ASan's __cxa_throw interceptor needs the
# real one loaded when ASan starts. Leak detection is off: CPython itself
# leaves memory behind at exit. Needs gcc's libasan and libubsan (Linux).
SAN_DIR   := build/sanitize
SAN_CC    ?= gcc
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1
SAN_HTTP  := head:_fasthead environ:_fastenv response:_fastresponse
SAN_TESTS := tests/test_http_fastpath.py tests/test_wsgi_environ_c.py tests/test_wsgi_response_c.py tests/test_loop.py \
             tests/test_hub.py
SAN_ENV    = LD_PRELOAD="$$($(SAN_CC) -print-file-name=libasan.so) $$($(SAN_CC) -print-file-name=libstdc++.so)" \
             ASAN_OPTIONS=detect_leaks=0:exitcode=86 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=86 \
             PYTHONMALLOC=malloc LICHEN_SANITIZED=$(SAN_DIR) PYTHONPATH=tests

sanitize: setup
	@[ -f "$$($(SAN_CC) -print-file-name=libasan.so)" ] || \
		{ echo "make sanitize: $(SAN_CC) has no AddressSanitizer runtime (Debian: apt-get install gcc)"; exit 1; }
	rm -rf $(SAN_DIR)
	mkdir -p $(SAN_DIR)
	$(PY) -c 'import runpy; runpy.run_path("src/_ev/build.py")["ffibuilder"].emit_c_code("$(SAN_DIR)/_ev.c")'
	inc=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["include"])') && \
	ext=$$($(PY) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))') && \
	$(SAN_CC) -shared -fPIC $(SAN_FLAGS) -I"$$inc" $(SAN_DIR)/_ev.c -lev -o $(SAN_DIR)/_ev$$ext && \
	for pair in $(SAN_HTTP); do \
		$(SAN_CC) -shared -fPIC $(SAN_FLAGS) -Wall -Wextra -I"$$inc" src/_http/$${pair%%:*}.c \
			-o $(SAN_DIR)/$${pair#*:}$$ext || exit 1; \
	done
	@status=0; $(SAN_ENV) $(PY) -m pytest -q --capture=sys -p sanitize_plugin -p no:cacheprovider $(SAN_TESTS) \
		|| status=$$?; \
	if [ $$status = 86 ]; then echo "make sanitize: FAILED, a sanitizer reported the error above"; fi; \
	exit $$status

bench: setup
	$(MAKE) --no-print-directory -C benchmarks

soak: setup
	$(MAKE) --no-print-directory -C benchmarks soak

callgrind: setup
	$(MAKE) --no-print-directory -C benchmarks callgrind

clean:
	rm -rf $(VENV) build src/*.egg-info src/lichen/_ev*.so src/lichen/_ev.c src/lichen/_ev.o src/lichen/_fastpath*.so \
		src/lichen/_fasthead*.so src/lichen/_fastenv*.so src/lichen/_fastresponse*.so
