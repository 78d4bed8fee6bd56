#!/usr/bin/env bash
# Regenerates every figure README.md quotes, into benchmarks/results/<shipped bundle id>/ (no-bundle/ for the fuzz
# run), on the 8 validation scenes of `python benchmarks/tools/make_validation_set.py` (.dev/val), as the README
# says; then refills the README's include blocks and benchmarks/results/README.md / ARCHIVE.md.
#
#     bash benchmarks/reproduce_readme.sh            # hours on 2 cores (the bounded and tile-size runs are most of it)
#     bash benchmarks/reproduce_readme.sh --dry-run  # prints each step: the README figure, its files, its command
#
# Needs ../shared/data, ../shared/tools (the independent scorer, the aarch64 chroot) and the bench extra
# (pip install -e ".[bench]"). Each step is "README figure -> files -> command"; tests/benchmarks/test_reproduce.py
# checks that every script named here exists and every result file README.md cites is made by a step.
# Two reports are prose written from their step's output, not by the step itself: aarch64_v6.md (from the check's
# JSON and the tests run in the chroot) and fuzz_sanitized.md (from the fuzz run's output); their steps say so.
# Not here: the held-out figures (-4.5% against JPEG 2000, +1.6% against AV1: external runs, README says so) and figures of retired bundles (results/ARCHIVE.md).
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
B=$(python -c 'import json; print(json.load(open("cvae/bundles/default/manifest.json"))["model_id"][:12])')
R=benchmarks/results/$B
N=benchmarks/results/no-bundle
VAL=.dev/val
W=.dev/reproduce  # scratch: scorer work folders, packet files
DATE=$(date -u +%F)
# the 8 validation scenes, by name (a glob would also match scenes added to .dev/val by hand)
SCENES="$VAL/l5_amazon_b123457.tif $VAL/l8_elkton_b1234567.tif $VAL/l8_lc81210442015044_b2.tif \
$VAL/l8_lc81210442015044_b234.tif $VAL/naip_va_1m_rgbn.tif $VAL/s2_ben_87_48_b2348.tif \
$VAL/s2_t33nza_10m_b2348.tif $VAL/s2_t33nza_20m_12band.tif"
SCENES=$(echo $SCENES)

# step FIGURE FILES COMMAND: FILES are the result files it (re)writes, relative to the repository root
step() {
    echo "# README: $1"
    echo "#   -> $2"
    echo "$3"
    [[ $DRY == 1 ]] || bash -c "set -euo pipefail; $3"
}

step "the 8 validation scenes (held-out sources)" ".dev/val/*.tif" \
    "python benchmarks/tools/make_validation_set.py --out $VAL --seen .dev/val_seen"
step "median -18.8% against the strongest JPEG 2000, per scene (include block)" \
    "$R/scorer_validation.txt $R/scorer_validation_rd.json" \
    "rm -rf $W/scorer && mkdir -p $W $R && { echo '# python ../shared/tools/rd_vs_jpeg2000.py .dev/val WORK   (bundle $B, $DATE)'; python ../shared/tools/rd_vs_jpeg2000.py $VAL $W/scorer; } > $R/scorer_validation.txt && cp $W/scorer/rd.json $R/scorer_validation_rd.json"
step "tile format v11 (the detail levels' own rotations) against v10: NAIP, T33NZA 20 m, Elkton" \
    "$R/level_rotations.json $R/level_rotations.md" \
    "python benchmarks/experiments/level_rotations.py $SCENES --out $R"
step "a second level_speed run: 0.61-1.08x and 0.74-1.03x OpenJPEG's time, one core" \
    "$R/level_speed_round39.json $R/level_speed_round39.md" \
    "python benchmarks/harness/level_speed.py $VAL/s2_t33nza_10m_b2348.tif $VAL/l8_lc81210442015044_b234.tif --levels all --repeats 2 --name level_speed_round39 --out $R"
step "--scene-bytes spends 99.1-100% of the budget" \
    "$R/budget_fill.json $R/budget_fill.md" \
    "python benchmarks/harness/budget_fill.py $SCENES --out $R"
step "reconstruction offsets' ceiling (round39_dropped.md): +0.0031 dB median" \
    "$R/reconstruction_offsets.json $R/reconstruction_offsets.md" \
    "python benchmarks/experiments/reconstruction_offsets.py $SCENES --levels 3 6 9 --out $R"
step "what the predictive coder could still gain (issue 25): mixing 0.3%, an oracle block least-squares predictor 0.8%" \
    "$R/prediction_ceiling.json $R/prediction_ceiling.md" \
    "python benchmarks/experiments/prediction_ceiling.py $SCENES --bounds 0 2 8 --out $R"
