#!/usr/bin/env bash
# slurm-loopback.sh: a throwaway one-node Slurm cluster on 127.0.0.1, for Zenith's Slurm tests.
#
#   scripts/slurm-loopback.sh start DIR   install slurm-wlm + munge if missing (apt), write the configs
#                                         into DIR, start munged, slurmctld and slurmd, wait until the
#                                         node is idle, print "export SLURM_CONF=..." on stdout
#   scripts/slurm-loopback.sh stop DIR    cancel every job, stop the daemons recorded in DIR/run
#
# Everything stays inside DIR (state, spool, logs, munge key and socket, pid files) and on 127.0.0.1
# (NoInAddrAny, NoCtldInAddrAny). Fake GPUs: gres.conf names DIR/dev/nvidiaN, symlinks to /dev/null
# (slurmd wants character devices), so jobs asking --gres=gpu:N get CUDA_VISIBLE_DEVICES set; nothing
# is isolated (no cgroups). Runs as root. Knobs: SLURM_LOOPBACK_CPUS (nproc), SLURM_LOOPBACK_GPUS (4),
# SLURM_LOOPBACK_PORT (6817; slurmd uses the next port).
# Exit status: 0 when the node is idle, 1 with the reason on stderr otherwise (daemons stopped again).
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
mode=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
export SLURM_CONF=$dir/etc/slurm.conf
cpus=${SLURM_LOOPBACK_CPUS:-$(nproc)}
gpus=${SLURM_LOOPBACK_GPUS:-4}
port=${SLURM_LOOPBACK_PORT:-6817}

say() { echo "slurm-loopback: $*" >&2; }

# A pid file names a live (non-zombie) process whose name starts with $2.
running() {
  local pid state
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  state=$(sed 's/.*) //' "/proc/$pid/stat" | cut -d' ' -f1)
  [ "$state" != Z ] && grep -q "^$2" "/proc/$pid/comm"
}

stop_daemon() {
  local file=$dir/run/$1.pid i
  if running "$file" "$1"; then
    kill -TERM "$(cat "$file")" 2>/dev/null || true
    for i in $(seq 50); do running "$file" "$1" || break; sleep 0.1; done
    if running "$file" "$1"; then kill -KILL "$(cat "$file")" 2>/dev/null || true; fi
  fi
  rm -f "$file"
}

stop_all() {
  if running "$dir/run/slurmctld.pid" slurmctld; then
    timeout 10 scancel --quiet --partition=debug 2>/dev/null || true
  fi
  stop_daemon slurmd
  stop_daemon slurmctld
  stop_daemon munged
}

retry() { # seconds, what, command...
  local tries=$(( $1 * 10 )) what=$2 i; shift 2
  for ((i = 0; i < tries; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  say "gave up waiting for $what"
  return 1
}

fail() {
  say "$1"
  for log in "$dir"/log/*.log; do [ -s "$log" ] && { say "--- $log"; tail -n 8 "$log" >&2; }; done
  stop_all
  exit 1
}

if [ "$mode" = stop ]; then stop_all; say "stopped"; exit 0; fi
[ "$mode" = start ] || usage

missing=()
for tool in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q "${missing[@]}" || { apt-get update -q && apt-get install -y -q "${missing[@]}"; }; } >&2 \
    || { say "apt-get could not install ${missing[*]}"; exit 1; }
fi

stop_all
rm -rf "$dir/state" "$dir/spool" "$dir/run" "$dir/log" "$dir/dev"
mkdir -p "$dir/etc" "$dir/state" "$dir/spool" "$dir/run" "$dir/log" "$dir/dev" "$dir/munge"
chmod 700 "$dir/munge"
chmod 755 "$dir/run"
if [ ! -s "$dir/munge/munge.key" ]; then
  head -c 1024 /dev/urandom > "$dir/munge/munge.key"
fi
chmod 600 "$dir/munge/munge.key"
for ((i = 0; i < gpus; i++)); do ln -s /dev/null "$dir/dev/nvidia$i"; done
mem_mb=$(awk '/^MemTotal:/ { print int($2 / 1024 * 0.8) }' /proc/meminfo)
gres_node=""
[ "$gpus" -gt 0 ] && gres_node="Gres=gpu:$gpus"

cat > "$SLURM_CONF" <<EOF
ClusterName=zenith-loopback
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/run/munge.socket
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
SlurmctldPort=$port
SlurmdPort=$((port + 1))
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
GresTypes=gpu
MinJobAge=600
KillWait=5
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb $gres_node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
{
  echo "AutoDetect=off"
  [ "$gpus" -gt 0 ] && echo "NodeName=localhost Name=gpu File=$dir/dev/nvidia[0-$((gpus - 1))]"
} > "$dir/etc/gres.conf"
echo "CgroupPlugin=cgroup/v1" > "$dir/etc/cgroup.conf"

cd "$dir"
munged --socket="$dir/run/munge.socket" --key-file="$dir/munge/munge.key" \
  --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed" \
  || fail "munged did not start"
slurmctld -i 2>>"$dir/log/slurmctld.err" || fail "slurmctld did not start"
slurmd -N localhost 2>>"$dir/log/slurmd.err" || fail "slurmd did not start"
node_idle() { [ "$(timeout 10 sinfo -h -n localhost -o %T)" = idle ]; }
retry 30 "the node to become idle" node_idle || fail "node state: $(sinfo -h -o '%T %E' 2>&1 || true)"
say "up (dir $dir)"
echo "export SLURM_CONF=$SLURM_CONF"
