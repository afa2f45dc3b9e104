/* lichen._fastpath: the fast lane for the common request head.
 *
 * Strategy: most requests a server sees arrive as a complete, plain head: a
 * known method, an origin-form target, HTTP/1.1 or 1.0, a handful of
 * ordinary fields, and at most a Content-Length body.  For those, one pass over the bytes here builds the WSGI
 * environ and the lichen.http Request directly, instead of llhttp calling a
 * Python callback per field and Python building the environ afterwards.
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
 * tests/test_http_fastpath.py checks exactly that, differentially.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
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

static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Methods the lane takes; others (and their errors) are the parser's. */
static const char *method_names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
#define N_METHODS (sizeof(method_names) / sizeof(method_names[0]))
static PyObject *method_str[N_METHODS];

static PyObject *s_v11, *s_v10, *s_proto11, *s_proto10, *s_empty, *s_ffff;
static PyObject *k_remote_addr, *k_remote_port, *k_method, *k_path, *k_query, *k_raw_uri, *k_request_uri,
    *k_protocol, *k_input, *k_content_type, *k_content_length, *k_cookie, *k_host;
static PyObject *s_comma, *s_semi, *s_http;

typedef struct {
    const unsigned char *name;
    Py_ssize_t name_len;
    const unsigned char *value;
    Py_ssize_t value_len;
} field_t;

typedef struct {
    PyObject_HEAD
    PyObject *base;         /* the server's base environ (copied per request) */
    PyObject *empty_input;  /* wsgi.input of a request without body */
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
    PyObject *proxy_keys;   /* environ keys of the proxy headers (a frozenset) */
    int base_has_fields;    /* base has HTTP_* / CONTENT_* keys a field may join */
    int base_has_proxy;     /* base has a proxy key itself */
} FastParser;

/* The slot offsets of the request class's fields, in __match_args__ order
 * (a dataclass's field order); offsets[0] = -1 when the class is not a
 * plain slots dataclass with those 11 object fields and no __post_init__. */
static int
find_field_offsets(PyObject *cls, Py_ssize_t *offsets)
{
    offsets[0] = -1;
    if (!PyType_Check(cls) || PyObject_HasAttrString(cls, "__post_init__") ||
        !PyObject_HasAttrString(cls, "__dataclass_fields__"))
        return 0;
    PyObject *names = PyObject_GetAttrString(cls, "__match_args__");
    if (names == NULL) {
        PyErr_Clear();
        return 0;
    }
    Py_ssize_t found[11];
    int ok = PyTuple_Check(names) && PyTuple_GET_SIZE(names) == 11;
    for (Py_ssize_t i = 0; ok && i < 11; i++) {
        PyObject *d = PyObject_GetAttr(cls, PyTuple_GET_ITEM(names, i));
        if (d == NULL) {
            PyErr_Clear();
            ok = 0;
            break;
        }
        ok = Py_IS_TYPE(d, &PyMemberDescr_Type) && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX;
        if (ok)
            found[i] = ((PyMemberDescrObject *)d)->d_member->offset;
        Py_DECREF(d);
    }
    Py_DECREF(names);
    if (ok)
        memcpy(offsets, found, sizeof(found));
    return 0;
}

static int
FastParser_init(FastParser *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"base", "empty_input", "request_cls", "max_request_line", "max_header_bytes",
                             "max_header_count", "max_field_size", "max_body", "proxy_keys", NULL};
    PyObject *base, *empty_input, *request_cls, *max_body = Py_None, *proxy_keys = NULL;
    Py_ssize_t mrl, mhb, mhc, mfs;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!OOnnnn|OO!", kwlist, &PyDict_Type, &base, &empty_input,
                                     &request_cls, &mrl, &mhb, &mhc, &mfs, &max_body, &PyFrozenSet_Type,
                                     &proxy_keys))
        return -1;
    proxy_keys = proxy_keys ? Py_NewRef(proxy_keys) : PyFrozenSet_New(NULL);
    if (proxy_keys == NULL)
        return -1;
    Py_XSETREF(self->proxy_keys, proxy_keys);
    /* What the base environ (the server's `environ` setting) may bring:
     * asked once here so parse() can skip per-field lookups. */
    self->base_has_fields = self->base_has_proxy = 0;
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(base, &pos, &k, &v)) {
        if (!PyUnicode_Check(k))
            continue;
        if (PyUnicode_Tailmatch(k, s_http, 0, PY_SSIZE_T_MAX, -1) == 1 || PyUnicode_Compare(k, k_content_type) == 0 ||
            PyUnicode_Compare(k, k_content_length) == 0)
            self->base_has_fields = 1;
        int in = PySet_Contains(proxy_keys, k);
        if (in < 0)
            return -1;
        if (in)
            self->base_has_proxy = 1;
    }
    if (PyErr_Occurred())
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
    Py_INCREF(base);
    Py_INCREF(empty_input);
    Py_INCREF(request_cls);
    Py_XSETREF(self->base, base);
    Py_XSETREF(self->empty_input, empty_input);
    Py_XSETREF(self->request_cls, request_cls);
    if (find_field_offsets(request_cls, self->field_offsets) < 0)
        return -1;
    self->max_request_line = mrl;
    self->max_header_bytes = mhb;
    self->max_header_count = mhc;
    self->max_field_size = mfs;
    return 0;
}

