#!/usr/bin/env bash
# run_seeded_generate_test.sh MPIEXEC MOESERVE MODEL NP: sampling stays deterministic per seed
# whatever the tensor-parallel size: `moeserve generate` with a seed, temperature and top-p gives the
# same text on one rank and on NP ranks under mpirun (only rank 0 samples, from the gathered
# logits). Bounded: each run under `timeout`.
set -uo pipefail
mpiexec="$1" moeserve="$2" model="$3" np="$4"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
args=(generate --model "$model" --prompt "Once upon a time" --max-tokens 32 --ignore-eos --temperature 0.9
      --top-p 0.95 --threads 1)
one=$(timeout 120 "$moeserve" "${args[@]}" --seed 7 2>&1) || { echo "FAIL: one rank: $one"; exit 1; }
group=$(timeout 120 "$mpiexec" --oversubscribe -np "$np" "$moeserve" "${args[@]}" --seed 7 --tensor-parallel-size "$np" 2>&1) ||
  { echo "FAIL: $np ranks: $group"; exit 1; }
# Another seed samples another text (so the comparison above can fail).
other=$(timeout 120 "$moeserve" "${args[@]}" --seed 8 2>&1) || { echo "FAIL: seed 8: $other"; exit 1; }
echo "one rank, seed 7:  $one"
echo "$np ranks, seed 7: $group"
echo "one rank, seed 8:  $other"
if [[ -z "$one" ]]; then echo "FAIL: no text"; exit 1; fi
if [[ "$one" != "$group" ]]; then echo "FAIL: the texts differ"; exit 1; fi
if [[ "$one" == "$other" ]]; then echo "FAIL: seeds 7 and 8 gave the same text: sampling is not seeded"; exit 1; fi
echo "PASS: the same sampled text on 1 and $np ranks (seed 7)"
