#!/usr/bin/env bash
# LIM's causal loss, one GPU: the baselines, then 12 LIM trainings at once on one trained LRM (bench_lim.py's
# --save-lrm of the CPU travel-0.12 run), each a bench_lim.py run: without L_causal (seeds 0-2), with it (seeds 0-2),
# with its target detached (seeds 0, 1), weight 0.3 with and without the detach, and both with lim_stream=lrm-output.
#   benchmarks/lim_causal_study.sh LRM_FOLDER RESULTS_FOLDER   (the runs go on in the background; ~7 min on an H200)
set -euo pipefail
lrm=$1 results=$2
mkdir -p "$results"
common=(--preset lim-tiny --set triplane_tokens=8 --sequences 200 --test 20 --travel 0.12 --lrm "$lrm"
        --data-cache "$results/data" --lim-steps 3000 --lim-batch 16 --lim-lr 5e-4 --lim-seeds 1)
here=$(dirname "$0")
python "$here/bench_lim.py" "${common[@]}" --lim-seeds 0 --json "$results/baselines.json" > "$results/baselines.log" 2>&1
launch() {
    local name=$1; shift
    setsid nohup python "$here/bench_lim.py" "${common[@]}" "$@" --json "$results/$name.json" \
        > "$results/$name.log" 2>&1 < /dev/null &
}
for seed in 0 1 2; do
    launch "nc$seed" --variants no-causal --first-lim-seed "$seed"
    launch "c$seed" --variants causal --no-causal-stop-gradient --first-lim-seed "$seed"
done
launch sg0 --variants causal --causal-stop-gradient --first-lim-seed 0
launch sg1 --variants causal --causal-stop-gradient --first-lim-seed 1
launch w03 --variants causal --causal-weight 0.3 --no-causal-stop-gradient --first-lim-seed 0
launch sgw03 --variants causal --causal-weight 0.3 --causal-stop-gradient --first-lim-seed 0
launch outc0 --variants causal --no-causal-stop-gradient --lim-stream lrm-output --first-lim-seed 0
launch outnc0 --variants no-causal --lim-stream lrm-output --first-lim-seed 0
