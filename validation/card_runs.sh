#!/usr/bin/env bash
# The model card's validation table: the same suites, same commands, for a gfm-ase model and for the peers.
#
#   bash validation/card_runs.sh OUT SHARED STORES WHO...
#
# OUT: results folder (one subfolder per WHO and suite); SHARED: ../shared/data; STORES: folder of the converted
# stores (pretraining/corpus/ingest_shared.py output: mlearn_test.h5, fitsnap_*.h5, ...). WHO: a built-in model name
# or model directory (run with the main venv) or peer:NAME (gfm_ase.validation.peers factory, run with .venv-teachers).
# Suites: eos (Delta vs WIEN2k, every element the calculator covers), polymorphs (the same elements in fcc, bcc,
# hcp, sc and diamond; compare with the teacher last), phonons (every phonopy example), errors on
# the mlearn test sets (raw and per-element aligned) and on the held-out test splits of the FitSNAP sets.
# Each run's wall time goes to OUT/walltimes.txt. Run with OMP_NUM_THREADS=1.
set -u
OUT=$1; SHARED=$2; STORES=$3; shift 3
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"
for who in "$@"; do
  if [[ $who == peer:* ]]; then
    name=${who#peer:}; py=.venv-teachers/bin/python; calc=(--calculator "gfm_ase.validation.peers:$name")
  else
    name=$(basename "$who"); py=.venv/bin/python; calc=(--model "$who" --head omat)
  fi
  run() {
    local suite=$1; shift
    mkdir -p "$OUT/$name"
    /usr/bin/time -f "$name $suite wall %e s" -a -o "$OUT/walltimes.txt" \
      "$py" -m gfm_ase.cli validate "$@" "${calc[@]}" -o "$OUT/$name/$suite" > "$OUT/$name/$suite.log" 2>&1
    echo "$name $suite rc=$?" >> "$OUT/walltimes.txt"
  }
  run eos eos
  run polymorphs polymorphs
  run phonons phonons --reference "$SHARED"/phonopy_examples/*/
  run errors errors --data "$STORES/mlearn_test.h5"
  run errors-aligned errors --data "$STORES/mlearn_test.h5" --align per-element
done
