#!/usr/bin/env bash
# Every hf-relrep benchmark that uses a GPU, in one go, into one JSON file. About 2-3 minutes on one H200.
#
#   bash benchmarks/run_gpu.sh [OUT.json]        (default: gpu_results.json in the current folder)
#
# Dependencies: `pip install -e ".[bench]"` (torch with CUDA, gudhi, giotto-ph, ripser, torch-topological). Where
# hf_relrep is not installed, the source tree is put on PYTHONPATH instead; a missing peer library only empties its
# column. Each step has its own time limit and records its failure in the JSON instead of stopping the others.
#
# What the JSON holds:
#   death_times   hf-relrep's persistence on the GPU, ms per call (forward, forward+backward) at 5x16x768 (target
#                 < 0.2 ms), 8x64x128, 2x256x64, and one densification step of both spaces (80 x 768 each);
#   no_host_sync  a densification + relative_transform step under torch.cuda.set_sync_debug_mode("error");
#   epoch         one epoch of the reproduce paper preset's loop (roberta-base-sized, random weights and tokens of
#                 the preset's size: 2,000 reviews, 5 classes x 16, 128 tokens, 768 anchors), seconds and ms/step;
#   trainer_step  TopoTrainer vs Trainer, one optimizer step of a roberta-base-sized model built from its config,
#                 full fine-tuning and frozen backbone + cached features (ms/step, paired ratios);
#   bench_death_times   the printed table of benchmarks/bench_death_times.py with hf-relrep on the GPU (peers on CPU).
set -u
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:-gpu_results.json}")
PY=${PYTHON:-python}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if ! "$PY" -c "import hf_relrep" 2>/dev/null; then
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "run_gpu.sh: torch sees no CUDA device; nothing to measure" >&2
    exit 2
fi
"$PY" -c "import hf_relrep" || { echo "run_gpu.sh: cannot import hf_relrep" >&2; exit 2; }
rm -f "$OUT"

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log its status in the JSON
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s)" >&2
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"
    local rc=$?
    "$PY" - "$OUT" "$name" "$rc" "$((SECONDS - start))" "$TMP/$name.out" "$TMP/$name.err" <<'EOF'
import json, os, sys
out, name, rc, seconds, stdout, stderr = sys.argv[1:]
results = json.load(open(out)) if os.path.exists(out) else {}
results.setdefault("steps", {})[name] = {
    "exit_code": int(rc), "seconds": int(seconds), "timed_out": rc in ("124", "137"),
    "stderr_tail": open(stderr, errors="replace").read()[-1500:] if rc != "0" else "",
}
text = open(stdout, errors="replace").read()
if name == "bench_death_times":
    results["bench_death_times"] = text
json.dump(results, open(out + ".tmp", "w"), indent=2)
os.replace(out + ".tmp", out)
EOF
    cat "$TMP/$name.out" >&2
}

step gpu_suite 150 "$PY" benchmarks/gpu_suite.py --out "$OUT" --parts death_times,no_host_sync,epoch
step trainer_step 120 "$PY" benchmarks/bench_trainer_step.py --arch roberta --hidden 768 --layers 12 --classes 5 \
    --per-class 16 --seq 128 --anchors 768 --anchor-length 32 --repeats 7 --frozen-repeats 30 --json "$TMP/trainer.json"
if [ -f "$TMP/trainer.json" ]; then
    "$PY" - "$OUT" "$TMP/trainer.json" <<'EOF'
import json, os, sys
out, part = sys.argv[1:]
results = json.load(open(out)) if os.path.exists(out) else {}
results["trainer_step"] = json.load(open(part))
json.dump(results, open(out + ".tmp", "w"), indent=2)
os.replace(out + ".tmp", out)
EOF
fi
step bench_death_times 90 "$PY" benchmarks/bench_death_times.py --device cuda --threads 4 --repeats 20 --warmup 3
echo "run_gpu.sh: results in $OUT" >&2
