import os

import pytest

from cvae.edge.codec import packets as pk
from cvae.edge.codec.security import (AuthenticationError, KeyFileError, Opener, ReplayError, Sealer,
                                      load_key_file)

KEY = bytes(range(32))


def _hdr():
    return pk.SecondaryHeader(kind=pk.KIND_TILE, model_id=b"abcd", scene_id=1, row=0, col=0, level=1)


def _sealed_packets(sealer, bodies, **kw):
    w = pk.PacketWriter(apid=7, sealer=sealer, **kw)
    out = []
    for b in bodies:
        out += w.packets(_hdr(), b)
    return out


def test_sealed_packets_round_trip_and_hide_the_payload():
    body = b"secret latent bytes " * 10
    [p] = _sealed_packets(Sealer(3, KEY), [body])
    assert body not in p
    [got] = list(pk.parse_stream(p))
    assert got.header.secured and got.header.base_kind == pk.KIND_TILE
    assert Opener({3: KEY}).open(got.aad, got.data) == body


def test_ivs_never_repeat_within_a_run_or_across_restarts():
    ivs = set()
    for _ in range(3):  # three "restarts": a new sealer each, as after a lost state file
        s = Sealer(1, KEY)
        for p in _sealed_packets(s, [b"x"] * 50):
            [got] = list(pk.parse_stream(p))
            ivs.add(got.data[2:14])
    assert len(ivs) == 150


def test_counter_exhaustion_draws_a_new_salt():
    s = Sealer(1, KEY, salt=b"\0" * 8)
    s.counter = 0xFFFFFFFF + 1
    [p] = _sealed_packets(s, [b"x"])
    [got] = list(pk.parse_stream(p))
    assert got.data[2:10] != b"\0" * 8 and got.data[10:14] == b"\0\0\0\0"


def test_tampered_ciphertext_or_header_fails_authentication():
    [p] = _sealed_packets(Sealer(1, KEY), [b"payload" * 5])
    [got] = list(pk.parse_stream(p))
    bad = bytearray(got.data)
    bad[20] ^= 1
    with pytest.raises(AuthenticationError):
        Opener({1: KEY}).open(got.aad, bytes(bad))
    aad = bytearray(got.aad)
    aad[10] ^= 1  # scene id in the secondary header is authenticated
    with pytest.raises(AuthenticationError):
        Opener({1: KEY}).open(bytes(aad), got.data)


def test_wrong_or_missing_key_is_named():
    [p] = _sealed_packets(Sealer(1, KEY), [b"x"])
    [got] = list(pk.parse_stream(p))
    with pytest.raises(AuthenticationError, match="wrong key"):
        Opener({1: os.urandom(32)}).open(got.aad, got.data)
    with pytest.raises(AuthenticationError, match="no key for SPI 1"):
        Opener({2: KEY}).open(got.aad, got.data)


def test_replayed_packet_is_refused():
    [p] = _sealed_packets(Sealer(1, KEY), [b"x"])
    [got] = list(pk.parse_stream(p))
    o = Opener({1: KEY})
    o.open(got.aad, got.data)
    with pytest.raises(ReplayError):
        o.open(got.aad, got.data)


def test_segmented_sealed_body_reassembles():
    body = os.urandom(1000)
    ps = _sealed_packets(Sealer(1, KEY), [body], max_data_field=200)
    o = Opener({1: KEY})
    assert b"".join(o.open(g.aad, g.data) for g in pk.parse_stream(b"".join(ps))) == body
    assert all(len(p) <= 6 + 200 for p in ps)


@pytest.mark.parametrize("text,match", [
    ("", "no ':'"), ("1:abcd", "32"), ("x:" + "00" * 32, "not an integer"), ("0:" + "00" * 32, "outside"),
    ("1:" + "zz" * 32, "hexadecimal"),
])
def test_key_file_errors_name_the_problem(tmp_path, text, match):
    f = tmp_path / "k"
    f.write_text(text)
    with pytest.raises(KeyFileError, match=match):
        load_key_file(f)


def test_missing_key_file(tmp_path):
    with pytest.raises(KeyFileError, match="does not exist"):
        load_key_file(tmp_path / "none")


def test_key_file_round_trip(tmp_path):
    f = tmp_path / "k"
    f.write_text("5:" + KEY.hex() + "\n")
    assert load_key_file(f) == (5, KEY)
