"""Golden tiles of bitstreams v10, v7, v6, v5 and v3 (tests/edge/codec/golden/make_tile_v10_golden.py,
make_tile_v7_golden.py, make_tile_v6_golden.py, make_tile_v5_golden.py, make_tile_v3_golden.py): a residual-only tile,
a hybrid tile (latents + wavelet residual, context-coded since v5; since v6 its band ranges are its scene's, sent in
the scene metadata), a masked tile with per-band fill and (v7, v10) a tile at a step between the ladder's presets, as
the shipped bundle writes them (v10, full mode search) and wrote them before (v7, v6, v5 and v3, decode-only now).

Two tiers:
- bytes (v10): the encoder still writes exactly the golden bytes. The encoder runs the float network, so this is
  checked on the platform the goldens were made on only: x86-64, CPU ONNX Runtime (float32).
- integers (every version): on any platform, decoding the golden bytes gives the same header fields, scale
  indexes, latent symbols and residual coefficients (``TileCodec.parse_integers``), mask and band fill, and, for
  the residual-only tiles (no network runs), the same pixels.

``UPDATE_GOLDENS=1 pytest tests/edge/codec/test_golden_tiles.py`` rewrites the v10 golden files.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
from types import SimpleNamespace

import make_tile_v3_golden as golden_v3  # tests/edge/codec/golden, on pythonpath (pyproject.toml)
import make_tile_v5_golden as golden_v5
import make_tile_v6_golden as golden_v6
import make_tile_v7_golden as golden_v7
import make_tile_v10_golden as golden
import numpy as np
import pytest

from cvae.edge.codec import bitstream, coefs, stepcode
from cvae.edge.codec.tile import TileCodec
from cvae.edge.errors import CorruptTileError

X86_64 = platform.machine().lower() in ("x86_64", "amd64")


@pytest.fixture(scope="module")
def full(bundle) -> TileCodec:
    """The full mode search: the goldens cover a hybrid tile at level 9, which 'auto' codes without latents."""
    return bundle.codec("onnxruntime", mode_search="full")


@pytest.fixture(scope="module")
def tiles(full) -> dict[str, bytes]:
    if os.environ.get("UPDATE_GOLDENS") == "1":
        golden.write(full)
    return {name: path.read_bytes() for name, path in golden.FILES.items()}


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads(golden.INTEGERS.read_text())


def _frozen(src) -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in src.FILES.items()}


@pytest.fixture(scope="module", params=[10, 7, 6, 5, 3], ids=["v10", "v7", "v6", "v5", "v3"])
def goldens(request, tiles, expected) -> SimpleNamespace:
    """The golden tiles of one version with what they decode to (v7, v6, v5, v3: the frozen files) and the scene side
    information each decodes with (the hybrid tile of v6, v7 and v10: its scene's band ranges; passing it to the
    others is harmless: a tile without flag bit 3 carries its own)."""
    if request.param in (10, 7, 6):
        src = {10: golden, 7: golden_v7, 6: golden_v6}[request.param]
        expected = dict(expected) if request.param == 10 else json.loads(src.INTEGERS.read_text())
        files = tiles if request.param == 10 else _frozen(src)
        scene = bitstream.SceneSide.from_metadata({"band_range": expected.pop("scene_band_range")}, src.BANDS)
        return SimpleNamespace(version=request.param, tiles=files, expected=expected, scene=scene, cases=src.CASES)
    old = golden_v5 if request.param == 5 else golden_v3
    return SimpleNamespace(version=request.param, tiles={name: path.read_bytes() for name, path in old.FILES.items()},
                           expected=json.loads(old.INTEGERS.read_text()), scene=None, cases=golden_v3.CASES)


class _NoNetwork:
    """Transforms that fail when called: proves a decode runs no network."""

    def analysis(self, x):
        raise AssertionError("analysis ran")

    def synthesis(self, y_hat):
        raise AssertionError("synthesis ran")


def _codec_without_network(bundle) -> TileCodec:
    return bundle.codec(transforms=_NoNetwork())


@pytest.mark.skipif(not X86_64, reason="golden encode bytes involve the float network: made on x86-64 CPU ONNX Runtime")
def test_encoder_writes_the_golden_v10_tiles_bytes_on_x86_64_cpu_onnxruntime(full, tiles):
    assert golden.encode_all(full) == tiles


def test_v10_is_v7_but_for_the_version_byte_and_the_coefficient_stream(bundle, tiles):
    """The same inputs: every header field but the version and every stream but ``coefs`` are v7's; the
    coefficients the v10 tiles decode to, coded again by v5's coder into a v7 tile, decode to the same pixels (the
    encoders' rate-distortion choices differ, so the integers may too); each version's coefficient stream is no
    stream of the other's coder."""
    quiet = _codec_without_network(bundle)
    old = _frozen(golden_v7)
    for name, data in tiles.items():
        u, u7 = bitstream.unpack_tile(data, golden.SCENE), bitstream.unpack_tile(old[name], golden.SCENE)
        assert u.header.version == 10 and u.streams.coefs != u7.streams.coefs, name
        v7_as_v10 = dataclasses.replace(u7.header, version=10)
        assert bitstream.pack_tile(v7_as_v10, u7.present, (*u7.payload[:2], u.streams.coefs), u7.valid) == data, name
        h = u.header
        values = coefs.decode_values(u.streams.coefs, h.bands, h.height, h.width, mixed=True)
        again = coefs.encode(coefs.split(values, h.bands, h.height, h.width), h.height, h.width)
        as_v7 = bitstream.pack_tile(dataclasses.replace(h, version=7), u.present, (*u.payload[:2], again), u.valid)
        if not u.present.any():
            np.testing.assert_array_equal(quiet.decompress(as_v7).pixels, quiet.decompress(data).pixels)
        for stream, mixed in ((u.streams.coefs, False), (u7.streams.coefs, True)):
            try:
                other = coefs.decode_values(stream, h.bands, h.height, h.width, mixed)
            except CorruptTileError:
                continue
            assert not np.array_equal(other, values), name


