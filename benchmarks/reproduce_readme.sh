#!/usr/bin/env bash
# Reproduces the figures quoted in README.md into benchmarks/results/ (needs ../shared/data and the
# bench extra: pip install -e ".[bench]"). About 70 minutes on 2 cores (the peer comparison on six scenes is most of it).
# GPU speed (results/speed_gpu.*) comes from a GPU machine: python benchmarks/bench.py speed --data DIR --name speed_gpu
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
python benchmarks/harness/rd_validation.py
python benchmarks/experiments/spectral_ablation.py
python benchmarks/experiments/transform_ceiling.py
python benchmarks/harness/learning_curve.py
python benchmarks/harness/coder_speed.py
# INT8 Q/DQ encoder against FP32 (written into the bundle's engines/, which git ignores; copied here);
# before the speed run, which times it as the onnxruntime-cpu-int8 backend
python -m cvae.export.cli --target int8
cp cvae/bundles/default/engines/int8_report.json "$R/int8_report.json"
# the peer comparison and per-stage speed on all six validation scenes (every peer at every quality)
python benchmarks/bench.py speed --data "$VAL" --repeats 3
python benchmarks/bench.py rd --data "$VAL"
python benchmarks/harness/train_profile.py --steps 20
python benchmarks/harness/soak.py --minutes 5
python benchmarks/tools/make_readme_table.py --readme README.md
# the included blocks of docs/training.md, then benchmarks/results/README.md and ARCHIVE.md from every result file
python benchmarks/tools/make_readme_table.py --readme docs/training.md
python benchmarks/tools/make_results_readme.py
