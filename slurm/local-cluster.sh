#!/usr/bin/env bash
# Start/stop a real one-node SLURM cluster on localhost, from Debian's packages.
#
#   slurm/local-cluster.sh start [--max-array-size N] [--partition NAME]
#                                                       # install if needed, configure, start, wait for idle
#   slurm/local-cluster.sh stop                         # stop the daemons this script started
#   slurm/local-cluster.sh status                       # sinfo/squeue; exit 0 if up, 1 if not
#
# Meant for tests and CI on a Debian 12 machine where we are root and systemd is
# not running (containers, VMs). Daemons run as plain background processes whose
# pid files live in the state dir, so `stop` only ever kills what `start` started.
#
# Env: ORCH_SLURM_STATE   state/spool/log directory   (default /tmp/orch-slurm)
#      ORCH_SLURM_CPUS    CPUs advertised for the node (default: nproc)
#      ORCH_SLURM_TIMEOUT seconds to wait for the node to become idle (default 60)
set -euo pipefail

STATE="${ORCH_SLURM_STATE:-/tmp/orch-slurm}"
SLURMD_STARTED_AT=""                # set when this run starts slurmd (see node_up)
GHOSTS_POSSIBLE=0                   # set when slurmd starts with no job process alive
CONF=/etc/slurm/slurm.conf          # clients (sbatch, squeue, submitit) read this by default
MARKER="# managed by orch slurm/local-cluster.sh"
TIMEOUT="${ORCH_SLURM_TIMEOUT:-60}"
MUNGE_KEY=/etc/munge/munge.key
MUNGE_SOCKET_DIR=/run/munge         # libmunge's compiled-in default; clients look there

