#!/usr/bin/env bash
# The model card's MD row: NVT at 1,000 K for 10 ps (after 0.2 ps NVE) on the five compositions of
# gfm_ase.validation.novel_compositions, for a gfm-ase model and for the peers, with the same command.
#
#   bash validation/card_md.sh OUT NOVEL WHO...
#
# OUT: results folder (OUT/WHO/md10_COMPOSITION); NOVEL: the folder written by
# `python -m gfm_ase.validation.novel_compositions -o NOVEL`; WHO: a built-in model name or model directory (main
# venv) or peer:NAME (gfm_ase.validation.peers factory, .venv-teachers). Every run is resumable
# (OUT/WHO/md10_X/md_state.json): run the same command again after a kill or a session end and it continues where
# the last checkpoint was; finished runs are not run again. Each chunk's wall time goes to OUT/walltimes.txt.
# A peer on this 2-vCPU VM takes 0.3-1.3 s per step (CHGNet 0.3.0) or ~1.2-2.5 s (SevenNet-0): hours per run.
set -u
OUT=$1; NOVEL=$2; shift 2
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
COMPOSITIONS=${COMPOSITIONS:-"hea_bcc li_garnet_like heo_rocksalt chalcohalide heusler_quat"}
mkdir -p "$OUT"
for who in "$@"; do
  if [[ $who == peer:* ]]; then
    name=${who#peer:}; py=.venv-teachers/bin/python; calc=(--calculator "gfm_ase.validation.peers:$name")
  else
    name=$(basename "$who"); py=.venv/bin/python; calc=(--model "$who" --head omat --dtype float32)
  fi
  mkdir -p "$OUT/$name"
  for comp in $COMPOSITIONS; do
    out="$OUT/$name/md10_$comp"
    /usr/bin/time -f "$name md10 $comp wall %e s (this chunk)" -a -o "$OUT/walltimes.txt" \
      "$py" -m gfm_ase.cli validate md "${calc[@]}" --structure "$NOVEL/$comp.extxyz" --temperature 1000 \
      --timestep 1 --nve-ps 0.2 --nvt-ps 10 -o "$out" >> "$out.log" 2>&1
    echo "$name md10 $comp rc=$?" >> "$OUT/walltimes.txt"
  done
done
