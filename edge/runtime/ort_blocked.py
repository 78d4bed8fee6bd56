"""GDN on ONNX Runtime's blocked layout: the analysis network without the reorders around its Sqrt and Div.

On x86, ONNX Runtime's NCHWc transformer (``ORT_ENABLE_ALL``) runs every convolution on channel-blocked tensors
(MLAS's NCHWc: the channels in blocks of 8 or 16, innermost), and each op it does not know in that layout gets
its inputs reordered back to NCHW and its output reordered into blocks again. In the analysis network's GDN::

    u -Mul(u, u)-> -Conv 1x1 (gamma, beta)-> n -Sqrt-> -Div(u, .)-> next Conv
                                              ^ReorderOutput   ^ReorderOutput(u) ... ReorderInput^

``Mul`` already runs blocked (the transformer knows it); ``Sqrt`` and ``Div`` do not, so every layer pays three
reorders of its widest tensor. Both are elementwise and their two operands share one layout, so they give the
same floats on blocked tensors: :func:`blocked_gdn` rewrites the optimised graph that way (the same arithmetic on
the same numbers, in another order in memory) and :func:`blocked_session` keeps the rewrite only when it
reproduces the plain session's output bit for bit. Measured on one core (AVX-512, onnxruntime 1.32): a 512 x 512
component 59 -> 54 ms, outputs identical (``benchmarks/experiments/blocked_gdn.py``).

The layout and its block size are the machine's (MLAS picks them at run time), so the rewrite is made where it
runs, from the session ONNX Runtime optimised there, never shipped. It needs the ``onnx`` package to edit the
graph (a dependency of the package). On other providers, or where the pattern is absent (no NCHWc on the machine,
another ONNX Runtime), the plain session is used.
"""
from __future__ import annotations

import hashlib
import logging
import os
import platform
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["blocked_gdn", "blocked_session", "cache_dir"]

log = logging.getLogger(__name__)

_NCHWC = "com.microsoft.nchwc"
#: the widest channel block MLAS uses (AVX-512): a tensor whose channels fill whole blocks has no padding lanes,
#: where Div would make 0/0
_BLOCK = 16


def blocked_session(ort, path: str | Path, options_for, providers: list[str], plain=None):
    """An ``ort.InferenceSession`` of ``path`` whose GDN runs blocked (module docstring), or None where the
    rewrite does not apply or does not reproduce the plain session exactly. ``options_for()``: fresh
    ``SessionOptions`` (threads set); ``plain``: the caller's plain session of ``path`` (its fallback), checked
    against, else one is made here. The rewritten graph is kept in :func:`cache_dir` (importing ``onnx`` to
    make it takes about 0.6 s, as long as a small scene's whole encode): a later process loads it with ONNX
    Runtime alone, and checks it against the plain session all the same."""
    cached = _cache_path(ort, path)
    nothing = cached.with_suffix(".none") if cached is not None else None  # "nothing to rewrite here", kept too
    if nothing is not None and _read(nothing) is not None:
        return None
    if plain is None:
        plain = ort.InferenceSession(str(path), sess_options=options_for(), providers=providers)
    kept = _read(cached) if cached is not None else None
    if kept is not None:
        fused = _checked(ort, plain, kept, options_for, providers)
        if fused is not None:
            return fused
    try:
        rewritten = _rewrite(ort, path, options_for, providers)
    except Exception as e:  # a speed-up: whatever stops it (no onnx, no temporary folder, ...) leaves the plain session
        log.warning("GDN on the blocked layout: the encoder could not be rewritten (%s: %s); using the plain session",
                    type(e).__name__, e)
        return None
    fused = _checked(ort, plain, rewritten, options_for, providers) if rewritten is not None else None
    if cached is not None and nothing is not None and (fused is not None or rewritten is None):
        _keep(cached if fused is not None else nothing, rewritten or b"")
    return fused


def _read(path: Path) -> bytes | None:
    """The cache file's bytes, or None where there is none or it cannot be read (the cache is only a speed-up)."""
    try:
        return path.read_bytes()
    except OSError:
        return None


def _keep(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file, then ``os.replace``); a folder that cannot be
    written is logged and left: the next process makes it again."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f"{path.name}.{os.getpid()}.part")
        part.write_bytes(data)
        os.replace(part, path)
    except OSError as e:
        log.info("GDN on the blocked layout: not cached in %s (%s)", path.parent, e)


