/* lichen._fastenv: the PEP 3333 environ of one request (wsgi layer).
 *
 * Strategy: one builder, in C, makes the environ of every request, whichever
 * lane read its head (the C head parser lichen._fasthead or
 * lichen.http.RequestParser): it starts from a copy of the server's base
 * environ and adds what the Request carries, reading the Request's slots
 * directly and walking its headers list once.  The rules live here once for
 * both lanes; lichen.wsgi.environ.request_environ() states the same rules
 * in Python and is the oracle the tests compare this builder against
 * (tests/test_wsgi_environ_c.py), on requests from both lanes.
 *
 * What is per server is worked out when the builder is made (it keeps its
 * own copy of the base environ: see base_with_fixed_keys; the server makes a
 * new builder whenever its environ changes): whether the
 * base environ holds keys a field may join (HTTP_*, CONTENT_*) and whether
 * it, or a key every environ gets, is a proxy key.  Per request, a field's
 * environ key comes from a cache keyed by the name's content (by the name
 * object itself first: the head parser hands out the same b"host" every
 * time, and a bytes object keeps its hash), and `proxied` (the environ holds
 * a proxy key) is worked out along the way, so the caller never looks.
 */
#include "common.h"
#include <string.h>

static PyObject *s_proto11, *s_proto10, *s_v11, *s_v10, *s_empty, *s_ffff, *s_comma, *s_semi, *s_http, *s_upper,
    *s_dash, *s_underscore;
static PyObject *k_remote_addr, *k_remote_port, *k_method, *k_path, *k_query, *k_raw_uri, *k_request_uri,
    *k_protocol, *k_input, *k_content_type, *k_content_length, *k_cookie, *k_host;

/* The Request fields the environ reads. */
enum { F_METHOD, F_TARGET, F_PATH, F_QUERY, F_VERSION, F_HEADERS, F_HOST, N_FIELDS };
static const char *field_names[N_FIELDS] = {"method", "target", "path", "query", "http_version", "headers",
                                            "host"};
static PyObject *field_str[N_FIELDS];

typedef struct {
    PyObject_HEAD
    PyObject *base;         /* the server's base environ (copied per request) */
    PyObject *empty_input;  /* wsgi.input when build() is given none */
    PyObject *proxy_keys;   /* environ keys of the proxy headers (a frozenset) */
    int base_has_fields;    /* base has HTTP_* / CONTENT_* keys a field may join */
    int always_proxied;     /* base, or a key every environ has, is a proxy key */
    int host_proxied;       /* HTTP_HOST is a proxy key */
    int check_fields;       /* there are proxy keys to look a field's key up in */
    unsigned long long serial;  /* this builder's number, for the key cache's proxy answers */
    /* The request class last seen, its version tag then, and where its
     * instances keep the fields (-1: read with getattr). */
    PyTypeObject *req_type;
    unsigned int req_version;
    Py_ssize_t req_offsets[N_FIELDS];
} EnvironBuilder;

/* The keys build() sets in every environ, in the order it sets them. */
#define N_FIXED 9
static PyObject **fixed_keys[N_FIXED] = {&k_remote_addr, &k_remote_port, &k_method, &k_path, &k_query, &k_raw_uri,
                                         &k_request_uri, &k_protocol, &k_input};

/* The builder's own copy of the base environ, holding already the keys
 * build() sets in every environ (None until then; a key the base has keeps
 * its place and value).  Each environ is a PyDict_Copy of it, and a copy
 * keeps the size of a table: so an environ starts in a table that already
 * fits the base and those keys (for the default base, the 64-slot table a
 * whole environ ends in anyway), and is not rebuilt into a larger one while
 * it is filled, as it was once per request.  The keys stay in the order
 * build() gave them, and the table stays CPython's compact kind for str keys
 * (a presized dict would be the general kind: 8 more bytes per entry). */
static PyObject *
base_with_fixed_keys(PyObject *base)
{
    PyObject *own = PyDict_Copy(base);
    if (own == NULL)
        return NULL;
    for (int i = 0; i < N_FIXED; i++) {
        if (PyDict_SetDefault(own, *fixed_keys[i], Py_None) == NULL) {
            Py_DECREF(own);
            return NULL;
        }
    }
    return own;
}

