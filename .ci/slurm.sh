#!/usr/bin/env bash
# Cluster check (issue 6): start a real single-node SLURM on localhost, run the tiny preset through
# `--profile profiles/slurm`, check that every job went through sbatch and that the outputs load, stop SLURM.
# First, a dry run of the paper configuration (config.yaml alone) must build the whole DAG.
#
# Usage (root; installs slurm-wlm and munge with apt when they are missing):
#   .ci/slurm.sh [TARGET ...]        default targets: see TARGETS below (`all` works too, in ~15 minutes)
#   KEEP=1 .ci/slurm.sh              keep the scratch folder (daemon logs, workdir) for a look afterwards
#
# Everything the run creates lives in one scratch folder, except /etc/slurm/slurm.conf and gres.conf: the
# jobstep plugin drops SLURM_CONF before its inner srun, so the config must sit at the default place. Both are
# restored (or removed) on exit, and only the daemons started here are stopped, by their pid files.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
[ -n "${VIRTUAL_ENV:-}" ] || . .venv/bin/activate
# Default targets: every data rule (the rotation dataset, the equivariance levels and their table), then one
# training and its evaluation, which ask for a GPU (.ci/slurm/gpu.yaml): 12 SLURM jobs. Each job costs ~20 s
# of Snakemake start-up on top of its work, so `all` (~60 jobs) takes ~15 minutes on 2 cores.
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(results/data/equivariance_levels.csv results/runs/rotation/conv/seed0/metrics.json)
# The presets are overlays over config.yaml (the Snakefile finds it beside itself from any workdir; naming it
# first here changes nothing).
CONFIGS=("$REPO/config.yaml" "$REPO/presets/tiny.yaml" "$REPO/.ci/slurm/gpu.yaml")

if ! command -v slurmctld > /dev/null || ! command -v munged > /dev/null; then
    echo "== installing slurm-wlm and munge"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge > /dev/null
fi

stamp() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(stamp)" 'BEGIN { printf "%.1f", b - a }'; }
T0=$(stamp)

SCRATCH=$(mktemp -d /tmp/ci-slurm.XXXXXX)
NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
S=$SCRATCH/slurm
mkdir -p "$S/state" "$S/spool" "$S/munge" "$S/etc-backup"
CREATED=()     # /etc/slurm files written here; each one is restored from etc-backup or removed on exit
PIDFILES=()    # daemons started here, stopped in reverse order on exit