step "a network trained on 8 other scenes to correct the lossless prediction: 0.3% (median)" \
    "$R/prediction_mlp.json $R/prediction_mlp.md" \
    "python benchmarks/experiments/prediction_mlp.py $SCENES --train ../shared/data/scenes/l8_lc81070352015122_b234.tif ../shared/data/scenes/s2_ben_36_85_b2348.tif ../shared/data/scenes/s2_ben_56_35_b2348.tif ../shared/data/scenes/s2_ben_57_38_b2348.tif ../shared/data/scenes/s2_ben_69_24_b2348.tif ../shared/data/scenes/l8_016037_900m_b1234567.tif ../shared/data/train/opengeos-data/naip/m_4709963_se_14_1_20140720.tif ../shared/data/train/opengeos-data/landsat/2015.tif --out $R"
step "the weights: +2.5% / +2.4% on the mean error's PSNR (Elkton, Landsat-5); the details' axes on top" \
    "$R/band_weights.json $R/band_weights.md" \
    "python benchmarks/experiments/band_weights.py $SCENES --mode-search residual --out $R"
step "JPEG 2000 + KLT given our rotations and weights: up to -6.5% for it, ours -10.6% against its best" \
    "$R/weighted_peers.json $R/weighted_peers.md" \
    "python benchmarks/experiments/weighted_peers.py $VAL $R/scorer_validation_rd.json --out $R"
step "levels 0-1 as a coarse residual, no network: Sentinel-2 -9.3% against -7.8% (plan.LATENT_LEVELS)" \
    "$R/latent_levels.json $R/latent_levels.md" \
    "python benchmarks/experiments/latent_levels.py $SCENES --rd $R/scorer_validation_rd.json --out $R"
step "the lowest level's losses at 28-29 dB; the per-2-dB figures" "$R/curve_gap.txt" \
    "{ echo '# python benchmarks/tools/curve_gap.py $R/scorer_validation_rd.json   (rate of ours over the strongest JPEG 2000, percent, at each 2 dB; bundle $B)'; python benchmarks/tools/curve_gap.py $R/scorer_validation_rd.json; } > $R/curve_gap.txt"
step "the network earns little over the residual alone: -6.4% against -7.9%" "$R/wavelet_only.txt" \
    "{ echo '# python benchmarks/experiments/wavelet_only.py --rd $R/scorer_validation_rd.json $SCENES   (bundle $B, $DATE)'; python benchmarks/experiments/wavelet_only.py --rd $R/scorer_validation_rd.json $SCENES; } > $R/wavelet_only.txt"
step "the no-network shortcut: +0.02% median, 87% of the residual levels' encode time saved (no network on 4-11)" \
    "$R/shortcut.json $R/shortcut.md" \
    "python benchmarks/experiments/shortcut_eval.py $SCENES --out $R"
step "512-pixel tiles on levels 0-1: 4.5-22% fewer bytes at level 0" "$R/tile_size.json $R/tile_size.md" \
    "python benchmarks/experiments/tile_size.py $SCENES --out $R"
step "19.1% of the bytes at level 0 are not payload" "$R/header_cost.json $R/header_cost.md" \
    "python benchmarks/harness/header_cost.py $SCENES --out $R"
step "error-bounded against CCSDS 123.0-B-2 and JPEG-LS (include block), NAIP E = 1 against level 10" \
    "$R/bounded.json $R/bounded.md $R/bounded_summary.txt" \
    "bash benchmarks/peers/ccsds123/build.sh && python benchmarks/harness/bounded_bench.py $SCENES --out $R"
step "against AV1 intra + KLT: median -10.9%, 1 of 8 scenes lost (needs avifenc: apt-get install libavif-bin)" \
    "$R/av1_validation.txt $R/av1_validation.json" \
    "{ echo '# python ../shared/tools/rd_vs_av1.py .dev/val $R/scorer_validation_rd.json OUT   (bundle $B, $DATE)'; python ../shared/tools/rd_vs_av1.py $VAL $R/scorer_validation_rd.json $R/av1_validation.json; } > $R/av1_validation.txt"
step "AV1 intra + KLT on a denser quantizer grid: T33NZA 10 m +0.95% (scorer's grid +0.6%)" \
    "$R/av1_dense_grid.txt" \
    "{ echo '# python benchmarks/experiments/av1_dense_grid.py .dev/val $R/scorer_validation_rd.json $R/av1_validation.json  ($DATE, bundle $B)'; python benchmarks/experiments/av1_dense_grid.py $VAL $R/scorer_validation_rd.json $R/av1_validation.json; } > $R/av1_dense_grid.txt"
