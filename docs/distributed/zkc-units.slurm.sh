#!/bin/bash
# One array task per unit of a zkc plan, as a Slurm job array (docs/distributed.md).
#
#   zkc plan model.circ --keys model.keys --prompt "Hello" --max-new 4 -o $SHARED/run/run.plan
#   N=$(jq '.units | length' $SHARED/run/run.plan)
#   sbatch --array=0-$((N - 1))%16 zkc-units.slurm.sh      # %16: at most 16 tasks at once
#   # when the array is done (sbatch --dependency=afterok:JOBID for a follow-up job):
#   zkc bundle $SHARED/model.keys/vk --plan $SHARED/run/run.plan --units $SHARED/run/units -o run.zkp
#
# Slurm sets SLURM_ARRAY_TASK_ID in each task; `zkc prove-part` without --unit proves that unit.
# Array indices must start at 0 (unit numbers). A task that fails can be resubmitted alone
# (sbatch --array=K); a unit already proven is left as it is. $SHARED is a file system every
# node mounts (the artifact, the keys, the plan and the units' directory).
#SBATCH --job-name=zkc-units
#SBATCH --cpus-per-task=2
#SBATCH --mem=6G
#SBATCH --requeue
set -euo pipefail
SHARED=${SHARED:-/shared}
exec zkc prove-part "$SHARED/model.circ" --keys "$SHARED/model.keys" \
    --plan "$SHARED/run/run.plan" -o "$SHARED/run/units"