static int
EnvironBuilder_init(EnvironBuilder *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"base", "empty_input", "proxy_keys", NULL};
    PyObject *base, *empty_input, *keys = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O|O", kwlist, &PyDict_Type, &base, &empty_input, &keys))
        return -1;
    PyObject *proxy_keys = PyFrozenSet_New(keys);  /* (any iterable of keys: a frozen copy) */
    if (proxy_keys == NULL)
        return -1;
    Py_XSETREF(self->proxy_keys, proxy_keys);
    PyObject *own = base_with_fixed_keys(base);
    if (own == NULL)
        return -1;
    Py_XSETREF(self->base, own);
    Py_XSETREF(self->empty_input, Py_NewRef(empty_input));
    Py_CLEAR(self->req_type);
    /* What the base environ (the server's `environ` setting) may bring:
     * asked once here so build() can skip per-field lookups. */
    int has_fields = 0, proxied = 0;
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(base, &pos, &k, &v)) {
        if (PyUnicode_Check(k) && (PyUnicode_Tailmatch(k, s_http, 0, PY_SSIZE_T_MAX, -1) == 1 ||
                                   PyUnicode_Compare(k, k_content_type) == 0 ||
                                   PyUnicode_Compare(k, k_content_length) == 0))
            has_fields = 1;
        int in = PySet_Contains(proxy_keys, k);
        if (in < 0)
            return -1;
        proxied |= in;
    }
    for (int i = 0; i < N_FIXED; i++) {
        int in = PySet_Contains(proxy_keys, *fixed_keys[i]);
        if (in < 0)
            return -1;
        proxied |= in;
    }
    int host = PySet_Contains(proxy_keys, k_host);
    if (host < 0 || PyErr_Occurred())
        return -1;
    self->base_has_fields = has_fields;
    self->always_proxied = proxied;
    self->host_proxied = host;
    self->check_fields = PySet_GET_SIZE(proxy_keys) > 0;
    static unsigned long long serials;
    self->serial = ++serials;  /* (made again: the proxy keys may differ) */
    return 0;
}

static int
EnvironBuilder_traverse(EnvironBuilder *self, visitproc visit, void *arg)
{
    Py_VISIT(self->base);
    Py_VISIT(self->empty_input);
    Py_VISIT(self->proxy_keys);
    Py_VISIT(self->req_type);
    return 0;
}

static int
EnvironBuilder_clear(EnvironBuilder *self)
{
    Py_CLEAR(self->base);
    Py_CLEAR(self->empty_input);
    Py_CLEAR(self->proxy_keys);
    Py_CLEAR(self->req_type);
    return 0;
}

