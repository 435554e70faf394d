#!/usr/bin/env python3
"""Writes the `service` target's seeds (fuzz/seeds/service/): one named request per
kind of answer the oracle tells apart, for each store mode.

A seed is the byte string from which `arbitrary` (1.5, as fuzz/Cargo.lock pins it)
builds the target's `Input`. The encoding, as `Input`'s derive reads it: an enum
variant is a little-endian u32 `x` choosing variant `(x * count) >> 32`; a u8 or a bool
is one byte (a bool is its low bit); an `Option` is a bool, then the value; a `Vec` is,
per element, a byte with its low bit set and the element, ended by a byte without it.
Should the encoding change, the seeds still decode, just to other requests: rerun this
and check what the target says. Usage: fuzz/seeds/service.py (from anywhere).
"""

import pathlib
import struct


def variant(index, count):
    """The u32 that chooses variant `index` of `count`."""
    x = 0 if index == 0 else ((index << 32) + count - 1) // count
    assert (x * count) >> 32 == index
    return struct.pack("<I", x)


def u8(value):
    return bytes([value])


def boolean(value):
    return u8(1 if value else 0)


def vec(items):
    """A `Vec` of already-encoded elements."""
    return b"".join(b"\x01" + item for item in items) + b"\x00"


def byte_vec(data):
    return vec(u8(b) for b in data)


STORES = {"ready": 0, "waiting": 1, "failsready": 2, "failswaiting": 3}
HTTP = {"http10": 0, "http11": 1, "http2": 2, "http3": 3}

# Fixture keys, by their index in the target's plan.
ACTIVE, WIDE, NO_SCOPES, REVOKED, EXPIRED, ENDED, EXPIRING, ENDING, UNSTORED, ACME = range(10)


def authorization(key, edit=None, scheme=0, trailer=b""):
    """`Name::Authorization` with `Value::Key` (scheme 0 is `ApiKey-v2`, one space)."""
    value = variant(1, 3) + variant(scheme, 4) + u8(1) + u8(key)
    if edit is None:
        value += boolean(False)
    else:
        position, byte, fix_checksum = edit
        value += boolean(True) + u8(position) + u8(byte) + boolean(fix_checksum)
    return variant(0, 3) + value + byte_vec(trailer)


def raw_authorization(data):
    return variant(0, 3) + variant(0, 3) + byte_vec(data)


def grpc(suffix):
    """`Name::ContentType` with `Value::Grpc(suffix)`: `application/grpc<suffix>`."""
    return variant(1, 3) + variant(2, 3) + byte_vec(suffix)


def raw_content_type(data):
    return variant(1, 3) + variant(0, 3) + byte_vec(data)


def seed(store, http, requirement, headers):
    """The `Input`; its last field (the headers) takes the rest of the bytes."""
    out = variant(STORES[store], 4) + variant(HTTP[http], 4) + u8(requirement)
    out += byte_vec(b"GET") + byte_vec(b"/reports")
    return out + b"".join(b"\x01" + h for h in headers)


# (name, http version, requirement index, headers)
REQUESTS = [
    ("validkey", "http11", 1, [authorization(ACTIVE)]),
    ("wrongsecret", "http11", 1, [authorization(ACTIVE, edit=(40, ord("Q"), True))]),
    ("badchecksum", "http11", 0, [authorization(ACTIVE, edit=(40, ord("Q"), False))]),
    ("rawauth", "http11", 0, [raw_authorization(b"Bearer abc")]),
    ("twofields", "http11", 0, [authorization(ACTIVE), authorization(WIDE)]),
    ("lacksscope", "http11", 3, [authorization(ACTIVE)]),
    ("revoked", "http11", 1, [authorization(REVOKED)]),
    ("expired", "http11", 1, [authorization(EXPIRED)]),
    ("ended", "http11", 1, [authorization(ENDED)]),
    ("expiring", "http11", 1, [authorization(EXPIRING)]),
    ("ending", "http2", 3, [authorization(ENDING)]),
    ("otherprefix", "http11", 1, [authorization(ACME)]),
    ("grpc", "http2", 1, [grpc(b""), authorization(REVOKED)]),
    ("grpcproto", "http2", 2, [grpc(b"+proto"), authorization(ACTIVE)]),
    ("grpcparams", "http2", 0, [grpc(b";charset=utf-8")]),
    ("grpcsuffix", "http2", 0, [grpc(b"XYZ")]),
    ("grpcweb", "http2", 0, [grpc(b"-web+proto"), authorization(UNSTORED)]),
    ("grpchttp1", "http11", 0, [grpc(b"")]),
    ("grpchttp3", "http3", 1, [grpc(b"+proto"), authorization(ACTIVE)]),
    ("grpctwice", "http2", 0, [raw_content_type(b"text/plain"), grpc(b"")]),
]


def main():
    directory = pathlib.Path(__file__).resolve().parent / "service"
    directory.mkdir(exist_ok=True)
    for old in directory.iterdir():
        old.unlink()
    for store in STORES:
        for name, http, requirement, headers in REQUESTS:
            (directory / f"{store}_{name}").write_bytes(seed(store, http, requirement, headers))


if __name__ == "__main__":
    main()
