/* lichen's C shim over libev.
 *
 * Strategy: libev callbacks never enter Python. Each watcher's `data` holds an
 * integer token; the callbacks below append `token << 3 | flags` to a ready
 * array hung on ev_userdata(loop), and the hub drains that array after ev_run
 * returns. io watchers are one-shot (stopped before they are queued) because a
 * greenlet waits for one readiness at a time. The array grows with realloc so
 * an event is never dropped, whatever the number of active watchers.
 */
#include <ev.h>
#include <stdint.h>
#include <stdlib.h>

#define EVP_READ  1
#define EVP_WRITE 2
#define EVP_ERROR 4

typedef struct {
    intptr_t *buf;
    int cap;
    int n;
    int overflow;   /* set if realloc ever failed; the hub reports it */
} evp_ready;

static void evp_push(struct ev_loop *l, void *data, int revents) {
    evp_ready *r = (evp_ready *)ev_userdata(l);
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 256;
        intptr_t *nb = (intptr_t *)realloc(r->buf, sizeof(intptr_t) * cap);
        if (!nb) { r->overflow = 1; return; }
        r->buf = nb; r->cap = cap;
    }
    int flags = (revents & (EV_READ | EV_WRITE)) | ((revents & EV_ERROR) ? EVP_ERROR : 0);
    r->buf[r->n++] = ((intptr_t)data << 3) | flags;
}

static void evp_io_cb(struct ev_loop *l, ev_io *w, int revents) {
    ev_io_stop(l, w);
    evp_push(l, w->data, revents);
}
static void evp_timer_cb(struct ev_loop *l, ev_timer *w, int revents) { evp_push(l, w->data, revents); }
static void evp_async_cb(struct ev_loop *l, ev_async *w, int revents) { evp_push(l, w->data, revents); }
static void evp_prepare_cb(struct ev_loop *l, ev_prepare *w, int revents) { evp_push(l, w->data, revents); }
static void evp_check_cb(struct ev_loop *l, ev_check *w, int revents) { evp_push(l, w->data, revents); }
static void evp_idle_cb(struct ev_loop *l, ev_idle *w, int revents) { evp_push(l, w->data, revents); }

static struct ev_loop *evp_loop_new(unsigned int flags) {
    evp_ready *r = (evp_ready *)calloc(1, sizeof(evp_ready));
    if (!r) return NULL;
    struct ev_loop *l = ev_loop_new(flags);
    if (!l) { free(r); return NULL; }
    ev_set_userdata(l, r);
    return l;
}

static void evp_loop_destroy(struct ev_loop *l) {
    evp_ready *r = (evp_ready *)ev_userdata(l);
    ev_loop_destroy(l);
    if (r) { free(r->buf); free(r); }
}

static evp_ready *evp_ready_of(struct ev_loop *l) { return (evp_ready *)ev_userdata(l); }

/* Runs one loop iteration. Returns the number of ready items, or -n-1 when
 * the loop has no active (referenced) watchers left. */
static int evp_run(struct ev_loop *l, int flags) {
    evp_ready *r = (evp_ready *)ev_userdata(l);
    r->n = 0;
    int alive = ev_run(l, flags);
    return alive ? r->n : -r->n - 1;
}

static void evp_io_init(ev_io *w, intptr_t token) {
    ev_io_init(w, evp_io_cb, -1, 0);
    w->data = (void *)token;
}

/* One FFI call per wait: ev_io_set only when fd or events changed, because
 * ev_io_set forces an epoll_ctl on the next iteration. */
static void evp_io_arm(struct ev_loop *l, ev_io *w, int fd, int events) {
    if (w->fd != fd || (w->events & (EV_READ | EV_WRITE)) != events) {
        if (ev_is_active(w)) ev_io_stop(l, w);
        ev_io_set(w, fd, events);
    }
    if (!ev_is_active(w)) ev_io_start(l, w);
}

/* Reuse a stopped watcher for a wait on any fd: a new token, and always
 * ev_io_set, since the fd may be a new file under a reused number. The stop
 * is a guard that costs one test: ev_io_set on a watcher libev still holds
 * would corrupt libev's per-fd lists. */
static void evp_io_rebind(struct ev_loop *l, ev_io *w, intptr_t token, int fd, int events) {
    if (ev_is_active(w)) ev_io_stop(l, w);
    w->data = (void *)token;
    ev_io_set(w, fd, events);
    ev_io_start(l, w);
}

static void evp_timer_init(ev_timer *w, intptr_t token) {
    ev_timer_init(w, evp_timer_cb, 0., 0.);
    w->data = (void *)token;
}

/* Refreshes the cached loop time first: a timer armed after blocking work
 * would otherwise fire early. */
static void evp_timer_arm(struct ev_loop *l, ev_timer *w, double after, double repeat) {
    if (ev_is_active(w)) ev_timer_stop(l, w);
    ev_now_update(l);
    ev_timer_set(w, after, repeat);
    ev_timer_start(l, w);
}

static void evp_timer_again(struct ev_loop *l, ev_timer *w, double repeat) {
    ev_now_update(l);
    w->repeat = repeat;
    ev_timer_again(l, w);
}

static void evp_async_init(ev_async *w, intptr_t token) { ev_async_init(w, evp_async_cb); w->data = (void *)token; }
static void evp_prepare_init(ev_prepare *w, intptr_t token) { ev_prepare_init(w, evp_prepare_cb); w->data = (void *)token; }
static void evp_check_init(ev_check *w, intptr_t token) { ev_check_init(w, evp_check_cb); w->data = (void *)token; }
static void evp_idle_init(ev_idle *w, intptr_t token) { ev_idle_init(w, evp_idle_cb); w->data = (void *)token; }
