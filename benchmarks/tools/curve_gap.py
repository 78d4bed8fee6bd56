"""Where on the curve we win or lose: rate of ours over the strongest JPEG 2000 at each 2 dB, from a scorer rd.json.

PCHIP of log-rate over PSNR (as the scorer's BD-rate), for each scene against the JPEG 2000 configuration the
scorer counts (the one we beat least), over the common PSNR range.

    python benchmarks/tools/curve_gap.py benchmarks/results/782c7ed21f22/scorer_validation_rd.json
"""
import json, math, sys, numpy as np
from scipy.interpolate import PchipInterpolator
d = json.load(open(sys.argv[1]))
def curve(r):
    pts = sorted((p, math.log(b)) for b, p in r if p >= 20 and b > 0)
    xs, ys = [], []
    for p, l in pts:
        if not xs or p > xs[-1] + 1e-6: xs.append(p); ys.append(l)
    return np.array(xs), np.array(ys)
for name, r in d.items():
    ours = r["ours"]; pmin=min(p for _,p in ours); pmax=max(p for _,p in ours)
    xo, yo = curve(ours)
    best=None
    for key in ("j2k","j2k_mct","j2k_klt"):
        j=[x for x in r.get(key) or [] if x[0]>0 and pmin-3<=x[1]<=pmax+3]
        if len(j)<3: continue
        xj,yj=curve(j)
        lo,hi=max(xo[0],xj[0]),min(xo[-1],xj[-1])
        g=np.linspace(lo,hi,200); dd=PchipInterpolator(xo,yo)(g)-PchipInterpolator(xj,yj)(g)
        bd=(math.exp(np.trapezoid(dd,g)/(hi-lo))-1)*100
        if best is None or bd>best[0]: best=(bd,key,xj,yj,lo,hi)
    bd,key,xj,yj,lo,hi=best
    print(f"{name} vs {key} {bd:+.1f}% range {lo:.1f}-{hi:.1f}")
    print("   ours:", " ".join(f"{p:.1f}@{b:.3f}" for b,p in ours))
    line=[]
    for p in np.arange(math.ceil(lo), hi, 2):
        line.append(f"{p:.0f}:{(math.exp(PchipInterpolator(xo,yo)(p)-PchipInterpolator(xj,yj)(p))-1)*100:+.0f}")
    print("   ", " ".join(line))
