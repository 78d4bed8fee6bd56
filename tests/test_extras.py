"""Commands whose extras are missing end in one line naming the extra, not a traceback."""
import subprocess
import sys

import pytest

POISON = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == sys.argv[1]:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
from cvae import extras
sys.exit(getattr(extras, sys.argv[2])(sys.argv[3:]))
"""


@pytest.mark.parametrize("module,entry,args,extra", [
    ("torch", "train_main", ["--config", "configs/default.yaml", "--steps", "1", "--out-dir", "{tmp}/run"], "train"),
    ("onnx", "export_main", ["--target", "onnx", "--checkpoint", "runs/default/checkpoint.pt", "--config",
                             "configs/default.yaml", "-o", "{tmp}/bundle"], "train"),
])
def test_a_missing_extra_is_named_in_one_line(module, entry, args, extra, tmp_path):
    from pathlib import Path

    import numpy as np

    if entry == "export_main" and not (Path(__file__).resolve().parents[2] / "shared" / "data" / "train").is_dir():
        pytest.skip("cvae-export calibrates on ../shared/data/train before it needs onnx")
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(tmp_path / "scene.tif", "w", driver="GTiff", width=64, height=64, count=2, dtype="uint16",
                       crs="EPSG:32633", transform=from_origin(500000, 4000000, 10, 10)) as d:
        d.write(np.random.default_rng(0).integers(0, 4000, (2, 64, 64)).astype(np.uint16))
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = subprocess.run([sys.executable, "-c", POISON, module, entry, *args], capture_output=True, text=True,
                         timeout=300, cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert out.returncode == 2, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]  # earlier lines may be GDAL warnings of the work done so far
    assert f"cvae-satcomp[{extra}]" in last and module in last
    assert "Traceback" not in out.stderr
