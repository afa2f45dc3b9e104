# lichen — two commands for users: `make serve` and `make test`.
# Both do the whole set-up: system libev (via apt-get when its headers are
# missing), a .venv, and the package installed editable with its test extras.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.lichen-installed
EV_H   := $(firstword $(wildcard /usr/include/ev.h /usr/local/include/ev.h /opt/homebrew/include/ev.h))
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all setup libev testdeps serve test bench soak callgrind clean

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

# Real peers used by the deployment tests (nginx in front of lichen).
testdeps:
	@if ! command -v nginx >/dev/null 2>&1 && ! [ -x /usr/sbin/nginx ]; then \
		if command -v apt-get >/dev/null 2>&1; then \
			echo "installing nginx-light for the deployment tests"; \
			$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nginx-light; \
		else \
			echo "the deployment tests need nginx; install it with your package manager"; exit 1; \
		fi; \
	fi

serve: setup
	$(PY) -m lichen --bind 127.0.0.1:8000

test: setup testdeps
	$(PY) -m pytest -q

bench: setup
	$(MAKE) --no-print-directory -C benchmarks

soak: setup
	$(MAKE) --no-print-directory -C benchmarks soak

callgrind: setup
	$(MAKE) --no-print-directory -C benchmarks callgrind

clean:
	rm -rf $(VENV) build src/*.egg-info src/lichen/_ev*.so src/lichen/_ev.c src/lichen/_ev.o src/lichen/_fastpath*.so
