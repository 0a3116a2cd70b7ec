#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md ("On a GPU"): hjr's training step per head,
# on the paper's network, bfloat16, at batch 32 and at the gpu preset's batch 256.
#
#   run_scripts/bench_gpu.sh OUT_DIR [BACKBONE] [TIMED_STEPS]
#
# Needs only keras, numpy and jax (or torch: KERAS_BACKEND=torch) beside hjr; no
# TensorFlow. Runs from the repository root (python3 -m hjr) or wherever hjr is
# installed. Each measurement writes OUT_DIR/NAME.json as soon as it ends, most
# important first, so a run cut short keeps what it measured; the log is
# OUT_DIR/bench_gpu.log.
set -u
out=${1:?usage: run_scripts/bench_gpu.sh OUT_DIR [BACKBONE] [TIMED_STEPS]}
backbone=${2:-resnet152v2}
timed_steps=${3:-96}
export KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONUNBUFFERED=1
mkdir -p "$out"
log="$out/bench_gpu.log"

bench() { # NAME HEADS BATCH_SIZE PRECISION STEPS_PER_EXECUTION
    echo "== $1: heads $2, batch size $3, $4, $5 steps per execution ($(date -u +%T))" |
        tee -a "$log"
    python3 -m hjr bench --train-step --backbone "$backbone" --heads "$2" \
        --batch-size "$3" --precision "$4" --steps-per-execution "$5" \
        --timed-steps "$timed_steps" \
        --json "$out/$1.json" >>"$log" 2>&1 || echo "== $1 failed" | tee -a "$log"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  python3 -c "import keras, numpy; print('keras', keras.__version__, \
'numpy', numpy.__version__)"; } >>"$log" 2>&1
# Most important first: the fc step at batch 32, the gpu preset's step
# (batch 256, 25 steps per call), the map heads against fc, then float32.
bench fc_b32_bf16 fc 32 mixed_bfloat16 32
bench fc_b256_bf16 fc 256 mixed_bfloat16 25
bench maps_b32_bf16 classification,scoremap,offsets 32 mixed_bfloat16 32
bench maps_b256_bf16 classification,scoremap,offsets 256 mixed_bfloat16 25
bench fc_b32_f32 fc 32 float32 32
echo "== done ($(date -u +%T))" | tee -a "$log"
