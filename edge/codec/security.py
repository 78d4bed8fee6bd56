"""Authenticated encryption of packet data with AES-256-GCM, modelled on CCSDS SDLS (355.0-B).

Why: the latent stream is not secret. Coding is deterministic and public imagery gives an attacker
image/stream pairs, so without encryption anyone with the bundle decodes the downlink, and anyone can
forge tiles. Threat model and limits: docs/security.md.

Per packet, the data field after the (clear) secondary header becomes::

    security header  14 B  u16 SPI (names the key), 12 B IV = 8 B salt chosen at random when the sealer
                           starts || u32 counter (one per packet, never reused under one salt)
    ciphertext       n B   AES-256-GCM of the segment
    tag              16 B  GCM tag; associated data = primary header, secondary header, security header

The IV never repeats: a restart, a reset or a lost state file all draw a fresh 64-bit random salt (a repeat
needs ~2^32 restarts, the birthday bound), and the counter rolls the salt over before it wraps. The ground
rejects a packet whose (SPI, IV) it has already accepted: a replay, or a duplicate from the link.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from cvae.edge.errors import CodecError, InputError

__all__ = ["key_file_exposure", "KeyFileError", "AuthenticationError", "ReplayError", "load_key_file", "Sealer", "Opener",
           "SECURITY_HEADER", "TAG", "OVERHEAD"]

SECURITY_HEADER = 14
TAG = 16
OVERHEAD = SECURITY_HEADER + TAG
_SH = struct.Struct(">H8sI")


class KeyFileError(InputError):
    """A key file that is missing, malformed or of the wrong size."""


class AuthenticationError(CodecError, ValueError):
    """Tag mismatch: wrong key, or the packet was altered."""


class ReplayError(CodecError, ValueError):
    """A packet whose IV was already accepted."""


def load_key_file(path: str | Path) -> tuple[int, bytes]:
    """Read ``SPI:HEX`` (one line: the security parameter index, a colon, 64 hex digits of an AES-256 key).

    Returns ``(spi, key)``. Make one with ``cvae-keygen`` or ``python -c "import os; print('1:' + os.urandom(32).hex())"``.
    """
    p = Path(path)
    try:
        text = p.read_text().strip()
    except FileNotFoundError:
        raise KeyFileError(f"key file {p} does not exist; create one as SPI:HEX (e.g. 1: and 64 hex digits)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise KeyFileError(f"key file {p} cannot be read as text ({e}); it must hold SPI:HEX") from e
    spi_s, sep, hex_s = text.partition(":")
    if not sep:
        raise KeyFileError(f"key file {p}: expected SPI:HEX (e.g. '1:' then 64 hex digits), found no ':'")
    try:
        spi = int(spi_s, 0)
    except ValueError:
        raise KeyFileError(f"key file {p}: SPI {spi_s!r} is not an integer") from None
    if not 1 <= spi <= 0xFFFE:
        raise KeyFileError(f"key file {p}: SPI {spi} is outside 1..65534")
    try:
        key = bytes.fromhex(hex_s.strip())
    except ValueError:
        raise KeyFileError(f"key file {p}: the key is not hexadecimal") from None
    if len(key) != 32:
        raise KeyFileError(f"key file {p}: the key has {len(key)} bytes, AES-256 needs 32 (64 hex digits)")
    return spi, key


def key_file_exposure(path: str | Path) -> str | None:
    """Why ``path`` is readable or writable by others than its owner (group or other permission bits), or None.
    A key others can read lets them forge or read packets; a key others can write lets them swap it."""
    import stat

    mode = Path(path).stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return (f"key file {path} has mode {stat.filemode(mode)}: group or others may read or change it; "
                f"restrict it with chmod 600 {path}")
    return None


def _aesgcm(key: bytes):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


class Sealer:
    """Encrypts packet data fields under one key; owns the salt and the per-packet counter."""

    def __init__(self, spi: int, key: bytes, salt: bytes | None = None):
        self.spi = spi
        self._aead = _aesgcm(key)
        self._new_salt(salt)

    def _new_salt(self, salt: bytes | None = None) -> None:
        self.salt = salt if salt is not None else os.urandom(8)
        self.counter = 0

    def seal(self, aad_prefix: bytes, plaintext: bytes) -> bytes:
        """``security header || ciphertext || tag``; ``aad_prefix`` = primary + secondary header."""
        if self.counter > 0xFFFFFFFF:
            self._new_salt()
        sh = _SH.pack(self.spi, self.salt, self.counter)
        self.counter += 1
        return sh + self._aead.encrypt(sh[2:], plaintext, aad_prefix + sh)


@dataclass
class Opener:
    """Decrypts and authenticates; remembers accepted IVs to refuse replays."""

    keys: dict[int, bytes]
    seen: set = field(default_factory=set)

    def __post_init__(self) -> None:
        self._aeads = {spi: _aesgcm(k) for spi, k in self.keys.items()}

    def open(self, aad_prefix: bytes, sealed: bytes) -> bytes:
        if len(sealed) < OVERHEAD:
            raise AuthenticationError("secured data field shorter than its security header and tag")
        sh = sealed[:SECURITY_HEADER]
        spi, salt, counter = _SH.unpack(sh)
        aead = self._aeads.get(spi)
        if aead is None:
            raise AuthenticationError(f"no key for SPI {spi}; pass the key file with that SPI (--key)")
        if (spi, sh[2:]) in self.seen:
            raise ReplayError(f"IV {sh[2:].hex()} under SPI {spi} was already accepted: replayed or duplicated packet")
        from cryptography.exceptions import InvalidTag

        try:
            plain = aead.decrypt(sh[2:], sealed[SECURITY_HEADER:], aad_prefix + sh)
        except InvalidTag:
            raise AuthenticationError(f"authentication failed under SPI {spi}: wrong key or altered packet") from None
        self.seen.add((spi, sh[2:]))
        return plain
