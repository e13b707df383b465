#!/usr/bin/env bash
# Pretraining under torchrun (one node, NPROC processes; gloo on CPU, NCCL on GPU).
#   pretraining/launch/torchrun.sh CONFIG OUTDIR [extra `gfm pretrain` arguments, e.g. --resume]
# Multi-node: run on every node with NNODES, NODE_RANK unused (c10d rendezvous) and RDZV=host:port of node 0:
#   NNODES=2 RDZV=node0:29500 NPROC=4 pretraining/launch/torchrun.sh CONFIG OUTDIR
set -euo pipefail
CONFIG=${1:?usage: torchrun.sh CONFIG OUTDIR [args]}
OUTDIR=${2:?usage: torchrun.sh CONFIG OUTDIR [args]}
shift 2
NPROC=${NPROC:-2}
NNODES=${NNODES:-1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [ "$NNODES" = 1 ]; then
  RDZV_ARGS=(--standalone)
else
  RDZV_ARGS=(--nnodes "$NNODES" --rdzv-backend c10d --rdzv-endpoint "${RDZV:?set RDZV=host:port of the first node}"
             --rdzv-id "${RDZV_ID:-gfm-pretrain}")
fi
exec torchrun "${RDZV_ARGS[@]}" --nproc-per-node "$NPROC" -m gfm_ase.cli pretrain "$CONFIG" -o "$OUTDIR" "$@"
