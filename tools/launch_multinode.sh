#!/usr/bin/env bash
# Start this machine's share of a hierlm run spread over several machines (torchrun, c10d rendezvous).
# Run the same line on every machine; each starts NPROC processes (one per GPU) and they find each other at MASTER.
#
#   NNODES=2 MASTER=node0.example:29500 tools/launch_multinode.sh shakespeare-char train.parallel=fsdp
#
# NNODES    machines in the run (required)
# MASTER    host:port of the rendezvous, reachable from every machine (required; any one of them, a free port)
# NPROC     processes on this machine (default: its GPU count, or 1 without GPUs)
# RUN_ID    names the rendezvous, so two runs on the same MASTER do not meet (default: hierlm)
# The remaining arguments go to `hierlm train` (a preset or YAML file, --out, key=value overrides); set
# train.parallel=ddp or fsdp there. The run directory (--out) must be on storage every machine sees (checkpoints are
# written by all of them, final/ by the first process of the first machine).
set -euo pipefail
: "${NNODES:?set NNODES, the number of machines}"
: "${MASTER:?set MASTER=host:port, the rendezvous address every machine can reach}"
if [ -z "${NPROC:-}" ]; then
  NPROC=$(python -c "import torch; print(max(1, torch.cuda.device_count()))")
fi
exec torchrun --nnodes "$NNODES" --nproc_per_node "$NPROC" --rdzv-backend c10d --rdzv-endpoint "$MASTER" \
  --rdzv-id "${RUN_ID:-hierlm}" -m hierlm train "$@"