step "lossless against JPEG XL too: 0.984 median, 1.67x JPEG XL's bits on resampled stacks (bounded_jxl.md is prose over these)" \
    "$R/bounded_jxl_resampled.json $R/bounded_jxl_resampled.md $R/bounded_jxl_val.json $R/bounded_jxl_val.md $R/bounded_jxl.md" \
    "python benchmarks/tools/make_validation_set.py --resampled --resampled-out .dev/val_resampled && python benchmarks/harness/bounded_bench.py .dev/val_resampled/s2_t33nza_rs10m_12band_rot2.tif .dev/val_resampled/s2_t33nza_rs10m_12band_i16.tif .dev/val_resampled/s2_t33nza_rs10m_12band_aligned.tif --bounds 0 --rate-levels 0 --out $R --name bounded_jxl_resampled && python benchmarks/harness/bounded_bench.py $SCENES --bounds 0 --rate-levels 0 --out $R --name bounded_jxl_val"
step "--psnr lands every validation scene at +0.03..+0.15 dB at 35, 40 and 45 dB; cost a median 1.59x a fixed level, at most 1.97x" \
    "$R/psnr_targets.json $R/psnr_targets.md" \
    "python benchmarks/harness/psnr_targets.py $SCENES --targets 35 40 45 --repeats 5 --out $R"
step "--psnr against the best one step for the scene at the same PSNR: -0.2% to +2.9% bytes (a PSNR per tile: up to +16.5%)" \
    "$R/psnr_one_step.json $R/psnr_one_step.md" \
    "python benchmarks/experiments/psnr_one_step.py $SCENES --targets 35 40 45 --out $R"
step "tile format v8: level with JPEG XL effort 9 on resampled stacks (0.99-1.00x), the validation scenes unchanged (bounded_v8.md is prose over these)" \
    "$R/bounded_v8_resampled.json $R/bounded_v8_resampled.md $R/bounded_v8_val.json $R/bounded_v8_val.md $R/predictor_modes.json $R/predictor_modes.md $R/bounded_v8.md" \
    "python benchmarks/harness/bounded_bench.py .dev/val_resampled/s2_t33nza_rs10m_12band_rot2.tif .dev/val_resampled/s2_t33nza_rs10m_12band_i16.tif .dev/val_resampled/s2_t33nza_rs10m_12band_aligned.tif --bounds 0 --rate-levels 0 --out $R --name bounded_v8_resampled && python benchmarks/harness/bounded_bench.py $SCENES --bounds 0 --rate-levels 0 --out $R --name bounded_v8_val && python benchmarks/experiments/predictor_modes.py .dev/val_resampled/s2_t33nza_rs10m_12band_rot2.tif .dev/val_resampled/s2_t33nza_rs10m_12band_i16.tif .dev/val_resampled/s2_t33nza_rs10m_12band_aligned.tif $SCENES --bounds 0 1 2 4 8 16 32 --out $R"
step "tile format v9: lossless 0.968 the best of CCSDS 123 / JPEG-LS / JPEG XL (median), E = 1-8 0.874-0.928 (bounded_v9.md is prose over these)" \
    "$R/bounded_v9_val.json $R/bounded_v9_val.md $R/bounded_v9_val_summary.txt $R/bounded_v9_resampled.json $R/bounded_v9_resampled.md $R/bounded_v9_resampled_summary.txt $R/bounded_v9_val_bounds.json $R/bounded_v9_val_bounds.md $R/bounded_v9_val_bounds_summary.txt $R/predictor_v9.json $R/predictor_v9.md $R/bounded_speed_v9.json $R/bounded_speed_v9.md $R/bounded_v9.md" \
    "python benchmarks/harness/bounded_bench.py $SCENES --bounds 0 --rate-levels 0 --repeats 1 --out $R --name bounded_v9_val && python benchmarks/harness/bounded_bench.py .dev/val_resampled/s2_t33nza_rs10m_12band_rot2.tif .dev/val_resampled/s2_t33nza_rs10m_12band_i16.tif .dev/val_resampled/s2_t33nza_rs10m_12band_aligned.tif --bounds 0 --rate-levels 0 --repeats 1 --out $R --name bounded_v9_resampled && python benchmarks/harness/bounded_bench.py $SCENES --bounds 1,2,4,8 --rate-levels 0 --repeats 1 --out $R --name bounded_v9_val_bounds && python benchmarks/experiments/predictor_v9.py $SCENES .dev/val_resampled/s2_t33nza_rs10m_12band_rot2.tif .dev/val_resampled/s2_t33nza_rs10m_12band_i16.tif .dev/val_resampled/s2_t33nza_rs10m_12band_aligned.tif --bounds 0 1 2 4 8 --variants v8 v9 --out $R && python benchmarks/experiments/bounded_speed_v9.py $SCENES .dev/val_resampled/s2_t33nza_rs10m_12band_rot2.tif --rounds 3 --out $R"
