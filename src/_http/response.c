/* lichen._fastresponse: the state of one WSGI response, its start_response,
 * and whole responses sent in one piece (wsgi layer).
 *
 * Strategy: lichen.wsgi.response.Response subclasses ResponseCore and keeps
 * every rule that is ever in doubt; this type holds the state (so Python and
 * C read the same fields), is itself the start_response callable an app is
 * given (no bound method per request), and has whole(): the common answer
 * of a real app (a body known whole, plain headers, a status with a body)
 * validated, framed and handed to the send callable in one C call.  whole()
 * may only decline, never judge: anything it does not take (a header that is
 * not a plain (str, str) tuple, a hop-by-hop field, a Content-Length that
 * disagrees, HEAD, HTTP/1.0, 1xx/204/304, a bad status or value...) leaves
 * the response untouched and returns False, and the Python path answers it,
 * errors included.  What whole() sends is byte for byte what the Python path
 * sends (lichen.http.response.build_head): tests/test_wsgi_response_c.py
 * holds the two equal on generated responses.
 *
 * The wsgi layer's system calls on a plain socket are here too: whole()'s
 * first send and the driver's read between requests (recv_nowait), each one
 * call on the descriptor, without the socket module's argument parsing and
 * GIL hand-over (a non-blocking call never waits).
 */
#include "common.h"
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static PyObject *StateError;  /* lichen.wsgi.response.ResponseStateError */
static PyObject *s_write, *s_method, *s_http_version, *s_stopping, *s_with_traceback, *s_finished,
    *s_length_framer, *s_head, *s_v11, *s_fileno, *s_must_close, *s_complete;

typedef struct {
    PyObject_HEAD
    PyObject *status;      /* the app's status str, or None */
    PyObject *headers;     /* the app's header list, or None */
    PyObject *framer;      /* the body's framer once the head is built, else None */
    PyObject *send;        /* send(bytes): everything or an exception */
    PyObject *request;     /* .method, .http_version */
    PyObject *date;        /* IMF-fixdate bytes */
    PyObject *server;      /* Server field value (bytes) or None */
    PyObject *will_close;  /* None, or asked when the head is built: close after it? */
    PyObject *owner;       /* None, or an object whose `stopping` closes the connection */
    PyObject *raw;         /* None, or a non-blocking socket whose descriptor whole() tries first */
    Py_ssize_t bytes_sent;
    Py_ssize_t head_bytes;
    int status_code;
    char head_sent;
    char keep_alive;
} ResponseCore;

static void
assign(PyObject **slot, PyObject *value)
{
    Py_INCREF(value);
    Py_XSETREF(*slot, value);
}

static int
ResponseCore_init(ResponseCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"send", "request", "keep_alive", "date", "server", "owner", "raw", NULL};
    PyObject *send, *request, *keep, *date, *server, *owner = Py_None, *raw = Py_None;
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (kwds == NULL && n >= 5 && n <= 7) {  /* (the exchange's call, once per request: no keyword parsing) */
        send = PyTuple_GET_ITEM(args, 0);
        request = PyTuple_GET_ITEM(args, 1);
        keep = PyTuple_GET_ITEM(args, 2);
        date = PyTuple_GET_ITEM(args, 3);
        server = PyTuple_GET_ITEM(args, 4);
        if (n > 5)
            owner = PyTuple_GET_ITEM(args, 5);
        if (n > 6)
            raw = PyTuple_GET_ITEM(args, 6);
    }
    else if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOO|OO", kwlist, &send, &request, &keep, &date, &server,
                                          &owner, &raw))
        return -1;
    int k = PyObject_IsTrue(keep);
    if (k < 0)
        return -1;
    assign(&self->send, send);
    assign(&self->request, request);
    assign(&self->date, date);
    assign(&self->server, server);
    assign(&self->owner, owner);
    assign(&self->raw, raw);
    assign(&self->status, Py_None);
    assign(&self->headers, Py_None);
    assign(&self->framer, Py_None);
    assign(&self->will_close, Py_None);
    self->keep_alive = (char)k;
    self->head_sent = 0;
    self->bytes_sent = self->head_bytes = 0;
    self->status_code = 0;
    return 0;
}