static void
EnvironBuilder_dealloc(EnvironBuilder *self)
{
    PyObject_GC_UnTrack(self);
    EnvironBuilder_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* New references to the fields of `req` into out[N_FIELDS]: straight from
 * the slots of a Request (found once per class, and again if the class
 * changes), else by getattr. */
static int
request_fields(EnvironBuilder *self, PyObject *req, PyObject **out)
{
    PyTypeObject *tp = Py_TYPE(req);
    if (tp != self->req_type || tp->tp_version_tag != self->req_version || self->req_version == 0) {
        int plain = tp->tp_getattro == PyObject_GenericGetAttr;
        for (int i = 0; i < N_FIELDS; i++)
            self->req_offsets[i] = plain ? slot_offset((PyObject *)tp, field_str[i]) : -1;
        Py_XSETREF(self->req_type, (PyTypeObject *)Py_NewRef(tp));
        self->req_version = tp->tp_version_tag;  /* (the lookups above gave the class one) */
    }
    for (int i = 0; i < N_FIELDS; i++) {
        Py_ssize_t off = self->req_offsets[i];
        PyObject *v = off >= 0 ? *(PyObject **)((char *)req + off) : NULL;
        out[i] = v != NULL ? Py_NewRef(v) : PyObject_GetAttr(req, field_str[i]);  /* (an unset slot raises) */
        if (out[i] == NULL) {
            while (i--)
                Py_DECREF(out[i]);
            return -1;
        }
    }
    return 0;
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

/* REMOTE_ADDR and REMOTE_PORT of a peer address, as
 * lichen.wsgi.environ._remote() gives them. */
static int
remote_strings(PyObject *remote, PyObject **addr, PyObject **port)
{
    if (!PyTuple_Check(remote) || PyTuple_GET_SIZE(remote) < 2) {  /* a unix socket peer */
        *addr = Py_NewRef(s_empty);
        *port = Py_NewRef(s_empty);
        return 0;
    }
    PyObject *host = PyTuple_GET_ITEM(remote, 0);
    if (!PyUnicode_Check(host)) {
        PyErr_Format(PyExc_TypeError, "peer host must be str, not %.100s", Py_TYPE(host)->tp_name);
        return -1;
    }
    /* An IPv4 client of a dual-stack listener shows as IPv4. */
    if (PyUnicode_Tailmatch(host, s_ffff, 0, PY_SSIZE_T_MAX, -1) == 1 &&
        PyUnicode_FindChar(host, '.', 0, PY_SSIZE_T_MAX, 1) >= 0)
        *addr = PyUnicode_Substring(host, 7, PyUnicode_GET_LENGTH(host));
    else
        *addr = Py_NewRef(host);
    if (*addr == NULL)
        return -1;
    *port = port_string(PyTuple_GET_ITEM(remote, 1));
    if (*port == NULL) {
        Py_CLEAR(*addr);
        return -1;
    }
    return 0;
}

/* bytes -> str, one character per byte (latin-1), as PEP 3333 asks. */
static PyObject *
latin1(PyObject *b, const char *what)
{
    if (!PyBytes_Check(b)) {
        PyErr_Format(PyExc_TypeError, "request %s must be bytes, not %.100s", what, Py_TYPE(b)->tp_name);
        return NULL;
    }
    return PyUnicode_DecodeLatin1(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b), NULL);
}

/* PATH_INFO: the path percent-decoded as urllib.parse.unquote_to_bytes
 * does it (a % that starts no valid escape stays), then read as latin-1. */
static PyObject *
path_info(PyObject *path)
{
    if (!PyBytes_Check(path))
        return latin1(path, "path");
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(path);
    Py_ssize_t n = PyBytes_GET_SIZE(path);
    const unsigned char *pct = memchr(p, '%', n);
    if (pct == NULL)
        return PyUnicode_DecodeLatin1((const char *)p, n, NULL);
    unsigned char small[512];
    unsigned char *d = n <= (Py_ssize_t)sizeof(small) ? small : PyMem_Malloc(n);
    if (d == NULL)
        return PyErr_NoMemory();
    Py_ssize_t i = pct - p, j = i;
    memcpy(d, p, i);
    for (; i < n; i++) {
        int hi, lo;
        if (p[i] == '%' && i + 2 < n && (hi = hexval(p[i + 1])) >= 0 && (lo = hexval(p[i + 2])) >= 0) {
            d[j++] = (unsigned char)(hi * 16 + lo);
            i += 2;
        } else {
            d[j++] = p[i];
        }
    }
    PyObject *out = PyUnicode_DecodeLatin1((const char *)d, j, NULL);
    if (d != small)
        PyMem_Free(d);
    return out;
}

/* The environ key of a header name, by lichen.wsgi.environ.header_key()'s
 * rules: Py_None for names the environ drops (those with "_": X-Foo_Bar
 * must not pose as X-Foo-Bar; and Proxy, never HTTP_PROXY, which CGI-style
 * code reads as its proxy: httpoxy), CONTENT_TYPE and CONTENT_LENGTH
 * without prefix, else "HTTP_" + the name upper-cased with "-" as "_". */
static PyObject *
make_key(PyObject *name)
{
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(name);
    Py_ssize_t n = PyBytes_GET_SIZE(name);
    if (memchr(s, '_', n) || (n == 5 && memcmp(s, "proxy", 5) == 0))
        return Py_NewRef(Py_None);
    if (n == 12 && memcmp(s, "content-type", 12) == 0)
        return Py_NewRef(k_content_type);
    if (n == 14 && memcmp(s, "content-length", 14) == 0)
        return Py_NewRef(k_content_length);
    if (n == 6 && memcmp(s, "cookie", 6) == 0)
        return Py_NewRef(k_cookie);
    int ascii = 1;
    for (Py_ssize_t i = 0; i < n; i++)
        ascii &= s[i] < 0x80;
    if (!ascii) {
        /* str.upper() of latin-1 text may leave latin-1 ("ß" is "SS"): its
         * own rules, not a table here. */
        PyObject *text = PyUnicode_DecodeLatin1((const char *)s, n, NULL);
        PyObject *up = text ? PyObject_CallMethodNoArgs(text, s_upper) : NULL;
        Py_XDECREF(text);
        PyObject *mangled = up ? PyUnicode_Replace(up, s_dash, s_underscore, -1) : NULL;
        Py_XDECREF(up);
        PyObject *key = mangled ? PyUnicode_Concat(s_http, mangled) : NULL;
        Py_XDECREF(mangled);
        return key;
    }
    PyObject *key = PyUnicode_New(5 + n, 127);
    if (key == NULL)
        return NULL;
    Py_UCS1 *d = PyUnicode_1BYTE_DATA(key);
    memcpy(d, "HTTP_", 5);
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        d[5 + i] = (Py_UCS1)(c >= 'a' && c <= 'z' ? c - 32 : c == '-' ? '_' : c);
    }
    return key;
}

