/*
 * Optional C accelerator for wsclient: WebSocket masking (RFC 6455 section 5.3).
 *
 * One function, mask(data, key) -> bytes: octet i of data XORed with octet i % 4 of the
 * 4-byte key. wsclient.frames uses it when it is built and falls back to pure Python
 * otherwise; see docs/benchmarks.md for how much it changes.
 *
 * The loop works on 8-byte words (the key repeated twice). Loads and stores go through
 * memcpy with a constant size, which compilers turn into plain unaligned moves: the input
 * can be any slice of a buffer, so no alignment is assumed anywhere.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

/* The GIL stays held throughout. Releasing it from 64 KiB up was measured (benchmark
   notes in docs/benchmarks.md): with another Python thread busy, each 64 KiB call took
   3.7x as long (waiting to take the GIL back) and the other thread got no more done; at
   16 MiB neither side gained measurably. wsclient masks 16 KiB fragments by default,
   about 1 us each at memory speed, well inside one GIL switch interval. */

static void
xor_words(unsigned char *out, const unsigned char *in, Py_ssize_t n, const unsigned char key[4])
{
    uint64_t k8, w;
    unsigned char k8_bytes[8];
    Py_ssize_t i = 0;
    Py_ssize_t whole = n & ~(Py_ssize_t)7;

    /* The key twice, in memory order, so that the word XOR works whatever the byte order. */
    memcpy(k8_bytes, key, 4);
    memcpy(k8_bytes + 4, key, 4);
    memcpy(&k8, k8_bytes, 8);

    for (; i < whole; i += 8) {
        memcpy(&w, in + i, 8);
        w ^= k8;
        memcpy(out + i, &w, 8);
    }
    /* The tail starts at a multiple of 8, so its key phase starts at octet 0. */
    for (; i < n; i++) {
        out[i] = in[i] ^ key[i & 3];
    }
}

static int
read_key(PyObject *obj, unsigned char key[4])
{
    Py_buffer view;

    if (PyBytes_CheckExact(obj)) {
        if (PyBytes_GET_SIZE(obj) != 4) {
            PyErr_SetString(PyExc_ValueError, "the masking key must be exactly 4 bytes");
            return -1;
        }
        memcpy(key, PyBytes_AS_STRING(obj), 4);
        return 0;
    }
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (view.len != 4) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "the masking key must be exactly 4 bytes");
        return -1;
    }
    memcpy(key, view.buf, 4);
    PyBuffer_Release(&view);
    return 0;
}

PyDoc_STRVAR(mask_doc,
"mask(data, key, /)\n"
"--\n"
"\n"
"Return ``data`` XORed with the 4-byte masking ``key`` repeated, as ``bytes``.\n"
"\n"
"``data`` is any bytes-like object (non-contiguous views are copied first).\n"
"Masking is its own inverse, so this also unmasks.");

static PyObject *
mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *data, *result;
    unsigned char key[4];
    unsigned char *out;
    Py_buffer view;
    Py_ssize_t n;

    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "mask() takes exactly 2 arguments (%zd given)", nargs);
        return NULL;
    }
    data = args[0];
    if (read_key(args[1], key) < 0) {
        return NULL;
    }

    /* bytes: no buffer export needed. */
    if (PyBytes_CheckExact(data)) {
        n = PyBytes_GET_SIZE(data);
        result = PyBytes_FromStringAndSize(NULL, n);
        if (result == NULL) {
            return NULL;
        }
        out = (unsigned char *)PyBytes_AS_STRING(result);
        xor_words(out, (const unsigned char *)PyBytes_AS_STRING(data), n, key);
        return result;
    }
    if (PyUnicode_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "mask() needs a bytes-like object; encode text first");
        return NULL;
    }

    /* Any other exporter. PyBUF_FULL_RO accepts every shape: a C-contiguous buffer is read
       in place, anything else is first copied into the result in C order. */
    if (PyObject_GetBuffer(data, &view, PyBUF_FULL_RO) < 0) {
        return NULL;
    }
    n = view.len;
    result = PyBytes_FromStringAndSize(NULL, n);
    if (result == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    out = (unsigned char *)PyBytes_AS_STRING(result);
    if (PyBuffer_IsContiguous(&view, 'C')) {
        xor_words(out, (const unsigned char *)view.buf, n, key);
    }
    else {
        if (PyBuffer_ToContiguous(out, &view, n, 'C') < 0) {
            PyBuffer_Release(&view);
            Py_DECREF(result);
            return NULL;
        }
        xor_words(out, out, n, key);
    }
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"mask", (PyCFunction)(void (*)(void))mask, METH_FASTCALL, mask_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot speedups_slots[] = {
#if PY_VERSION_HEX >= 0x030C0000
    /* No module state and no globals: safe in subinterpreters with their own GIL. */
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    /* Touches no shared mutable state: safe without the GIL on free-threaded builds. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "wsclient._speedups",
    "Optional C accelerator for wsclient (WebSocket masking).",
    0,
    speedups_methods,
    speedups_slots,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
