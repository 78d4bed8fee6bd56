"""The README's headline table, written from benchmark results: never typed by hand.

Reads every ``*.json`` in the results folder that one of the harnesses wrote: ``bench.py rd`` (``rd.json`` by
default), ``rd_validation.py`` (``rd_validation.json``) and, when present, ``bench.py speed`` (``speed.json``);
other JSON files are ignored. Prints the Markdown table and writes it to ``README_table.md`` beside them.

    python benchmarks/tools/make_readme_table.py [--results benchmarks/results/BUNDLE] [--out FILE] [--readme README.md]
    python benchmarks/tools/make_readme_table.py --readme README.md --includes-only   # the include blocks alone
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import DEFAULT_OUT, sibling  # noqa: E402


def _bench_rd():
    """``harness/bench_rd.py`` (for its codec labels), loaded once as the harness loads it."""
    return sibling("bench_rd")


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def _pct(v) -> str:
    v = _num(v)
    return "n/a" if math.isnan(v) else f"{v:+.1f}%"


def _val(v, spec: str) -> str:
    v = _num(v)
    return "n/a" if math.isnan(v) else format(v, spec)


def kind_of(rec: dict) -> str | None:
    """'rd', 'speed', 'rd_validation', 'soak', 'coder', 'int8' or None for a JSON file no harness here wrote."""
    if rec.get("kind") in ("rd", "speed"):
        return rec["kind"]
    if isinstance(rec.get("median"), dict) and "bd_rate_psnr" in rec["median"] and "scenes" in rec:
        return "rd_validation"
    if "tiles_per_s" in rec and "rss_peak_mb" in rec:
        return "soak"
    if "ideal_bits_per_symbol" in rec and "results" in rec:
        return "coder"
    if "bd_rate_pct" in rec and "qdq" in rec:
        return "int8"
    return None


def rd_rows(rec: dict, source: str) -> list[tuple[str, str, str, str]]:
    labels = _bench_rd().LABELS
    scenes = rec["scenes"]
    sensors = sorted({s["sensor"] for s in scenes.values()})
    on = f"{len(scenes)} scenes ({', '.join(sensors)})"
    src = f"`{source}`, bundle `{rec['bundle'][:12]}` (step {rec.get('training_step')})"
    med = rec["median"]
    rows = [
        ("BD-rate vs JPEG 2000, PSNR, all packet bytes (median)", _pct(med["bd_rate_psnr"].get("ours")), on, src),
        ("BD-rate vs JPEG 2000, PSNR, payload only (median)", _pct(med["bd_rate_psnr"].get("ours_payload")), on, src),
        ("BD-rate vs JPEG 2000, MS-SSIM, all packet bytes (median)", _pct(med["bd_rate_msssim"].get("ours")), on, src),
    ]
    peers = [f"{labels[c]} {_pct(med['bd_rate_psnr'][c])}" for c in ("j2k_mct", "jxl", "avif", "webp")
             if c in med["bd_rate_psnr"]]
    if peers:
        rows.append(("Peers' BD-rate vs JPEG 2000, PSNR (median)", "; ".join(peers), "scenes each peer can code", src))
    at = med.get("at_0_91_bpp", {})
    ours, j2k = at.get("ours", {}), at.get("j2k", {})
    in_range = sum(1 for s in scenes.values() if (s["at_0_91_bpp"].get("ours") or {}).get("psnr") is not None)
    rows.append(("At 0.91 bpp, ours / JPEG 2000 (median)",
                 f"SSIM {_val(ours.get('ssim'), '.4f')} / {_val(j2k.get('ssim'), '.4f')}, "
                 f"PSNR {_val(ours.get('psnr'), '.2f')} / {_val(j2k.get('psnr'), '.2f')} dB, "
                 f"MSE {_val(ours.get('mse'), '.4g')} / {_val(j2k.get('mse'), '.4g')}",
                 f"{in_range} of {len(scenes)} scenes reach 0.91 bpp (medians over those)", src))
    lose = [n for n, s in scenes.items() if not math.isnan(_num(s["bd_rate_psnr"].get("ours")))
            and s["bd_rate_psnr"]["ours"] > 0]
    known = [n for n, s in scenes.items() if not math.isnan(_num(s["bd_rate_psnr"].get("ours")))]
    rows.append(("Scenes where JPEG 2000 needs fewer bits (PSNR BD-rate > 0)",
                 f"{len(lose)} of {len(known)}" + (f": {', '.join(lose)}" if lose else ""), on, src))
    return rows


def validation_rows(rec: dict, source: str) -> list[tuple[str, str, str, str]]:
    med = rec["median"]
    return [("Validation scenes: BD-rate vs JPEG 2000, PSNR / MS-SSIM (median)",
             f"{_pct(med.get('bd_rate_psnr'))} / {_pct(med.get('bd_rate_msssim'))}",
             f"{len(rec['scenes'])} held-out scenes",
             f"`{source}`, bundle `{str(rec.get('bundle'))[:12]}` (step {rec.get('training_step')})")]


def speed_rows(rec: dict, source: str) -> list[tuple[str, str, str, str]]:
    m = rec["machine"]
    cpu = f"{m.get('cpu_model')} ({m.get('cpu_count')} CPUs)" + (f" + {m['gpu']}" if m.get("gpu") else "")
    src = f"`{source}`, level {rec['config']['level']}"
    rows = []
    for b, entry in rec["backends"].items():
        s = list(entry["scenes"].values())
        if not s:
            continue
        med = lambda k: statistics.median(x[k] for x in s)
        rows.append((f"Encoder throughput, {b} (median over scenes)",
                     f"{med('mpix_per_s'):.3f} MP/s, {med('tiles_per_s'):.2f} tiles/s, "
                     f"p99 tile {med('tile_latency_p99_ms'):.0f} ms", f"{len(s)} scenes on {cpu}", src))
    for b, why in rec.get("skipped_backends", {}).items():
        rows.append((f"Encoder throughput, {b}", "not measured", why, src))
    ratios = [j["ours_over_j2k_time"] for j in rec["vs_openjpeg"].values() if "ours_over_j2k_time" in j]
    if ratios:
        rows.append(("Whole encode time / OpenJPEG at the same rate (median)", f"{statistics.median(ratios):.1f}x",
                     f"{len(ratios)} scenes on {cpu}", src))
    return rows


def soak_rows(rec: dict, source: str) -> list[tuple[str, str, str, str]]:
    return [("Daemon soak: throughput, tile latency p99, peak RSS, RSS slope (2nd half), open files",
             f"{rec['tiles_per_s']:.1f} tiles/s, {1e3 * rec['tile_latency_p99_s']:.0f} ms, "
             f"{rec['rss_peak_mb']:.0f} MB, {rec['rss_slope_mb_per_min_second_half']:+.2f} MB/min, "
             f"{rec['open_files_first']} -> {rec['open_files_last']} (max {rec['open_files_max']})",
             f"{rec['tiles']} tiles of {rec['scenes_done']} scenes in {rec['seconds'] / 60:.0f} min, "
             f"{rec['cpu_count']} CPUs", f"`{source}`")]


def coder_rows(rec: dict, source: str) -> list[tuple[str, str, str, str]]:
    rows = {r["coder"]: r for r in rec["results"]}
    ours = next(r for k, r in rows.items() if k.startswith("cvae"))
    others = [r for k, r in rows.items() if not k.startswith("cvae")]
    if not others:
        return []
    enc = max(others, key=lambda r: r["encode_msym_s"])
    dec = max(others, key=lambda r: r["decode_msym_s"])
    return [("Range coder vs constriction's fastest (Msymbols/s)",
             f"encode {ours['encode_msym_s']:.0f} vs {enc['encode_msym_s']:.0f} "
             f"({ours['encode_msym_s'] / enc['encode_msym_s']:.1f}x), decode {ours['decode_msym_s']:.0f} vs "
             f"{dec['decode_msym_s']:.0f} ({ours['decode_msym_s'] / dec['decode_msym_s']:.1f}x); "
             f"{ours['bits_per_symbol']:.4f} bits/symbol (ideal {rec['ideal_bits_per_symbol']:.4f})",
             f"{rec['config'].get('n')} symbols, {rec['machine'].get('cpu_count')} CPUs", f"`{source}`")]


def int8_rows(rec: dict, source: str) -> list[tuple[str, str, str, str]]:
    dpsnr = [abs(lv["psnr_change_db"]) for sc in rec["scenes"].values() for lv in sc["levels"]]
    return [("INT8 Q/DQ encoder vs FP32 (BD-rate, largest PSNR change)",
             f"{rec['bd_rate_pct']:+.2f}%, {max(dpsnr):.3f} dB", f"{len(rec['scenes'])} scenes, "
             f"{rec['runtime']}", f"`{source}`, bundle `{rec['model_id'][:12]}`")]


ORDER = ("rd", "rd_validation", "speed", "coder", "soak", "int8")  # the table's row order, by result kind


def build_table(results: Path) -> str:
    rows, sources, found = [], [], []
    for path in sorted(results.glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            print(f"{path}: unreadable ({e}); skipped", file=sys.stderr)
            continue
        kind = kind_of(rec) if isinstance(rec, dict) else None
        if kind is not None:
            found.append((ORDER.index(kind), path.name, kind, rec))
    for _, name, kind, rec in sorted(found, key=lambda f: f[:2]):
        path = results / name
        rows += {"rd": rd_rows, "rd_validation": validation_rows, "speed": speed_rows, "soak": soak_rows,
                 "coder": coder_rows, "int8": int8_rows}[kind](rec, path.name)
        sources.append(f"`{path.name}` ({rec.get('command', 'command not recorded')})")
    if not rows:
        raise SystemExit(f"{results}: no rd/rd_validation/speed results; run benchmarks/bench.py rd --data DIR first "
                         "(or --includes-only to refill a README's include blocks alone)")
    lines = ["<!-- generated by benchmarks/tools/make_readme_table.py from the results folder's *.json: do not edit -->",
             "| benchmark | result | on | source |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += ["", "Negative BD-rate = fewer bits than JPEG 2000 (OpenJPEG, per band; 3-band scenes against the "
                  "stronger of J2K and J2K+MCT) for the same quality. Sources: " + "; ".join(sources) + "."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=str(DEFAULT_OUT), help="folder of result JSON files (default: the "
                   "shipped bundle's, benchmarks/results/<bundle id>)")
    p.add_argument("--includes-only", action="store_true",
                   help="only refill the <!-- include: PATH --> blocks of --readme (no table)")
    p.add_argument("--out", help="Markdown output (default: RESULTS/README_table.md)")
    p.add_argument("--readme", help="also replace the block between <!-- results-table --> markers of this "
                                    "README, and refill its include blocks")
    a = p.parse_args(argv)
    if a.includes_only:
        if not a.readme:
            p.error("--includes-only needs --readme")
        readme = Path(a.readme)
        readme.write_text(fill_includes(readme.read_text(), readme.parent))
        print(f"updated the include blocks of {readme}", file=sys.stderr)
        return 0
    results = Path(a.results)
    table = build_table(results)
    out = Path(a.out) if a.out else results / "README_table.md"
    out.write_text(table)
    print(table)
    print(f"wrote {out}", file=sys.stderr)
    if a.readme and Path(a.readme).is_file():
        readme = Path(a.readme)
        text = fill_block(readme.read_text(), "<!-- results-table -->", "<!-- /results-table -->", table)
        text = fill_includes(text, readme.parent)
        readme.write_text(text)
        print(f"updated {a.readme}", file=sys.stderr)
    return 0


def fill_block(text: str, start: str, end: str, body: str) -> str:
    """``text`` with what lies between the ``start`` and ``end`` markers replaced by ``body``."""
    if start not in text or end not in text:
        return text
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    return f"{head}{start}\n{body.rstrip()}\n{end}{tail}"


INCLUDE = re.compile(r"<!-- include: (?P<path>[^ ]+) -->\n.*?<!-- /include -->", re.S)


def fill_includes(text: str, root: Path) -> str:
    """Every ``<!-- include: PATH -->`` ... ``<!-- /include -->`` block gets the current text of PATH (relative
    to the README): the per-scene tables and the scorer's output are results files, never pasted by hand."""
    def sub(m: re.Match) -> str:
        path = root / m["path"]
        if not path.is_file():
            print(f"{path}: missing; its README block is left as it was", file=sys.stderr)
            return m[0]
        body = path.read_text().rstrip()
        if path.suffix == ".txt":
            body = f"```\n{body}\n```"
        return f"<!-- include: {m['path']} -->\n{body}\n<!-- /include -->"
    return INCLUDE.sub(sub, text)


if __name__ == "__main__":
    raise SystemExit(main())