def cache_dir() -> Path:
    """Where rewritten encoders are kept: ``$CVAE_CACHE_DIR``, else ``$XDG_CACHE_HOME/cvae``, else
    ``~/.cache/cvae``."""
    if os.environ.get("CVAE_CACHE_DIR"):
        return Path(os.environ["CVAE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cvae"


def _cache_path(ort, path: str | Path) -> Path | None:
    """The cache file of ``path`` on this machine: named by the model's bytes, ONNX Runtime's version and the
    CPU's features (the blocked weights are laid out for this CPU's block size)."""
    try:
        model = Path(path).read_bytes()
    except OSError:
        return None
    try:  # x86 Linux: the instruction sets MLAS chooses its kernels and block size by
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError:
        flags = ""
    key = hashlib.sha256(model + ort.__version__.encode() + platform.machine().encode() + flags.encode())
    try:
        folder = cache_dir()
    except (RuntimeError, KeyError):  # no home to name (a service without one): rewrite in every process
        return None
    return folder / f"encoder-blocked-{key.hexdigest()[:24]}.onnx"


def _rewrite(ort, path: str | Path, options_for, providers: list[str]) -> bytes | None:
    """The serialised graph of ``path`` as ONNX Runtime optimises it here, GDN rewritten by :func:`blocked_gdn`;
    None where nothing was rewritten."""
    import onnx  # a dependency of the package (pyproject.toml); imported here, where the rewrite needs it

    with tempfile.TemporaryDirectory(prefix="cvae-ort-") as tmp:
        optimised = os.path.join(tmp, "optimised.onnx")
        opts = options_for()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.optimized_model_filepath = optimised
        opts.log_severity_level = 3  # the optimised file is machine-specific, ORT warns: it is used here only
        ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        model = onnx.load(optimised)
    return model.SerializeToString() if blocked_gdn(model) else None


def _checked(ort, plain, model: bytes, options_for, providers: list[str]):
    """A session of the rewritten ``model``, or None (logged) when it does not load or run, or differs from
    ``plain`` in any bit."""
    opts = options_for()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # already optimised, and edited
    try:
        fused = ort.InferenceSession(model, sess_options=opts, providers=providers)
        same = _same_outputs(plain, fused)
    except Exception as e:  # ONNX Runtime's own errors (Fail, InvalidGraph, ...) share no base class but Exception
        log.warning("GDN on the blocked layout: the rewritten encoder does not load or run (%s); using the plain "
                    "session", e)
        return None
    if not same:
        log.warning("GDN on the blocked layout: the rewritten encoder's outputs differ from the plain session's; "
                    "using the plain session")
        return None
    return fused


def blocked_gdn(model) -> bool:
    """Rewrite ``model`` (an ``onnx.ModelProto`` that ONNX Runtime optimised with NCHWc) in place so that each
    ``Div(ReorderOutput(a), Sqrt(ReorderOutput(b)))`` feeding only a ``ReorderInput`` becomes ``Div(a, Sqrt(b))``
    on the blocked tensors, writing what the ``ReorderInput`` wrote; dead nodes (shape arithmetic left over
    from the export) and reorders nothing reads any more are dropped. True when at least one Div was rewritten."""
    g = model.graph
    nodes = list(g.node)
    outputs = {o.name for o in g.output}
    producer = {o: n for n in nodes for o in n.output}

    def consumers(name: str) -> list:
        return [n for n in nodes if name in n.input]

    def reorder_out(name: str):
        n = producer.get(name)
        if n is None or n.domain != _NCHWC or n.op_type != "ReorderOutput" or len(consumers(name)) != 1:
            return None
        attrs = {a.name: a for a in n.attribute}
        if "channels_last" in attrs and attrs["channels_last"].i:
            return None
        if "channels" not in attrs or attrs["channels"].i % _BLOCK:
            return None  # padding lanes in the blocks: keep ONNX Runtime's own handling
        return n

    nodes = _live(nodes, outputs)
    producer = {o: n for n in nodes for o in n.output}
    changed = 0
    for div in [n for n in nodes if n.domain == "" and n.op_type == "Div"]:
        a, s = div.input
        sqrt = producer.get(s)
        after = consumers(div.output[0])
        if sqrt is None or sqrt.domain != "" or sqrt.op_type != "Sqrt" or len(consumers(s)) != 1:
            continue
        if len(after) != 1 or after[0].domain != _NCHWC or after[0].op_type != "ReorderInput" \
                or div.output[0] in outputs:
            continue
        ra, rb = reorder_out(a), reorder_out(sqrt.input[0])
        if ra is None or rb is None or _channels(ra) != _channels(rb):
            continue
        reorder_in = after[0]
        sqrt.input[0] = rb.input[0]
        div.input[0] = ra.input[0]
        div.output[0] = reorder_in.output[0]
        nodes = [n for n in nodes if n is not ra and n is not rb and n is not reorder_in]
        producer = {o: n for n in nodes for o in n.output}
        changed += 1
    if not changed:
        return False
    del g.node[:]
    g.node.extend(_topological(nodes, {i.name for i in g.input} | {i.name for i in g.initializer}))
    used = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return True


def _channels(node) -> int:
    return next(a.i for a in node.attribute if a.name == "channels")


def _live(nodes: list, outputs: set[str]) -> list:
    """``nodes`` less those whose outputs nothing reads (repeatedly: a chain of dead shape arithmetic)."""
    while True:
        read = {i for n in nodes for i in n.input} | outputs
        alive = [n for n in nodes if any(o in read for o in n.output)]
        if len(alive) == len(nodes):
            return nodes
        nodes = alive


def _topological(nodes: list, available: set[str]) -> list:
    """``nodes`` in an order where each reads only graph inputs, initializers or earlier nodes' outputs."""
    done: list = []
    pending = list(nodes)
    available = set(available) | {""}
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError("the rewritten graph has a cycle or an input nothing produces")
        for n in ready:
            done.append(n)
            available.update(n.output)
        pending = [n for n in pending if all(n is not r for r in ready)]
    return done


def _same_outputs(a, b) -> bool:
    """Whether sessions ``a`` and ``b`` give bit-identical outputs on a fixed image (a ramp with texture: every
    channel of every layer non-trivial); shapes from ``a``'s first input, symbolic sizes set to 64."""
    inp = a.get_inputs()[0]
    shape = [d if isinstance(d, int) else (1 if i == 0 else 64) for i, d in enumerate(inp.shape)]
    rng = np.random.default_rng(0)
    x = (np.linspace(0, 1, int(np.prod(shape)), dtype=np.float32).reshape(shape)
         + rng.standard_normal(shape).astype(np.float32) * 0.1)
    ya, yb = a.run(None, {inp.name: x}), b.run(None, {inp.name: x})
    return all(p.shape == q.shape and np.array_equal(p, q) for p, q in zip(ya, yb))
