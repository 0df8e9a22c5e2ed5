/*
 * anchor._merklehash: batch RFC 9162 node hashing over OpenSSL's SHA-256.
 *
 * Pure functions on bytes; the GIL is released while hashing. The Python fallback in
 * anchor/merkle.py computes exactly the same values and is used when this module is absent.
 *
 *   hash_level(level: bytes) -> bytes
 *       `level` holds n 32-byte hashes. Returns the n/2 parent hashes
 *       SHA-256(0x01 || level[2i] || level[2i+1]), followed by the last hash unchanged when n
 *       is odd: the next level of an RFC 9162 tree.
 *
 *   extend(size: int, frontier: bytes, entries: list[bytes]) -> tuple[list[bytes], bytes]
 *       Appends entries to a tree of `size` leaves whose complete subtrees (left to right,
 *       one per set bit of `size`) have the concatenated hashes `frontier`. Returns, per
 *       entry, its leaf hash followed by the hashes of the subtrees it completes (bottom up),
 *       and the new frontier.
 *
 *   inclusion_root(index: int, size: int, leaf: bytes, proof: bytes) -> bytes
 *       RFC 9162 section 2.1.3.2 steps 2-3 over a proof given as concatenated 32-byte
 *       hashes; returns the computed root, or raises ValueError when the proof's length does
 *       not fit (index, size). The caller checks sizes and compares the root.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/sha.h>
#include <string.h>

#define HASH 32

static void node(const unsigned char *left, const unsigned char *right, unsigned char *out) {
    SHA256_CTX ctx;
    static const unsigned char prefix = 0x01;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, &prefix, 1);
    SHA256_Update(&ctx, left, HASH);
    SHA256_Update(&ctx, right, HASH);
    SHA256_Final(out, &ctx);
}

static PyObject *hash_level(PyObject *self, PyObject *args) {
    Py_buffer in;
    if (!PyArg_ParseTuple(args, "y*", &in)) return NULL;
    if (in.len % HASH != 0) {
        PyBuffer_Release(&in);
        PyErr_SetString(PyExc_ValueError, "level length is not a multiple of 32");
        return NULL;
    }
    Py_ssize_t n = in.len / HASH;
    Py_ssize_t pairs = n / 2;
    Py_ssize_t out_n = pairs + (n & 1);
    PyObject *out = PyBytes_FromStringAndSize(NULL, out_n * HASH);
    if (out == NULL) {
        PyBuffer_Release(&in);
        return NULL;
    }
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
    const unsigned char *src = (const unsigned char *)in.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < pairs; i++) {
        node(src + 2 * i * HASH, src + (2 * i + 1) * HASH, dst + i * HASH);
    }
    if (n & 1) memcpy(dst + pairs * HASH, src + (n - 1) * HASH, HASH);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&in);
    return out;
}

static PyObject *extend(PyObject *self, PyObject *args) {
    unsigned long long size;
    Py_buffer front;
    PyObject *entries;
    if (!PyArg_ParseTuple(args, "Ky*O!", &size, &front, &PyList_Type, &entries)) return NULL;
    unsigned char stack[64][HASH];
    int depth = __builtin_popcountll(size);
    PyObject *blobs = NULL, *result = NULL;
    if (front.len != (Py_ssize_t)depth * HASH) {
        PyErr_SetString(PyExc_ValueError, "frontier does not match the tree size");
        goto done;
    }
    memcpy(stack, front.buf, front.len);
    Py_ssize_t count = PyList_GET_SIZE(entries);
    blobs = PyList_New(count);
    if (blobs == NULL) goto done;
    for (Py_ssize_t i = 0; i < count; i++, size++) {
        PyObject *item = PyList_GET_ITEM(entries, i);
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "entries must be bytes");
            goto done;
        }
        int merges = __builtin_ctzll(~size);  /* trailing one bits of the new leaf's index */
        PyObject *blob = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(1 + merges) * HASH);
        if (blob == NULL) goto done;
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(blob);
        SHA256_CTX ctx;
        static const unsigned char zero = 0x00;
        SHA256_Init(&ctx);
        SHA256_Update(&ctx, &zero, 1);
        SHA256_Update(&ctx, PyBytes_AS_STRING(item), (size_t)PyBytes_GET_SIZE(item));
        SHA256_Final(out, &ctx);
        for (int m = 0; m < merges; m++) {
            depth--;
            node(stack[depth], out + m * HASH, out + (m + 1) * HASH);
        }
        memcpy(stack[depth], out + merges * HASH, HASH);
        depth++;
        PyList_SET_ITEM(blobs, i, blob);
    }
    PyObject *new_front = PyBytes_FromStringAndSize((const char *)stack, (Py_ssize_t)depth * HASH);
    if (new_front == NULL) goto done;
    result = PyTuple_Pack(2, blobs, new_front);
    Py_DECREF(new_front);
done:
    Py_XDECREF(blobs);
    PyBuffer_Release(&front);
    return result;
}

static PyObject *inclusion_root(PyObject *self, PyObject *args) {
    unsigned long long index, size;
    Py_buffer leaf, proof;
    if (!PyArg_ParseTuple(args, "KKy*y*", &index, &size, &leaf, &proof)) return NULL;
    PyObject *result = NULL;
    if (leaf.len != HASH || proof.len % HASH != 0 || size == 0 || index >= size) {
        PyErr_SetString(PyExc_ValueError, "malformed inclusion proof arguments");
        goto done;
    }
    unsigned char r[HASH], tmp[HASH];
    memcpy(r, leaf.buf, HASH);
    unsigned long long fn = index, sn = size - 1;
    const unsigned char *p = (const unsigned char *)proof.buf;
    Py_ssize_t count = proof.len / HASH;
    for (Py_ssize_t i = 0; i < count; i++, p += HASH) {
        if (sn == 0) {
            PyErr_SetString(PyExc_ValueError, "proof is too long");
            goto done;
        }
        if ((fn & 1) || fn == sn) {
            node(p, r, tmp);
            if (!(fn & 1)) {
                while (fn && !(fn & 1)) {
                    fn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            node(r, p, tmp);
        }
        memcpy(r, tmp, HASH);
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0) {
        PyErr_SetString(PyExc_ValueError, "proof is too short");
        goto done;
    }
    result = PyBytes_FromStringAndSize((const char *)r, HASH);
done:
    PyBuffer_Release(&leaf);
    PyBuffer_Release(&proof);
    return result;
}

static PyMethodDef methods[] = {
    {"hash_level", hash_level, METH_VARARGS, "Parent hashes of one RFC 9162 tree level."},
    {"extend", extend, METH_VARARGS, "Leaf rows and new frontier for appended entries."},
    {"inclusion_root", inclusion_root, METH_VARARGS, "Root implied by an inclusion proof."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "anchor._merklehash", "Batch RFC 9162 hashing over OpenSSL.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__merklehash(void) { return PyModule_Create(&module); }
