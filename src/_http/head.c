/* lichen._fasthead: the fast lane for the common request head (http layer).
 *
 * Strategy: most requests a server sees arrive as a complete, plain head: a
 * known method, an origin-form target, HTTP/1.1 or 1.0, a handful of
 * ordinary fields, and at most a Content-Length body.  For those, one pass
 * over the bytes here builds the lichen.http Request directly, with no
 * Python call per field as llhttp's callbacks need.  It knows nothing of
 * WSGI: the environ of a request from either lane is built afterwards by
 * lichen._fastenv (src/_http/environ.c).
 *
 * A Content-Length body is left to the caller, which reads exactly that many
 * bytes (request.content_length) after `consumed`.
 *
 * The lane recognises a deliberately *strict subset* of HTTP/1.1 and has no
 * error paths of its own: anything it does not fully understand (a partial
 * head, Transfer-Encoding, Expect, Upgrade, an unusual byte, a limit reached,
 * a second Host...) makes parse() return None, and the connection
 * hands the same bytes to lichen.http.RequestParser, which stays the one
 * authority on what is accepted and which status an error gets.  So the lane
 * can only ever accept what that parser accepts, with identical results;
 * tests/test_http_fastpath.py checks exactly that, differentially.  Every
 * limit is the parser's, passed in, and counted in raw bytes as it counts.
 *
 * Field names come out as shared bytes objects: a cache keyed by the
 * lower-cased name hands the same b"host" to every request, which saves an
 * allocation per field here and lets the environ builder find a name's key
 * by identity, with the name's hash already cached in the object.
 */
#include "common.h"
#include <string.h>

#define MAX_NAME 64     /* longer field names take the slow lane */
#define MAX_FIELDS 128  /* ditto for more fields than this */

/* Byte classes. */
#define C_TCHAR 1   /* token character (field names) */
#define C_TARGET 2  /* allowed in an origin-form target (besides %XX) */
#define C_VALUE 4   /* field-value byte: VCHAR, SP, HTAB (no obs-text) */
#define C_HOST 8    /* plain reg-name / IPv4 host character */
static unsigned char cls[256];

static void
init_classes(void)
{
    const char *tchar_extra = "!#$%&'*+-.^_`|~";
    const char *target_extra = "-._~!$&'()*+,;=:@/?";
    for (int c = 0; c < 256; c++) {
        unsigned char v = 0;
        int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (alnum || (c && strchr(tchar_extra, c)))
            v |= C_TCHAR;
        if (alnum || (c && strchr(target_extra, c)))
            v |= C_TARGET;
        if ((c >= 0x21 && c <= 0x7e) || c == ' ' || c == '\t')
            v |= C_VALUE;
        if (alnum || c == '-' || c == '.' || c == '_' || c == '~')
            v |= C_HOST;
        cls[c] = v;
    }
}

/* Methods the lane takes; others (and their errors) are the parser's. */
static const char *method_names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
#define N_METHODS (sizeof(method_names) / sizeof(method_names[0]))
static PyObject *method_str[N_METHODS];

static PyObject *s_v11, *s_v10, *b_empty;

typedef struct {
    const unsigned char *name;
    Py_ssize_t name_len;
    unsigned int name_hash;  /* FNV-1a of the lower-cased name */
    const unsigned char *value;
    Py_ssize_t value_len;
} field_t;

typedef struct {
    PyObject_HEAD
    PyObject *request_cls;  /* lichen.http.Request */
    /* Where Request keeps its 11 fields: a slots dataclass whose __init__
     * only stores them, so parse() fills a new instance directly instead of
     * running that __init__; -1 in [0] when the class is not like that. */
    Py_ssize_t field_offsets[11];
    /* Limits, with lichen.http.RequestParser's meaning (raw bytes): the
     * request line without CRLF, the field lines with their CRLFs, the
     * number of field lines, one field line with its CRLF. */
    Py_ssize_t max_request_line;
    Py_ssize_t max_header_bytes;
    Py_ssize_t max_header_count;
    Py_ssize_t max_field_size;
    long long max_body;     /* -1: no limit */
} HeadParser;