static int
ResponseCore_traverse(ResponseCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->status);
    Py_VISIT(self->headers);
    Py_VISIT(self->framer);
    Py_VISIT(self->send);
    Py_VISIT(self->request);
    Py_VISIT(self->date);
    Py_VISIT(self->server);
    Py_VISIT(self->will_close);
    Py_VISIT(self->owner);
    Py_VISIT(self->raw);
    return 0;
}

static int
ResponseCore_clear(ResponseCore *self)
{
    Py_CLEAR(self->status);
    Py_CLEAR(self->headers);
    Py_CLEAR(self->framer);
    Py_CLEAR(self->send);
    Py_CLEAR(self->request);
    Py_CLEAR(self->date);
    Py_CLEAR(self->server);
    Py_CLEAR(self->will_close);
    Py_CLEAR(self->owner);
    Py_CLEAR(self->raw);
    return 0;
}

static void
ResponseCore_dealloc(ResponseCore *self)
{
    /* (A subclass's dealloc calls this one, then lets go of its type.) */
    PyObject_GC_UnTrack(self);
    ResponseCore_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* start_response(status, headers, exc_info=None), PEP 3333: the response
 * object is the callable itself. */
static PyObject *
ResponseCore_call(ResponseCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"status", "headers", "exc_info", NULL};
    PyObject *status, *headers, *exc_info = Py_None;
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (kwds == NULL && n == 2) {  /* (the common call: no keyword parsing) */
        status = PyTuple_GET_ITEM(args, 0);
        headers = PyTuple_GET_ITEM(args, 1);
    }
    else if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:start_response", kwlist, &status, &headers, &exc_info))
        return NULL;
    int has_exc = exc_info == Py_None ? 0 : PyObject_IsTrue(exc_info);
    if (has_exc < 0)
        return NULL;
    if (has_exc) {
        if (self->head_sent) {
            /* raise exc_info[1].with_traceback(exc_info[2]) */
            PyObject *value = PySequence_GetItem(exc_info, 1);
            if (value == NULL)
                return NULL;
            PyObject *tb = PySequence_GetItem(exc_info, 2);
            if (tb == NULL) {
                Py_DECREF(value);
                return NULL;
            }
            PyObject *exc = PyObject_CallMethodOneArg(value, s_with_traceback, tb);
            Py_DECREF(value);
            Py_DECREF(tb);
            if (exc == NULL)
                return NULL;
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
            return NULL;
        }
    }
    else if (self->status != Py_None) {
        PyErr_SetString(StateError, "start_response was already called (pass exc_info to replace the response)");
        return NULL;
    }
    if (!PyUnicode_Check(status))
        return PyErr_Format(PyExc_TypeError, "status must be str, not %.200s", Py_TYPE(status)->tp_name);
    if (!PyList_Check(headers))
        return PyErr_Format(PyExc_TypeError, "response headers must be a list, not %.200s",
                            Py_TYPE(headers)->tp_name);
    Py_INCREF(status);
    Py_SETREF(self->status, status);
    Py_INCREF(headers);
    Py_SETREF(self->headers, headers);
    return PyObject_GetAttr((PyObject *)self, s_write);
}

/* Whether obj.name is true: 1 or 0, -1 with an error set. */
static int
attr_true(PyObject *obj, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    int t = PyObject_IsTrue(v);
    Py_DECREF(v);
    return t;
}

/* Asked when the head is built: may the connection serve another request,
 * as far as the request (keep_alive), the server (its owner's `stopping`)
 * and the exchange (`will_close()`) are concerned?  1 or 0, -1 with an
 * error set. */
