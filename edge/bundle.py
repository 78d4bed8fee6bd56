"""The model bundle: a directory with the network halves, the frozen tables and a manifest.

Layout (docs/bundle.md)::

    manifest.json            model id, architecture, normalisation, levels, opset, training record
    encoder.onnx             x float32[B, 1, H, W] -> y float32[B, M, H/16, W/16]
    decoder.onnx             y_hat float32[B, M, h, w] -> x_hat float32[B, 1, 16h, 16w]
    tables_level{L}.npz      EntropyTables of level L
    gains.npz                gain, inv_gain float32[L, M]; skip_variance float32[L]
    adaptive.npz             adaptive bundles only: the Laplacian bank and the index tables (cvae.edge.codec.adaptive)
    ladder.npz               adaptive bundles only: latent int32[N], step float32[N]: public level i codes latent
                             level latent[i], plus the residual quantised with step[i] where > 0

``manifest["entropy_model"]`` is ``"factorized"`` (absent in older bundles; tile format v1) or ``"adaptive"``
(writes tile format v6, reads v2, v3 and v5 too: ``cvae.edge.codec.bitstream.FORMATS``). An adaptive bundle made from a factorised one (``cvae-export --target adaptive``) keeps its
networks and tables byte for byte and lists the parent's id in ``compatible_model_ids``: it decodes the
parent's v1 streams too.

The model id is the SHA-256 of every file but the manifest (sorted by name, each as name, NUL, length,
bytes); loading recomputes it and refuses a bundle whose files changed.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvae.edge.codec.adaptive import AdaptiveModel
from cvae.edge.codec.plan import default_mode_search
from cvae.edge.codec.tables import EntropyTables
from cvae.edge.codec.tile import Ladder, TileCodec
from cvae.edge.errors import BundleError
from cvae.edge.runtime.protocol import is_accelerated

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
    adaptive: AdaptiveModel | None = None
    ladder: Ladder | None = None

    @property
    def model_id(self) -> str:
        return self.manifest["model_id"]

    @property
    def entropy_model(self) -> str:
        return self.manifest.get("entropy_model", "factorized")

    @property
    def levels(self) -> int:
        return len(self.tables) if self.ladder is None else len(self.ladder.latent)

    @property
    def compatible_model_ids(self) -> tuple[str, ...]:
        """Ids of factorised bundles whose streams this one decodes (same networks and tables)."""
        return tuple(self.manifest.get("compatible_model_ids", ()))

    def accepts(self, model_id_prefix: str) -> bool:
        """Whether a stream whose metadata names ``model_id_prefix`` (hex) decodes with this bundle."""
        return len(model_id_prefix) >= 8 and any(m.startswith(model_id_prefix)
                                                 for m in (self.model_id, *self.compatible_model_ids))

    @classmethod
    def load(cls, path: str | Path | None = None, verify: bool = True) -> "Bundle":
        path = Path(path) if path is not None else default_bundle_dir()
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise BundleError(f"{path}: no {MANIFEST}; point --bundle at a folder made by cvae-export --target onnx")
        try:
            manifest = json.loads(mpath.read_text())
            levels = int(manifest["levels"].get("latent_levels", manifest["levels"]["count"]))
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
            adaptive = ladder = None
            kind = manifest.get("entropy_model", "factorized")
            if kind == "adaptive":
                adaptive = AdaptiveModel.from_file(path / "adaptive.npz")
                with np.load(path / "ladder.npz", allow_pickle=False) as r:
                    ladder = Ladder(latent=r["latent"].astype(np.int32), step=r["step"].astype(np.float32))
            elif kind != "factorized":
                raise BundleError(f"{path}: entropy_model {kind!r} is unknown to this version; upgrade cvae-satcomp")
        except (OSError, KeyError, ValueError) as e:
            raise BundleError(f"{path}: cannot read tables or gains ({e}); re-export the bundle") from e
        return cls(path=path, manifest=manifest, tables=tables, gain=gain, inv_gain=inv_gain, skip_variance=skip,
                   adaptive=adaptive, ladder=ladder)

    def codec(self, backend: str = "auto", transforms=None, mode_search: str | None = None,
              threads: int = 0) -> TileCodec:
        """A :class:`TileCodec` running this bundle's network on ``backend`` (or the given transforms);
        ``mode_search`` is the encoder's search at residual levels (``TileCodec.searched_modes``; None: 'auto' where
        the networks run on an accelerator, ``plan.CPU_MODE_SEARCH`` on the CPU, ``plan.default_mode_search``);
        ``threads`` the network's intra-op threads (0: the runtime's default)."""
        if transforms is None:
            from cvae.edge.runtime import load_transforms
            transforms = load_transforms(self.path, backend, threads)
        if mode_search is None:
            mode_search = default_mode_search(is_accelerated(transforms))
        return TileCodec(tables=self.tables, gain=self.gain, inv_gain=self.inv_gain, transforms=transforms,
                         model_id=bytes.fromhex(self.model_id), skip_variance=self.skip_variance,
                         adaptive=self.adaptive, ladder=self.ladder,
                         compatible_ids=tuple(bytes.fromhex(m) for m in self.compatible_model_ids),
                         mode_search=mode_search)
