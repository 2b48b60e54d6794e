#!/bin/bash
# The whole GPU command: unpack an Opus bundle (training/bundle.py), fine-tune from a
# checkpoint, leave checkpoints and the log in $OUT. Run from the repository root on a
# machine with torch + CUDA, numpy and scipy, carrying the bundle and .whl/ (soundfile,
# cffi, pycparser, pystoi wheels and pesq's sdist):
#
#   bash training/gpu_finetune.sh data/gpu-bundle data/gpu-bundle/start.pt 7 [TRAIN OPTIONS...]
#
# (start.pt: `python -m training.bundle weights CHECKPOINT --out data/gpu-bundle/start.pt`;
# options after the minutes go to training.train, e.g. --gain-floor-db -40.)
#
# Environment: OUT (output folder, default runs/gpu), DEVICE (default cuda),
# CONFIG (default training/configs/gpu.toml), LEARNING_RATE (default 1e-3), WHEELS (default .whl).
set -uo pipefail
export PYTHONUNBUFFERED=1
BUNDLE=$1
INIT=$2
MINUTES=$3
OUT=${OUT:-runs/gpu}
DEVICE=${DEVICE:-cuda}
CONFIG=${CONFIG:-training/configs/gpu.toml}
SITE=${SITE:-/tmp/seproc-site}
WHEELS=${WHEELS:-.whl}
mkdir -p "$OUT" "$SITE"
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" "$WHEELS"/*.whl || exit 1
export PYTHONPATH=$SITE:$PWD
# pesq ships no wheels: build it from its sdist meanwhile (without it, "best" means best STOI)
(
    build=$(mktemp -d) && tar xzf "$WHEELS"/pesq-*.tar.gz -C "$build" && cd "$build"/pesq-* \
        && sed -i "s/, 'pytest-runner'//" setup.py && python3 setup.py -q build_ext --inplace \
        && cp -r pesq "$SITE"/
) > "$OUT/pesq-build.log" 2>&1 &
python3 -m training.bundle unpack "$BUNDLE" --out "$SITE/corpus" --workers "$(nproc)" || exit 1
wait
python3 -c "import pesq" 2>/dev/null && echo "pesq: built" || echo "pesq: missing, selecting by STOI"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
python3 -m training.train --config "$CONFIG" --data "$SITE/corpus" --out "$OUT" \
    --device "$DEVICE" --init "$INIT" --minutes "$MINUTES" \
    --learning-rate "${LEARNING_RATE:-1e-3}" "${@:4}"
status=$?
tail -n 4 "$OUT/log.jsonl"
exit $status