static int
keep_now(ResponseCore *self)
{
    if (!self->keep_alive)
        return 0;
    if (self->owner != Py_None) {
        int t = attr_true(self->owner, s_stopping);
        if (t != 0)
            return t < 0 ? -1 : 0;
    }
    if (self->will_close != Py_None) {
        PyObject *r = PyObject_CallNoArgs(self->will_close);
        if (r == NULL)
            return -1;
        int t = PyObject_IsTrue(r);
        Py_DECREF(r);
        return t < 0 ? -1 : !t;
    }
    return 1;
}

/* _keep_alive_now(): keep_now() for the Python path, which builds the head
 * only once the app has called start_response. */
static PyObject *
ResponseCore_keep_alive_now(ResponseCore *self, PyObject *unused)
{
    (void)unused;
    if (self->status == Py_None) {
        PyErr_SetString(StateError, "the application did not call start_response before sending a body");
        return NULL;
    }
    int keep = keep_now(self);
    return keep < 0 ? NULL : PyBool_FromLong(keep);
}

/* RFC 9110 5.6.2 tchar. */
static int
is_tchar(Py_UCS1 c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
lower_is(const Py_UCS1 *s, Py_ssize_t n, const char *lower)
{
    if ((size_t)n != strlen(lower))
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS1 c = s[i];
        if (c >= 'A' && c <= 'Z')
            c += 32;
        if (c != (Py_UCS1)lower[i])
            return 0;
    }
    return 1;
}

enum { H_PLAIN, H_LENGTH, H_DATE, H_SERVER, H_DECLINE };

/* What one header name is, for whole(): H_DECLINE for a hop-by-hop field
 * (the Python path drops it and may honour Connection: close). */
static int
name_kind(const Py_UCS1 *s, Py_ssize_t n)
{
    switch (n) {
    case 2:
        return lower_is(s, n, "te") ? H_DECLINE : H_PLAIN;
    case 4:
        return lower_is(s, n, "date") ? H_DATE : H_PLAIN;
    case 6:
        return lower_is(s, n, "server") ? H_SERVER : H_PLAIN;
    case 7:
        return lower_is(s, n, "trailer") || lower_is(s, n, "upgrade") ? H_DECLINE : H_PLAIN;
    case 10:
        return lower_is(s, n, "connection") || lower_is(s, n, "keep-alive") ? H_DECLINE : H_PLAIN;
    case 14:
        return lower_is(s, n, "content-length") ? H_LENGTH : H_PLAIN;
    case 16:
        return lower_is(s, n, "proxy-connection") ? H_DECLINE : H_PLAIN;
    case 17:
        return lower_is(s, n, "transfer-encoding") ? H_DECLINE : H_PLAIN;
    default:
        return H_PLAIN;
    }
}

/* A Content-Length value as build_head reads it (blanks and tabs around
 * ASCII digits); -1 when whole() should decline (invalid, or too long to
 * be a length it need not check for overflow). */