step "lossless whole encode: a median 1.16x OpenJPEG lossless's throughput, worst 0.62x (8-bit Landsat-5), against the coder before this round (2a6f7ff)" \
    "$R/bounded_speed_v10.json $R/bounded_speed_v10.md" \
    "python benchmarks/experiments/bounded_speed_v10.py $SCENES .dev/val_resampled/s2_t33nza_rs10m_12band_rot2.tif --rounds 3 --baseline 2a6f7ff --out $R"
step "the per-component network choice on residual levels (plan.NETWORK_COMPONENTS)" \
    "$R/network_components.json $R/network_components.md" \
    "python benchmarks/experiments/network_components.py $SCENES --out $R"
step "one weighed component instead of two: -9.41% against -9.44% on T33NZA 10 m for a third less time on levels 2-3 (plan.NETWORK_COMPONENTS = 1)" \
    "$R/network_budget.json $R/network_budget.md" \
    "python benchmarks/experiments/network_budget.py $SCENES --rd $R/scorer_validation_rd.json --out $R"
step "encode time against OpenJPEG per level, one core and all cores; levels 2-3 with --mode-search residual" \
    "$R/level_speed.json $R/level_speed.md $R/level_speed_residual.json $R/level_speed_residual.md $R/level_speed_network.json $R/level_speed_network.md" \
    "python benchmarks/harness/level_speed.py $VAL/s2_t33nza_10m_b2348.tif $VAL/l8_lc81210442015044_b234.tif --levels all --repeats 2 --out $R && python benchmarks/harness/level_speed.py $VAL/s2_t33nza_10m_b2348.tif $VAL/l8_lc81210442015044_b234.tif --levels 2,3 --repeats 3 --mode-search residual --name level_speed_residual --out $R && python benchmarks/harness/level_speed.py $VAL/s2_t33nza_10m_b2348.tif --levels 2,3 --repeats 7 --mode-search auto --name level_speed_network --out $R"
step "GDN on ONNX Runtime's blocked tensors: the analysis network's time, same latents" "$R/blocked_gdn.json $R/blocked_gdn.md" \
    "python benchmarks/experiments/blocked_gdn.py $VAL/s2_t33nza_10m_b2348.tif $VAL/l8_lc81210442015044_b234.tif --levels 0 3 --repeats 5 --out $R"
step "memory at level 0, 512- and 256-pixel tiles" \
    "$R/memory_l0.json $R/memory_l0.md $R/memory_l0_t256.json $R/memory_l0_t256.md" \
    "python benchmarks/harness/memory.py --level 0 --sizes 1024 4096 10980 --out $R && python benchmarks/harness/memory.py --level 0 --sizes 1024 4096 10980 --tile-size 256 --out $R"
step "decoded identically on aarch64 (aarch64_v6.md is written from this JSON and the chroot's test run)" \
    "$R/aarch64_decode_v6.json $R/aarch64_decode_v6_expected_x86_64.json $R/aarch64_v6.md" \
    "python benchmarks/harness/cross_platform_decode.py make --dir $W/xplat6 --scenes ../shared/data/scenes/naip_va_1m_rgbn.tif ../shared/data/scenes/l8_lc81210442015044_b234.tif ../shared/data/train/rico-hdl-samples/Hydro/patch_1.tif ../shared/data/train/open-geo-tutorial-landsat7/LE70220491999322EDC01_stack.gtif --levels 3 9 --max-errors 0 2 7 > /dev/null && ../shared/tools/aarch64-chroot.sh . '/opt/venv/bin/pip install -q --no-build-isolation --no-deps . && /opt/venv/bin/python benchmarks/harness/cross_platform_decode.py check --dir $W/xplat6' > /dev/null && cp $W/xplat6/check_aarch64.json $R/aarch64_decode_v6.json && cp $W/xplat6/expected.json $R/aarch64_decode_v6_expected_x86_64.json"
step "the sanitized fuzz run of every C decoder (fuzz_sanitized.md is written from this output)" \
    "$N/fuzz_sanitized.md" \
    "mkdir -p $W && python tests/fuzz/fuzz_decoders.py --inputs 100000 --seed 100k --jobs 2 | tee $W/fuzz_sanitized.txt"
step "the include blocks of README.md, from the files above" "README.md" \
    "python benchmarks/tools/make_readme_table.py --readme README.md --includes-only"
step "everything else measured on this bundle; retired bundles" \
    "benchmarks/results/README.md benchmarks/results/ARCHIVE.md" \
    "python benchmarks/tools/make_results_readme.py"
