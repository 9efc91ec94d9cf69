"""The PostgreSQL wire protocol, as much of it as the local endpoint needs.

A message after the startup is a type byte and an int32 length (which counts itself) and
its body; a startup-phase packet (StartupMessage, SSLRequest, GSSENCRequest,
CancelRequest) has no type byte. ``Framer`` cuts a byte stream into whole messages without
copying their bytes around; the builders make the few messages the endpoint sends itself.
No maintained PyPI library does this part of a proxy's job, so it is written out here.
"""

from __future__ import annotations

import struct

PROTOCOL_3 = 3 << 16
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
TLS_HANDSHAKE = 0x16  # the first byte of a TLS record carrying a ClientHello

#: The longest startup packet PostgreSQL accepts (MAX_STARTUP_PACKET_LENGTH).
MAX_STARTUP = 10_000


class ProtocolError(Exception):
    """The peer does not speak the protocol (a bad length, a truncated packet)."""


class Framer:
    """Feed it bytes; take whole ``(type, message)`` pairs out, ``message`` being the whole
    message (type byte, length and body), as it travels."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        buffer, start, found = self._buffer, 0, []
        while len(buffer) - start >= 5:
            (length,) = struct.unpack_from("!i", buffer, start + 1)
            if length < 4:
                raise ProtocolError(f"a message length of {length}")
            end = start + 1 + length
            if end > len(buffer):
                break
            found.append((buffer[start], bytes(buffer[start:end])))
            start = end
        del buffer[:start]
        return found


    def scan(self, data: bytes) -> tuple[bytes, list[tuple[int, int, int]]]:
        """Like ``feed``, without a copy per message: the whole messages that have arrived,
        as one ``bytes``, and each one's (type, start, end) in it."""
        self._buffer += data
        buffer, start, found = self._buffer, 0, []
        while len(buffer) - start >= 5:
            (length,) = struct.unpack_from("!i", buffer, start + 1)
            if length < 4:
                raise ProtocolError(f"a message length of {length}")
            end = start + 1 + length
            if end > len(buffer):
                break
            found.append((buffer[start], start, end))
            start = end
        whole = bytes(buffer[:start])
        del buffer[:start]
        return whole, found


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def body(raw: bytes) -> bytes:
    """A whole message's body (without its type byte and length)."""
    return raw[5:]


def cstring(text: str) -> bytes:
    return text.encode() + b"\0"


def read_cstring(data: bytes, offset: int) -> tuple[bytes, int]:
    end = data.index(b"\0", offset)
    return data[offset:end], end + 1


def startup_parameters(packet: bytes) -> dict[str, str]:
    """A StartupMessage's parameters (``packet``: after its length and version)."""
    params: dict[str, str] = {}
    items = packet.split(b"\0")
    if len(items) < 2 or items[-1] != b"" or items[-2] != b"":
        raise ProtocolError("a startup packet that does not end in two NULs")
    pairs = items[:-2]
    if len(pairs) % 2:
        raise ProtocolError("a startup parameter without a value")
    for name, value in zip(pairs[::2], pairs[1::2], strict=True):
        params[name.decode(errors="replace")] = value.decode(errors="replace")
    return params


def startup_message(params: dict[str, str], version: int = PROTOCOL_3) -> bytes:
    payload = struct.pack("!i", version) + b"".join(
        cstring(k) + cstring(v) for k, v in params.items()) + b"\0"
    return struct.pack("!i", len(payload) + 4) + payload


def cancel_request(pid: int, key: bytes) -> bytes:
    payload = struct.pack("!ii", CANCEL_REQUEST, pid) + key
    return struct.pack("!i", len(payload) + 4) + payload


def error_response(sqlstate: str, text: str, *, severity: str = "FATAL",
                   detail: str | None = None, hint: str | None = None) -> bytes:
    fields = [(b"S", severity), (b"V", severity), (b"C", sqlstate), (b"M", text)]
    if detail:
        fields.append((b"D", detail))
    if hint:
        fields.append((b"H", hint))
    return message(b"E", b"".join(code + cstring(value) for code, value in fields) + b"\0")


def error_fields(raw: bytes) -> dict[str, str]:
    """An ErrorResponse's or NoticeResponse's fields, by their code letter."""
    fields, data, offset = {}, body(raw), 0
    while offset < len(data) and data[offset] != 0:
        code = chr(data[offset])
        value, offset = read_cstring(data, offset + 1)
        fields[code] = value.decode(errors="replace")
    return fields


def authentication(code: int, data: bytes = b"") -> bytes:
    return message(b"R", struct.pack("!i", code) + data)


AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12


def backend_key_data(pid: int, key: bytes) -> bytes:
    return message(b"K", struct.pack("!i", pid) + key)


def command_complete(tag: str) -> bytes:
    return message(b"C", cstring(tag))


def parse_message(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """A Parse message's (statement name, query, the rest: parameter types)."""
    data = body(raw)
    name, offset = read_cstring(data, 0)
    query, offset = read_cstring(data, offset)
    return name, query, data[offset:]


def bind_names(raw: bytes) -> tuple[bytes, bytes]:
    """A Bind message's (portal, statement)."""
    data = body(raw)
    portal, offset = read_cstring(data, 0)
    statement, _ = read_cstring(data, offset)
    return portal, statement