static long long
parse_length(const Py_UCS1 *s, Py_ssize_t n)
{
    Py_ssize_t i = 0, j = n;
    while (i < j && (s[i] == ' ' || s[i] == '\t'))
        i++;
    while (j > i && (s[j - 1] == ' ' || s[j - 1] == '\t'))
        j--;
    if (i == j || j - i > 18)
        return -1;
    long long v = 0;
    for (; i < j; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* PyUnicode_READY before 3.12, where a legacy string may not be. */
static int
ready(PyObject *s)
{
#if PY_VERSION_HEX < 0x030C0000
    return PyUnicode_READY(s) == 0;
#else
    (void)s;
    return 1;
#endif
}

static int
put(char **p, const void *src, Py_ssize_t n)
{
    memcpy(*p, src, (size_t)n);
    *p += n;
    return 0;
}

/* The descriptor of a plain socket, asked of it at each use: a socket closed
 * meanwhile answers -1, never a number another connection may hold by now.
 * -1 with *fd untouched and an error set when fileno() fails; else 0. */
static int
raw_fd(PyObject *raw, int *fd)
{
    PyObject *fdo = PyObject_CallMethodNoArgs(raw, s_fileno);
    if (fdo == NULL)
        return -1;
    long n = PyLong_AsLong(fdo);
    Py_DECREF(fdo);
    if (n == -1 && PyErr_Occurred())
        return -1;
    *fd = (n >= 0 && n <= INT_MAX) ? (int)n : -1;
    return 0;
}

/* Send all of `out` (a new reference, consumed): one send(2) on the raw
 * socket's descriptor when there is one, then `send` for whatever it did
 * not take (the rest after a short send; everything after EAGAIN, EINTR or
 * an error, which `send` then meets again and reports in its own terms).
 * The call is made here, not through socket.send(): the socket is
 * non-blocking, so there is no wait to release the GIL for, and the method
 * call, its argument parsing and the GIL hand-over cost more than the send
 * itself.  -1 with an error set. */
static int
send_all(ResponseCore *self, PyObject *out)
{
    Py_ssize_t len = PyBytes_GET_SIZE(out), done = 0;
    if (self->raw != Py_None) {
        int fd;
        if (raw_fd(self->raw, &fd) < 0) {
            Py_DECREF(out);
            return -1;
        }
        if (fd >= 0) {
            ssize_t n = send(fd, PyBytes_AS_STRING(out), (size_t)len, MSG_NOSIGNAL);
            if (n == len) {
                Py_DECREF(out);
                return 0;
            }
            if (n > 0)
                done = n;
        }
    }
    if (done) {
        Py_SETREF(out, PyBytes_FromStringAndSize(PyBytes_AS_STRING(out) + done, len - done));
        if (out == NULL)
            return -1;
    }
    PyObject *r = PyObject_CallOneArg(self->send, out);
    Py_DECREF(out);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

#define MAX_HEADERS 64
#define LENGTH_LINE_MAX 40  /* "Content-Length: " + 19 digits + CRLF */

/* whole(body, declared=False) -> bool.  Send the whole response (head and
 * body in one call of `send`) when it is the plain case; False, with nothing
 * changed or sent, when the Python path must answer it.  With `declared`,
 * `body` is the first item of an iterable: it is the whole response only if
 * the app's own Content-Length says so. */
static PyObject *
ResponseCore_whole(ResponseCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "whole(body, declared=False)");
        return NULL;
    }
    PyObject *body = args[0];
    int declared = 0;
    if (nargs == 2 && (declared = PyObject_IsTrue(args[1])) < 0)
        return NULL;
    PyObject *status = self->status, *headers = self->headers;
    if (self->head_sent || !PyUnicode_CheckExact(status) || !PyList_CheckExact(headers) || !PyBytes_CheckExact(body))
        Py_RETURN_FALSE;
    if (!ready(status))
        return NULL;
    Py_ssize_t body_len = PyBytes_GET_SIZE(body);

    /* The request: GET-like over HTTP/1.1 (HEAD and 1.0 have their own rules). */
    PyObject *v = PyObject_GetAttr(self->request, s_method);
    if (v == NULL)
        return NULL;
    int head = PyUnicode_Check(v) && PyUnicode_Compare(v, s_head) == 0;
    Py_DECREF(v);
    if (head)
        Py_RETURN_FALSE;
    v = PyObject_GetAttr(self->request, s_http_version);
    if (v == NULL)
        return NULL;
    int v11 = PyUnicode_Check(v) && PyUnicode_Compare(v, s_v11) == 0;
    Py_DECREF(v);
    if (PyErr_Occurred())
        return NULL;
    if (!v11)
        Py_RETURN_FALSE;

    /* The status: "NNN reason", a code with a body. */
    if (PyUnicode_KIND(status) != PyUnicode_1BYTE_KIND)
        Py_RETURN_FALSE;
    const Py_UCS1 *st = PyUnicode_1BYTE_DATA(status);
    Py_ssize_t st_len = PyUnicode_GET_LENGTH(status);
    if (st_len < 4 || st[0] < '1' || st[0] > '5' || st[1] < '0' || st[1] > '9' || st[2] < '0' || st[2] > '9' ||
        st[3] != ' ')
        Py_RETURN_FALSE;
    for (Py_ssize_t i = 4; i < st_len; i++)
        if (st[i] == '\r' || st[i] == '\n' || st[i] == 0)
            Py_RETURN_FALSE;
    int code = (st[0] - '0') * 100 + (st[1] - '0') * 10 + (st[2] - '0');
    if (code < 200 || code == 204 || code == 304)
        Py_RETURN_FALSE;

    /* The headers: plain (str, str) tuples, each checked as build_head does. */
    Py_ssize_t nh = PyList_GET_SIZE(headers);
    if (nh > MAX_HEADERS)
        Py_RETURN_FALSE;
    PyObject *names[MAX_HEADERS], *values[MAX_HEADERS];
    Py_ssize_t size = 9 + st_len + 2;  /* "HTTP/1.1 " status CRLF */
    long long app_length = -1;
    int has_date = 0, has_server = 0;
    for (Py_ssize_t i = 0; i < nh; i++) {
        PyObject *pair = PyList_GET_ITEM(headers, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
            Py_RETURN_FALSE;
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        if (!PyUnicode_CheckExact(name) || !PyUnicode_CheckExact(value))
            Py_RETURN_FALSE;
        if (!ready(name) || !ready(value))
            return NULL;
        if (PyUnicode_KIND(name) != PyUnicode_1BYTE_KIND || PyUnicode_KIND(value) != PyUnicode_1BYTE_KIND)
            Py_RETURN_FALSE;
        const Py_UCS1 *ns = PyUnicode_1BYTE_DATA(name), *vs = PyUnicode_1BYTE_DATA(value);
        Py_ssize_t nn = PyUnicode_GET_LENGTH(name), vn = PyUnicode_GET_LENGTH(value);
        if (nn == 0)
            Py_RETURN_FALSE;
        for (Py_ssize_t j = 0; j < nn; j++)
            if (!is_tchar(ns[j]))
                Py_RETURN_FALSE;
        for (Py_ssize_t j = 0; j < vn; j++)
            if (vs[j] == '\r' || vs[j] == '\n' || vs[j] == 0)
                Py_RETURN_FALSE;
        switch (name_kind(ns, nn)) {
        case H_DECLINE:
            Py_RETURN_FALSE;
        case H_LENGTH:
            if (app_length >= 0)
                Py_RETURN_FALSE;  /* (a repeated Content-Length: the Python path) */
            if ((app_length = parse_length(vs, vn)) < 0)
                Py_RETURN_FALSE;
            break;
        case H_DATE:
            has_date = 1;
            break;
        case H_SERVER:
            has_server = 1;
            break;
        }
        names[i] = name;
        values[i] = value;
        size += nn + 2 + vn + 2;
    }
    /* The framing carries the body as is only with a Content-Length that is
     * the body's (the app's, or ours when the app gave none and the body is
     * known whole). */
    if (app_length >= 0 ? app_length != body_len : declared)
        Py_RETURN_FALSE;

    PyObject *server = self->server, *date = self->date;
    if (!PyBytes_Check(date) || (server != Py_None && !PyBytes_Check(server)))
        Py_RETURN_FALSE;
    int keep = keep_now(self);
    if (keep < 0)
        return NULL;
    char length_line[LENGTH_LINE_MAX];
    int length_len = 0;
    if (app_length < 0)
        length_len = snprintf(length_line, sizeof length_line, "Content-Length: %zd\r\n", body_len);
    size += length_len;
    if (!has_date)
        size += 6 + PyBytes_GET_SIZE(date) + 2;
    if (server != Py_None && !has_server)
        size += 8 + PyBytes_GET_SIZE(server) + 2;
    if (!keep)
        size += 19;  /* "Connection: close\r\n" */
    size += 2;
    Py_ssize_t head_len = size;

    PyObject *framer;
    if (declared) {
        /* Nothing more may follow; more bytes make the connection must_close. */
        PyObject *cls = PyObject_GetAttr((PyObject *)Py_TYPE(self), s_length_framer);
        if (cls == NULL)
            return NULL;
        PyObject *zero = PyLong_FromLong(0);
        framer = zero == NULL ? NULL : PyObject_CallOneArg(cls, zero);
        Py_XDECREF(zero);
        Py_DECREF(cls);
    }
    else
        framer = PyObject_GetAttr((PyObject *)Py_TYPE(self), s_finished);
    if (framer == NULL)
        return NULL;

    PyObject *out = PyBytes_FromStringAndSize(NULL, head_len + body_len);
    if (out == NULL) {
        Py_DECREF(framer);
        return NULL;
    }
    char *p = PyBytes_AS_STRING(out);
    put(&p, "HTTP/1.1 ", 9);
    put(&p, st, st_len);
    put(&p, "\r\n", 2);
    for (Py_ssize_t i = 0; i < nh; i++) {
        put(&p, PyUnicode_1BYTE_DATA(names[i]), PyUnicode_GET_LENGTH(names[i]));
        put(&p, ": ", 2);
        put(&p, PyUnicode_1BYTE_DATA(values[i]), PyUnicode_GET_LENGTH(values[i]));
        put(&p, "\r\n", 2);
    }
    put(&p, length_line, length_len);
    if (!has_date) {
        put(&p, "Date: ", 6);
        put(&p, PyBytes_AS_STRING(date), PyBytes_GET_SIZE(date));
        put(&p, "\r\n", 2);
    }
    if (server != Py_None && !has_server) {
        put(&p, "Server: ", 8);
        put(&p, PyBytes_AS_STRING(server), PyBytes_GET_SIZE(server));
        put(&p, "\r\n", 2);
    }
    if (!keep)
        put(&p, "Connection: close\r\n", 19);
    put(&p, "\r\n", 2);
    put(&p, PyBytes_AS_STRING(body), body_len);

    Py_SETREF(self->framer, framer);
    self->status_code = code;
    self->keep_alive = (char)keep;
    self->head_bytes = head_len;
    self->head_sent = 1;
    if (send_all(self, out) < 0)
        return NULL;
    self->bytes_sent += body_len;
    Py_RETURN_TRUE;
}

static PyObject *
get_flag(ResponseCore *self, void *which)
{
    return PyBool_FromLong(which ? self->head_sent : self->keep_alive);
}

static int
set_flag(ResponseCore *self, PyObject *value, void *which)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete a response flag");
        return -1;
    }
    int t = PyObject_IsTrue(value);
    if (t < 0)
        return -1;
    if (which)
        self->head_sent = (char)t;
    else
        self->keep_alive = (char)t;
    return 0;
}

