#!/usr/bin/env bash
# Pretraining under MPI: ranks come from mpi4py, rank 0 broadcasts the torch.distributed rendezvous address.
#   pretraining/launch/mpiexec.sh CONFIG OUTDIR [extra `gfm pretrain` arguments, e.g. --resume]
# NPROC processes (default 2); MPIEXEC_ARGS passes host files etc. (e.g. MPIEXEC_ARGS="-f hosts -ppn 4").
# `pip install mpi4py mpich` provides an MPI (any MPI with a matching mpi4py works).
set -euo pipefail
CONFIG=${1:?usage: mpiexec.sh CONFIG OUTDIR [args]}
OUTDIR=${2:?usage: mpiexec.sh CONFIG OUTDIR [args]}
shift 2
NPROC=${NPROC:-2}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# shellcheck disable=SC2086
exec mpiexec ${MPIEXEC_ARGS:-} -n "$NPROC" python -m gfm_ase.cli pretrain "$CONFIG" -o "$OUTDIR" "$@"
