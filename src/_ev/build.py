# cffi builder for lichen._ev, lichen's binding of the system libev.
#
# Strategy: API mode against libev-dev. Structs are declared partially so the
# compiler takes their layout from the real ev.h, and libev's function-like
# macros (ev_io_init, ev_is_active, ...) are declared as functions: cffi emits
# a wrapper that expands them. No EV_* configuration macro is defined here:
# that would change struct layouts away from the installed library. The shim
# in shim.h keeps libev callbacks in C (see there).
import os
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

INSTALL_HINT = (
    "lichen needs the libev headers (ev.h) to build its event loop binding.\n"
    "Install them with one of:\n"
    "    Debian/Ubuntu:  apt-get install libev-dev\n"
    "    Fedora/RHEL:    dnf install libev-devel\n"
    "    macOS:          brew install libev\n"
    "or point CFLAGS/LDFLAGS at an existing libev installation."
)

CDEF = """
#define EV_READ ...
#define EV_WRITE ...
#define EV_ERROR ...
#define EV_TIMER ...
#define EVRUN_NOWAIT ...
#define EVRUN_ONCE ...
#define EVBREAK_ONE ...
#define EVBREAK_ALL ...
#define EVFLAG_AUTO ...
#define EVFLAG_NOENV ...
#define EVBACKEND_SELECT ...
#define EVBACKEND_POLL ...
#define EVBACKEND_EPOLL ...
#define EVBACKEND_KQUEUE ...
#define EVBACKEND_DEVPOLL ...
#define EVBACKEND_PORT ...
#define EVBACKEND_LINUXAIO ...
#define EVBACKEND_IOURING ...
#define EVP_READ ...
#define EVP_WRITE ...
#define EVP_ERROR ...

struct ev_loop;
typedef double ev_tstamp;

typedef struct ev_io { int active; int pending; void *data; int fd; int events; ...; } ev_io;
typedef struct ev_timer { int active; int pending; void *data; ev_tstamp at; ev_tstamp repeat; ...; } ev_timer;
typedef struct ev_async { int active; int pending; void *data; ...; } ev_async;
typedef struct ev_prepare { int active; int pending; void *data; ...; } ev_prepare;
typedef struct ev_check { int active; int pending; void *data; ...; } ev_check;
typedef struct ev_idle { int active; int pending; void *data; ...; } ev_idle;

typedef struct { intptr_t *buf; int cap; int n; int overflow; } evp_ready;

int ev_version_major(void);
int ev_version_minor(void);
unsigned int ev_supported_backends(void);
unsigned int ev_recommended_backends(void);
unsigned int ev_embeddable_backends(void);

void ev_loop_destroy(struct ev_loop *);
int ev_run(struct ev_loop *, int);
void ev_break(struct ev_loop *, int);
ev_tstamp ev_now(struct ev_loop *);
void ev_now_update(struct ev_loop *);
void ev_loop_fork(struct ev_loop *);
unsigned int ev_backend(struct ev_loop *);
void ev_ref(struct ev_loop *);
void ev_unref(struct ev_loop *);
unsigned int ev_iteration(struct ev_loop *);
unsigned int ev_pending_count(struct ev_loop *);

int ev_is_active(void *);
int ev_is_pending(void *);

void ev_io_start(struct ev_loop *, ev_io *);
void ev_io_stop(struct ev_loop *, ev_io *);
void ev_timer_start(struct ev_loop *, ev_timer *);
void ev_timer_stop(struct ev_loop *, ev_timer *);
void ev_timer_again(struct ev_loop *, ev_timer *);
ev_tstamp ev_timer_remaining(struct ev_loop *, ev_timer *);
void ev_async_start(struct ev_loop *, ev_async *);
void ev_async_stop(struct ev_loop *, ev_async *);
void ev_async_send(struct ev_loop *, ev_async *);
void ev_prepare_start(struct ev_loop *, ev_prepare *);
void ev_prepare_stop(struct ev_loop *, ev_prepare *);
void ev_check_start(struct ev_loop *, ev_check *);
void ev_check_stop(struct ev_loop *, ev_check *);
void ev_idle_start(struct ev_loop *, ev_idle *);
void ev_idle_stop(struct ev_loop *, ev_idle *);

struct ev_loop *evp_loop_new(unsigned int);
void evp_loop_destroy(struct ev_loop *);
evp_ready *evp_ready_of(struct ev_loop *);
int evp_run(struct ev_loop *, int);
void evp_io_init(ev_io *, intptr_t);
void evp_io_arm(struct ev_loop *, ev_io *, int, int);
void evp_io_rebind(struct ev_loop *, ev_io *, intptr_t, int, int);
void evp_timer_init(ev_timer *, intptr_t);
void evp_timer_arm(struct ev_loop *, ev_timer *, double, double);
void evp_timer_again(struct ev_loop *, ev_timer *, double);
void evp_async_init(ev_async *, intptr_t);
void evp_prepare_init(ev_prepare *, intptr_t);
void evp_check_init(ev_check *, intptr_t);
void evp_idle_init(ev_idle *, intptr_t);
"""


def _find_ev_h() -> bool:
    dirs = ["/usr/include", "/usr/local/include", "/opt/homebrew/include", "/opt/local/include"]
    for flag in os.environ.get("CFLAGS", "").split() + os.environ.get("CPPFLAGS", "").split():
        if flag.startswith("-I"):
            dirs.insert(0, flag[2:])
    return any(os.path.exists(os.path.join(d, "ev.h")) for d in dirs)


def _extra_dirs() -> tuple[list[str], list[str]]:
    # Homebrew and MacPorts keep headers outside the compiler's default path.
    inc, lib = [], []
    for prefix in ("/opt/homebrew", "/opt/local", "/usr/local"):
        if os.path.exists(os.path.join(prefix, "include", "ev.h")):
            inc.append(os.path.join(prefix, "include"))
            lib.append(os.path.join(prefix, "lib"))
    return inc, lib


if not _find_ev_h():
    sys.stderr.write("\n" + "=" * 72 + "\n" + INSTALL_HINT + "\n" + "=" * 72 + "\n\n")
    raise SystemExit("error: libev headers (ev.h) not found; install libev-dev (see above)")

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
_inc, _lib = _extra_dirs()
with open(os.path.join(HERE, "shim.h")) as f:
    ffibuilder.set_source(
        "lichen._ev",
        f.read(),
        libraries=["ev"],
        include_dirs=_inc,
        library_dirs=_lib,
        extra_compile_args=["-O2", "-Wno-unused-parameter", "-Wno-unused-function"],
    )

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