/* The body's framing went wrong (too short or cut): close after. */
static PyObject *
get_must_close(ResponseCore *self, void *closure)
{
    (void)closure;
    PyObject *f = self->framer;
    if (f == Py_None)
        Py_RETURN_FALSE;
    int t = attr_true(f, s_must_close);
    if (t == 0) {
        t = attr_true(f, s_complete);
        if (t >= 0)
            t = !t;
    }
    return t < 0 ? NULL : PyBool_FromLong(t);
}

static PyGetSetDef ResponseCore_getset[] = {
    {"head_sent", (getter)get_flag, (setter)set_flag, "Whether the head went out (or was framed to go out).",
     (void *)1},
    {"keep_alive", (getter)get_flag, (setter)set_flag, "Whether the connection may serve another request.", NULL},
    {"must_close", (getter)get_must_close, NULL, "The body's framing went wrong (too short or cut): close after.",
     NULL},
    {NULL},
};

static PyMemberDef ResponseCore_members[] = {
    {"status", T_OBJECT, offsetof(ResponseCore, status), 0, "The app's status string (None before start_response)."},
    {"headers", T_OBJECT, offsetof(ResponseCore, headers), 0, "The app's header list (None before start_response)."},
    {"framer", T_OBJECT, offsetof(ResponseCore, framer), 0, "The body's framer once the head is built."},
    {"will_close", T_OBJECT, offsetof(ResponseCore, will_close), 0,
     "None, or a callable asked when the head is built: must the connection close after it?"},
    {"bytes_sent", T_PYSSIZET, offsetof(ResponseCore, bytes_sent), 0, "Body bytes sent."},
    {"head_bytes", T_PYSSIZET, offsetof(ResponseCore, head_bytes), 0, "The head's length in bytes."},
    {"status_code", T_INT, offsetof(ResponseCore, status_code), 0, "The status code sent (0: none yet)."},
    {"_send", T_OBJECT, offsetof(ResponseCore, send), READONLY, NULL},
    {"_request", T_OBJECT, offsetof(ResponseCore, request), READONLY, NULL},
    {"_date", T_OBJECT, offsetof(ResponseCore, date), READONLY, NULL},
    {"_server", T_OBJECT, offsetof(ResponseCore, server), READONLY, NULL},
    {"_owner", T_OBJECT, offsetof(ResponseCore, owner), READONLY, NULL},
    {"_raw", T_OBJECT, offsetof(ResponseCore, raw), READONLY, NULL},
    {NULL},
};

