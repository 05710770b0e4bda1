#!/usr/bin/env bash
# Starts a one-node SLURM cluster on this machine (slurmctld + slurmd, 2 CPUs, munge auth) for the multi-process
# tests. Installs Debian's slurm-wlm and munge first when they are missing and we are root with apt-get.
#   .ci/slurm-up.sh                 install if needed, write the config, start the daemons, wait until the node is idle
#   .ci/slurm-up.sh --install-only  only install (used by .ci/run)
# Prints "SLURM_CONF=<path>" on success; everything lives in $YUAN_SLURM_DIR (default /tmp/yuan-slurm).
# .ci/slurm-down.sh stops exactly the daemons this script started. Exit 0 = up; non-zero with one line on stderr why not.
set -euo pipefail
DIR="${YUAN_SLURM_DIR:-/tmp/yuan-slurm}"
CPUS="${YUAN_SLURM_CPUS:-2}"
say() { echo "slurm-up: $*" >&2; }

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing slurm-wlm and munge with apt-get"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null) || { say "apt-get install slurm-wlm munge failed"; exit 3; }
  else
    say "slurm-wlm/munge are not installed and cannot be (needs root and apt-get)"; exit 3
  fi
fi
[ "${1:-}" = "--install-only" ] && exit 0
[ "$(id -u)" = 0 ] || { say "starting slurmctld/slurmd needs root"; exit 4; }

mkdir -p "$DIR/state" "$DIR/spool"
: > "$DIR/started"
HOST="$(hostname -s)"
CONF="$DIR/slurm.conf"

# munge: reuse a running daemon, else start one (with a key made here if there is none).
if ! (munge -n 2>/dev/null | unmunge >/dev/null 2>&1); then
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge && (mungekey -c -f -k /etc/munge/munge.key 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none)
  fi
  chown -R munge:munge /etc/munge 2>/dev/null || true
  chmod 600 /etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge && chown munge:munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
  if id munge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged || { say "munged did not start"; exit 5; }
  else
    /usr/sbin/munged --force || { say "munged did not start"; exit 5; }
  fi
  sleep 0.5
  pgrep -n -x munged > "$DIR/munged.pid" && echo munged >> "$DIR/started"
  (munge -n | unmunge >/dev/null 2>&1) || { say "munge does not work after starting munged"; exit 5; }
fi

cat > "$CONF" <<CONF
# Written by .ci/slurm-up.sh: a one-node test cluster.
ClusterName=yuan-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=${YUAN_SLURMCTLD_PORT:-6817}
SlurmdPort=${YUAN_SLURMD_PORT:-6818}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

export SLURM_CONF="$CONF"
/usr/sbin/slurmctld -D -i -f "$CONF" >"$DIR/slurmctld.out" 2>&1 &
echo $! > "$DIR/slurmctld.pid.started"; echo slurmctld >> "$DIR/started"
/usr/sbin/slurmd -D -f "$CONF" -N "$HOST" >"$DIR/slurmd.out" 2>&1 &
echo $! > "$DIR/slurmd.pid.started"; echo slurmd >> "$DIR/started"

for _ in $(seq 1 60); do
  state="$(sinfo -h -N -o %T 2>/dev/null | head -n 1 || true)"
  if [ "$state" = idle ]; then echo "SLURM_CONF=$CONF"; exit 0; fi
  for d in slurmctld slurmd; do
    kill -0 "$(cat "$DIR/$d.pid.started")" 2>/dev/null || { say "$d exited: $(tail -n 1 "$DIR/$d.out" "$DIR/$d.log" 2>/dev/null | grep -v '^==' | grep . | tail -n 1)"; "$(dirname "$0")/slurm-down.sh"; exit 6; }
  done
  sleep 1
done
say "the node did not become idle within 60 s (state: ${state:-unknown})"
"$(dirname "$0")/slurm-down.sh"
exit 6