stop_cluster() {
    local rc=$?
    set +e
    # Jobs left by a failed or interrupted run: this cluster is private, so all of its jobs are ours.
    if [ -f "$S/slurmctld.pid" ]; then squeue -h -o %i 2> /dev/null | xargs -r scancel 2> /dev/null; fi
    for ((i = ${#PIDFILES[@]} - 1; i >= 0; i--)); do
        pidfile=${PIDFILES[i]}
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2> /dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2> /dev/null && kill -9 "$pid" 2> /dev/null
    done
    for f in "${CREATED[@]}"; do
        if [ -f "$S/etc-backup/$(basename "$f")" ]; then
            cp -p "$S/etc-backup/$(basename "$f")" "$f"
        else
            rm -f "$f"
        fi
    done
    if [ "$rc" -ne 0 ]; then
        for log in slurmctld.log slurmd.log munged.log; do
            [ -f "$S/$log" ] && { echo "--- tail of $log"; tail -n 20 "$S/$log"; }
        done
    fi
    if [ -n "${KEEP:-}" ]; then echo "scratch kept: $SCRATCH"; else rm -rf "$SCRATCH"; fi
    echo "total: $(since "$T0") s, exit status $rc"
    exit "$rc"
}
trap stop_cluster EXIT
trap 'exit 130' INT TERM

# --- 1. the paper configuration builds its whole DAG, and the profile sends its GPU jobs to the GPU partition
echo "== dry run of the paper configuration (config.yaml) through profiles/slurm, from an empty workdir"
t=$(stamp)
snakemake all -n --directory "$SCRATCH/paper" --configfile "$REPO/config.yaml" --profile profiles/slurm \
    > "$SCRATCH/paper-dryrun.log" 2>&1 || { cat "$SCRATCH/paper-dryrun.log"; exit 1; }
python .ci/slurm/verify.py dag "$SCRATCH/paper-dryrun.log" profiles/slurm
echo "paper dry run: $(since "$t") s"

# --- 2. a single-node SLURM on localhost, two partitions (cpu, gpu) on the one node -----------------------
if pgrep -x slurmctld > /dev/null || pgrep -x slurmd > /dev/null; then
    echo "a SLURM daemon is already running on this machine; not starting a second cluster" >&2
    exit 1
fi
echo "== starting munged, slurmctld, slurmd (node $NODE, $CPUS CPUs, $MEM_MB MB, gpu:1 on /dev/null)"
t=$(stamp)
# A private munge key and socket: /etc/munge and /run/munge stay untouched.
head -c 1024 /dev/urandom > "$S/munge/munge.key"
chmod 400 "$S/munge/munge.key"
chmod 700 "$S/munge"
munged --force --socket="$S/munge/socket" --key-file="$S/munge/munge.key" --pid-file="$S/munge/munged.pid" \
    --log-file="$S/munged.log" --seed-file="$S/munge/seed"
PIDFILES+=("$S/munge/munged.pid")

mkdir -p /etc/slurm
for f in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
    [ -f "$f" ] && cp -p "$f" "$S/etc-backup/"
    CREATED+=("$f")
done
# No accounting database: squeue answers the status queries and `scontrol show job` the check below, so
# MinJobAge keeps finished jobs visible for an hour; jobcomp/filetxt records every finished job. The GPU is a
# GRES on /dev/null, so GPU jobs are submitted as on a cluster (--gpus=1) and run on the CPU. No cgroups: a
# container without systemd cannot delegate them, so memory requests are scheduled but not enforced.
cat > /etc/slurm/slurm.conf <<EOF
ClusterName=ci
SlurmctldHost=$NODE(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$S/munge/socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/slurmctld.log
SlurmdLogFile=$S/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$S/jobcomp.log
MinJobAge=3600
ReturnToService=2
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
echo "NodeName=$NODE Name=gpu File=/dev/null" > /etc/slurm/gres.conf

slurmctld -c
PIDFILES+=("$S/slurmctld.pid")
slurmd
PIDFILES+=("$S/slurmd.pid")
for _ in $(seq 100); do
    state=$(sinfo -h -N -o %T 2> /dev/null | sort -u | tr '\n' ' ')
    [ "$state" = "idle " ] && break
    sleep 0.3
done
[ "$state" = "idle " ] || { echo "node did not come up: '$state'" >&2; sinfo -N -l >&2; exit 1; }
echo "cluster up: $(since "$t") s"
sinfo

# --- 3. the tiny preset through the SLURM profile -----------------------------------------------------
WORK=$SCRATCH/work
SMK=(snakemake "${TARGETS[@]}" --directory "$WORK" --configfile "${CONFIGS[@]}")
echo "== ${SMK[*]} --profile profiles/slurm --profile .ci/slurm/profile"
"${SMK[@]}" -n > "$SCRATCH/tiny-dryrun.log" 2>&1 || { cat "$SCRATCH/tiny-dryrun.log"; exit 1; }
t=$(stamp)
if ! "${SMK[@]}" --profile profiles/slurm --profile .ci/slurm/profile > "$SCRATCH/tiny-slurm.log" 2>&1; then
    tail -n 60 "$SCRATCH/tiny-slurm.log"
    exit 1
fi
echo "slurm run: $(since "$t") s"

# --- 4. every job went through sbatch, and the outputs are right --------------------------------------
"${SMK[@]}" -n > "$SCRATCH/tiny-after.log" 2>&1
grep -q "Nothing to be done" "$SCRATCH/tiny-after.log" \
    || { echo "outputs still missing after the SLURM run:" >&2; cat "$SCRATCH/tiny-after.log" >&2; exit 1; }
python .ci/slurm/verify.py run --dry-run "$SCRATCH/tiny-dryrun.log" --log "$SCRATCH/tiny-slurm.log" \
    --jobcomp "$S/jobcomp.log" --workdir "$WORK" --config "${CONFIGS[@]}"
echo "== SLURM check passed"
