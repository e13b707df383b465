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
# the mlearn test sets (raw and per-element aligned) and on the held-out test splits of the FitSNAP sets (per-element
# aligned; OUT/heldout/fitsnap_X_test.extxyz: the split of the gfm-base configs, fractions 0.8 0.1 0.1, seed 0, by
# structure, so exactly the structures training never saw). Each run's wall time goes to OUT/walltimes.txt. Run with
# OMP_NUM_THREADS=1.
set -u
OUT=$1; SHARED=$2; STORES=$3; shift 3
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
FITSNAP="Ta InP Fe"
mkdir -p "$OUT/heldout"
for x in $FITSNAP; do
  test -s "$OUT/heldout/fitsnap_${x}_test.extxyz" && continue
  .venv/bin/gfm data split "$STORES/fitsnap_$x.h5" --fractions 0.8 0.1 0.1 --seed 0 --by structure \
    -o "$OUT/heldout/fitsnap_${x}_split.json" &&
    .venv/bin/gfm data export "$STORES/fitsnap_$x.h5" --split "$OUT/heldout/fitsnap_${x}_split.json" --part test \
      -o "$OUT/heldout/fitsnap_${x}_test.extxyz" || exit 1
done
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
  for x in $FITSNAP; do
    run "fitsnap_$x" errors --data "$OUT/heldout/fitsnap_${x}_test.extxyz" --align per-element
  done
done
