import json

from cvae.demo import main, synthetic_scene


def test_demo_runs_the_daemon_once_and_decodes_a_synthetic_scene(tmp_path, capsys):
    scene = synthetic_scene(tmp_path / "SYNTHETIC_demo.tif", size=160)
    assert main(["--scene", str(scene), "--workdir", str(tmp_path / "w"), "--level", "1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["georeferencing_identical"] and out["packet_bytes"] > 0
    assert out["psnr_db"] > 15  # a smooth synthetic field; the real quality figures are in benchmarks/results
