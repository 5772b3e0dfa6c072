"""The few gRPC bytes the harness needs without a gRPC library (issue #14).

- `purchase_body`: a gRPC-framed `PurchaseRequest` (5-byte prefix + protobuf), the body file
  h2load sends on every request.
- `get_stock`: the server's own ledger (`GetStock`: orders and units sold), read with curl over
  HTTP/2 prior knowledge. The harness counts requests from it, never from a generator's own
  count: h2load counts an HTTP 200 as a success even when `grpc-status` is not 0.
"""

from __future__ import annotations

import shutil
import struct
import subprocess

SERVICE = "flashsale.v1.Checkout"


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def frame(message: bytes) -> bytes:
    """One uncompressed gRPC message: flag 0, 4-byte big-endian length, the message."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def purchase_request(user_id: str, quantity: int, request_id: str = "", round_: int = 0) -> bytes:
    """A `PurchaseRequest` (fields 1 user_id, 2 quantity, 3 request_id, 4 round)."""
    out = bytearray()
    for tag, text in ((0x0A, user_id), (0x1A, request_id)):
        raw = text.encode()
        if raw:
            out += bytes([tag]) + varint(len(raw)) + raw
    if quantity:
        out += b"\x10" + varint(quantity)
    if round_:
        out += b"\x20" + varint(round_)
    return bytes(out)


def purchase_body(user_id: str = "h2load", quantity: int = 1) -> bytes:
    """The body h2load sends: the same purchase every time (the server has no per-user limit
    by default and does not deduplicate request ids, so each places an order)."""
    return frame(purchase_request(user_id, quantity))


def decode_fields(message: bytes) -> dict[int, int]:
    """The varint fields of a protobuf message by number (other wire types are skipped)."""
    fields: dict[int, int] = {}
    i = 0

    def read_varint() -> int:
        nonlocal i
        shift = value = 0
        while True:
            if i >= len(message) or shift > 63:
                raise ValueError("truncated varint")
            byte = message[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while i < len(message):
        key = read_varint()
        number, kind = key >> 3, key & 7
        if kind == 0:
            fields[number] = read_varint()
        elif kind == 1:
            i += 8
        elif kind == 2:
            length = read_varint()  # before `i +=`, which would read `i` first
            i += length
        elif kind == 5:
            i += 4
        else:
            raise ValueError(f"unsupported wire type {kind}")
    if i != len(message):
        raise ValueError("truncated field")
    return fields


def unframe(body: bytes) -> bytes:
    if len(body) < 5 or body[0] != 0:
        raise ValueError(f"not one uncompressed gRPC message ({len(body)} bytes)")
    (length,) = struct.unpack(">I", body[1:5])
    if len(body) != 5 + length:
        raise ValueError(f"gRPC frame says {length} bytes, body has {len(body) - 5}")
    return body[5:]


def get_stock(port: int, timeout: float = 5.0) -> tuple[int, int]:
    """The server's ledger on 127.0.0.1:`port`: (orders, units sold) of the current round."""
    out = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", "--max-time", str(timeout), "-X", "POST",
         "-H", "content-type: application/grpc", "-H", "te: trailers", "--data-binary", "@-",
         f"http://127.0.0.1:{port}/{SERVICE}/GetStock"],
        input=frame(b""), capture_output=True, timeout=timeout + 5,
    )
    if out.returncode != 0:
        raise OSError(f"GetStock via curl failed: {out.stderr.decode(errors='replace').strip()}")
    fields = decode_fields(unframe(out.stdout))
    return fields.get(3, 0), fields.get(4, 0)


def have_curl() -> bool:
    return shutil.which("curl") is not None


if __name__ == "__main__":
    # Self-check of the codec (no server needed): python3 bench/wire.py
    assert varint(300) == b"\xac\x02"
    req = purchase_request("u1", 2, "u1.0")
    assert req == b"\x0a\x02u1\x1a\x04u1.0\x10\x02", req
    assert unframe(frame(req)) == req
    reply = b"\x08" + varint(-5) + b"\x18\x07\x20\x09\x2a\x01x"
    assert decode_fields(reply) == {1: (1 << 64) - 5, 3: 7, 4: 9}
    print("wire: ok")