/* The slot offsets of the request class's fields, in __match_args__ order
 * (a dataclass's field order); offsets[0] = -1 when the class is not a
 * plain slots dataclass with those 11 object fields and no __post_init__. */
static void
find_field_offsets(PyObject *cls, Py_ssize_t *offsets)
{
    offsets[0] = -1;
    if (!PyType_Check(cls) || PyObject_HasAttrString(cls, "__post_init__") ||
        !PyObject_HasAttrString(cls, "__dataclass_fields__"))
        return;
    PyObject *names = PyObject_GetAttrString(cls, "__match_args__");
    if (names == NULL) {
        PyErr_Clear();
        return;
    }
    Py_ssize_t found[11];
    int ok = PyTuple_Check(names) && PyTuple_GET_SIZE(names) == 11;
    for (Py_ssize_t i = 0; ok && i < 11; i++)
        ok = (found[i] = slot_offset(cls, PyTuple_GET_ITEM(names, i))) >= 0;
    Py_DECREF(names);
    if (ok)
        memcpy(offsets, found, sizeof(found));
}

static int
HeadParser_init(HeadParser *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"request_cls", "max_request_line", "max_header_bytes", "max_header_count",
                             "max_field_size", "max_body", NULL};
    PyObject *request_cls, *max_body = Py_None;
    Py_ssize_t mrl, mhb, mhc, mfs;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Onnnn|O", kwlist, &request_cls, &mrl, &mhb, &mhc, &mfs,
                                     &max_body))
        return -1;
    long long mb = -1;
    if (max_body != Py_None) {
        mb = PyLong_AsLongLong(max_body);
        if (mb == -1 && PyErr_Occurred())
            return -1;
        if (mb < 0) {
            PyErr_SetString(PyExc_ValueError, "max_body must be None or >= 0");
            return -1;
        }
    }
    self->max_body = mb;
    Py_XSETREF(self->request_cls, Py_NewRef(request_cls));
    find_field_offsets(request_cls, self->field_offsets);
    if (PyErr_Occurred())
        return -1;
    self->max_request_line = mrl;
    self->max_header_bytes = mhb;
    self->max_header_count = mhc;
    self->max_field_size = mfs;
    return 0;
}

static int
HeadParser_traverse(HeadParser *self, visitproc visit, void *arg)
{
    Py_VISIT(self->request_cls);
    return 0;
}

static int
HeadParser_clear(HeadParser *self)
{
    Py_CLEAR(self->request_cls);
    return 0;
}