/* Environ keys by header name: most requests carry the same few names.  A
 * slot holds the last name that hashed there (clients choose names: never
 * unbounded) and its key; the name object itself is kept, so the same
 * object (from the head parser's own name cache) matches by identity.  The
 * slot also remembers whether its key is a proxy key for the builder that
 * last asked (its serial), so a server's builder asks its set once. */
#define KEY_SLOTS 256
typedef struct {
    PyObject *name;
    PyObject *key;
    unsigned long long proxy_serial;  /* 0: nobody asked yet */
    int is_proxy;
} key_entry;
static key_entry key_cache[KEY_SLOTS];

/* The cache entry of `name`, filled when it was not there (NULL with an
 * error set when making its key failed). */
static key_entry *
environ_key(PyObject *name, Py_hash_t hash)
{
    key_entry *e = &key_cache[(size_t)hash % KEY_SLOTS];
    PyObject *cached = e->name;
    if (cached == name ||
        (cached != NULL && PyBytes_GET_SIZE(cached) == PyBytes_GET_SIZE(name) &&
         memcmp(PyBytes_AS_STRING(cached), PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name)) == 0))
        return e;
    PyObject *key = make_key(name);
    if (key == NULL)
        return NULL;
    Py_XSETREF(e->name, Py_NewRef(name));
    Py_XSETREF(e->key, key);
    e->proxy_serial = 0;
    return e;
}

/* Whether `key` (entry e's) is one of the builder's proxy keys. */
static int
is_proxy_key(EnvironBuilder *self, key_entry *e, PyObject *key)
{
    if (e->proxy_serial == self->serial && e->key == key)
        return e->is_proxy;
    int in = PySet_Contains(self->proxy_keys, key);
    if (in >= 0 && e->key == key) {  /* (unless a base key's __eq__ replaced the entry meanwhile) */
        e->proxy_serial = self->serial;
        e->is_proxy = in;
    }
    return in;
}

/* Add one field to the environ under `key`: a repeated HTTP_* field joins
 * the list (", ", or "; " for cookies), a CONTENT_* one replaces.
 * `may_exist` false: the key cannot be there yet, so no lookup. */