def test_v6_is_v5_but_for_the_version_byte_and_the_band_ranges_left_to_the_scene():
    """Tiles that carry their own band ranges are v5's bytes with version 6; the hybrid tile, whose band ranges
    are the scene's, is 8 bytes per band shorter and decodes only with them."""
    tiles = _frozen(golden_v6)
    for name in ("residual", "masked"):
        v5 = golden_v5.FILES[name].read_bytes()
        assert tiles[name] == bytes([bitstream.VERSION_SCENE]) + v5[1:], name
    assert len(golden_v5.FILES["hybrid"].read_bytes()) - len(tiles["hybrid"]) == 8 * golden.BANDS
    with pytest.raises(CorruptTileError, match="scene's band ranges"):
        bitstream.unpack_tile(tiles["hybrid"])
    h = bitstream.unpack_tile(tiles["hybrid"], golden.SCENE)[0]
    assert h.scene_range and (h.lo == golden.SCENE.lo).all() and (h.hi == golden.SCENE.hi).all()


@pytest.mark.parametrize("version", [10, 7])
def test_v7_and_v10_tiles_carry_their_step_after_the_mode_bytes(bundle, tiles, expected, version):
    """Every golden v7 and v10 tile codes a residual, so each carries a step code (bytes 15-16, after the latent and
    residual bytes): the preset levels their ladder step on the code's grid, the stepped tile its own step."""
    if version == 7:
        tiles, expected = _frozen(golden_v7), json.loads(golden_v7.INTEGERS.read_text())
    assert expected["scene_band_range"] == golden.SCENE.to_metadata()["band_range"]
    ladder = bundle.codec(transforms=_NoNetwork()).ladder
    for name, data in tiles.items():
        h = bitstream.unpack_tile(data, golden.SCENE)[0]
        assert h.step == int.from_bytes(data[15:17], "big") == expected[name]["step"], name
        want = golden.STEPS.get(name, float(ladder.step[h.level]))
        assert abs(float(stepcode.step_of(h.step)) / want - 1) < 2 ** -12, name
    assert expected["stepped"]["step"] != stepcode.code_of(float(ladder.step[8]))


