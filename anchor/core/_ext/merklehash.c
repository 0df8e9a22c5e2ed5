/*
 * anchor.core._merklehash: batch RFC 9162 node hashing over OpenSSL's SHA-256.
 *
 * Pure functions on bytes; the GIL is released while hashing. The Python fallback in
 * anchor/core/merkle.py computes exactly the same values and is used when this module is absent.
 *
 *   hash_level(level: bytes) -> bytes
 *       `level` holds n 32-byte hashes. Returns the n/2 parent hashes
 *       SHA-256(0x01 || level[2i] || level[2i+1]), followed by the last hash unchanged when n
 *       is odd: the next level of an RFC 9162 tree.
 *
 *   append_rows(size: int, frontier: bytes, entries: list[bytes], tile_size: int,
 *               salt: bytes) -> tuple[list[tuple[int, int]], list[tuple[bytes, bytes]], bytes]
 *       What the store writes for `entries` appended as leaves size, size+1, ...: per entry
 *       its digest-index row (the key: the first 8 bytes of SHA-256(salt || digest) as a
 *       signed big-endian integer, where the digest is entry bytes 4..36; then its leaf
 *       index), the rows sorted (by key, then index); per run of leaves in
 *       one tile of `tile_size` leaves, the concatenated leaf rows (each leaf's hash, then the hashes of the subtrees
 *       it completes, bottom up) and the
 *       concatenated entries, each after its 2-byte big-endian length; the new frontier.
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

static long long be64(const unsigned char *p) {
    unsigned long long v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return (long long)v;
}

struct index_row {
    long long key;
    unsigned long long idx;
};

static int by_key(const void *a, const void *b) {
    const struct index_row *x = a, *y = b;
    if (x->key != y->key) return (x->key > y->key) - (x->key < y->key);
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static PyObject *append_rows(PyObject *self, PyObject *args) {
    unsigned long long size, tile_size;
    Py_buffer front, salt;
    PyObject *entries;
    if (!PyArg_ParseTuple(args, "Ky*O!Ky*", &size, &front, &PyList_Type, &entries, &tile_size,
                          &salt))
        return NULL;
    SHA256_CTX salted;
    SHA256_Init(&salted);
    SHA256_Update(&salted, salt.buf, (size_t)salt.len);
    unsigned char stack[64][HASH];
    int depth = __builtin_popcountll(size);
    struct index_row *rows = NULL;
    PyObject *keys = NULL, *chunks = NULL, *result = NULL;
    PyObject *hashes = NULL, *blob = NULL;
    if (front.len != (Py_ssize_t)depth * HASH) {
        PyErr_SetString(PyExc_ValueError, "frontier does not match the tree size");
        goto done;
    }
    if (tile_size == 0) {
        PyErr_SetString(PyExc_ValueError, "tile size must be positive");
        goto done;
    }
    memcpy(stack, front.buf, front.len);
    Py_ssize_t count = PyList_GET_SIZE(entries);
    rows = PyMem_Malloc(sizeof(struct index_row) * (size_t)(count ? count : 1));
    chunks = PyList_New(0);
    if (rows == NULL || chunks == NULL) goto done;
    Py_ssize_t i = 0;
    while (i < count) {
        /* one chunk: the leaves from `size` up to the end of its tile */
        Py_ssize_t take = (Py_ssize_t)(tile_size - size % tile_size);
        if (take > count - i) take = count - i;
        Py_ssize_t hash_len = 0, entry_len = 0;
        unsigned long long s = size;
        for (Py_ssize_t j = i; j < i + take; j++, s++) {
            PyObject *item = PyList_GET_ITEM(entries, j);
            if (!PyBytes_Check(item)) {
                PyErr_SetString(PyExc_TypeError, "entries must be bytes");
                goto done;
            }
            Py_ssize_t n = PyBytes_GET_SIZE(item);
            if (n < 4 + HASH || n > 0xFFFF) {
                PyErr_SetString(PyExc_ValueError, "entry length out of range");
                goto done;
            }
            hash_len += (Py_ssize_t)(1 + __builtin_ctzll(~s)) * HASH;
            entry_len += 2 + n;
        }
        hashes = PyBytes_FromStringAndSize(NULL, hash_len);
        blob = PyBytes_FromStringAndSize(NULL, entry_len);
        if (hashes == NULL || blob == NULL) goto done;
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(hashes);
        unsigned char *ent = (unsigned char *)PyBytes_AS_STRING(blob);
        for (Py_ssize_t j = i; j < i + take; j++, size++) {
            PyObject *item = PyList_GET_ITEM(entries, j);
            const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(item);
            Py_ssize_t n = PyBytes_GET_SIZE(item);
            int merges = __builtin_ctzll(~size);
            SHA256_CTX ctx;
            static const unsigned char zero = 0x00;
            SHA256_Init(&ctx);
            SHA256_Update(&ctx, &zero, 1);
            SHA256_Update(&ctx, data, (size_t)n);
            SHA256_Final(out, &ctx);
            unsigned char digest_key[HASH];
            SHA256_CTX keyed = salted;
            SHA256_Update(&keyed, data + 4, HASH);
            SHA256_Final(digest_key, &keyed);
            rows[j].key = be64(digest_key);
            rows[j].idx = size;
            for (int m = 0; m < merges; m++) {
                depth--;
                node(stack[depth], out + m * HASH, out + (m + 1) * HASH);
            }
            memcpy(stack[depth], out + merges * HASH, HASH);
            depth++;
            out += (Py_ssize_t)(1 + merges) * HASH;
            ent[0] = (unsigned char)(n >> 8);
            ent[1] = (unsigned char)(n & 0xFF);
            memcpy(ent + 2, data, (size_t)n);
            ent += 2 + n;
        }
        PyObject *chunk = PyTuple_Pack(2, hashes, blob);
        Py_CLEAR(hashes);
        Py_CLEAR(blob);
        if (chunk == NULL) goto done;
        int failed = PyList_Append(chunks, chunk);
        Py_DECREF(chunk);
        if (failed) goto done;
        i += take;
    }
    /* sorted by key: B-tree inserts in key order touch each page once, in order */
    qsort(rows, (size_t)count, sizeof(struct index_row), by_key);
    keys = PyList_New(count);
    if (keys == NULL) goto done;
    for (Py_ssize_t j = 0; j < count; j++) {
        PyObject *row = PyTuple_New(2);
        if (row == NULL) goto done;
        PyList_SET_ITEM(keys, j, row);
        PyObject *key = PyLong_FromLongLong(rows[j].key);
        if (key == NULL) goto done;
        PyTuple_SET_ITEM(row, 0, key);
        PyObject *idx = PyLong_FromUnsignedLongLong(rows[j].idx);
        if (idx == NULL) goto done;
        PyTuple_SET_ITEM(row, 1, idx);
    }
    PyObject *new_front = PyBytes_FromStringAndSize((const char *)stack, (Py_ssize_t)depth * HASH);
    if (new_front == NULL) goto done;
    result = PyTuple_Pack(3, keys, chunks, new_front);
    Py_DECREF(new_front);
done:
    Py_XDECREF(hashes);
    Py_XDECREF(blob);
    Py_XDECREF(keys);
    Py_XDECREF(chunks);
    PyMem_Free(rows);
    PyBuffer_Release(&front);
    PyBuffer_Release(&salt);
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
    {"append_rows", append_rows, METH_VARARGS, "Index keys, tile chunks and new frontier."},
    {"inclusion_root", inclusion_root, METH_VARARGS, "Root implied by an inclusion proof."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "anchor.core._merklehash", "Batch RFC 9162 hashing over OpenSSL.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__merklehash(void) { return PyModule_Create(&module); }