static int
add_field(PyObject *env, PyObject *key, PyObject *value, int may_exist)
{
    PyObject *text = latin1(value, "field value");
    if (text == NULL)
        return -1;
    if (may_exist && key != k_content_type && key != k_content_length) {
        PyObject *old = PyDict_GetItemWithError(env, key);
        if (old == NULL && PyErr_Occurred())
            goto fail;
        if (old != NULL) {
            int cookie = key == k_cookie || PyUnicode_Compare(key, k_cookie) == 0;
            PyObject *joined = PyUnicode_Concat(old, cookie ? s_semi : s_comma);
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

/* The fields into the environ; sets *proxied when a key is a proxy key. */
static int
add_fields(EnvironBuilder *self, PyObject *env, PyObject *headers, int *proxied)
{
    PyObject *seq = PySequence_Fast(headers, "request headers must be iterable");
    if (seq == NULL)
        return -1;
    /* Hashes of the keys so far: a repeat may join.  (Of the keys, not the
     * names: b"cookie" and b"Cookie" in a hand-made Request share one.) */
    unsigned char seen[KEY_SLOTS / 8] = {0};
    /* (The size is read again each time: nothing here runs Python code on
     * str keys, but a base environ's own keys might.) */
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        /* (A pair is a 2-tuple from either lane; anything else is unpacked
         * as Python would.) */
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *pair = PyTuple_CheckExact(item) ? Py_NewRef(item) : PySequence_Tuple(item);
        if (pair == NULL)
            goto error;
        if (PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_ValueError, "a request header must be a (name, value) pair");
            Py_DECREF(pair);
            goto error;
        }
        PyObject *name = PyTuple_GET_ITEM(pair, 0);
        Py_hash_t hash = PyBytes_Check(name) ? PyObject_Hash(name) : -1;
        if (hash == -1) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "request field name must be bytes, not %.100s",
                             Py_TYPE(name)->tp_name);
            Py_DECREF(pair);
            goto error;
        }
        key_entry *e = environ_key(name, hash);
        PyObject *key = e ? Py_NewRef(e->key) : NULL;
        int bad = key == NULL;
        if (!bad && key != Py_None) {
            unsigned int bit = (size_t)PyObject_Hash(key) % KEY_SLOTS;  /* (a str caches its hash) */
            int repeat = seen[bit / 8] & (1u << (bit % 8));
            seen[bit / 8] |= (unsigned char)(1u << (bit % 8));
            bad = add_field(env, key, PyTuple_GET_ITEM(pair, 1), repeat || self->base_has_fields) < 0;
            if (!bad && !*proxied && self->check_fields) {
                int in = is_proxy_key(self, e, key);
                bad = in < 0;
                *proxied = in > 0;
            }
        }
        Py_XDECREF(key);
        Py_DECREF(pair);
        if (bad)
            goto error;
    }
    Py_DECREF(seq);
    return 0;
error:
    Py_DECREF(seq);
    return -1;
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

static PyObject *
EnvironBuilder_build(EnvironBuilder *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "build(remote, request, wsgi_input=None) takes 2 or 3 arguments");
        return NULL;
    }
    PyObject *remote = args[0], *inp = nargs == 3 && args[2] != Py_None ? args[2] : self->empty_input;
    PyObject *f[N_FIELDS];
    if (request_fields(self, args[1], f) < 0)
        return NULL;
    PyObject *env = NULL, *result = NULL, *addr, *port;
    int proxied = self->always_proxied;
    if (remote_strings(remote, &addr, &port) < 0)
        goto done;
    env = PyDict_Copy(self->base);
    if (env == NULL) {
        Py_DECREF(addr);
        Py_DECREF(port);
        goto done;
    }
    if (set_item(env, k_remote_addr, addr) < 0) {
        Py_DECREF(port);  /* set_item took addr whatever happened */
        goto done;
    }
    if (set_item(env, k_remote_port, port) < 0 || PyDict_SetItem(env, k_method, f[F_METHOD]) < 0 ||
        set_item(env, k_path, path_info(f[F_PATH])) < 0 || set_item(env, k_query, latin1(f[F_QUERY], "query")) < 0)
        goto done;
    PyObject *uri = latin1(f[F_TARGET], "target");
    if (uri == NULL)
        goto done;
    int bad = PyDict_SetItem(env, k_raw_uri, uri) < 0 || PyDict_SetItem(env, k_request_uri, uri) < 0;
    Py_DECREF(uri);
    if (bad)
        goto done;
    PyObject *version = f[F_VERSION];
    int v10 = version == s_v10 ? 1 : version == s_v11 ? 0 : PyObject_RichCompareBool(version, s_v10, Py_EQ);
    if (v10 < 0 || PyDict_SetItem(env, k_protocol, v10 ? s_proto10 : s_proto11) < 0 ||
        PyDict_SetItem(env, k_input, inp) < 0)
        goto done;
    if (add_fields(self, env, f[F_HEADERS], &proxied) < 0)
        goto done;
    /* The effective host has the last word, over a Host field and over an
     * HTTP_HOST from the server's environ setting (in absolute-form the
     * target's authority replaces any Host field). */
    if (f[F_HOST] != Py_None) {
        if (set_item(env, k_host, latin1(f[F_HOST], "host")) < 0)
            goto done;
        proxied |= self->host_proxied;
    }
    result = PyTuple_New(2);
    if (result != NULL) {
        PyTuple_SET_ITEM(result, 0, env);
        PyTuple_SET_ITEM(result, 1, Py_NewRef(proxied ? Py_True : Py_False));
        env = NULL;
    }
