"""benchmarks/bench.py, harness/ and tools/make_readme_table.py on tiny inputs: files, keys, skip reasons, MAC counting, SAM."""
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from bench_common import sibling  # benchmarks/common is on pytest's pythonpath

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    """``benchmarks/bench.py`` (the ``cvae-bench`` entry, at the top) or any harness, experiment or tool."""
    if name != "bench":
        return sibling(name)
    mod = sys.modules.get(f"_bench_{name}")
    if mod is None:
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", ROOT / "benchmarks" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench():
    return _load("bench")


@pytest.fixture(scope="module")
def bench_rd():
    return _load("bench_rd")


@pytest.fixture(scope="module")
def bench_speed():
    return _load("bench_speed")


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory) -> Path:
    """A SYNTHETIC 4-band uint16 64 x 64 georeferenced scene."""
    from cvae.demo import synthetic_scene

    data = tmp_path_factory.mktemp("data")
    return synthetic_scene(data / "s2_tiny.tif", size=64)


@pytest.fixture(scope="module")
def rd_run(bench, tiny_scene, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rd")
    assert bench.main(["rd", "--data", str(tiny_scene.parent), "--levels", "0,5", "--out", str(out)]) == 0
    return out


def test_rd_on_tiny_scene_writes_json_markdown_and_png(rd_run):
    rec = json.loads((rd_run / "rd.json").read_text())
    assert rec["kind"] == "rd" and rec["levels"] == [0, 5]
    assert rec["machine"]["cpu_model"] and rec["machine"]["versions"]["imagecodecs"]
    assert "bench.py rd --data" in rec["command"]
    s = rec["scenes"]["s2_tiny"]
    assert s["shape"] == [4, 64, 64] and s["dtype"] == "uint16" and s["sensor"] == "s2"
    assert {"ours", "j2k", "jxl", "avif"} <= set(s["curves"])
    assert len(s["curves"]["ours"]) == 2
    for p in s["curves"]["ours"]:
        assert {"bpp", "bpp_payload", "psnr", "mse", "ssim", "ms_ssim", "sam_deg", "bands"} <= set(p)
        assert len(p["bands"]) == 4 and 0 < p["bpp_payload"] < p["bpp"]  # headers and CRCs cost bits
    assert {"ours", "ours_payload", "jxl", "avif"} <= set(s["bd_rate_psnr"])
    assert set(s["at_0_91_bpp"]) == {"ours", "j2k"}
    for row in s["at_0_91_bpp"].values():
        assert {"psnr", "ssim", "mse", "range", "note"} <= set(row)
        assert (row["psnr"] is None) == (row["note"] is not None)  # a value, or why there is none
    assert "needs 3" in s["skipped"]["j2k_mct"]  # 4 bands
    assert "8-bit" in s["skipped"]["webp"]  # uint16
    assert "grey image replicated to RGB" in s["notes"]["avif"]
    assert set(rec["verdict"]) >= {"loses", "wins", "rates_where_j2k_is_better", "by_sensor"}
    md = (rd_run / "rd.md").read_text()
    for heading in ("BD-rate (PSNR) against JPEG 2000", "near 0.91 bpp", "Where our codec loses",
                    "Where our codec wins", "skipped"):
        assert heading in md
    png = rd_run / "rd_plots" / "s2_tiny.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_readme_table_is_generated_from_rd_and_validation_results(rd_run, tmp_path):
    for f in ("rd.json",):
        (tmp_path / f).write_text((rd_run / f).read_text())
    (tmp_path / "rd_validation.json").write_text(json.dumps(
        {"command": "rd_validation.py", "bundle": "ab" * 32, "training_step": 7,
         "median": {"bd_rate_psnr": -4.25, "bd_rate_msssim": float("nan")},
         "scenes": {"a": {"bd_rate_psnr": -4.25, "bd_rate_msssim": float("nan")}}}))
    (tmp_path / "unrelated.json").write_text("[1, 2]")
    assert _load("make_readme_table").main(["--results", str(tmp_path)]) == 0
    table = (tmp_path / "README_table.md").read_text()
    assert "| benchmark | result | on | source |" in table
    assert "-4.2% / n/a" in table or "-4.3% / n/a" in table
    assert "`rd.json`" in table and "At 0.91 bpp" in table


def test_readme_blocks_are_filled_from_results_files(tmp_path):
    """--readme fills the table block and every include block from the results files; text around them and a
    block whose file is missing stay as they were."""
    res = tmp_path / "benchmarks" / "results"
    res.mkdir(parents=True)
    (res / "soak.json").write_text(json.dumps(
        {"command": "soak.py --minutes 1", "cpu_count": 2, "seconds": 60.0, "scenes_done": 3, "tiles": 18,
         "tiles_per_s": 0.3, "tile_latency_p99_s": 0.25, "rss_peak_mb": 200.0,
         "rss_slope_mb_per_min_second_half": 0.01, "open_files_first": 3, "open_files_last": 9,
         "open_files_max": 10}))
    (res / "int8_report.json").write_text(json.dumps(
        {"model_id": "cd" * 32, "qdq": "x.onnx", "runtime": "onnxruntime CPU", "bd_rate_pct": 0.61,
         "scenes": {"a.tif": {"levels": [{"psnr_change_db": -0.02}, {"psnr_change_db": 0.031}]}}}))
    (res / "scorer.txt").write_text("scene  BD-rate\nx  -12.0%\n")
    (res / "per_scene.md").write_text("| a | b |\n|---|---|\n| 1 | 2 |\n")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results-table -->\nold table\n<!-- /results-table -->\nmiddle\n"
                      "<!-- include: benchmarks/results/scorer.txt -->\nold\n<!-- /include -->\n"
                      "<!-- include: benchmarks/results/per_scene.md -->\n<!-- /include -->\n"
                      "<!-- include: benchmarks/results/gone.md -->\nkept\n<!-- /include -->\nend\n")
    assert _load("make_readme_table").main(["--results", str(res), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old table" not in text and "5.2 tiles/s" not in text and "0.3 tiles/s" in text
    assert "+0.61%, 0.031 dB" in text
    assert "```\nscene  BD-rate\nx  -12.0%\n```" in text and "\nold\n" not in text
    assert "| 1 | 2 |" in text and "\nkept\n" in text
    assert text.startswith("intro\n") and "\nmiddle\n" in text and text.endswith("end\n")


def test_peers_on_three_band_uint8_include_mct_and_webp_as_rgb(bench_rd, rng):
    orig = rng.integers(0, 256, size=(3, 32, 32), dtype=np.uint8)
    orig[1] = orig[0] // 2 + 60  # correlated bands, as in real RGB
    curves, skipped, notes = bench_rd.peer_curves(orig, np.ones((32, 32), bool))
    # AV1 + KLT (harness/av1_peer.py, tested in test_av1_peer.py) is quoted when avifenc is on PATH, skipped otherwise
    assert set(curves) - {"av1_klt"} == {"j2k", "j2k_mct", "jxl", "avif", "webp"} and set(skipped) <= {"av1_klt"}
    assert notes["webp"] == "the 3 bands as one RGB image"
    for pts in curves.values():
        assert all(p["bpp"] > 0 and "sam_deg" in p for p in pts)


def test_peers_skip_avif_above_12_bits_with_the_reason(bench_rd, rng):
    orig = rng.integers(0, 5000, size=(2, 16, 16), dtype=np.uint16)
    curves, skipped, _ = bench_rd.peer_curves(orig, np.ones((16, 16), bool))
    assert "4095" in skipped["avif"] and "8-bit" in skipped["webp"] and "needs 3" in skipped["j2k_mct"]
    assert {"j2k", "jxl"} <= set(curves)


def test_speed_on_tiny_scene_times_every_stage(bench, bench_speed, tiny_scene, tmp_path):
    # 'ladder' runs the network on every tile ('auto''s gate may spare it)
    argv = ["speed", "--data", str(tiny_scene), "--mode-search", "ladder", "--repeats", "2", "--backends", "onnxruntime,torch,tensorrt",
            "--checkpoint", str(tmp_path / "absent.pt"), "--coder-n", "5000", "--matmul-n", "64",
            "--out", str(tmp_path), "--tegrastats", str(tmp_path / "no-tegrastats")]
    assert bench.main(argv) == 0
    rec = json.loads((tmp_path / "speed.json").read_text())
    s = rec["backends"]["onnxruntime-cpu-fp32"]["scenes"]["s2_tiny"]
    assert set(s["stages_s"]) == set(bench_speed.STAGES)
    assert all(s["stages_s"][k] > 0 for k in bench_speed.STAGES)
    assert s["tiles"] == 1 and s["tiles_per_s"] > 0 and s["mpix_per_s"] > 0 and s["network_gflops"] > 0
    assert s["tile_latency_p50_ms"] <= s["tile_latency_p99_ms"]
    assert "no checkpoint" in rec["skipped_backends"]["torch"] and rec["skipped_backends"]["tensorrt"]
    int8 = rec["backends"].get("onnxruntime-cpu-int8")  # timed when cvae-export --target int8 made one
    assert (int8["scenes"]["s2_tiny"]["tiles"] == 1 if int8 else
            "cvae-export --target int8" in rec["skipped_backends"]["onnxruntime-cpu-int8"])
    assert rec["jetson"].startswith("not a Jetson")
    assert rec["encoder_macs"]["macs_per_pixel"] > 0 and rec["matmul_gflops_fp32"] > 0
    assert rec["range_coder"]["results"][0]["coder"].startswith("cvae rangecoder")
    assert rec["vs_openjpeg"]["s2_tiny"]["ours_over_j2k_time"] > 0
    assert rec["peak_rss_mb"] > 0 and "read_packetize ms" in (tmp_path / "speed.md").read_text()


def test_bounded_on_tiny_scene_measures_each_bound_against_the_peers(bench, tiny_scene, tmp_path):
    """cvae-bench bounded: the error-bounded harness from the dev-board command, every decode within its bound."""
    argv = ["bounded", "--data", str(tiny_scene), "--bounds", "0,2", "--repeats", "1", "--rate-levels", "0",
            "--out", str(tmp_path), "--name", "bb"]
    assert bench.main(argv) == 0
    rec = json.loads((tmp_path / "bb.json").read_text())
    ((lossless, near),) = [s["bounds"] for s in rec["scenes"]]
    assert (lossless["max_error"], near["max_error"]) == (0, 2)
    assert lossless["ours"]["max_abs_error"] == 0 and 0 < near["ours"]["max_abs_error"] <= 2
    assert near["ours"]["bits_per_sample"] < lossless["ours"]["bits_per_sample"]
    assert lossless["ours"]["encode_msamples_per_s"] > 0 and "bits_per_sample" in lossless["jpegls"]
    assert rec["command"].startswith("python benchmarks/bench.py bounded")
    assert (tmp_path / "bb.md").is_file() and "E     median" in (tmp_path / "bb_summary.txt").read_text()


@pytest.mark.parametrize("bounds,message", [("1,x", "comma-separated whole numbers"),
                                            ("-1", r"0 \(lossless\) or more")])
def test_bounded_refuses_a_malformed_bound_list(bench, tiny_scene, tmp_path, bounds, message):
    with pytest.raises(SystemExit, match=message):
        bench.main(["bounded", "--data", str(tiny_scene), "--bounds", bounds, "--out", str(tmp_path)])


def test_timed_pipeline_builds_the_packets_encode_scene_builds(bench_speed, tiny_scene, bundle, codec, tmp_path):
    from cvae.edge.encoder import EncodeOptions, encode_scene

    run = bench_speed.time_pipeline(tiny_scene, bundle, codec, 2, 32, tmp_path)
    import zlib

    # the bench names its scene by the CRC-32 of the file name; encode_scene draws a random id unless given one
    enc = encode_scene(tiny_scene, bundle, codec, EncodeOptions(level=2, tile_size=32,
                                                                scene_id=zlib.crc32(b"s2_tiny")))
    assert run["tiles"] == enc.tiles == 4 and run["nbytes"] == enc.nbytes
    assert (tmp_path / "s2_tiny.pkt").read_bytes() == b"".join(enc.packets)


def test_mac_count_matches_hand_computation(bench_speed, tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = lambda name, *shape: numpy_helper.from_array(np.ones(shape, np.float32), name)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Mul", ["w2raw", "two"], ["w2"]),  # a computed weight, as GDN's reparametrised gamma
        helper.make_node("Conv", ["b", "w2"], ["c"], kernel_shape=[1, 1]),
        helper.make_node("Conv", ["c", "w3"], ["d"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["d", "w4"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=4),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 1, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w("w1", 4, 1, 3, 3), w("w2raw", 4, 4, 1, 1), w("two", 1), w("w3", 8, 4, 3, 3), w("w4", 8, 2, 3, 3)])
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    got = bench_speed.encoder_macs_per_pixel(path)
    # per input pixel: 4*1*9 / 2^2 + 4*4*1 / 2^2 + 8*4*9 / 4^2 + 8*(8/4)*9 / 4^2 (grouped: C_in/group = 2)
    hand = 36 / 4 + 16 / 4 + 288 / 16 + 144 / 16
    assert [layer["macs_per_pixel"] for layer in got["layers"]] == [9.0, 4.0, 18.0, 9.0]
    assert got["macs_per_pixel"] == hand == 40.0


def test_spectral_angle_of_identical_images_is_zero(bench_rd, rng):
    x = rng.integers(1, 4000, size=(4, 20, 20)).astype(np.uint16)
    valid = np.ones((20, 20), bool)
    valid[:3] = False
    assert bench_rd.spectral_angle(x, x.copy(), valid) == 0.0
    a = np.zeros((2, 1, 1)); a[0] = 1
    b = np.zeros((2, 1, 1)); b[1] = 1
    assert math.isclose(bench_rd.spectral_angle(a, b, np.ones((1, 1), bool)), 90.0)  # orthogonal spectra
    assert bench_rd.evaluate(x, x, valid)["sam_deg"] == 0.0


def test_interpolation_on_log_rate_and_none_outside(bench_rd):
    pts = [{"bpp": 0.5, "psnr": 30.0}, {"bpp": 2.0, "psnr": 40.0}]
    assert math.isclose(bench_rd.interp_at(pts, 1.0, "psnr"), 35.0)  # 1 bpp is halfway on log-rate
    assert bench_rd.interp_at(pts, 3.0, "psnr") is None


def test_tegrastats_power_lines_parse_on_orin_and_xavier(bench_speed):
    orin = "RAM 2448/62840MB CPU [1%@729] VDD_GPU_SOC 2002mW/2002mW VDD_CPU_CV 400mW/400mW VDD_IN 5123mW/5123mW"
    xavier = "RAM 1500/7765MB GPU 0%@114 POM_5V_IN 3456/3456 POM_5V_GPU 0/0"
    assert bench_speed.parse_tegrastats_power(orin) == 5123.0
    assert bench_speed.parse_tegrastats_power(xavier) == 3456.0
    assert bench_speed.parse_tegrastats_power("RAM 1/2MB") is None


def test_transform_ceiling_matches_the_codec_and_bounds_it(real_scene, bundle, codec, tmp_path):
    """The coded PSNR is the real codec's (same bytes as compress + decompress), and leaving the latents
    unrounded loses less than coding them at every level."""
    from cvae.metrics import psnr_bands

    latent_only = sum(1 for lv in range(codec.levels) if not codec.has_residual(lv))
    pts = _load("transform_ceiling").scene_psnrs(codec, real_scene, latent_only)
    assert [p["level"] for p in pts] == list(range(latent_only))
    for p in pts:
        assert p["psnr_unrounded"] > p["psnr"] > 15
    px, valid = real_scene.pixels, real_scene.valid
    band_range = (px[:, valid].min(axis=1), px[:, valid].max(axis=1))
    last = latent_only - 1
    rec = codec.decompress(codec.encode(codec.analyze(px, valid, band_range=band_range), last)).pixels
    assert abs(psnr_bands(px, rec, valid) - pts[last]["psnr"]) < 1e-9
