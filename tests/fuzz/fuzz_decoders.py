"""A seeded mutation fuzz run of every C decoder, built with ASan + UBSan (tests/fuzz/build_sanitized.py).

    python tests/fuzz/fuzz_decoders.py --inputs 100000 [--seed 1] [--jobs 2] [--targets tile_v11 ...]

The parent builds the sanitized extensions into a temporary folder, then runs ``--jobs`` children under
``LD_PRELOAD`` of the ASan runtime; each child loads the sanitized modules in place of the tree's
(``cvae.edge.codec._rangecoder``, ``_predictive``, ``_coefs``, ``_wavelet``) and feeds mutated inputs to the real
decoders. Any sanitizer report aborts its child (``-fno-sanitize-recover=all``); the parent exits non-zero when a
child failed or printed a report, and prints the inputs per target.

Targets and their seeds (every tile format that reaches C, and the v4 coder at its arithmetic limits):

    rangecoder      the golden rANS stream (range coder format 1) with its tables: ``rangecoder.decode``
    tile_v1         the golden v1 tile (packets_v1.bin's body): unpack, then its payload through ``rangecoder.decode``
    tile_v2..v11    the golden tiles (tests/edge/codec/golden): ``TileCodec.parse_integers`` (v2, v3, v5, v6, v7,
                    v10, v11: the rANS and coefficient decoders) and ``TileCodec.decompress`` (the predictive decoder,
                    v11's level rotations (``_wavelet.mix``), the inverse wavelet; a tile that needs the synthesis
                    network stops there)
    v4_extreme      v4 tiles encoded here with bounds at the format's limits (|lo|, |hi|, E up to 2^33), masks,
                    replicated bands and palettes: ``decompress``
    coefs           v5 coefficient streams of odd-sized subbands with values up to 2^30: ``coefs.decode_values``
    coefs_v10       the same coefficients in v10 streams (the mixing coder): ``coefs.decode_values(mixed=True)``

Mutations (1 to 4 per input; for the tiles, half of the inputs mutate one coded stream and re-frame the tile around
it, so that it reaches its decoder; of the others half are confined to the payload's bytes): bit flips, byte sets (random or 0x00, 0xFF,
0x7F, 0x80), inserted and deleted runs, truncation, extension, duplicated chunks, splices with another seed of the
same target. A decoder may only return or raise the codec's typed errors (``CodecError``, ``ValueError``); any
other exception is reported as a finding too.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GOLDEN = ROOT / "tests" / "edge" / "codec" / "golden"
#: what a sanitizer prints when it finds something (the run also stops: no recovery)
REPORT_MARKERS = ("runtime error:", "AddressSanitizer", "UndefinedBehaviorSanitizer", "LeakSanitizer")
#: findings of the Python side: an exception a decoder must not raise on bad bytes
FINDING = "FINDING"

__all__ = ["main", "run", "REPORT_MARKERS"]


# ---------------------------------------------------------------------------------------------------------------
# The child: sanitized modules in, mutated inputs through the real decoders.

def _load_sanitized(so_dir: Path) -> None:
    """Register the sanitized extensions under the tree's module names before anything imports them."""
    import importlib.machinery
    import importlib.util

    for so in sorted(so_dir.iterdir()):
        name = so.name.split(".")[0]
        full = f"cvae.edge.codec.{name}"
        loader = importlib.machinery.ExtensionFileLoader(full, str(so))
        spec = importlib.util.spec_from_file_location(full, so, loader=loader)
        mod = importlib.util.module_from_spec(spec)
        loader.exec_module(mod)
        sys.modules[full] = mod


#: calls that reached each sanitized C entry point (counted by wrappers around them)
CALLS: dict[str, int] = {}


def _count_calls() -> None:
    """Wrap the sanitized decoders' entry points to count the inputs that reach C."""
    for mod, fn in (("_rangecoder", "decode"), ("_predictive", "decode"), ("_coefs", "decode"), ("_coefs", "decode_mixed"),
                    ("_wavelet", "inverse"), ("_wavelet", "mix")):
        m = sys.modules[f"cvae.edge.codec.{mod}"]
        inner = getattr(m, fn)
        key = f"{mod}.{fn}"
        CALLS[key] = 0

        def counted(*args, _inner=inner, _key=key):
            CALLS[_key] += 1
            return _inner(*args)

        setattr(m, fn, counted)


class NeedsNetwork(Exception):
    """Raised by the fuzz codec's transforms: a mutated tile asked for the synthesis network."""