static int
FastParser_traverse(FastParser *self, visitproc visit, void *arg)
{
    Py_VISIT(self->base);
    Py_VISIT(self->empty_input);
    Py_VISIT(self->request_cls);
    Py_VISIT(self->proxy_keys);
    return 0;
}

static int
FastParser_clear(FastParser *self)
{
    Py_CLEAR(self->base);
    Py_CLEAR(self->empty_input);
    Py_CLEAR(self->request_cls);
    Py_CLEAR(self->proxy_keys);
    return 0;
}

static void
FastParser_dealloc(FastParser *self)
{
    PyObject_GC_UnTrack(self);
    FastParser_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
lower_equals(const unsigned char *p, Py_ssize_t n, const char *lit)
{
    Py_ssize_t i = 0;
    for (; i < n; i++) {
        unsigned char c = p[i];
        if (c >= 'A' && c <= 'Z')
            c += 32;
        if (!lit[i] || c != (unsigned char)lit[i])
            return 0;
    }
    return lit[i] == 0;
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

/* Environ keys by lower-cased field name: most requests carry the same few
 * names, and a cached key also has its hash computed already.  A slot holds
 * the last name that hashed there (clients choose names: never unbounded). */
#define KEY_SLOTS 256
static struct {
    unsigned char name[MAX_NAME];
    Py_ssize_t len;
    PyObject *key;
} key_cache[KEY_SLOTS];

/* FNV-1a of the lower-cased name, which is written to `lower`. */
static unsigned int
lower_hash(const unsigned char *name, Py_ssize_t n, unsigned char *lower)
{
    unsigned int h = 2166136261u;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = name[i];
        if (c >= 'A' && c <= 'Z')
            c += 32;
        lower[i] = c;
        h = (h ^ c) * 16777619u;
    }
    return h;
}

/* The environ key of a lower-cased field name, or NULL with no error for
 * names the environ drops (those with "_": X-Foo_Bar must not pose as
 * X-Foo-Bar; and Proxy). */
static PyObject *
environ_key(const unsigned char *lower, Py_ssize_t n, unsigned int hash)
{
    if (memchr(lower, '_', n))
        return NULL;
    if (n == 5 && memcmp(lower, "proxy", 5) == 0)
        return NULL;  /* never HTTP_PROXY: CGI-style code reads it as its proxy (httpoxy) */
    if (n == 12 && memcmp(lower, "content-type", 12) == 0)
        return Py_NewRef(k_content_type);
    if (n == 14 && memcmp(lower, "content-length", 14) == 0)
        return Py_NewRef(k_content_length);
    unsigned int slot = hash % KEY_SLOTS;
    if (key_cache[slot].key != NULL && key_cache[slot].len == n && memcmp(key_cache[slot].name, lower, n) == 0)
        return Py_NewRef(key_cache[slot].key);
    char buf[5 + MAX_NAME];
    memcpy(buf, "HTTP_", 5);
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = lower[i];
        buf[5 + i] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c == '-' ? '_' : c);
    }
    PyObject *key = PyUnicode_FromStringAndSize(buf, 5 + n);
    if (key == NULL || PyObject_Hash(key) == -1) {
        Py_XDECREF(key);
        return NULL;
    }
    Py_XSETREF(key_cache[slot].key, Py_NewRef(key));
    memcpy(key_cache[slot].name, lower, n);
    key_cache[slot].len = n;
    return key;
}

/* A port number as text: str(port) without the generic int formatting. */
static PyObject *
port_string(PyObject *port)
{
    if (PyLong_CheckExact(port)) {
        long v = PyLong_AsLong(port);
        if (v >= 0 && v < 1000000) {
            char buf[8];
            int i = 8;
            do {
                buf[--i] = (char)('0' + v % 10);
                v /= 10;
            } while (v);
            return PyUnicode_FromStringAndSize(buf + i, 8 - i);
        }
        PyErr_Clear();
    }
    return PyObject_Str(port);
}

