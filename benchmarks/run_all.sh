#!/usr/bin/env bash
# Reproduces every figure quoted in README.md into benchmarks/results/ (needs ../shared/data and the
# bench extra: pip install -e ".[bench]"). About 30-40 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
R=benchmarks/results
mkdir -p "$R"
# the validation scenes of configs/default.yaml, as a folder for the scorer
VAL=$(mktemp -d)
python - "$VAL" <<'PY'
import os, sys, yaml
cfg = yaml.safe_load(open("configs/default.yaml"))
for p in cfg["validation_scenes"]:
    src = os.path.normpath(os.path.join("configs", p))
    os.symlink(os.path.abspath(src), os.path.join(sys.argv[1], os.path.basename(src)))
PY
python ../shared/tools/rd_vs_jpeg2000.py "$VAL" "$(mktemp -d)" | tee "$R/scorer_validation.txt" || true
python benchmarks/rd_validation.py
python benchmarks/spectral_ablation.py
python benchmarks/learning_curve.py
python benchmarks/coder_speed.py
# the peer comparison and per-stage speed quoted in README ran on the two small validation scenes;
# pass "$VAL" instead for all six (much longer: every peer at every quality on 2.4-megapixel scenes)
SMALL=$(mktemp -d)
ln -s "$(readlink -f "$VAL/s2_ben_87_48_b2348.tif")" "$(readlink -f "$VAL/l8_elkton_b1234567.tif")" "$SMALL/"
python benchmarks/bench.py speed --data "$SMALL" --repeats 3
python benchmarks/bench.py rd --data "$SMALL"
python benchmarks/train_profile.py --steps 20
python benchmarks/soak.py --minutes 5
python benchmarks/make_readme_table.py --readme README.md