static PyMethodDef ResponseCore_methods[] = {
    {"_keep_alive_now", (PyCFunction)ResponseCore_keep_alive_now, METH_NOARGS,
     "Asked when the head is built: may the connection serve another request?\n"
     "(ResponseStateError before start_response.)"},
    {"whole", (PyCFunction)(void (*)(void))ResponseCore_whole, METH_FASTCALL,
     "whole(body, declared=False) -> bool\n\n"
     "Send the whole response in one piece when it is the plain case (see the module);\n"
     "False, with nothing sent or changed, when the caller must answer it."},
    {NULL},
};

static PyTypeObject ResponseCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lichen._fastresponse.ResponseCore",
    .tp_basicsize = sizeof(ResponseCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "ResponseCore(send, request, keep_alive, date, server, owner=None, raw=None)\n\n"
              "The state of one response; calling it is start_response (PEP 3333).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ResponseCore_init,
    .tp_dealloc = (destructor)ResponseCore_dealloc,
    .tp_traverse = (traverseproc)ResponseCore_traverse,
    .tp_clear = (inquiry)ResponseCore_clear,
    .tp_call = (ternaryfunc)ResponseCore_call,
    .tp_methods = ResponseCore_methods,
    .tp_members = ResponseCore_members,
    .tp_getset = ResponseCore_getset,
};

