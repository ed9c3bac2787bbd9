#!/usr/bin/env bash
# The CUDA paths in one prepared run, for a machine with an NVIDIA GPU (docs/speed.md):
#
#   bash benchmarks/gpu_check.sh [FOLDER]
#
# 1. the CUDA tests (pytest -m cuda: 16-mixed with clipping, the fused layers' fallback to
#    cuDNN, bf16 autocast, predict on the GPU);
# 2. one default run (python scripts/train.py: CUDA when one is present);
# 3. python scripts/train.py model=seq2seq trainer=gpu trainer.precision=bf16-mixed;
# 4. python benchmarks/bench.py --accelerator gpu --epochs 3 (the four timed runs per model).
#
# Each step has a time limit (together under 10 minutes). Writes one summary, gpu_check.md
# (each step's exit status, seconds and key figures), and each step's log beside it, into $OUT
# when set, else FOLDER, else a new temporary folder. Without a CUDA device it says so in one
# line and exits 0 having run nothing. Exit status: 0 when every step passed, else 1.
set -uo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-${1:-$(mktemp -d -t gpu_check.XXXXXX)}}"
mkdir -p "$out"
summary="$out/gpu_check.md"
python="${PYTHON:-python}"

if ! "$python" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null
then
    msg="gpu_check: no CUDA device (torch.cuda.is_available() is False or torch is missing); nothing was run"
    echo "$msg" >&2
    echo "$msg" >"$summary"
    exit 0
fi

failed=0
{
    echo "# gpu_check"
    echo
    "$python" - <<'EOF'
import lightning, torch
p = torch.cuda.get_device_properties(0)
print(f"{p.name}, {p.total_memory / 2**30:.0f} GiB; torch {torch.__version__} (CUDA "
      f"{torch.version.cuda}), cuDNN {torch.backends.cudnn.version()}, lightning "
      f"{lightning.__version__}")
EOF
    echo
    echo "| step | exit | seconds | figures |"
    echo "| --- | --- | --- | --- |"
} >"$summary"

# figures_of KIND LOG RUN_DIR: one cell of key figures from a step's log or run folder.
figures_of() {
    case "$1" in
    pytest) grep -E '(passed|failed|error)' "$2" | tail -n 1 | tr -d '=' | xargs ;;
    train)
        "$python" - "$3/metrics.json" <<'EOF' 2>/dev/null || echo "no metrics.json"
import json, sys
m = json.load(open(sys.argv[1]))
print(f"device {m['device']}, {m['epochs']} epochs, fit {m['fit_s']:.1f} s, "
      f"val/mse_last {m['val/mse_last']:.5f}, test/mse_last {m['test/mse_last']:.5f}")
EOF
        ;;
    bench) # after bench.py's closing header: one row per model
        printf 's/epoch plain, p.fast, bare L, ours; ours/bare L, bare L/p.fast, plain/ours; '
        printf 'val mse_last: '
        awk 'table {print} /^model /{table=1}' "$2" | tr -s ' ' | paste -sd ';' ;;
    esac
}

# step NAME KIND LIMIT_S RUN_DIR COMMAND...: run COMMAND with a time limit, log it, add a row.
step() {
    local name="$1" kind="$2" limit="$3" run="$4"
    shift 4
    local log="$out/$name.log" start=$SECONDS code
    echo "gpu_check: $name ($*)" >&2
    timeout "$limit" "$@" >"$log" 2>&1
    code=$?
    [ "$code" -eq 0 ] || failed=1
    [ "$code" -eq 124 ] && code="124 (over ${limit} s)"
    printf '| %s | %s | %d | %s |\n' "$name" "$code" "$((SECONDS - start))" \
        "$(figures_of "$kind" "$log" "$run" | tr '|' '/')" >>"$summary"
}

step cuda-tests pytest 150 "" "$python" -m pytest -m cuda -q -p no:cacheprovider
step default-run train 120 "$out/runs/default" \
    "$python" scripts/train.py "hydra.run.dir=$out/runs/default"
step seq2seq-bf16 train 120 "$out/runs/seq2seq-bf16" \
    "$python" scripts/train.py model=seq2seq trainer=gpu trainer.precision=bf16-mixed \
    "hydra.run.dir=$out/runs/seq2seq-bf16"
step bench-gpu bench 180 "" "$python" benchmarks/bench.py --accelerator gpu --epochs 3

echo >>"$summary"
echo "logs: $out/*.log; runs: $out/runs" >>"$summary"
cat "$summary"
exit "$failed"