/* REMOTE_ADDR and REMOTE_PORT as lichen.wsgi.environ._remote() gives them;
 * -1 (no error set) when the peer address has an unexpected shape. */
static int
remote_strings(PyObject *remote, PyObject **addr, PyObject **port)
{
    if (!PyTuple_Check(remote) || PyTuple_GET_SIZE(remote) < 2) {
        *addr = Py_NewRef(s_empty);
        *port = Py_NewRef(s_empty);
        return 0;
    }
    PyObject *host = PyTuple_GET_ITEM(remote, 0);
    if (!PyUnicode_CheckExact(host))
        return -1;
    if (PyUnicode_Tailmatch(host, s_ffff, 0, PY_SSIZE_T_MAX, -1) == 1 && PyUnicode_FindChar(host, '.', 0, PY_SSIZE_T_MAX, 1) >= 0) {
        *addr = PyUnicode_Substring(host, 7, PyUnicode_GET_LENGTH(host));
        if (*addr == NULL)
            return -2;
    } else {
        *addr = Py_NewRef(host);
    }
    *port = port_string(PyTuple_GET_ITEM(remote, 1));
    if (*port == NULL) {
        Py_CLEAR(*addr);
        return -2;
    }
    return 0;
}

static int
set_item(PyObject *d, PyObject *k, PyObject *v)
{
    if (v == NULL)
        return -1;
    int r = PyDict_SetItem(d, k, v);
    Py_DECREF(v);
    return r;
}

/* Add one field to the environ under `key`; repeated HTTP_* fields join
 * into a list (", ", or "; " for cookies), others are replaced.  `may_exist`
 * false: the key cannot be there yet, so no lookup is needed. */
static int
add_field(PyObject *env, PyObject *key, const field_t *f, int may_exist)
{
    PyObject *text = PyUnicode_DecodeLatin1((const char *)f->value, f->value_len, NULL);
    if (text == NULL)
        return -1;
    if (may_exist) {
        PyObject *old = PyDict_GetItemWithError(env, key);
        if (old == NULL && PyErr_Occurred())
            goto fail;
        /* Every key but the two CONTENT_* singletons starts with HTTP_. */
        if (old != NULL && key != k_content_type && key != k_content_length) {
            PyObject *sep = PyUnicode_Compare(key, k_cookie) == 0 ? s_semi : s_comma;
            PyObject *joined = PyUnicode_Concat(old, sep);
            if (joined == NULL)
                goto fail;
            PyObject *all = PyUnicode_Concat(joined, text);
            Py_DECREF(joined);
            Py_SETREF(text, all);
            if (text == NULL)
                goto fail;
        }
    }
    int r = PyDict_SetItem(env, key, text);
    Py_DECREF(text);
    return r;
fail:
    Py_XDECREF(text);
    return -1;
}

static PyObject *
bytes_of(const unsigned char *p, Py_ssize_t n)
{
    return PyBytes_FromStringAndSize((const char *)p, n);
}

/* PATH_INFO: the path percent-decoded (every % was checked to start a valid
 * escape), then read as latin-1, as PEP 3333 asks. */
static PyObject *
decoded_path(const unsigned char *p, Py_ssize_t n)
{
    if (!memchr(p, '%', n))
        return PyUnicode_DecodeLatin1((const char *)p, n, NULL);
    PyObject *out = PyUnicode_New(n, 255);
    if (out == NULL)
        return NULL;
    Py_UCS1 *d = PyUnicode_1BYTE_DATA(out);
    Py_ssize_t j = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p[i] == '%') {
            d[j++] = (Py_UCS1)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
            i += 2;
        } else {
            d[j++] = p[i];
        }
    }
    if (j == n)
        return out;
    PyObject *cut = PyUnicode_Substring(out, 0, j);
    Py_DECREF(out);
    return cut;
}

#define FALLBACK goto fallback