def test_a_stepped_tile_decodes_with_its_own_step_not_its_levels(bundle, tiles):
    """The stepped tile at level 8 with the ladder's step instead of its own decodes to other (worse) pixels:
    the decoder takes the step from the tile."""
    quiet = _codec_without_network(bundle)
    data = tiles["stepped"]
    exact = quiet.decompress(data).pixels.astype(np.int64)
    preset = stepcode.code_of(float(quiet.ladder.step[8]))
    other = quiet.decompress(data[:15] + preset.to_bytes(2, "big") + data[17:]).pixels.astype(np.int64)
    truth = golden.walk_tile(2).astype(np.int64)
    assert not np.array_equal(exact, other)
    assert np.abs(exact - truth).mean() < np.abs(other - truth).mean()


def test_the_scene_band_range_flag_is_corrupt_before_v6():
    tiles = _frozen(golden_v6)
    for version in (bitstream.VERSION_WAVELET, bitstream.VERSION_CONTEXT):
        bad = bytes([version]) + tiles["hybrid"][1:]
        with pytest.raises(CorruptTileError, match="unknown flag bits"):
            bitstream.unpack_tile(bad, golden.SCENE)
    h = bitstream.unpack_tile(tiles["hybrid"], golden.SCENE)[0]
    with pytest.raises(ValueError, match="version 6"):
        bitstream.pack_tile(dataclasses.replace(h, version=bitstream.VERSION_CONTEXT), np.ones(4, bool),
                            (b"", b"", b""), None)


def test_the_default_search_codes_the_finest_levels_without_any_network(bundle, tiles):
    """'auto': levels 4-11 (steps <= NETWORK_FREE_STEP) run neither the analysis nor a synthesis, and the
    residual-only golden tile (level 8: the full search keeps the residual alone there too) comes out the same."""
    quiet = bundle.codec(transforms=_NoNetwork(), mode_search="auto")
    assert all(quiet.hybrid.planner.network_free(lv) for lv in range(4, 12))
    assert not quiet.hybrid.planner.network_free(3)
    a = golden.analyzed(quiet, "residual")
    assert quiet.encode(a, 8) == tiles["residual"]
    assert not a.analysed
    hybrid = quiet.encode(golden.analyzed(quiet, "hybrid"), 9)
    assert not bitstream.unpack_tile(hybrid)[1].any()  # the residual alone, where the full search took latents
    with pytest.raises(AssertionError, match="analysis ran"):
        quiet.encode(golden.analyzed(quiet, "residual"), 3)


def test_golden_tiles_code_their_modes(goldens):
    headers = {name: bitstream.unpack_tile(data, goldens.scene) for name, data in goldens.tiles.items()}
    for name, (h, present, _, valid) in headers.items():
        assert h.version == goldens.version, name
        assert h.residual == bitstream.RESIDUAL_WAVELET, name
        assert (h.bands, h.height, h.width) == (golden.BANDS, golden.HEIGHT, golden.WIDTH), name
        assert h.level == goldens.cases[name], name
    assert not headers["residual"][1].any()
    assert headers["hybrid"][1].any()
    assert headers["residual"][3] is None and headers["hybrid"][3] is None
    assert headers["masked"][3] is not None and headers["masked"][0].band_fill is not None


def test_golden_tiles_parse_to_their_integers_and_header_fields(bundle, goldens):
    assert set(goldens.expected) == set(goldens.tiles)
    quiet = _codec_without_network(bundle)  # parsing the integers runs no network, on any tile
    for name, data in goldens.tiles.items():
        assert golden.describe(quiet, data, goldens.scene) == goldens.expected[name], name


