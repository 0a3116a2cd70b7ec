#!/usr/bin/env bash
# Several training runs of run_scripts/sweep_gpu.py at once on one GPU (their
# steps are small: run side by side they share it), on the synthetic hands.
#
#   run_scripts/sweep_gpu.sh OUT_DIR LIMIT_S NAME:TRAIN:STEPS[:KEY=VALUE,...] ...
#
# Each run NAME trains the quick preset's fc head (`head=...` picks another) for
# STEPS steps on TRAIN synthetic training crops (480 validation crops held out of
# them, as `hjr prepare` does), 16 steps per compiled call, with the settings
# given, validated every sixth of its steps. OUT_DIR/NAME.json holds its scores as
# they come (run_scripts/sweep_gpu.py), /tmp/sweep_gpu_NAME.log its output. The
# runs stop after LIMIT_S seconds in all. Needs only keras, numpy, opencv and jax
# (or torch: KERAS_BACKEND=torch); hjr comes from this checkout. The first runs of
# the fifth pass in docs/benchmarks.md, for instance:
#   run_scripts/sweep_gpu.sh out 540 fc19k:10000:19200:flip=true \
#       fc38k:10000:38400:flip=true fc77k:10000:76800:flip=true \
#       fc38k_noflip:10000:38400:flip=false fc38k_40k:40000:38400:flip=true
set -u
out=${1:?usage: run_scripts/sweep_gpu.sh OUT_DIR LIMIT_S NAME:TRAIN:STEPS[:KEY=VALUE,...] ...}
limit=${2:?usage: run_scripts/sweep_gpu.sh OUT_DIR LIMIT_S NAME:TRAIN:STEPS[:KEY=VALUE,...] ...}
shift 2
export KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false # the runs share the GPU's memory
here=$(dirname "$0")
# hjr from this checkout, installed or not
export PYTHONPATH=$(cd "$here/.." && pwd)${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$out"
log="$out/sweep_gpu.log"
end=$((SECONDS + limit))
{ nvidia-smi -L; } >>"$log" 2>&1
for spec in "$@"; do # each size of data once, before the runs
    train=$(cut -d: -f2 <<<"$spec")
    [ -e "/tmp/sweep_gpu_$train.npz" ] ||
        python3 "$here/sweep_gpu.py" render "/tmp/sweep_gpu_$train.npz" \
            --train "$train" >>"$log" 2>&1 || exit
done
for spec in "$@"; do
    IFS=: read -r name train steps settings <<<"$spec"
    every=$(((steps + 5) / 6))
    (
        timeout $((end - SECONDS)) python3 "$here/sweep_gpu.py" train \
            "/tmp/sweep_gpu_$train.npz" "$out/$name.json" \
            --set "steps=$steps" "eval_every=$every" steps_per_execution=16 \
            ${settings//,/ } \
            >"/tmp/sweep_gpu_$name.log" 2>&1
        status=$?
        { echo "== $name: exit $status at $(date -u +%T)"
          tail -n 2 "/tmp/sweep_gpu_$name.log"; } >>"$log"
    ) &
done
wait
