"""The model bundle: a directory with the network halves, the frozen tables and a manifest.

Layout (docs/bundle.md)::

    manifest.json            model id, architecture, normalisation, levels, opset, training record
    encoder.onnx             x float32[B, 1, H, W] -> y float32[B, M, H/16, W/16]
    decoder.onnx             y_hat float32[B, M, h, w] -> x_hat float32[B, 1, 16h, 16w]
    tables_level{L}.npz      EntropyTables of level L
    gains.npz                gain, inv_gain float32[L, M]; skip_variance float32[L]

The model id is the SHA-256 of every file but the manifest (sorted by name, each as name, NUL, length,
bytes); loading recomputes it and refuses a bundle whose files changed.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvae.edge.codec.tables import EntropyTables
from cvae.edge.codec.tile import TileCodec
from cvae.edge.errors import BundleError

__all__ = ["Bundle", "content_hash", "default_bundle_dir", "MANIFEST"]

MANIFEST = "manifest.json"


def default_bundle_dir() -> Path:
    """The bundle shipped with the package."""
    import cvae

    return Path(cvae.__file__).resolve().parent / "bundles" / "default"


def content_hash(bundle_dir: str | Path) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(bundle_dir).iterdir()):
        if p.name == MANIFEST or not p.is_file() or p.name.startswith("."):
            continue
        data = p.read_bytes()
        h.update(p.name.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict
    tables: list[EntropyTables]
    gain: np.ndarray
    inv_gain: np.ndarray
    skip_variance: np.ndarray

    @property
    def model_id(self) -> str:
        return self.manifest["model_id"]

    @property
    def levels(self) -> int:
        return len(self.tables)

    @classmethod
    def load(cls, path: str | Path | None = None, verify: bool = True) -> "Bundle":
        path = Path(path) if path is not None else default_bundle_dir()
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise BundleError(f"{path}: no {MANIFEST}; point --bundle at a folder made by cvae-export --target onnx")
        try:
            manifest = json.loads(mpath.read_text())
            levels = int(manifest["levels"]["count"])
        except (ValueError, KeyError, TypeError) as e:
            raise BundleError(f"{mpath}: unreadable manifest ({e}); re-export the bundle") from e
        if verify:
            actual = content_hash(path)
            if actual != manifest.get("model_id"):
                raise BundleError(f"{path}: files do not match the manifest's model id "
                                  f"({actual[:12]} != {str(manifest.get('model_id'))[:12]}); the bundle was modified "
                                  "or is incomplete: re-export or re-copy it whole")
        try:
            tables = [EntropyTables.from_file(path / f"tables_level{lv}.npz") for lv in range(levels)]
            with np.load(path / "gains.npz", allow_pickle=False) as g:
                gain, inv_gain, skip = g["gain"], g["inv_gain"], g["skip_variance"]
        except (OSError, KeyError, ValueError) as e:
            raise BundleError(f"{path}: cannot read tables or gains ({e}); re-export the bundle") from e
        return cls(path=path, manifest=manifest, tables=tables, gain=gain, inv_gain=inv_gain, skip_variance=skip)

    def codec(self, backend: str = "auto", transforms=None) -> TileCodec:
        """A :class:`TileCodec` running this bundle's network on ``backend`` (or the given transforms)."""
        if transforms is None:
            from cvae.edge.runtime import load_transforms
            transforms = load_transforms(self.path, backend)
        return TileCodec(tables=self.tables, gain=self.gain, inv_gain=self.inv_gain, transforms=transforms,
                         model_id=bytes.fromhex(self.model_id), skip_variance=self.skip_variance)