/* The Date value of this second (RFC 9110 5.6.7 IMF-fixdate), made once a
 * second: English names whatever the locale. */
static PyObject *date_cached;
static long long date_second = -1;

static PyObject *
http_date(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    long long second;
    (void)module;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "http_date(timestamp=None)");
        return NULL;
    }
    if (nargs == 1 && args[0] != Py_None) {
        double t = PyFloat_AsDouble(args[0]);
        if (t == -1.0 && PyErr_Occurred())
            return NULL;
        if (!(t >= 0.0 && t < 253402300800.0))  /* (years 1970 to 9999) */
            return PyErr_Format(PyExc_ValueError, "timestamp out of range: %R", args[0]);
        second = (long long)t;
    }
    else {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        second = (long long)now.tv_sec;
        if (second == date_second && date_cached != NULL)
            return Py_NewRef(date_cached);
    }
    time_t tt = (time_t)second;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL)
        return PyErr_Format(PyExc_ValueError, "timestamp out of range: %lld", second);
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
                     months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    PyObject *out = PyBytes_FromStringAndSize(buf, n);
    if (out != NULL && !(nargs == 1 && args[0] != Py_None)) {
        Py_XSETREF(date_cached, Py_NewRef(out));
        date_second = second;
    }
    return out;
}

/* recv_nowait(raw, buffer): the driver's read between requests, with the
 * contract of lichen.socket.socket.recv_into_nowait, as one recv(2) on the
 * plain socket's descriptor: for the reason send_all() gives, socket's own
 * recv_into() costs more than the read.  EINTR is retried after the signal
 * handlers ran (PEP 475), as the socket module does. */