log() { echo "[local-cluster] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- processes

# pid_alive PIDFILE COMM: true if the pid in PIDFILE runs a process named COMM
# (the name check guards against a recycled pid after a reboot/container restart).
pid_alive() {
    local pidfile=$1 comm=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$comm" ]] || return 1
    # A zombie (exited, not yet reaped: some container inits never reap
    # orphans) still has its comm; field 3 of /proc/PID/stat is its state.
    local stat
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# stop_pidfile PIDFILE COMM: SIGTERM, wait up to 10 s, then SIGKILL.
stop_pidfile() {
    local pidfile=$1 comm=$2 pid i
    if pid_alive "$pidfile" "$comm"; then
        pid=$(<"$pidfile")
        log "stopping $comm (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            pid_alive "$pidfile" "$comm" || break
            sleep 0.2
        done
        if pid_alive "$pidfile" "$comm"; then
            log "$comm did not exit on SIGTERM, killing"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
    fi
    rm -f "$pidfile"
}

# Job processes are not children of slurmd: slurmstepd daemonizes, so killing
# slurmd leaves jobs running. Collect them by pid (never by name) before slurmd
# goes away: `scontrol listpids` lists every job task pid on this node, and the
# slurmstepd pids are those whose executable is this install's slurmstepd.
job_pids() {
    local stepd p
    scontrol listpids 2>/dev/null | awk 'NR > 1 && $1 ~ /^[0-9]+$/ {print $1}' || true
    stepd=$(readlink -f "$(command -v slurmstepd 2>/dev/null || echo /usr/sbin/slurmstepd)")
    for p in /proc/[0-9]*; do
        [[ "$(readlink "$p/exe" 2>/dev/null)" == "$stepd" ]] && echo "${p#/proc/}"
    done
    return 0
}

# ---------------------------------------------------------------- install

have_binaries() { command -v slurmctld && command -v slurmd && command -v munged && command -v sbatch; } >/dev/null

install_packages() {
    have_binaries && return 0
    log "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Without systemd, the packages' postinst would try to start the daemons via
    # /etc/init.d (slurmctld fails without a config). A policy-rc.d that answers
    # 101 ("action forbidden") stops that; we start the daemons ourselves.
    local own_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    local pkgs=(slurm-wlm munge) rc=0
    # Only refresh the package lists if the install fails with the current ones.
    apt-get install -y -q --no-install-recommends "${pkgs[@]}" || {
        log "install failed with current package lists; running apt-get update"
        apt-get update -q && apt-get install -y -q --no-install-recommends "${pkgs[@]}"
    } || rc=$?
    ((own_policy)) && rm -f /usr/sbin/policy-rc.d
    ((rc == 0)) || die "apt-get install failed (rc=$rc)"
    have_binaries || die "slurm/munge binaries still missing after install"
}

# ---------------------------------------------------------------- munge

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

ensure_munge_key() {
    if [[ ! -s $MUNGE_KEY ]]; then
        log "creating munge key $MUNGE_KEY"
        install -d -o munge -g munge -m 0700 /etc/munge
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$MUNGE_KEY"
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
        fi
    fi
    # munged refuses to start unless the key is owned by it and not readable by others.
    chown munge:munge "$MUNGE_KEY"
    chmod 0400 "$MUNGE_KEY"
}

start_munge() {
    local pidfile=$STATE/munge/munged.pid
    if pid_alive "$pidfile" munged && munge_works; then return 0; fi
    if munge_works; then
        log "munged already running (not started by this script); reusing it"
        return 0
    fi
    ensure_munge_key
    # systemd-tmpfiles normally creates these; without systemd nobody does.
    install -d -o munge -g munge -m 0755 "$MUNGE_SOCKET_DIR"
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge "$STATE/munge"
    # --force: replace a stale socket left behind by a killed munged.
    runuser -u munge -- /usr/sbin/munged --force \
        --pid-file="$pidfile" --log-file="$STATE/munge/munged.log" \
        || { tail -n 20 "$STATE/munge/munged.log" >&2 || true; die "munged failed to start"; }
    local i
    for ((i = 0; i < 50; i++)); do munge_works && return 0; sleep 0.1; done
    tail -n 20 "$STATE/munge/munged.log" >&2 || true
    die "munged started but munge/unmunge does not work"
}

# ---------------------------------------------------------------- slurm.conf

# Short hostname (uname: the `hostname` binary is not in every minimal image).
# slurmctld refuses to run unless SlurmctldHost matches it.
node_name() { local n; n=$(uname -n); echo "${n%%.*}"; }

# Print the slurm.conf for this machine on stdout.
render_conf() {
    local max_array=$1 partition=$2 node cpus mem_total margin mem max_jobs=100000
    node=$(node_name)
    cpus=${ORCH_SLURM_CPUS:-$(nproc)}
    # /proc/meminfo rather than free(1): procps is not in minimal images.
    mem_total=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    # Leave headroom: slurmd drains a node whose real memory is below RealMemory.
    margin=$((mem_total / 10 > 512 ? mem_total / 10 : 512))
    mem=$((mem_total - margin > 256 ? mem_total - margin : 256))
    # slurm.conf(5): MaxJobCount should exceed MaxArraySize, and changing it
    # needs a slurmctld restart, so keep it constant unless the array is huge.
    ((max_array * 2 > max_jobs)) && max_jobs=$((max_array * 2))
    cat <<EOF
$MARKER -- regenerated on every start; edit the script instead.
ClusterName=orch
# Explicit 127.0.0.1 so nothing depends on the hostname resolving.
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
MpiDefault=none
# No cgroups: we may run in a container without a usable cgroup hierarchy.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
PropagateResourceLimits=NONE
# Trust the node line below even if a container reports different hardware.
SlurmdParameters=config_overrides
# No slurmdbd: sacct does not work; squeue/scontrol do.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Cores are consumable, memory is not (jobs without --mem must not grab the node).
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Fast turnaround: schedule right after submit/completion, backfill every second.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1,default_queue_depth=1000
MaxArraySize=$max_array
MaxJobCount=$max_jobs
# A restarted controller must not silently re-run jobs killed by "stop".
JobRequeue=0
KillWait=2
# No accounting: finished jobs are only visible (squeue -t all, scontrol)
# until MinJobAge; keep them for an hour.
MinJobAge=3600
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=10
# A node that was down (e.g. after stop/start) comes back by itself.
ReturnToService=2
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$node CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$partition Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

# ctld_only_change NEWCONF: true if NEWCONF differs from $CONF only in
# controller-side limits, so restarting slurmctld alone (running jobs survive,
# they live under slurmd) is enough.
ctld_only_change() {
    local skip='^(MaxArraySize|MaxJobCount)='
    [[ -f $CONF ]] && cmp -s <(grep -Ev "$skip" "$1") <(grep -Ev "$skip" "$CONF")
}

# write_conf NEWCONF: install it as $CONF.
write_conf() {
    local new=$1
    mkdir -p "$(dirname "$CONF")"
    # Keep a pre-existing config that this script did not write.
    if [[ -f $CONF ]] && ! grep -qF "$MARKER" "$CONF" && [[ ! -e $CONF.orig ]]; then
        log "backing up existing $CONF to $CONF.orig"
        cp -p "$CONF" "$CONF.orig"
    fi
    install -m 0644 "$new" "$CONF"
}

# conf_state_dir: the state dir named in a slurm.conf written by this script
# (empty if none), so daemons started with another ORCH_SLURM_STATE are found.
conf_state_dir() {
    [[ -f $CONF ]] && grep -qF "$MARKER" "$CONF" || return 0
    sed -n 's|^StateSaveLocation=\(.*\)/slurmctld$|\1|p' "$CONF"
}

# stop_other_state: stop daemons that run from a different state dir than ours.
stop_other_state() {
    local other
    other=$(conf_state_dir)
    [[ -n $other && $other != "$STATE" && -d $other ]] || return 0
    log "stopping daemons started with state dir $other"
    local ours=$STATE
    STATE=$other
    stop_slurm
    stop_pidfile "$STATE/munge/munged.pid" munged
    STATE=$ours
}

# ---------------------------------------------------------------- slurm daemons

slurm_running() {
    pid_alive "$STATE/run/slurmctld.pid" slurmctld && pid_alive "$STATE/run/slurmd.pid" slurmd
}

start_slurm() {
    mkdir -p "$STATE"/{slurmctld,slurmd,run,log}
    if ! pid_alive "$STATE/run/slurmctld.pid" slurmctld; then
        log "starting slurmctld"
        # Without -c the controller keeps its saved state (job ids keep growing,
        # so submitit folders keyed by %j never see a reused id).
        slurmctld || { dump_logs; die "slurmctld failed to start"; }
    fi
    if ! pid_alive "$STATE/run/slurmd.pid" slurmd; then
        # No job process survived (the normal case after `stop`): whatever the
        # controller still lists as running on this node is a ghost.
        [[ -z "$(job_pids)" ]] && GHOSTS_POSSIBLE=1
        log "starting slurmd"
        SLURMD_STARTED_AT=$(date +%s)
        # -N: register under the configured NodeName whatever gethostname says.
        slurmd -N "$(node_name)" || { dump_logs; die "slurmd failed to start"; }
    fi
}

stop_slurm() {
    # Controller first so it does not react to the node disappearing.
    stop_pidfile "$STATE/run/slurmctld.pid" slurmctld
    local pids
    pids=$(job_pids | sort -un | tr '\n' ' ')
    stop_pidfile "$STATE/run/slurmd.pid" slurmd
    if [[ -n ${pids// /} ]]; then
        log "killing leftover job processes: $pids"
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
    fi
}

# node_state: the node's State= from scontrol, e.g. IDLE, MIXED,
# IDLE+NOT_RESPONDING, DOWN+DRAIN; empty if the controller does not answer.
node_state() {
    scontrol show node -o "$(node_name)" 2>/dev/null | sed -n 's/.* State=\([^ ]*\).*/\1/p'
}

# node_up: the node accepts jobs and its slurmd has registered. Right after a
# slurmctld restart the state recovered from disk (IDLE, ALLOCATED...) is shown
# before slurmd has said anything, so also require that the registered
# SlurmdStartTime is not older than the slurmd we started ($SLURMD_STARTED_AT).
node_up() {
    local line state started
    line=$(scontrol show node -o "$(node_name)" 2>/dev/null) || return 1
    state=$(sed -n 's/.* State=\([^ ]*\).*/\1/p' <<<"$line")
    case "$state" in
        *NOT_RESPONDING* | *DOWN* | *DRAIN* | *FAIL* | *UNKNOWN* | *POWER*) return 1 ;;
        IDLE* | MIXED* | ALLOCATED* | COMPLETING*) ;;
        *) return 1 ;;
    esac
    if [[ -n ${SLURMD_STARTED_AT:-} ]]; then
        started=$(sed -n 's/.* SlurmdStartTime=\([^ ]*\).*/\1/p' <<<"$line")
        started=$(date -d "$started" +%s 2>/dev/null) || return 1
        ((started >= SLURMD_STARTED_AT)) || return 1
    fi
}

wait_idle() {
    local deadline=$((SECONDS + TIMEOUT)) state resumed=0
    while ((SECONDS < deadline)); do
        if node_up; then
            log "node $(node_name) is $(node_state)"
            return 0
        fi
        state=$(node_state)
        # A node left DOWN/DRAIN by an earlier run: ReturnToService=2 covers
        # most cases once slurmd registers, an explicit resume the rest.
        if [[ $state =~ DOWN|DRAIN && ! $state =~ NOT_RESPONDING ]] && ((!resumed)); then
            log "node is $state; resuming it"
            scontrol update nodename="$(node_name)" state=resume 2>/dev/null || true
            resumed=1
        fi
        sleep 0.25
    done
    log "node did not become idle within ${TIMEOUT}s (state: '${state:-?}')"
    scontrol show node "$(node_name)" >&2 2>/dev/null || true
    dump_logs
    return 1
}

# Jobs killed by `stop` are recovered from the state dir as RUNNING and keep
# their CPUs until slurmctld notices they are missing (~3 minutes on 22.05).
# Marking the node DOWN fails them at once (NODE_FAIL; JobRequeue=0 so they
# are not re-run); wait_idle then resumes the node if it is still DOWN.
clear_ghost_jobs() {
    ((GHOSTS_POSSIBLE)) || return 0
    local node ghosts
    node=$(node_name)
    ghosts=$(squeue -h -w "$node" -t running,completing,configuring,suspended -o %i 2>/dev/null | tr '\n' ' ')
    [[ -n ${ghosts// /} ]] || return 0
    log "failing jobs whose processes are gone (killed by an earlier stop): $ghosts"
    scontrol update nodename="$node" state=down reason="local-cluster restart" || true
    wait_idle || die "cluster did not come up after failing ghost jobs"
}

dump_logs() {
    local f
    for f in "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" "$STATE/munge/munged.log"; do
        [[ -f $f ]] || continue
        echo "----- tail $f" >&2
        tail -n 25 "$f" >&2
    done
}

# ---------------------------------------------------------------- commands

cmd_start() {
    local max_array=1001 partition=debug
    while (($#)); do
        case "$1" in
            --max-array-size) max_array=${2:?--max-array-size needs a value}; shift 2 ;;
            --max-array-size=*) max_array=${1#*=}; shift ;;
            --partition) partition=${2:?--partition needs a name}; shift 2 ;;
            --partition=*) partition=${1#*=}; shift ;;
            *) die "unknown option for start: $1" ;;
        esac
    done
    [[ $max_array =~ ^[0-9]+$ ]] || die "--max-array-size must be a number"
    # slurm.conf(5) partition names: no spaces, '=' or '#'; keep to what every tool prints unquoted.
    [[ $partition =~ ^[A-Za-z0-9_.-]+$ ]] || die "--partition must be letters, digits, '.', '_' or '-'"
    [[ $(id -u) == 0 ]] || die "must run as root"

    install_packages
    stop_other_state
    mkdir -p "$STATE"
    start_munge

    local new=$STATE/slurm.conf.new change=none
    render_conf "$max_array" "$partition" >"$new"
    if [[ ! -f $CONF ]] || ! cmp -s "$new" "$CONF"; then
        if ctld_only_change "$new"; then change=ctld; else change=all; fi
        write_conf "$new"
    fi
    rm -f "$new"

    if [[ $change == none ]] && slurm_running && node_up; then
        log "already running with the same config ($CONF)"
        return 0
    fi
    # Restart rather than `scontrol reconfigure`: on Slurm 22.05 slurmctld caches
    # MaxArraySize in a static on first array submission, so a reconfigure shows
    # the new value but keeps enforcing the old one. Job state is kept.
    case "$change" in
        ctld)
            if pid_alive "$STATE/run/slurmctld.pid" slurmctld; then
                log "MaxArraySize changed; restarting slurmctld (running jobs are kept)"
                stop_pidfile "$STATE/run/slurmctld.pid" slurmctld
                start_slurm
                # Let slurmd re-read the file too, so both sides hash the same config.
                scontrol reconfigure || true
            fi ;;
        all)
            if pid_alive "$STATE/run/slurmctld.pid" slurmctld || pid_alive "$STATE/run/slurmd.pid" slurmd; then
                log "config changed; restarting slurm daemons"
            fi
            stop_slurm ;;
    esac
    start_slurm
    wait_idle || die "cluster did not come up"
    clear_ghost_jobs
    log "up: config $CONF, state/logs in $STATE"
}

cmd_stop() {
    stop_other_state
    stop_slurm
    stop_pidfile "$STATE/munge/munged.pid" munged
    log "stopped"
}

cmd_status() {
    local up=0
    if slurm_running && node_up; then up=1; fi
    sinfo 2>&1 || true
    squeue 2>&1 || true
    if ((up)); then echo "local cluster: UP (state $STATE)"; return 0; fi
    echo "local cluster: DOWN (state $STATE)"
    return 1
}

main() {
    local cmd=${1:-}
    shift || true
    case "$cmd" in
        start) cmd_start "$@" ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        *) echo "usage: $0 {start [--max-array-size N] [--partition NAME]|stop|status}" >&2; exit 2 ;;
    esac
}

main "$@"
