/* Helpers shared by the two C extensions of src/_http/: the head parser
 * (head.c, lichen._fasthead) and the environ builder (environ.c,
 * lichen._fastenv).
 *
 * Strategy: each extension is compiled on its own, so these are static
 * functions, one copy per extension; they are the few things both need:
 * reading a hex digit, interning a constant string, finding where a slots
 * class keeps a field, so that a Request is filled (head.c) and read
 * (environ.c) directly in its slots instead of through attribute calls, and
 * making a module that holds one type.
 */
#ifndef LICHEN_HTTP_COMMON_H
#define LICHEN_HTTP_COMMON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

static inline int
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

static inline int
intern(PyObject **slot, const char *s)
{
    *slot = PyUnicode_InternFromString(s);
    return *slot == NULL ? -1 : 0;
}

/* Where instances of `cls` keep the field `name`: the offset of its slot
 * (an object slot, unset until assigned), or -1 when the field is anything
 * else (a property, a class attribute, a __dict__ entry: read it with
 * getattr).  Never fails. */
static inline Py_ssize_t
slot_offset(PyObject *cls, PyObject *name)
{
    PyObject *d = PyObject_GetAttr(cls, name);
    if (d == NULL) {
        PyErr_Clear();
        return -1;
    }
    Py_ssize_t off = -1;
    /* (A member of another class's layout, assigned to this one, is not.) */
    if (Py_IS_TYPE(d, &PyMemberDescr_Type) && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX &&
        PyType_Check(cls) && PyType_IsSubtype((PyTypeObject *)cls, PyDescr_TYPE(d)))
        off = ((PyMemberDescrObject *)d)->d_member->offset;
    Py_DECREF(d);
    return off;
}

/* The module `def` with `type` in it as `name` (NULL with an error set). */
static PyObject *
module_with_type(struct PyModuleDef *def, PyTypeObject *type, const char *name)
{
    if (PyType_Ready(type) < 0)
        return NULL;
    PyObject *mod = PyModule_Create(def);
    if (mod == NULL)
        return NULL;
    if (PyModule_AddObjectRef(mod, name, (PyObject *)type) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}

#endif
