"""safetensors reader and writer, written from the format's specification
and laid out the way flowgrad's writer (nn/safetensors.c) lays files out, so
a file read here and written back comes out byte for byte the same:

  u64 little-endian N | N bytes of JSON header | data buffer

The header is one compact JSON object: "__metadata__" first (string to
string, in insertion order) when there is any, then one entry per tensor
{"dtype", "shape", "data_offsets": [begin, end]} with offsets relative to
the buffer start. Tensors are stored largest element size first (stable
among equal sizes), so each is aligned to its element size; the header is
padded with spaces so the buffer starts at a multiple of 8. Values are
little-endian, row-major.

Tensors are numpy arrays here; torch conversion is the caller's business.
"""
import json
import struct

import numpy as np

DTYPES = {
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "F32": np.dtype("<f4"),
    "I32": np.dtype("<i4"),
    "U8": np.dtype("u1"),
}
KEY_OF = {(v.kind, v.itemsize): k for k, v in DTYPES.items()}


def _json_string(s):
    # The same escapes as the C writer: \" \\ \n \r \t, other control bytes
    # as \u00XX, everything else (UTF-8 included) as is.
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif c < 0x20:
            out.append("\\u%04x" % c)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def encode(tensors, metadata=None):
    """tensors: list of (name, numpy array) in insertion order; metadata:
    list of (key, value) strings or a dict. Returns the file's bytes."""
    names = [n for n, _ in tensors]
    if len(set(names)) != len(names):
        raise ValueError("repeated tensor name")
    items = []
    for name, a in tensors:
        a = np.asarray(a)
        key = KEY_OF.get((a.dtype.kind, a.dtype.itemsize))
        if key is None:
            raise ValueError("%s: unsupported dtype %s" % (name, a.dtype))
        items.append((name, key, np.ascontiguousarray(a, dtype=DTYPES[key])))
    order = []
    for size in (8, 4, 2, 1):
        order += [it for it in items if DTYPES[it[1]].itemsize == size]
    parts = []
    if metadata:
        meta = metadata.items() if isinstance(metadata, dict) else metadata
        parts.append('"__metadata__":{' + ",".join(
            _json_string(k) + ":" + _json_string(v) for k, v in meta) + "}")
    offset = 0
    for name, key, a in order:
        end = offset + a.nbytes
        parts.append(_json_string(name) + ':{"dtype":"%s","shape":[%s],'
                     '"data_offsets":[%d,%d]}' % (key, ",".join(str(d) for d in a.shape),
                                                  offset, end))
        offset = end
    header = ("{" + ",".join(parts) + "}").encode("utf-8")
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + b"".join(a.tobytes() for _, _, a in order)


def decode(buf):
    """Returns (tensors as a list of (name, array) in header order, metadata
    as a list of (key, value)). Checks that the tensors tile the buffer."""
    if len(buf) < 8:
        raise ValueError("too short for the header length")
    (n,) = struct.unpack_from("<Q", buf, 0)
    if 8 + n > len(buf):
        raise ValueError("header runs past the end of the file")
    pairs = json.loads(buf[8:8 + n].decode("utf-8"), object_pairs_hook=list)
    data = buf[8 + n:]
    tensors, metadata, spans = [], [], []
    for name, entry in pairs:
        if name == "__metadata__":
            metadata = [(k, v) for k, v in entry]
            continue
        entry = dict(entry)
        dt = DTYPES[entry["dtype"]]
        shape = tuple(int(d) for d in entry["shape"])
        begin, end = entry["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * dt.itemsize:
            raise ValueError("%s: data_offsets do not match dtype and shape" % name)
        spans.append((begin, end, name))
        tensors.append((name, np.frombuffer(data[begin:end], dtype=dt).reshape(shape).copy()))
    expect = 0
    for begin, end, name in sorted(spans):
        if begin != expect:
            raise ValueError("%s: starts at %d, expected %d" % (name, begin, expect))
        expect = end
    if expect != len(data):
        raise ValueError("tensors cover %d of %d bytes" % (expect, len(data)))
    return tensors, metadata


def write(path, tensors, metadata=None):
    with open(path, "wb") as f:
        f.write(encode(tensors, metadata))


def read(path):
    with open(path, "rb") as f:
        return decode(f.read())