static void
HeadParser_dealloc(HeadParser *self)
{
    PyObject_GC_UnTrack(self);
    HeadParser_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static inline unsigned char
lower_byte(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int
lower_equals(const unsigned char *p, Py_ssize_t n, const char *lit)
{
    Py_ssize_t i = 0;
    for (; i < n; i++) {
        if (!lit[i] || lower_byte(p[i]) != (unsigned char)lit[i])
            return 0;
    }
    return lit[i] == 0;
}

/* FNV-1a, one byte at a time. */
#define FNV_START 2166136261u
static inline unsigned int
fnv_step(unsigned int h, unsigned char c)
{
    return (h ^ c) * 16777619u;
}

/* host [":" port] with a plain host (letters, digits, - . _ ~) or empty;
 * anything richer (IP literals, sub-delims, %XX) is left to the parser. */
static int
simple_host(const unsigned char *p, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n && (cls[p[i]] & C_HOST))
        i++;
    if (i == n)
        return 1;
    if (i == 0 || p[i] != ':')
        return 0;
    Py_ssize_t digits = n - i - 1;
    if (digits < 1 || digits > 5)
        return 0;
    for (i++; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

/* Lower-cased field names as bytes, by the hash of the name: most requests
 * carry the same few names.  A slot holds the last name that hashed there
 * (clients choose names: never unbounded). */
#define NAME_SLOTS 256
static PyObject *name_cache[NAME_SLOTS];

/* The lower-cased name of field `f` as bytes (a new reference). */
static PyObject *
field_name(const field_t *f)
{
    PyObject **slot = &name_cache[f->name_hash % NAME_SLOTS];
    PyObject *cached = *slot;
    Py_ssize_t n = f->name_len;
    if (cached != NULL && PyBytes_GET_SIZE(cached) == n) {
        const unsigned char *c = (const unsigned char *)PyBytes_AS_STRING(cached);
        Py_ssize_t i = 0;
        while (i < n && lower_byte(f->name[i]) == c[i])
            i++;
        if (i == n)
            return Py_NewRef(cached);
    }
    PyObject *name = PyBytes_FromStringAndSize(NULL, n);
    if (name == NULL)
        return NULL;
    unsigned char *d = (unsigned char *)PyBytes_AS_STRING(name);
    for (Py_ssize_t i = 0; i < n; i++)
        d[i] = lower_byte(f->name[i]);
    Py_XSETREF(*slot, Py_NewRef(name));
    return name;
}

static PyObject *
bytes_of(const unsigned char *p, Py_ssize_t n)
{
    return PyBytes_FromStringAndSize((const char *)p, n);
}

#define FALLBACK goto fallback

static PyObject *
HeadParser_parse(HeadParser *self, PyObject *data)
{
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *buf = view.buf, *p = buf, *end = buf + view.len;
    PyObject *req = NULL, *headers = NULL, *result = NULL;
    field_t fields[MAX_FIELDS];
    Py_ssize_t nfields = 0, hbytes = 0;
    Py_ssize_t host_field = -1, length_field = -1;
    int conn_close = 0, conn_keep = 0;
    unsigned int singletons = 0;
    long long content_length = 0;

    /* Request line: METHOD SP origin-form SP HTTP/1.x CRLF */
    const unsigned char *sp = memchr(p, ' ', end - p < 8 ? end - p : 8);
    if (sp == NULL)
        FALLBACK;
    Py_ssize_t mlen = sp - p;
    size_t m = 0;
    for (; m < N_METHODS; m++)
        if ((Py_ssize_t)strlen(method_names[m]) == mlen && memcmp(p, method_names[m], mlen) == 0)
            break;
    if (m == N_METHODS)
        FALLBACK;
    const unsigned char *target = sp + 1, *q = target, *qmark = NULL;
    if (q >= end || *q != '/')
        FALLBACK;
    while (q < end && *q != ' ') {
        unsigned char c = *q;
        if (c == '%') {
            if (end - q < 3 || hexval(q[1]) < 0 || hexval(q[2]) < 0)
                FALLBACK;
            q += 3;
            continue;
        }
        if (!(cls[c] & C_TARGET))
            FALLBACK;
        if (c == '?' && qmark == NULL)
            qmark = q;
        q++;
    }
    Py_ssize_t tlen = q - target;
    if (mlen + 1 + tlen + 9 > self->max_request_line)  /* "METHOD target HTTP/1.x" */
        FALLBACK;
    if (end - q < 11 || memcmp(q, " HTTP/1.", 8) != 0 || (q[8] != '1' && q[8] != '0') || q[9] != '\r' ||
        q[10] != '\n')
        FALLBACK;
    int http10 = q[8] == '0';
    p = q + 11;

    /* Fields until the empty line. */
    for (;;) {
        if (end - p < 2)
            FALLBACK;
        if (p[0] == '\r') {
            if (p[1] != '\n')
                FALLBACK;
            p += 2;
            break;
        }
        const unsigned char *name = p;
        unsigned int hash = FNV_START;
        while (p < end && (cls[*p] & C_TCHAR))
            hash = fnv_step(hash, lower_byte(*p++));
        Py_ssize_t nlen = p - name;
        if (p >= end || *p != ':' || nlen == 0 || nlen > MAX_NAME)
            FALLBACK;
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const unsigned char *value = p;
        while (p < end && (cls[*p] & C_VALUE))
            p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            FALLBACK;
        const unsigned char *vend = p;
        while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        p += 2;
        if (nfields == MAX_FIELDS || p - name > self->max_field_size)
            FALLBACK;
        field_t *f = &fields[nfields];
        f->name = name;
        f->name_len = nlen;
        f->name_hash = hash;
        f->value = value;
        f->value_len = vend - value;
        hbytes += p - name;
        /* Fields with a meaning for framing or the connection, and the
         * singletons a repeat of which is the parser's 400. */
#define SINGLETON(lit, bit)                                   \
    if (lower_equals(name, nlen, lit)) {                      \
        if (singletons & (1u << (bit)))                       \
            FALLBACK;                                         \
        singletons |= 1u << (bit);                            \
    }
        switch (name[0] | 0x20) {
        case 'h':
            if (lower_equals(name, nlen, "host")) {
                if (host_field >= 0 || !simple_host(f->value, f->value_len))
                    FALLBACK;
                host_field = nfields;
            }
            break;
        case 'c':
            if (lower_equals(name, nlen, "content-length")) {
                /* Digits only, within max_body; the caller reads the body
                 * itself, counting bytes (no chunked framing here). */
                if (length_field >= 0 || f->value_len == 0 || f->value_len > 18)
                    FALLBACK;
                for (Py_ssize_t i = 0; i < f->value_len; i++) {
                    if (f->value[i] < '0' || f->value[i] > '9')
                        FALLBACK;
                    content_length = content_length * 10 + (f->value[i] - '0');
                }
                if (self->max_body >= 0 && content_length > self->max_body)
                    FALLBACK;
                length_field = nfields;
            } else if (lower_equals(name, nlen, "connection")) {
                if (lower_equals(f->value, f->value_len, "close"))
                    conn_close = 1;
                else if (lower_equals(f->value, f->value_len, "keep-alive"))
                    conn_keep = 1;
                else
                    FALLBACK;
                if (conn_close && conn_keep)
                    FALLBACK;
            } else SINGLETON("content-type", 0)
            break;
        case 'a':
            SINGLETON("authorization", 1)
            break;
        case 'r':
            SINGLETON("range", 2)
            break;
        case 'i':
            SINGLETON("if-range", 3)
            else SINGLETON("if-modified-since", 4)
            else SINGLETON("if-unmodified-since", 5)
            break;
        case 'm':
            SINGLETON("max-forwards", 6)
            break;
        case 't':
            if (lower_equals(name, nlen, "transfer-encoding"))
                FALLBACK;
            break;
        case 'e':
            if (lower_equals(name, nlen, "expect"))
                FALLBACK;
            break;
        case 'u':
            if (lower_equals(name, nlen, "upgrade"))
                FALLBACK;
            break;
        case 'p':
            if (lower_equals(name, nlen, "proxy-connection"))
                FALLBACK;
            SINGLETON("proxy-authorization", 7)
            break;
        }
#undef SINGLETON
        nfields++;
    }
    if (nfields > self->max_header_count || hbytes > self->max_header_bytes)
        FALLBACK;
    if (host_field < 0 && !http10)
        FALLBACK;
    headers = PyList_New(nfields);
    if (headers == NULL)
        goto error;
    for (Py_ssize_t i = 0; i < nfields; i++) {
        const field_t *f = &fields[i];
        PyObject *pair = PyTuple_New(2);
        if (pair == NULL)
            goto error;
        PyList_SET_ITEM(headers, i, pair);
        PyObject *n = field_name(f), *v = n ? bytes_of(f->value, f->value_len) : NULL;
        if (v == NULL) {
            Py_XDECREF(n);
            goto error;
        }
        PyTuple_SET_ITEM(pair, 0, n);
        PyTuple_SET_ITEM(pair, 1, v);
    }

    /* The Request, exactly as lichen.http.RequestParser would make it (its
     * host is the Host field's value object, as there). */
    {
        const unsigned char *path_end = qmark ? qmark : target + tlen;
        PyObject *host = host_field >= 0 ? PyTuple_GET_ITEM(PyList_GET_ITEM(headers, host_field), 1) : Py_None;
        Py_INCREF(host);
        PyObject *rargs[11];
        rargs[0] = method_str[m];
        rargs[1] = bytes_of(target, tlen);
        rargs[2] = bytes_of(target, path_end - target);
        rargs[3] = qmark ? bytes_of(qmark + 1, target + tlen - qmark - 1) : Py_NewRef(b_empty);
        rargs[4] = http10 ? s_v10 : s_v11;
        rargs[5] = headers;
        rargs[6] = (http10 ? conn_keep && !conn_close : !conn_close) ? Py_True : Py_False;
        rargs[7] = length_field >= 0 ? PyLong_FromLongLong(content_length) : Py_NewRef(Py_None);
        rargs[8] = Py_False;
        rargs[9] = Py_False;
        rargs[10] = host;
        if (rargs[1] != NULL && rargs[2] != NULL && rargs[3] != NULL && rargs[7] != NULL) {
            if (self->field_offsets[0] < 0) {
                req = PyObject_Vectorcall(self->request_cls, rargs, 11, NULL);
            } else {
                req = PyType_GenericAlloc((PyTypeObject *)self->request_cls, 0);
                for (int i = 0; req != NULL && i < 11; i++)
                    *(PyObject **)((char *)req + self->field_offsets[i]) = Py_NewRef(rargs[i]);
            }
        }
        Py_XDECREF(rargs[7]);
        Py_XDECREF(rargs[1]);
        Py_XDECREF(rargs[2]);
        Py_XDECREF(rargs[3]);
        Py_DECREF(host);
        if (req == NULL)
            goto error;
    }
    PyObject *consumed = PyLong_FromSsize_t(p - buf);
    result = consumed ? PyTuple_New(2) : NULL;
    if (result == NULL) {
        Py_XDECREF(consumed);
        goto error;
    }
    PyTuple_SET_ITEM(result, 0, req);
    PyTuple_SET_ITEM(result, 1, consumed);
    Py_DECREF(headers);
    PyBuffer_Release(&view);
    return result;

fallback:
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
error:
    Py_XDECREF(req);
    Py_XDECREF(headers);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef HeadParser_methods[] = {
    {"parse", (PyCFunction)HeadParser_parse, METH_O,
     "parse(data) -> (request, consumed) or None\n\n"
     "The Request of the complete request head at the start of `data`;\n"
     "`consumed` is the head's length, and a body (request.content_length\n"
     "bytes) follows it.  None when the head is not in the fast lane's strict\n"
     "subset (the caller then uses lichen.http.RequestParser)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject HeadParserType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lichen._fasthead.HeadParser",
    .tp_basicsize = sizeof(HeadParser),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "HeadParser(request_cls, max_request_line, max_header_bytes, max_header_count, max_field_size,\n"
              "           max_body=None)\n\n"
              "Reads plain request heads into request_cls (lichen.http.Request) in one C pass;\n"
              "the limits are lichen.http.RequestParser's, in raw bytes.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)HeadParser_init,
    .tp_dealloc = (destructor)HeadParser_dealloc,
    .tp_traverse = (traverseproc)HeadParser_traverse,
    .tp_clear = (inquiry)HeadParser_clear,
    .tp_methods = HeadParser_methods,
};

static struct PyModuleDef fasthead_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "lichen._fasthead",
    .m_doc = "The fast lane for plain request heads (see HeadParser).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__fasthead(void)
{
    init_classes();
    for (size_t i = 0; i < N_METHODS; i++)
        if (intern(&method_str[i], method_names[i]) < 0)
            return NULL;
    if (intern(&s_v11, "1.1") < 0 || intern(&s_v10, "1.0") < 0)
        return NULL;
    if (b_empty == NULL && (b_empty = PyBytes_FromStringAndSize("", 0)) == NULL)
        return NULL;
    return module_with_type(&fasthead_module, &HeadParserType, "HeadParser");
}