static PyObject *
FastParser_parse(FastParser *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "parse(data, remote) takes 2 arguments");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *remote = args[1];
    const unsigned char *buf = view.buf, *p = buf, *end = buf + view.len;
    PyObject *env = NULL, *req = NULL, *headers = NULL, *result = NULL;
    field_t fields[MAX_FIELDS];
    Py_ssize_t nfields = 0, hbytes = 0;
    Py_ssize_t host_field = -1, length_field = -1;
    int conn_close = 0, conn_keep = 0, proxied = self->base_has_proxy;
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
        while (p < end && (cls[*p] & C_TCHAR))
            p++;
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
    PyObject *raddr, *rport;
    int rr = remote_strings(remote, &raddr, &rport);
    if (rr == -1)
        FALLBACK;
    if (rr < 0)
        goto error;

    /* The environ. */
    env = PyDict_Copy(self->base);
    if (env == NULL) {
        Py_DECREF(raddr);
        Py_DECREF(rport);
        goto error;
    }
    if (set_item(env, k_remote_addr, raddr) < 0) {
        Py_DECREF(rport);  /* set_item took raddr whatever happened */
        goto error;
    }
    if (set_item(env, k_remote_port, rport) < 0)
        goto error;
    PyObject *method = method_str[m];
    if (PyDict_SetItem(env, k_method, method) < 0)
        goto error;
    const unsigned char *path_end = qmark ? qmark : target + tlen;
    if (set_item(env, k_path, decoded_path(target, path_end - target)) < 0)
        goto error;
    if (qmark) {
        if (set_item(env, k_query, PyUnicode_DecodeLatin1((const char *)qmark + 1, target + tlen - qmark - 1, NULL)) < 0)
            goto error;
    } else if (PyDict_SetItem(env, k_query, s_empty) < 0) {
        goto error;
    }
    PyObject *uri = PyUnicode_DecodeLatin1((const char *)target, tlen, NULL);
    if (uri == NULL)
        goto error;
    int bad = PyDict_SetItem(env, k_raw_uri, uri) < 0 || PyDict_SetItem(env, k_request_uri, uri) < 0;
    Py_DECREF(uri);
    if (bad)
        goto error;
    if (PyDict_SetItem(env, k_protocol, http10 ? s_proto10 : s_proto11) < 0 ||
        PyDict_SetItem(env, k_input, self->empty_input) < 0)
        goto error;
    headers = PyList_New(nfields);
    if (headers == NULL)
        goto error;
    unsigned char seen[KEY_SLOTS / 8] = {0};  /* name hashes so far: a repeat may join */
    for (Py_ssize_t i = 0; i < nfields; i++) {
        const field_t *f = &fields[i];
        unsigned char lname[MAX_NAME];
        unsigned int hash = lower_hash(f->name, f->name_len, lname);
        unsigned int bit = hash % KEY_SLOTS;
        int repeat = seen[bit / 8] & (1u << (bit % 8));
        seen[bit / 8] |= (unsigned char)(1u << (bit % 8));
        PyObject *key = environ_key(lname, f->name_len, hash);
        if (key == NULL && PyErr_Occurred())
            goto error;
        if (key != NULL) {
            int bad = add_field(env, key, f, repeat || self->base_has_fields) < 0;
            if (!bad && !proxied) {
                int in = PySet_Contains(self->proxy_keys, key);
                bad = in < 0;
                proxied = in > 0;
            }
            Py_DECREF(key);
            if (bad)
                goto error;
        }
        PyObject *pair = PyTuple_New(2);
        if (pair == NULL)
            goto error;
        PyList_SET_ITEM(headers, i, pair);
        PyObject *n = bytes_of(lname, f->name_len), *v = n ? bytes_of(f->value, f->value_len) : NULL;
        if (v == NULL) {
            Py_XDECREF(n);
            goto error;
        }
        PyTuple_SET_ITEM(pair, 0, n);
        PyTuple_SET_ITEM(pair, 1, v);
    }

    /* As in request_environ(): the Host field has the last word, over an
     * HTTP_HOST from the server's environ setting joined in above. */
    if (host_field >= 0 &&
        set_item(env, k_host, PyUnicode_DecodeLatin1((const char *)fields[host_field].value,
                                                     fields[host_field].value_len, NULL)) < 0)
        goto error;

    /* The Request, exactly as lichen.http.RequestParser would make it. */
    {
        PyObject *host = host_field >= 0 ? bytes_of(fields[host_field].value, fields[host_field].value_len)
                                         : Py_NewRef(Py_None);
        PyObject *rargs[11];
        rargs[0] = method;
        rargs[1] = bytes_of(target, tlen);
        rargs[2] = bytes_of(target, path_end - target);
        rargs[3] = qmark ? bytes_of(qmark + 1, target + tlen - qmark - 1) : PyBytes_FromStringAndSize("", 0);
        rargs[4] = http10 ? s_v10 : s_v11;
        rargs[5] = headers;
        rargs[6] = (http10 ? conn_keep && !conn_close : !conn_close) ? Py_True : Py_False;
        rargs[7] = length_field >= 0 ? PyLong_FromLongLong(content_length) : Py_NewRef(Py_None);
        rargs[8] = Py_False;
        rargs[9] = Py_False;
        rargs[10] = host;
        if (host != NULL && rargs[1] != NULL && rargs[2] != NULL && rargs[3] != NULL && rargs[7] != NULL) {
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
        Py_XDECREF(host);
        if (req == NULL)
            goto error;
    }
    PyObject *consumed = PyLong_FromSsize_t(p - buf);
    result = consumed ? PyTuple_New(4) : NULL;
    if (result == NULL) {
        Py_XDECREF(consumed);
        goto error;
    }
    PyTuple_SET_ITEM(result, 0, env);
    PyTuple_SET_ITEM(result, 1, req);
    PyTuple_SET_ITEM(result, 2, consumed);
    PyTuple_SET_ITEM(result, 3, Py_NewRef(proxied ? Py_True : Py_False));
    Py_DECREF(headers);
    PyBuffer_Release(&view);
    return result;

fallback:
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
error:
    Py_XDECREF(env);
    Py_XDECREF(req);
    Py_XDECREF(headers);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef FastParser_methods[] = {
    {"parse", (PyCFunction)(void (*)(void))FastParser_parse, METH_FASTCALL,
     "parse(data, remote) -> (environ, request, consumed, proxied) or None\n\n"
     "The environ and Request of the complete request head at the start of\n"
     "`data`, from peer address `remote`; `consumed` is the head's length and\n"
     "a body (request.content_length bytes) follows it; `proxied`: the environ\n"
     "holds one of `proxy_keys`. None when the head is\n"
     "not in the fast lane's strict subset (the caller then uses RequestParser)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FastParserType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lichen._fastpath.FastParser",
    .tp_basicsize = sizeof(FastParser),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "FastParser(base, empty_input, request_cls, max_request_line, max_header_bytes, max_header_count,\n"
              "           max_field_size,\n"
              "           max_body=None, proxy_keys=frozenset())\n\n"
              "Builds environ and Request for plain request heads in one C pass.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FastParser_init,
    .tp_dealloc = (destructor)FastParser_dealloc,
    .tp_traverse = (traverseproc)FastParser_traverse,
    .tp_clear = (inquiry)FastParser_clear,
    .tp_methods = FastParser_methods,
};

static struct PyModuleDef fastpath_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "lichen._fastpath",
    .m_doc = "The fast lane for plain request heads (see FastParser).",
    .m_size = -1,
};

static int
intern(PyObject **slot, const char *s)
{
    *slot = PyUnicode_InternFromString(s);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    init_classes();
    for (size_t i = 0; i < N_METHODS; i++)
        if (intern(&method_str[i], method_names[i]) < 0)
            return NULL;
    if (intern(&s_v11, "1.1") < 0 || intern(&s_v10, "1.0") < 0 || intern(&s_proto11, "HTTP/1.1") < 0 ||
        intern(&s_proto10, "HTTP/1.0") < 0 || intern(&s_empty, "") < 0 || intern(&s_ffff, "::ffff:") < 0 ||
        intern(&k_remote_addr, "REMOTE_ADDR") < 0 || intern(&k_remote_port, "REMOTE_PORT") < 0 ||
        intern(&k_method, "REQUEST_METHOD") < 0 || intern(&k_path, "PATH_INFO") < 0 ||
        intern(&k_query, "QUERY_STRING") < 0 || intern(&k_raw_uri, "RAW_URI") < 0 ||
        intern(&k_request_uri, "REQUEST_URI") < 0 || intern(&k_protocol, "SERVER_PROTOCOL") < 0 ||
        intern(&k_input, "wsgi.input") < 0 || intern(&k_content_type, "CONTENT_TYPE") < 0 ||
        intern(&k_content_length, "CONTENT_LENGTH") < 0 || intern(&k_cookie, "HTTP_COOKIE") < 0 || intern(&k_host, "HTTP_HOST") < 0 ||
        intern(&s_comma, ", ") < 0 || intern(&s_semi, "; ") < 0 || intern(&s_http, "HTTP_") < 0)
        return NULL;
    if (PyType_Ready(&FastParserType) < 0)
        return NULL;
    PyObject *mod = PyModule_Create(&fastpath_module);
    if (mod == NULL)
        return NULL;
    Py_INCREF(&FastParserType);
    if (PyModule_AddObject(mod, "FastParser", (PyObject *)&FastParserType) < 0) {
        Py_DECREF(&FastParserType);
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