class _NoNetwork:
    def analysis(self, x):
        raise NeedsNetwork

    def synthesis(self, y_hat):
        raise NeedsNetwork


def _targets():
    """``{name: (seeds, payload_start, decode[, genuine])}``; ``payload_start[i]``: where seed i's payload begins;
    ``genuine``: how many of the seeds are encoder output that must decode (the rest are crafted)."""
    import numpy as np

    import make_packet_golden  # tests/edge/codec/golden: on the child's PYTHONPATH
    import make_rangecoder_golden

    from cvae.edge.bundle import Bundle
    from cvae.edge.codec import bitstream, coefs, rangecoder
    from cvae.edge.codec.predictive import PredictiveKind
    from cvae.edge.errors import CorruptTileError

    g = make_rangecoder_golden.golden_case()
    tables = (g["cdfs"], g["cdf_lengths"], g["offsets"], g["precision"])

    def rc(data: bytes) -> None:
        rangecoder.decode(data, g["indexes"], *tables)

    def v1(data: bytes) -> None:
        _, _, payload, _ = bitstream.unpack_tile(data)
        rangecoder.decode(payload, g["indexes"], *tables)

    bundle = Bundle.load()
    codec = bundle.codec(transforms=_NoNetwork())
    v6_scene = json.loads((GOLDEN / "tile_v6_integers.json").read_text())["scene_band_range"]
    scene = bitstream.SceneSide.from_metadata({"band_range": v6_scene}, 4)

    def tile(data: bytes) -> None:
        try:
            codec.parse_integers(data, scene)
        except NeedsNetwork:
            pass
        except Exception as e:
            if not isinstance(e, ValueError):  # CorruptTileError and the header's ValueErrors
                raise
        try:
            codec.decompress(data, scene)
        except NeedsNetwork:
            pass

    def v4(data: bytes) -> None:
        """The predictive decoder (v4, v8, v9) whatever the model id (the golden tiles' is not the bundle's)."""
        header, _, payload, valid = bitstream.unpack_tile(data)
        if header.format.kind != "predictive":
            raise CorruptTileError("not a predictive tile")
        PredictiveKind(header.model_id).decode_tile(header, payload, valid)

    def payload_start(data: bytes) -> int:
        """The first byte of the tile's coded payload (its last part)."""
        _, _, payload, _ = bitstream.unpack_tile(data, scene)
        parts = payload if isinstance(payload, tuple) else (payload,)
        return len(data) - sum(len(p) for p in parts if p)

    def framed(data: bytes):
        """``(streams, rebuild)``: the tile's coded streams, and the tile with other streams in their place
        (framing and header intact, so that a mutated stream reaches its decoder)."""
        header, present, payload, valid = bitstream.unpack_tile(data, scene)
        streams = list(payload) if isinstance(payload, tuple) else [payload if payload is not None else b""]

        def rebuild(new: list[bytes]) -> bytes:
            return bitstream.pack_tile(header, present, tuple(new) if isinstance(payload, tuple) else new[0], valid)

        return streams, rebuild

    def tile_target(names, decode=tile):
        seeds = [(GOLDEN / n).read_bytes() for n in names]
        return seeds, [payload_start(s) for s in seeds], decode

    # v4 at its limits: float64 tiles holding integers up to 2^33, the largest bounds, masks, replication, palettes
    rng = np.random.default_rng(20261206)
    kind = PredictiveKind(bytes.fromhex(bundle.model_id))
    lim = bitstream.PREDICTIVE_LIMIT
    extreme = []
    for c, h, w, e in ((3, 16, 16, [0, lim, 12345]), (2, 9, 13, [lim, lim]), (4, 8, 8, [0, 0, 1, lim // 3])):
        x = rng.integers(-lim, lim + 1, size=(c, h, w)).astype(np.float64)
        x[0, ::2] = -lim
        x[-1, :, ::3] = lim
        extreme.append(kind.encode_tile(x, np.array(e)))
    crafted = [huge_step_tile(kind)]
    x = np.repeat(np.repeat(rng.integers(0, 4000, size=(3, 6, 6)), 2, axis=1), 2, axis=2).astype(np.uint16)
    valid = rng.random((12, 12)) > 0.2
    extreme.append(kind.encode_tile(x, 0, valid))  # replicated bands, a mask
    x = (rng.integers(0, 40, size=(2, 16, 16)) * 97).astype(np.int32)
    extreme.append(kind.encode_tile(x, 0, None, rng.random((2, 16, 16)) > 0.9))  # palettes, band fill
    # the replication mode (v8, v9) at the limits: pairs of equal samples off any grid (each row shifted), huge
    # values; every band forced into mode 1 (v9's mode 0 may code these smaller, and the seeds must reach mode 1)
    from cvae.edge.codec import _predictive, predictive

    def all_mode_1(args, coded, skip, v9=True, some_skipped=True):
        ones = np.ones(args[3], np.uint8)
        return ones, _predictive.encode(*args, ones, v9)

    keep, predictive.band_modes = predictive.band_modes, all_mode_1
    try:
        for e in (0, lim // 5):
            walk = np.cumsum(rng.integers(-(lim >> 4), (lim >> 4) + 1, size=(2, 12, 9)), axis=2)
            x = np.clip(np.repeat(walk, 2, axis=2), -lim, lim).astype(np.float64)
            for y in range(12):
                x[:, y] = np.roll(x[:, y], y % 2, axis=-1)
            data = kind.encode_tile(x, e, rng.random((12, 18)) > 0.1)
            assert bitstream.unpack_tile(data)[0].modes.all(), "expected every band in the replication mode"
            extreme.append(data)
    finally:
        predictive.band_modes = keep

    v1_tile = make_packet_golden.tile_body()

    def coef(data: bytes) -> None:
        coefs.decode_values(data, 2, 19, 23)

    def coef_v10(data: bytes) -> None:
        coefs.decode_values(data, 2, 19, 23, mixed=True)

    coef_seeds, coef_v10_seeds = [], []
    for scale in (3, 1 << 12, coefs.LIMIT):
        comps = [[np.clip(rng.laplace(0, scale / 4, size=s), -coefs.LIMIT, coefs.LIMIT).astype(np.int32)
                  for s in _subband_shapes(19, 23)] for _ in range(2)]
        coef_seeds.append(coefs.encode(comps, 19, 23))
        coef_v10_seeds.append(coefs.encode(comps, 19, 23, mixed=True))

    return {
        "framed": framed,
        "rangecoder": ([make_rangecoder_golden.GOLDEN_PATH.read_bytes()], [17], rc),
        "tile_v1": ([v1_tile], [payload_start(v1_tile)], v1),
        "tile_v2": tile_target(["tile_v2.bin"]),
        "tile_v3": tile_target([f"tile_v3_{n}.bin" for n in ("residual", "hybrid", "masked")]),
        "tile_v4": tile_target(["tile_v4.bin"], v4),
        "tile_v5": tile_target([f"tile_v5_{n}.bin" for n in ("residual", "hybrid", "masked")]),
        "tile_v6": tile_target([f"tile_v6_{n}.bin" for n in ("residual", "hybrid", "masked")]),
        "tile_v7": tile_target([f"tile_v7_{n}.bin" for n in ("residual", "hybrid", "masked", "stepped")]),
        "tile_v10": tile_target([f"tile_v10_{n}.bin" for n in ("residual", "hybrid", "masked", "stepped")]),
        "tile_v11": tile_target(["tile_v11_residual.bin"]),
        "tile_v8": tile_target(["tile_v8.bin"], v4),
        "tile_v9": tile_target(["tile_v9.bin"], v4),
        "v4_extreme": (extreme + crafted, [payload_start(s) for s in extreme + crafted], v4, len(extreme)),
        "coefs": (coef_seeds, [0] * len(coef_seeds), coef),
        "coefs_v10": (coef_v10_seeds, [0] * len(coef_v10_seeds), coef_v10),
    }


def huge_step_tile(kind=None) -> bytes:
    """A crafted v4 tile: coded lossless over |x| <= 2^33 (residuals up to 2^34), then its header's bounds raised
    to E = 2^33 (step 2^34 + 1): q * step reaches 2^68. No encoder writes it; a decoder must refuse it, not
    overflow."""
    import dataclasses

    import numpy as np

    from cvae.edge.codec import bitstream
    from cvae.edge.codec.predictive import PredictiveKind

    kind = kind or PredictiveKind(b"\x0b\xad\xca\xfe")
    lim = bitstream.PREDICTIVE_LIMIT
    x = np.zeros((1, 4, 4), np.float64)
    x[0, ::2, ::2] = lim
    x[0, 1::2, 1::2] = -lim
    data = kind.encode_tile(x, 0)
    header, present, payload, valid = bitstream.unpack_tile(data)
    header = dataclasses.replace(header, max_error=np.full(1, lim, np.int64))
    return bitstream.pack_tile(header, present, payload, valid)


def _subband_shapes(h: int, w: int) -> list[tuple[int, int]]:
    from cvae.edge.codec import wavelet

    return list(wavelet.subband_shapes(h, w, wavelet.levels_for(h, w)))


_INTERESTING = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE)


def mutate(rnd: random.Random, data: bytes, start: int, others: list[bytes]) -> bytes:
    """1 to 4 mutations of ``data``; half the time only at or after ``start`` (the payload)."""
    b = bytearray(data)
    lo = min(start, len(b)) if rnd.random() < 0.5 else 0
    for _ in range(rnd.randint(1, 4)):
        n = len(b)
        op = rnd.randrange(9)
        at = rnd.randint(lo, n) if n > lo else n
        if op == 0 and at < n:                                   # flip one bit
            b[at] ^= 1 << rnd.randrange(8)
        elif op == 1 and at < n:                                 # set a byte
            b[at] = rnd.choice(_INTERESTING) if rnd.random() < 0.5 else rnd.randrange(256)
        elif op == 2:                                            # insert a run
            b[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
        elif op == 3 and at < n:                                 # delete a run
            del b[at:at + rnd.randint(1, 16)]
        elif op == 4:                                            # truncate
            del b[at:]
        elif op == 5:                                            # extend
            b += bytes(rnd.choice(_INTERESTING) if rnd.random() < 0.3 else rnd.randrange(256)
                       for _ in range(rnd.randint(1, 64)))
        elif op == 6 and at < n:                                 # duplicate a chunk
            k = rnd.randint(1, 32)
            b[at:at] = b[at:at + k]
        elif op == 7 and others:                                 # splice another seed's tail
            o = rnd.choice(others)
            cut = rnd.randint(0, len(o))
            b[at:] = o[cut:]
        elif at < n:                                             # overwrite a run with one byte value
            v = rnd.choice(_INTERESTING)
            k = rnd.randint(1, 16)
            b[at:at + k] = bytes([v]) * len(b[at:at + k])
    return bytes(b)


def child(so_dir: Path, counts: dict[str, int], seed: int) -> int:
    _load_sanitized(so_dir)
    _count_calls()
    from cvae.edge.codec import _predictive  # noqa: F401  (the sanitized one, registered above)
    from cvae.edge.errors import CodecError

    loaded = sys.modules["cvae.edge.codec._predictive"].__file__
    if not loaded.startswith(str(so_dir)):
        print(f"{FINDING}: the tree's _predictive was loaded ({loaded}), not the sanitized one", flush=True)
        return 3
    targets = _targets()
    framed = targets.pop("framed")
    findings = 0
    done = {}
    for name, n in counts.items():
        seeds, starts, decode, *genuine = targets[name]
        rnd = random.Random(f"{seed}:{name}")
        frames = [framed(x) for x in seeds] if name.startswith(("tile_", "v4_")) else None
        for s in seeds[:genuine[0] if genuine else None]:  # the seeds themselves decode (not the crafted ones)
            try:
                decode(s)
            except Exception as e:
                print(f"{FINDING}: {name} seed fails: {type(e).__name__}: {e}", flush=True)
                findings += 1
        t0 = time.perf_counter()
        calls0 = dict(CALLS)
        outcomes: dict[str, int] = {}
        for i in range(n):
            k = rnd.randrange(len(seeds))
            if frames and rnd.random() < 0.5:  # one coded stream mutated, the tile re-framed around it
                streams, rebuild = frames[k]
                j = rnd.randrange(len(streams))
                new = list(streams)
                new[j] = mutate(rnd, streams[j], 0, [x for f in frames for x in f[0] if x])
                try:
                    data = rebuild(new)
                except ValueError:  # e.g. an emptied stream of a present component: the raw bytes instead
                    data = mutate(rnd, seeds[k], starts[k], seeds)
            else:
                data = mutate(rnd, seeds[k], starts[k], seeds)
            try:
                decode(data)
                outcome = "decoded"
            except (CodecError, ValueError, NeedsNetwork) as e:
                outcome = type(e).__name__
            except Exception as e:  # an untyped failure on bad bytes
                outcome = "FINDING"
                findings += 1
                if findings <= 20:
                    print(f"{FINDING}: {name} input {i}: {type(e).__name__}: {e}; input hex {data.hex()}", flush=True)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        done[name] = n
        tally = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
        reached = ", ".join(f"{k} {CALLS[k] - calls0[k]}" for k in CALLS if CALLS[k] > calls0[k])
        print(f"{name}: {n} inputs in {time.perf_counter() - t0:.1f} s ({tally}; C calls: {reached})", flush=True)
    print("DONE " + json.dumps({"inputs": done, "findings": findings}), flush=True)
    return 1 if findings else 0


# ---------------------------------------------------------------------------------------------------------------
# The parent: build, split the inputs over the children, collect.

TARGETS = ("rangecoder", "tile_v1", "tile_v2", "tile_v3", "tile_v4", "tile_v5", "tile_v6", "tile_v7", "tile_v8",
           "tile_v9", "tile_v10", "tile_v11", "v4_extreme", "coefs", "coefs_v10")
#: share of the inputs per target (the fast direct targets get more, the slow whole-tile ones fewer)
WEIGHTS = {"rangecoder": 1, "tile_v1": 1, "tile_v2": 1, "tile_v3": 1, "tile_v4": 1, "tile_v5": 1, "tile_v6": 1,
           "tile_v7": 1, "tile_v8": 1, "tile_v9": 1, "tile_v10": 1, "tile_v11": 1, "v4_extreme": 1, "coefs": 1, "coefs_v10": 1}


def split(total: int, jobs: int, targets: tuple[str, ...] = TARGETS) -> list[dict[str, int]]:
    """``total`` inputs over ``targets`` (by WEIGHTS), each target's share over ``jobs`` children."""
    wsum = sum(WEIGHTS[t] for t in targets)
    per = {t: total * WEIGHTS[t] // wsum for t in targets}
    per[targets[0]] += total - sum(per.values())
    return [{t: per[t] // jobs + (1 if j < per[t] % jobs else 0) for t in targets} for j in range(jobs)]


def run(inputs: int, seed: int = 1, jobs: int = 1, build_dir: Path | None = None,
        timeout: float | None = None, targets: tuple[str, ...] = TARGETS) -> tuple[int, str, dict[str, int]]:
    """Build, fuzz; ``(exit status, all output, inputs per target)``. Status 0: every child finished, no
    sanitizer report, no finding. ``targets``: a subset of TARGETS (default all)."""
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown or not targets:
        raise ValueError(f"fuzz targets {unknown or '(none)'}: choose from {', '.join(TARGETS)}")
    from build_sanitized import asan_runtime, build, compiler  # a sibling script

    cc = compiler()
    if cc is None or asan_runtime(cc) is None:
        raise FileNotFoundError("no C compiler with an ASan runtime (gcc -print-file-name=libasan.so)")
    with tempfile.TemporaryDirectory(prefix="cvae-fuzz-") as tmp:
        so_dir = Path(build_dir) if build_dir else Path(tmp) / "so"
        build(so_dir, cc)
        env = dict(os.environ, LD_PRELOAD=str(asan_runtime(cc)),
                   ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:allocator_may_return_null=1",
                   UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1", PYTHONPATH=os.pathsep.join([str(HERE), str(GOLDEN)]),
                   OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        procs = []
        for j, counts in enumerate(split(inputs, jobs, tuple(targets))):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(so_dir), "--seed", f"{seed}.{j}",
                   "--counts", json.dumps(counts)]
            procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True))
        status, out, done = 0, [], {t: 0 for t in targets}
        for p in procs:
            try:
                text, _ = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                text, _ = p.communicate()
                text += "\nTIMEOUT\n"
            out.append(text)
            status |= p.returncode != 0
            for line in text.splitlines():
                if line.startswith("DONE "):
                    for t, n in json.loads(line[5:])["inputs"].items():
                        done[t] += n
        text = "\n".join(out)
        if any(m in text for m in REPORT_MARKERS) or FINDING in text:
            status = 1
        return int(status), text, done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=100_000, help="inputs in total, over every target")
    ap.add_argument("--seed", default="1")
    ap.add_argument("--jobs", type=int, default=1, help="children in parallel")
    ap.add_argument("--build-dir", type=Path, help="keep the sanitized modules here (default: a temporary folder)")
    ap.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS, metavar="TARGET",
                    help=f"fuzz only these targets (default: all): {', '.join(TARGETS)}")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--counts", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return child(a.child, json.loads(a.counts), a.seed)
    t0 = time.perf_counter()
    status, text, done = run(a.inputs, a.seed, a.jobs, a.build_dir, targets=tuple(a.targets))
    print(text)
    print(f"inputs per target: {json.dumps(done)}; total {sum(done.values())}; "
          f"{time.perf_counter() - t0:.0f} s; {'CLEAN' if status == 0 else 'FAILED'}")
    return status


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