done:
    Py_XDECREF(env);
    for (int i = 0; i < N_FIELDS; i++)
        Py_DECREF(f[i]);
    return result;
}

static PyMethodDef EnvironBuilder_methods[] = {
    {"build", (PyCFunction)(void (*)(void))EnvironBuilder_build, METH_FASTCALL,
     "build(remote, request, wsgi_input=None) -> (environ, proxied)\n\n"
     "The environ of `request` (a lichen.http Request, from either lane) from\n"
     "peer address `remote`, with `wsgi_input` (else empty_input) as\n"
     "wsgi.input; equal to lichen.wsgi.environ.request_environ()'s.\n"
     "`proxied`: the environ holds one of `proxy_keys`."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EnvironBuilderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lichen._fastenv.EnvironBuilder",
    .tp_basicsize = sizeof(EnvironBuilder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "EnvironBuilder(base, empty_input, proxy_keys=frozenset())\n\n"
              "Builds the WSGI environ of each request from the base environ `base` (which\n"
              "must not change afterwards) in one C pass.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)EnvironBuilder_init,
    .tp_dealloc = (destructor)EnvironBuilder_dealloc,
    .tp_traverse = (traverseproc)EnvironBuilder_traverse,
    .tp_clear = (inquiry)EnvironBuilder_clear,
    .tp_methods = EnvironBuilder_methods,
};

static struct PyModuleDef fastenv_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "lichen._fastenv",
    .m_doc = "The WSGI environ of a request, for both lanes (see EnvironBuilder).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__fastenv(void)
{
    for (int i = 0; i < N_FIELDS; i++)
        if (intern(&field_str[i], field_names[i]) < 0)
            return NULL;
    if (intern(&s_v11, "1.1") < 0 || intern(&s_v10, "1.0") < 0 || intern(&s_proto11, "HTTP/1.1") < 0 || intern(&s_proto10, "HTTP/1.0") < 0 ||
        intern(&s_empty, "") < 0 || intern(&s_ffff, "::ffff:") < 0 || intern(&s_comma, ", ") < 0 ||
        intern(&s_semi, "; ") < 0 || intern(&s_http, "HTTP_") < 0 || intern(&s_upper, "upper") < 0 ||
        intern(&s_dash, "-") < 0 || intern(&s_underscore, "_") < 0 ||
        intern(&k_remote_addr, "REMOTE_ADDR") < 0 || intern(&k_remote_port, "REMOTE_PORT") < 0 ||
        intern(&k_method, "REQUEST_METHOD") < 0 || intern(&k_path, "PATH_INFO") < 0 ||
        intern(&k_query, "QUERY_STRING") < 0 || intern(&k_raw_uri, "RAW_URI") < 0 ||
        intern(&k_request_uri, "REQUEST_URI") < 0 || intern(&k_protocol, "SERVER_PROTOCOL") < 0 ||
        intern(&k_input, "wsgi.input") < 0 || intern(&k_content_type, "CONTENT_TYPE") < 0 ||
        intern(&k_content_length, "CONTENT_LENGTH") < 0 || intern(&k_cookie, "HTTP_COOKIE") < 0 ||
        intern(&k_host, "HTTP_HOST") < 0)
        return NULL;
    return module_with_type(&fastenv_module, &EnvironBuilderType, "EnvironBuilder");
}
