/*
 * Optional C accelerator for wsclient, three functions; wsclient falls back to pure Python
 * for each when this module is not built (see docs/benchmarks.md for what they change):
 *
 * mask(data, key) -> bytes: octet i of data XORed with octet i % 4 of the 4-byte key
 * (RFC 6455 section 5.3).
 *
 * mask_frame(head, keys, at, payload) -> bytes: head + key + mask(payload, key), key being
 * keys[at:at + 4], in one allocation: the send side's short path for small messages
 * (wsclient.protocol.Protocol.encode_message_stream).
 *
 * scan_messages(buf, pos, max_frame, max_message, events) -> int: the receive side's short
 * path (wsclient.protocol.Protocol._parse): appends to the list ``events`` each whole,
 * single-frame, unmasked text (decoded, strict UTF-8) or binary message of ``buf`` from
 * ``pos`` on, and returns the offset of the first frame it left for Python: anything else
 * (control frames, fragments, RSV bits, a masked frame, a length that is not minimally
 * encoded or over a limit, invalid UTF-8) or an incomplete frame. It never raises for the
 * peer's input: Python reads that frame again and raises the protocol error itself.
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

PyDoc_STRVAR(mask_frame_doc,
"mask_frame(head, keys, at, payload, /)\n"
"--\n"
"\n"
"Return ``head + key + mask(payload, key)`` where ``key`` is ``keys[at:at + 4]``: a\n"
"whole masked frame built in one allocation. ``head``, ``keys`` and ``payload`` are\n"
"bytes.");

static PyObject *
mask_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *head, *keys, *payload, *result;
    Py_ssize_t at, hn, pn;
    unsigned char *out;
    const unsigned char *key;

    (void)module;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "mask_frame() takes exactly 4 arguments (%zd given)", nargs);
        return NULL;
    }
    head = args[0];
    keys = args[1];
    payload = args[3];
    if (!PyBytes_CheckExact(head) || !PyBytes_CheckExact(keys) || !PyBytes_CheckExact(payload)) {
        PyErr_SetString(PyExc_TypeError, "mask_frame() takes bytes for head, keys and payload");
        return NULL;
    }
    at = PyLong_AsSsize_t(args[2]);
    if (at == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (at < 0 || at > PyBytes_GET_SIZE(keys) - 4) {
        PyErr_SetString(PyExc_ValueError, "mask_frame(): no 4-byte key at that offset");
        return NULL;
    }
    hn = PyBytes_GET_SIZE(head);
    pn = PyBytes_GET_SIZE(payload);
    if (pn > PY_SSIZE_T_MAX - 4 - hn) {
        return PyErr_NoMemory();
    }
    result = PyBytes_FromStringAndSize(NULL, hn + 4 + pn);
    if (result == NULL) {
        return NULL;
    }
    out = (unsigned char *)PyBytes_AS_STRING(result);
    key = (const unsigned char *)PyBytes_AS_STRING(keys) + at;
    memcpy(out, PyBytes_AS_STRING(head), (size_t)hn);
    memcpy(out + hn, key, 4);
    xor_words(out + hn + 4, (const unsigned char *)PyBytes_AS_STRING(payload), pn, key);
    return result;
}

PyDoc_STRVAR(scan_messages_doc,
"scan_messages(buf, pos, max_frame, max_message, events, /)\n"
"--\n"
"\n"
"Append the simple whole messages of ``buf`` from ``pos`` to ``events``; return where\n"
"the first frame that Python must handle starts (see the module's comment).");

static Py_ssize_t
as_limit(PyObject *obj)
{
    /* A limit too large for Py_ssize_t is no limit. */
    Py_ssize_t v = PyLong_AsSsize_t(obj);
    if (v == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return -1;
        }
        PyErr_Clear();
        return PY_SSIZE_T_MAX;
    }
    return v;
}

static PyObject *
scan_messages(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    const unsigned char *buf;
    Py_ssize_t end, pos, max_frame, max_message;
    PyObject *events;

    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "scan_messages() takes exactly 5 arguments");
        return NULL;
    }
    if (!PyBytes_Check(args[0]) || !PyList_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "scan_messages() takes bytes and a list");
        return NULL;
    }
    buf = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    end = PyBytes_GET_SIZE(args[0]);
    events = args[4];
    pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    max_frame = as_limit(args[2]);
    if (max_frame == -1 && PyErr_Occurred()) {
        return NULL;
    }
    max_message = as_limit(args[3]);
    if (max_message == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (pos < 0 || pos > end) {
        PyErr_SetString(PyExc_ValueError, "pos out of range");
        return NULL;
    }
    while (end - pos >= 2) {
        unsigned char b0 = buf[pos], b1 = buf[pos + 1];
        Py_ssize_t hp = pos + 2;
        uint64_t length = b1 & 0x7F;
        PyObject *message;

        /* FIN, no RSV bit, text or binary; unmasked (a server never masks). */
        if ((b0 != 0x81 && b0 != 0x82) || (b1 & 0x80)) {
            break;
        }
        if (length == 126) {
            if (end - hp < 2) {
                break;
            }
            length = ((uint64_t)buf[hp] << 8) | buf[hp + 1];
            hp += 2;
            if (length < 126) {
                break;
            }
        }
        else if (length == 127) {
            int i;
            if (end - hp < 8) {
                break;
            }
            length = 0;
            for (i = 0; i < 8; i++) {
                length = (length << 8) | buf[hp + i];
            }
            hp += 8;
            if ((length >> 63) || length < 65536) {
                break;
            }
        }
        if (length > (uint64_t)max_frame || length > (uint64_t)max_message
                || length > (uint64_t)(end - hp)) {
            break;
        }
        if (b0 == 0x81) {
            message = PyUnicode_DecodeUTF8((const char *)buf + hp, (Py_ssize_t)length, NULL);
            if (message == NULL) {
                if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                    PyErr_Clear();  /* Python decodes it again and fails with 1007 */
                    break;
                }
                return NULL;
            }
        }
        else {
            message = PyBytes_FromStringAndSize((const char *)buf + hp, (Py_ssize_t)length);
            if (message == NULL) {
                return NULL;
            }
        }
        if (PyList_Append(events, message) < 0) {
            Py_DECREF(message);
            return NULL;
        }
        Py_DECREF(message);
        pos = hp + (Py_ssize_t)length;
    }
    return PyLong_FromSsize_t(pos);
}

static PyMethodDef speedups_methods[] = {
    {"mask", (PyCFunction)(void (*)(void))mask, METH_FASTCALL, mask_doc},
    {"mask_frame", (PyCFunction)(void (*)(void))mask_frame, METH_FASTCALL, mask_frame_doc},
    {"scan_messages", (PyCFunction)(void (*)(void))scan_messages, METH_FASTCALL, scan_messages_doc},
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
    "Optional C accelerator for wsclient (WebSocket masking, the receive side's short path).",
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