static PyObject *
recv_nowait(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "recv_nowait(raw, buffer)");
        return NULL;
    }
    int fd;
    if (raw_fd(args[0], &fd) < 0)
        return NULL;
    if (fd < 0) {
        errno = EBADF;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_WRITABLE) < 0) {
        if (PyErr_ExceptionMatches(PyExc_BufferError)) {  /* (a TypeError, as for socket.recv_into) */
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "recv_nowait() wants a writable buffer, not %.100s",
                         Py_TYPE(args[1])->tp_name);
        }
        return NULL;
    }
    ssize_t n;
    while ((n = recv(fd, view.buf, (size_t)view.len, 0)) < 0 && errno == EINTR) {
        if (PyErr_CheckSignals() < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
    }
    int err = errno;
    PyBuffer_Release(&view);
    if (n >= 0)
        return PyLong_FromSsize_t(n);
    if (err == EAGAIN || err == EWOULDBLOCK)
        Py_RETURN_NONE;
    if (err == ECONNRESET || err == ECONNABORTED)
        return PyLong_FromLong(0);
    errno = err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

static PyMethodDef fastresponse_functions[] = {
    {"recv_nowait", (PyCFunction)(void (*)(void))recv_nowait, METH_FASTCALL,
     "recv_nowait(raw, buffer) -> int | None\n\n"
     "Read what the plain non-blocking socket `raw` has into `buffer` without waiting: the count\n"
     "(0 at EOF or after a reset), or None when nothing has arrived; OSError otherwise (EBADF\n"
     "once `raw` is closed). One recv(2) on its descriptor."},
    {"http_date", (PyCFunction)(void (*)(void))http_date, METH_FASTCALL,
     "http_date(timestamp=None) -> bytes\n\n"
     "The Date header value (IMF-fixdate) of `timestamp`, or of now (made once a second)."},
    {NULL},
};

static struct PyModuleDef fastresponse_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "lichen._fastresponse",
    .m_doc = "The state of a WSGI response, its start_response and whole sends (see ResponseCore);\n"
             "the driver's raw read (recv_nowait).",
    .m_size = -1,
    .m_methods = fastresponse_functions,
};

PyMODINIT_FUNC
PyInit__fastresponse(void)
{
    if (intern(&s_write, "write") < 0 || intern(&s_method, "method") < 0 ||
        intern(&s_http_version, "http_version") < 0 || intern(&s_stopping, "stopping") < 0 ||
        intern(&s_with_traceback, "with_traceback") < 0 || intern(&s_finished, "FINISHED") < 0 ||
        intern(&s_length_framer, "LengthFramer") < 0 || intern(&s_head, "HEAD") < 0 || intern(&s_v11, "1.1") < 0 ||
        intern(&s_fileno, "fileno") < 0 || intern(&s_must_close, "must_close") < 0 || intern(&s_complete, "complete") < 0)
        return NULL;
    StateError = PyErr_NewExceptionWithDoc("lichen.wsgi.response.ResponseStateError",
                                           "The app broke a start_response rule (PEP 3333).", PyExc_RuntimeError,
                                           NULL);
    if (StateError == NULL)
        return NULL;
    PyObject *mod = module_with_type(&fastresponse_module, &ResponseCoreType, "ResponseCore");
    if (mod != NULL && PyModule_AddObjectRef(mod, "ResponseStateError", StateError) < 0)
        Py_CLEAR(mod);
    return mod;
}