def test_golden_masked_tile_decodes_its_mask_and_band_fill(bundle, goldens):
    tiles = goldens.tiles
    _, valid, band_fill = golden.masked_inputs()
    h, _, _, got_valid = bitstream.unpack_tile(tiles["masked"])
    np.testing.assert_array_equal(got_valid, valid)
    np.testing.assert_array_equal(h.band_fill, band_fill)
    d = _codec_without_network(bundle).decompress(tiles["masked"])
    np.testing.assert_array_equal(d.valid, valid)
    assert (d.pixels[:, ~valid] == 0).all()


def test_residual_only_golden_tiles_decode_without_the_network_to_their_pixels(bundle, codec, goldens):
    tiles, expected = goldens.tiles, goldens.expected
    quiet = _codec_without_network(bundle)
    for name in ("residual", "masked"):
        d = quiet.decompress(tiles[name])
        assert golden.sha(d.pixels, ">u2") == expected[name]["pixels_sha256"], name
        np.testing.assert_array_equal(d.pixels, codec.decompress(tiles[name]).pixels)
        np.testing.assert_array_equal(quiet.parse_integers(tiles[name])[1], codec.parse_integers(tiles[name])[1])


def test_residual_only_golden_tile_is_close_to_its_input(bundle, goldens):
    tiles = goldens.tiles
    d = _codec_without_network(bundle).decompress(tiles["residual"])
    err = np.abs(d.pixels.astype(np.int64) - golden.walk_tile(0)).max()
    assert err <= 16  # level 8 quantisation (step 0.025 of the band range, wavelet domain); measured 11 DN


def test_hybrid_golden_tile_needs_the_network(bundle, codec, goldens):
    tiles = goldens.tiles
    with pytest.raises(AssertionError, match="synthesis ran"):
        _codec_without_network(bundle).decompress(tiles["hybrid"], goldens.scene)
    d = codec.decompress(tiles["hybrid"], goldens.scene)
    err = np.abs(d.pixels.astype(np.int64) - golden.walk_tile(0)).mean()
    assert err < 8  # level 9 quantisation; float synthesis involved, so bounded, not exact; measured 4.8 DN


def _with_residual_byte(data: bytes, kind: int) -> bytes:
    """The tile with its residual-kind byte (after the 13 fixed bytes and the latent byte) set to ``kind``."""
    return data[:14] + bytes([kind]) + data[15:]


@pytest.mark.parametrize("kind", [1, 3, 255])
def test_a_v10_tile_declaring_another_residual_kind_is_corrupt(tiles, kind):
    with pytest.raises(CorruptTileError, match="residual kind"):
        bitstream.unpack_tile(_with_residual_byte(tiles["residual"], kind))


def test_a_v10_residual_stream_where_the_header_has_none_is_corrupt(bundle, tiles):
    quiet = _codec_without_network(bundle)
    with pytest.raises(CorruptTileError):  # kind 0 with a coefficient stream present
        quiet.decompress(_with_residual_byte(tiles["residual"], 0))


@pytest.mark.parametrize("version", [10, 7])
@pytest.mark.parametrize("name", ["masked", "hybrid", "stepped"])
def test_damaged_v7_and_v10_tiles_raise_corrupt_tile_only(bundle, tiles, rng, name, version):
    quiet = _codec_without_network(bundle)
    data = tiles[name] if version == 10 else _frozen(golden_v7)[name]
    for _ in range(300):  # flipped bits and cuts anywhere: a CorruptTileError or a decode, nothing else
        bad = bytearray(data)
        if rng.random() < 0.5:
            bad[rng.integers(len(bad))] ^= 1 << int(rng.integers(8))
        else:
            bad = bad[:int(rng.integers(len(bad)))]
        try:
            quiet.decompress(bytes(bad), golden.SCENE)
        except CorruptTileError:
            pass
        except AssertionError as e:  # a flipped present bit asks for latents: the network would run
            assert "synthesis ran" in str(e)
