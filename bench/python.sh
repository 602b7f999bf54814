#!/usr/bin/env bash
# Benchmark the Python package ctadata (crates/ctadata-python) beside the cta-data CLI, the
# old ctadata 0.6.2 from PyPI and curl, on the same data through the same server: the
# platform double (target/release/ctadata-platform: the downloadservice in front of a
# private nginx), with the `platform` profile read from CTADS_URL, CTACS_URL and
# JUPYTERHUB_API_TOKEN as on the platform.
#
#   bench/python.sh                                  # all cases, 3 runs each, 2 GiB
#   bench/python.sh --big-size 256M --parquet-size 64M --runs 1   # quick smoke run
#
# Cases:
#   1 one big file: ctadata.fetch_and_save_file(path, save_to) (new, progress off) vs
#     `cta-data get` vs old ctadata's fetch_and_save_file, and curl on the downloadservice's
#     fetch endpoint (and straight on nginx, to show what the double costs)
#   2 a tree of 1,000 x 64 KiB in 10 directories: fetch_and_save_file_or_dir(path,
#     recursive=True) (new and old) vs `cta-data get -r`
#   3 pandas.read_parquet(URL, columns=[COLUMN]) of a Parquet file (8 float64 columns,
#     uncompressed, 8 row groups, made with pyarrow): (a) in place through the package's
#     fsspec filesystem, cta://platform/... and cta://dav/... (a dcache profile straight
#     on the platform's nginx, from an extra config file); (b) fsspec's HTTP filesystem on
#     the plain nginx URL; (c) `cta-data get` to local disk, then read locally; plus
#     pandas on the plain URL without a filesystem (it downloads the whole file) and the
#     local read alone. Server bytes are the bytes nginx logged as sent for GETs (first
#     run, headers included); × column divides them by the column's own size (sum of the
#     total_compressed_size of its chunks in the Parquet metadata).
#
# Options:
#   --runs N            timed runs per row (default 3); the median is reported
#   --only LIST         cases to run, comma separated (default 1,2,3)
#   --big-size SIZE     size of the big file of case 1 (default 2G)
#   --parquet-size S    size of the Parquet file of case 3 (default 256M)
#   --column NAME       the column read in case 3 (default c3; c0 .. c7)
#   --dir DIR           parent of the temporary work directory (default /tmp)
#   --venvs DIR         where the two virtual environments live (default
#                       ${CARGO_TARGET_DIR:-target}/bench-py): new/ (the package built
#                       here, pandas, pyarrow, fsspec, aiohttp), old/ (ctadata==0.6.2):
#                       both packages are named ctadata, so they cannot share one
#   --keep              keep the work directory (data, logs) at exit
#   --keep-cache        do not drop the page cache before each run
#   --timeout SEC       kill a single run after SEC seconds (default 600)
#   --no-install        do not install missing Debian or Python packages
#   --no-build          use the existing release binaries and the package already
#                       installed in the new venv
#
# Builds (unless --no-build) in ${CARGO_TARGET_DIR:-target}: cta-data and ctadata-platform
# (release), and the package's wheel with maturin (release), installed into the new venv.
# Wall time is measured around each run with bash's $EPOCHREALTIME; a Python row's time
# includes starting the interpreter and importing the package (and pandas in case 3);
# read_parquet s is the time of the call alone (median, from inside Python). Peak RSS and
# CPU s are GNU time's (max over runs; median user+sys). The first run of each row is
# checked (sha256 of the file, tree comparison, the column's sum): a client that fails or
# gets wrong data is reported as FAILED or WRONG DATA, and the script then exits 1. A
# case-3 row whose fsspec filesystem is not in the package yet is reported as "not
# available" and does not fail the script. The table is printed on stdout, progress on
# stderr. Only 127.0.0.1 is contacted.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=bench/common.sh
source "$HERE/common.sh"

RUNS=3
ONLY=1,2,3
BIG_SIZE=2G
PQ_SIZE=256M
COLUMN=c3
PARENT=/tmp
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
VENVS=""
KEEP=0
DROP=1
TMO=600
INSTALL=1
BUILD=1

while (($#)); do
    case $1 in
        --runs) RUNS=${2:?--runs needs a value}; shift ;;
        --only) ONLY=${2:?--only needs a value}; shift ;;
        --big-size) BIG_SIZE=${2:?--big-size needs a value}; shift ;;
        --parquet-size) PQ_SIZE=${2:?--parquet-size needs a value}; shift ;;
        --column) COLUMN=${2:?--column needs a value}; shift ;;
        --dir) PARENT=${2:?--dir needs a value}; shift ;;
        --venvs) VENVS=${2:?--venvs needs a value}; shift ;;
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
[[ $ONLY =~ ^[1-3](,[1-3])*$ ]] || die "--only takes case numbers 1-3, e.g. 1,3"
[[ $COLUMN =~ ^c[0-7]$ ]] || die "--column is one of c0 .. c7"
want_case() { [[ ,$ONLY, == *,$1,* ]]; }
VENVS=${VENVS:-$TARGET/bench-py}
PYNEW=$VENVS/new/bin/python
PYOLD=$VENVS/old/bin/python
OLD_VERSION=0.6.2

# ---------------------------------------------------------------- install ----
command -v python3 >/dev/null || die "python3 is needed"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "python3 >= 3.9 is needed"
BIG_BYTES=$(python3 "$LIB" size "$BIG_SIZE")
PQ_BYTES=$(python3 "$LIB" size "$PQ_SIZE")
((BIG_BYTES > 0 && PQ_BYTES > 0)) || die "sizes must be positive"

missing=()
command -v nginx >/dev/null || missing+=(nginx)
[[ -f $DAV_EXT ]] || missing+=(libnginx-mod-http-dav-ext)
command -v curl >/dev/null || missing+=(curl)
[[ -x /usr/bin/time ]] || missing+=(time)
command -v timeout >/dev/null || missing+=(coreutils)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
    ((INSTALL)) || die "missing: ${missing[*]} (and --no-install given)"
    [[ $EUID -eq 0 ]] || die "missing: ${missing[*]}; run as root or install them"
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}" >&2 ||
        { apt-get -o DPkg::Lock::Timeout=600 update >&2 &&
            apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}" >&2; }
fi

# venv_ready DIR MODULES...: the venv exists and imports MODULES.
venv_ready() { local v=$1; shift; [[ -x $v/bin/python ]] && "$v/bin/python" -c "import ${*// /,}" 2>/dev/null; }
make_venv() {  # make_venv DIR PIP_ARGS...
    local v=$1
    shift
    ((INSTALL)) || die "the venv $v lacks what it needs (and --no-install given)"
    [[ -x $v/bin/pip ]] || python3 -m venv "$v" || die "cannot create the venv $v"
    log "pip install $* (in $v)"
    "$v/bin/pip" install --quiet --disable-pip-version-check "$@" >&2 || die "pip install $* failed"
}
venv_ready "$VENVS/new" pandas pyarrow fsspec aiohttp maturin numpy ||
    make_venv "$VENVS/new" maturin pandas pyarrow fsspec aiohttp numpy
[[ $("$PYOLD" -c 'import importlib.metadata as m; print(m.version("ctadata"))' 2>/dev/null) == "$OLD_VERSION" ]] ||
    make_venv "$VENVS/old" "ctadata==$OLD_VERSION"

# ------------------------------------------------------------------ build ----
CTA_REL=$TARGET/release/cta-data
PLAT_REL=$TARGET/release/ctadata-platform
if ((BUILD)); then
    log "building: cta-data and ctadata-platform (release) in $TARGET"
    (cd "$REPO" && cargo build --release -p cta-data -p ctadata-testsupport --bin cta-data --bin ctadata-platform) >&2 ||
        die "cargo build failed (--no-build benches the existing binaries)"
    log "building: the Python wheel (maturin build --release)"
    rm -rf "$TARGET/bench-py-wheel"
    (cd "$REPO/crates/ctadata-python" && CARGO_TARGET_DIR=$TARGET "$VENVS/new/bin/maturin" build --release -o "$TARGET/bench-py-wheel") >&2 ||
        die "maturin build failed"
    "$VENVS/new/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$TARGET"/bench-py-wheel/ctadata-*.whl >&2 ||
        die "installing the wheel failed"
fi
[[ -x $CTA_REL && -x $PLAT_REL ]] || die "$CTA_REL or $PLAT_REL not found (build them or drop --no-build)"
"$PYNEW" -c 'import ctadata._native' 2>/dev/null || die "the new venv has no built ctadata package (drop --no-build)"

# ------------------------------------------------------------- work area ----
mkdir -p "$PARENT"
W=$(mktemp -d "$PARENT/cta-bench-py.XXXXXX")
PLAT_PID=""
NGINX_PID=""
cleanup() {
    local rc=$?
    stop_nginx
    if [[ -n $PLAT_PID ]] && kill -0 "$PLAT_PID" 2>/dev/null; then
        kill -TERM "$PLAT_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$PLAT_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    if ((KEEP)); then log "work directory kept: $W"; else rm -rf "$W"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Copies of the binaries: the target dir is shared and may be rebuilt meanwhile.
mkdir -p "$W/bin" "$W/src" "$W/dst" "$W/logs" "$W/tmp" "$W/xdg"
cp "$CTA_REL" "$W/bin/cta-data"
cp "$PLAT_REL" "$W/bin/ctadata-platform"
CTA_BIN=$W/bin/cta-data
export XDG_CONFIG_HOME=$W/xdg   # no user config file
LOGS=$W/logs
SRC=$W/src
DST=$W/dst
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "work directory: $W"

# ------------------------------------------------------- platform double ----
# Its storage goes under $W (TMPDIR), beside the test data (hard links, no copies).
TMPDIR=$W/tmp "$W/bin/ctadata-platform" >"$W/platform.env" 2>"$LOGS/platform.stderr" </dev/null &
PLAT_PID=$!
for _ in $(seq 300); do
    grep -q '^READY=1' "$W/platform.env" 2>/dev/null && break
    kill -0 "$PLAT_PID" 2>/dev/null || die "ctadata-platform exited: $(tail -3 "$LOGS/platform.stderr")"
    sleep 0.1
done
grep -q '^READY=1' "$W/platform.env" || die "ctadata-platform not ready after 30 s"
penv() { sed -n "s/^$1=//p" "$W/platform.env" | head -1; }
ROOT=$(penv ROOT)
export CTADS_URL CTACS_URL JUPYTERHUB_API_TOKEN
CTADS_URL=$(penv CTADS_URL)
CTACS_URL=$(penv CTACS_URL)
JUPYTERHUB_API_TOKEN=$(cat "$(penv TOKEN_FILE)")
[[ -d $ROOT && -n $CTADS_URL && -n $JUPYTERHUB_API_TOKEN ]] || die "the platform double printed no ROOT/CTADS_URL/TOKEN_FILE"
log "platform double: downloadservice $CTADS_URL, storage $ROOT"

# The nginx behind it (tests/support/src/nginx.rs): a prefix directory .ctadata-nginx-*
# beside its document root, with nginx.conf and an access log whose lines end in
# sent=$bytes_sent. Found, it serves every row; otherwise a private nginx on the same
# storage serves the rows that need a plain URL (and the platform rows get no byte count).
NGDIR=""
for d in "$ROOT"/../../../.ctadata-nginx-*; do [[ -f $d/nginx.conf && -f $d/access.log ]] && NGDIR=$(cd "$d" && pwd) && break; done
if [[ -n $NGDIR ]]; then
    port=$(sed -n 's/^ *listen 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$NGDIR/nginx.conf" | head -1)
    docroot=$(sed -n 's/^ *root \(.*\);$/\1/p' "$NGDIR/nginx.conf" | head -1)
    [[ -n $port && -n $docroot && $ROOT == "$docroot"/* ]] || NGDIR=""
fi
if [[ -n $NGDIR ]]; then
    DAV_BASE=http://127.0.0.1:$port/${ROOT#"$docroot"/}
    PLAT_ALOG=$NGDIR/access.log
    DAV_ALOG=$PLAT_ALOG
    SERVER_NOTE="the platform double's own nginx ($DAV_BASE), for every row; server bytes: \$bytes_sent of its GETs (headers included)"
else
    PLAT_ALOG=""
    DAV_ALOG=$LOGS/access.log
    start_nginx "$ROOT" "$W/nginx" "$W/body" "$DAV_ALOG"
    DAV_BASE=$URL
    SERVER_NOTE="the platform double's nginx was not found: a private nginx on the same storage ($DAV_BASE) serves the plain-URL and cta://dav rows; server bytes: \$body_bytes_sent of its GETs; no byte count for the downloadservice rows"
fi
curl -sSf -o /dev/null -X PROPFIND -H 'Depth: 0' "$DAV_BASE/" || die "nginx does not answer on $DAV_BASE"
# A dcache profile straight on that nginx, for the cta://dav rows.
cat >"$W/extra.toml" <<EOF
[profiles.dav]
backend = "dcache"
url = "$DAV_BASE"
EOF
export BEARER_TOKEN=dummy

# ------------------------------------------------------------------ data ----
BENCH=$ROOT/lst/bench
mkdir -p "$BENCH"
if want_case 1; then
    log "generating the big file: $BIG_BYTES bytes"
    python3 "$LIB" gen-file "$SRC/big.bin" "$BIG_BYTES" 1
    ln "$SRC/big.bin" "$BENCH/big.bin"
fi
SMALL_N=1000 SMALL_BYTES=65536 SMALL_DIRS=10
if want_case 2; then
    log "generating $SMALL_N x $SMALL_BYTES bytes in $SMALL_DIRS directories"
    python3 "$LIB" gen-tree "$SRC/tree" "$SMALL_DIRS" "$SMALL_N" "$SMALL_BYTES" 2
    cp -al "$SRC/tree" "$BENCH/tree"
fi
if want_case 3; then
    log "generating about $PQ_BYTES bytes of Parquet"
    "$PYNEW" "$LIB" gen-parquet "$SRC/data.parquet" "$PQ_BYTES" 3
    ln "$SRC/data.parquet" "$BENCH/data.parquet"
    PQ_FILE_BYTES=$(stat -c %s "$SRC/data.parquet")
    # rows=R row_groups=G column_bytes=B sum=S
    read -r PQ_ROWS PQ_GROUPS COL_BYTES WANT_SUM < <("$PYNEW" "$LIB" parquet-info "$SRC/data.parquet" "$COLUMN" | sed 's/[a-z_]*=//g')
    [[ $COL_BYTES =~ ^[0-9]+$ ]] || die "reading the Parquet metadata failed"
    log "parquet: $PQ_FILE_BYTES bytes, $PQ_ROWS rows in $PQ_GROUPS row groups; $COLUMN: $COL_BYTES bytes, sum $WANT_SUM"
fi

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
sha_of() {
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
check_tree() { python3 "$LIB" treecmp "$1" "$2" 2>&1; }
check_sum() {  # check_sum STDOUT: the run printed sum=S equal to the source's
    local got
    got=$(grep -o 'sum=[^ ]*' "$1" | tail -1 || true)
    got=${got#sum=}
    python3 "$LIB" close "${got:-nan}" "$WANT_SUM" 2>/dev/null || { echo "sum ${got:-missing}, expected $WANT_SUM"; return 1; }
    echo "ok: sum $got"
}
count_sent() {  # bytes of GETs in an access log (either format)
    [[ -f $1 ]] || { echo ""; return; }
    awk '$1 == "GET" { for (i = 2; i <= NF; i++) if ($i ~ /^sent=/) { n += substr($i, 6); next } n += $3 } END { printf "%.0f\n", n }' "$1"
}

# ------------------------------------------------------------- measuring ----
q() { printf '%q' "$1"; }
RESULTS=$W/results.tsv
FAILURES=$W/failures.md
: >"$RESULTS"
: >"$FAILURES"
BAD=0
ROWNUM=0

# Per-row settings, reset after each row:
PREP=":"        # eval'd before each run, untimed
WARM=":"        # eval'd after the page cache is dropped, untimed: loads the client's own
                # files (interpreter, imports, binary) so that only the data is cold
CHECK=""        # eval'd after the first run; non-zero means wrong data
ALOG=""         # access log whose GET bytes are the row's server bytes
COLB=""         # column bytes (case 3), for × column
CWD=$W          # the directory the command runs in
reset_row() { PREP=":"; WARM=":"; CHECK=""; ALOG=""; COLB=""; CWD=$W; }

add_row() { local IFS=$'\t'; printf '%s\n' "$*" >>"$RESULTS"; }
na_row() {  # na_row CASE TOOL LABEL NOTE
    add_row "$1" "$2" "$3" 0 "" "" "" "" "" "$4"
    log "case $1 | $2 | $3: $4"
    reset_row
}

# row CASE TOOL LABEL BYTES -- COMMAND...
row() {
    local case=$1 tool=$2 label=$3 bytes=$4
    shift 4
    [[ ${1:-} == -- ]] && shift
    ROWNUM=$((ROWNUM + 1))
    local out=$LOGS/row$ROWNUM.stdout err=$LOGS/row$ROWNUM.stderr
    local times=() cpus=() inpy=() rss=0 status=ok r rc t0 t1 line m u s msg sent="" v
    log "case $case | $tool | $label"
    for ((r = 1; r <= RUNS; r++)); do
        if ! eval "$PREP"; then status="FAILED: preparation failed"; break; fi
        drop_caches
        eval "$WARM" >/dev/null 2>&1 || true
        [[ -n $ALOG && -f $ALOG ]] && : >"$ALOG"
        [[ -n $PLAT_ALOG && -f $PLAT_ALOG ]] && : >"$PLAT_ALOG"
        t0=$EPOCHREALTIME
        set +e
        (cd "$CWD" && exec /usr/bin/time -f '%e %M %U %S' -o "$LOGS/time.out" timeout -k 10 "$TMO" "$@") >"$out" 2>"$err"
        rc=$?
        set -e
        t1=$EPOCHREALTIME
        if ((rc != 0)); then
            if ((rc == 124 || rc == 137)); then msg="TIMEOUT after ${TMO}s"; else msg="FAILED: exit $rc"; fi
            line=$(grep -v -e '^Command exited with' -e '^Command terminated' -e '^\s*$' "$err" | tail -1 || true)
            status="$msg${line:+: ${line:0:160}}"
            {
                printf '### case %s, %s: %s (run %d)\n\n' "$case" "$tool" "$label" "$r"
                # shellcheck disable=SC2016  # Markdown backticks
                printf 'command: `%s`\n\nexit code %s; stderr (last 20 lines):\n\n```\n' "$(printf '%q ' "$@")" "$rc"
                tail -20 "$err"
                printf '```\n\n'
            } >>"$FAILURES"
            BAD=1
            break
        fi
        read -r _ m u s < <(tail -1 "$LOGS/time.out")
        times+=("$(python3 -c "print(f'{$t1 - $t0:.3f}')")")
        cpus+=("$(python3 -c "print(f'{$u + $s:.2f}')")")
        ((m > rss)) && rss=$m
        v=$(grep -o 'read_s=[0-9.]*' "$out" | tail -1 || true)
        [[ -n $v ]] && inpy+=("${v#read_s=}")
        if ((r == 1)); then
            if [[ -n $ALOG && -f $ALOG ]]; then
                sent=$(count_sent "$ALOG")
                cp "$ALOG" "$LOGS/row$ROWNUM.access.log"
            fi
            if [[ -n $CHECK ]] && ! msg=$(eval "$CHECK" 2>&1); then
                status="WRONG DATA: ${msg:0:200}"
                # shellcheck disable=SC2016  # Markdown backticks
                printf '### case %s, %s: %s\n\ncommand: `%s`\n\nwrong result: %s\n\n' "$case" "$tool" "$label" "$(printf '%q ' "$@")" "$msg" >>"$FAILURES"
                BAD=1
                break
            fi
        fi
    done
    if [[ $status == ok ]]; then
        local med mn mx rate="" cpu py=""
        read -r med mn mx < <(python3 "$LIB" stats "${times[@]}")
        read -r cpu _ < <(python3 "$LIB" stats "${cpus[@]}")
        ((${#inpy[@]})) && read -r py _ < <(python3 "$LIB" stats "${inpy[@]}")
        if ((bytes > 0)); then rate=$(python3 -c "print(f'{$bytes / 1048576 / max($med, 1e-9):.0f}')"); fi
        add_row "$case" "$tool" "$label" "${#times[@]}" "$med" "$mn–$mx" "$rate" "${cpu%?}" \
            "$(python3 -c "print(f'{$rss / 1024:.1f}')")" ok "$sent" "$COLB" "$py"
        log "    median ${med}s (min $mn, max $mx), CPU ${cpu%?}s, peak RSS $((rss / 1024)) MiB${sent:+, $sent bytes sent by the server}"
    else
        add_row "$case" "$tool" "$label" "${#times[@]}" "" "" "" "" "" "$status"
        log "    $status"
    fi
    reset_row
}
CTA=("$CTA_BIN" -q)
WARM_CLI="$(q "$CTA_BIN") --version"
WARM_NEW="$(q "$PYNEW") -c 'import ctadata, ctadata._native'"
WARM_OLD="$(q "$PYOLD") -c 'import ctadata'"
WARM_PD="$(q "$PYNEW") -c 'import pandas, pyarrow.parquet, fsspec, aiohttp, ctadata'"
WARM_CURL="curl --version"
BIG_LABEL=$(python3 -c "b=$BIG_BYTES; print(f'{b/2**30:g} GiB' if b >= 2**30 else f'{b/2**20:g} MiB')")

# Start-up alone (reference for the rows below: each run starts a new process).
C0="0 start-up (reference)"
WARM=$WARM_CLI
row "$C0" cli "cta-data --version" 0 -- "$CTA_BIN" --version
WARM=$WARM_NEW
row "$C0" python "python -c 'import ctadata'" 0 -- "$PYNEW" -c 'import ctadata, ctadata._native'
WARM=$WARM_OLD
row "$C0" "ctadata $OLD_VERSION" "python -c 'import ctadata'" 0 -- "$PYOLD" -c 'import ctadata'

if want_case 1; then
    C1="1 get $BIG_LABEL"
    f=$DST/big.bin
    R=lst/bench/big.bin
    PREP="rm -f $(q "$f")" CHECK="check_file $(q "$f") $(q "$SRC/big.bin")" ALOG=$PLAT_ALOG WARM=$WARM_CLI
    row "$C1" cli "cta-data --profile platform get PATH FILE" "$BIG_BYTES" -- "${CTA[@]}" --profile platform get "$R" "$f"
    PREP="rm -f $(q "$f")" CHECK="check_file $(q "$f") $(q "$SRC/big.bin")" ALOG=$PLAT_ALOG WARM=$WARM_NEW
    row "$C1" python "ctadata.fetch_and_save_file(PATH, FILE, progress=False)" "$BIG_BYTES" -- \
        "$PYNEW" -c 'import sys, ctadata; print(ctadata.fetch_and_save_file(sys.argv[1], sys.argv[2], progress=False))' "$R" "$f"
    PREP="rm -f $(q "$f")" CHECK="check_file $(q "$f") $(q "$SRC/big.bin")" ALOG=$PLAT_ALOG WARM=$WARM_OLD
    row "$C1" "ctadata $OLD_VERSION" "ctadata.fetch_and_save_file(PATH, FILE)" "$BIG_BYTES" -- \
        "$PYOLD" -c 'import sys, ctadata; print(ctadata.fetch_and_save_file(sys.argv[1], sys.argv[2]))' "$R" "$f"
    PREP="rm -f $(q "$f")" CHECK="check_file $(q "$f") $(q "$SRC/big.bin")" ALOG=$PLAT_ALOG WARM=$WARM_CURL
    row "$C1" curl "curl -H 'Authorization: token …' -o FILE \$CTADS_URL/fetch/PATH" "$BIG_BYTES" -- \
        curl -sS -f -H "Authorization: token $JUPYTERHUB_API_TOKEN" -o "$f" "${CTADS_URL%/}/fetch/$R"
    PREP="rm -f $(q "$f")" CHECK="check_file $(q "$f") $(q "$SRC/big.bin")" ALOG=$DAV_ALOG WARM=$WARM_CURL
    row "$C1" curl "curl -o FILE NGINX_URL (no downloadservice; reference)" "$BIG_BYTES" -- \
        curl -sS -f -o "$f" "$DAV_BASE/$R"
    rm -f "$f"
fi

if want_case 2; then
    C2="2 get -r $SMALL_N × 64 KiB"
    d=$DST/t2
    R=lst/bench/tree
    bytes=$((SMALL_N * SMALL_BYTES))
    PREP="rm -rf $(q "$d") && mkdir -p $(q "$d")" CHECK="check_tree $(q "$SRC/tree") $(q "$d/$R")" ALOG=$PLAT_ALOG WARM=$WARM_CLI
    row "$C2" cli "cta-data --profile platform get -r PATH DIR" "$bytes" -- "${CTA[@]}" --profile platform get -r "$R" "$d/$R"
    PREP="rm -rf $(q "$d") && mkdir -p $(q "$d")" CHECK="check_tree $(q "$SRC/tree") $(q "$d/$R")" ALOG=$PLAT_ALOG CWD=$d WARM=$WARM_NEW
    row "$C2" python "ctadata.fetch_and_save_file_or_dir(PATH, recursive=True, progress=False)" "$bytes" -- \
        "$PYNEW" -c 'import sys, ctadata; ctadata.fetch_and_save_file_or_dir(sys.argv[1], recursive=True, progress=False)' "$R"
    # The old client compares each listed href with the path it was given: the directory's
    # own entry comes back as PATH/, so without the trailing slash it recurses into PATH/
    # (the whole tree) and then again into each subdirectory: everything is fetched twice.
    PREP="rm -rf $(q "$d") && mkdir -p $(q "$d")" CHECK="check_tree $(q "$SRC/tree") $(q "$d/$R")" ALOG=$PLAT_ALOG CWD=$d WARM=$WARM_OLD
    row "$C2" "ctadata $OLD_VERSION" "ctadata.fetch_and_save_file_or_dir(PATH + '/', recursive=True)" "$bytes" -- \
        "$PYOLD" -c 'import sys, ctadata; ctadata.fetch_and_save_file_or_dir(sys.argv[1], recursive=True)' "$R/"
    PREP="rm -rf $(q "$d") && mkdir -p $(q "$d")" CHECK="check_tree $(q "$SRC/tree") $(q "$d/$R")" ALOG=$PLAT_ALOG CWD=$d WARM=$WARM_OLD
    row "$C2" "ctadata $OLD_VERSION" "ctadata.fetch_and_save_file_or_dir(PATH, recursive=True) (no trailing slash: fetches the tree twice)" "$bytes" -- \
        "$PYOLD" -c 'import sys, ctadata; ctadata.fetch_and_save_file_or_dir(sys.argv[1], recursive=True)' "$R"
    rm -rf "$d"
fi

if want_case 3; then
    PQ_LABEL=$(python3 -c "b=$PQ_FILE_BYTES; print(f'{b/2**20:.0f} MiB')")
    C3="3 parquet $COLUMN of $PQ_LABEL"
    R=lst/bench/data.parquet
    local_file=$DST/data.parquet
    # pyread.py URL|PATH COLUMN [STORAGE_OPTIONS_JSON|http]: prints sum= and read_s=.
    cat >"$W/bin/pyread.py" <<'EOF'
import json, sys, time
import pandas as pd
url, col = sys.argv[1], sys.argv[2]
kw = {}
if len(sys.argv) > 3 and sys.argv[3] == "http":
    import fsspec
    kw["filesystem"] = fsspec.filesystem("http")
elif len(sys.argv) > 3:
    kw["storage_options"] = json.loads(sys.argv[3])
t0 = time.perf_counter()
df = pd.read_parquet(url, columns=[col], **kw)
t = time.perf_counter() - t0
print(f"sum={float(df[col].sum())!r} rows={len(df)} read_s={t:.3f}")
EOF
    PYREAD=$W/bin/pyread.py
    if msg=$("$PYNEW" -c 'import fsspec, ctadata.fsspec; print(fsspec.get_filesystem_class("cta").__module__)' 2>&1); then
        CHECK="check_sum \$out" WARM=$WARM_PD ALOG=$PLAT_ALOG COLB=$COL_BYTES
        row "$C3" python "(a) pd.read_parquet('cta://platform/PATH', columns=[...])" 0 -- \
            "$PYNEW" "$PYREAD" "cta://platform/$R" "$COLUMN"
        CHECK="check_sum \$out" WARM=$WARM_PD ALOG=$DAV_ALOG COLB=$COL_BYTES
        row "$C3" python "(a) pd.read_parquet('cta://dav/PATH', columns=[...], storage_options={'config': EXTRA})" 0 -- \
            "$PYNEW" "$PYREAD" "cta://dav/$R" "$COLUMN" "{\"config\": \"$W/extra.toml\"}"
    else
        why="not available: ctadata.fsspec is not in this build ($(tail -1 <<<"$msg" | cut -c1-120))"
        na_row "$C3" python "(a) pd.read_parquet('cta://platform/PATH', columns=[...])" "$why"
        na_row "$C3" python "(a) pd.read_parquet('cta://dav/PATH', columns=[...], storage_options={'config': EXTRA})" "$why"
    fi
    CHECK="check_sum \$out" WARM=$WARM_PD ALOG=$DAV_ALOG COLB=$COL_BYTES
    row "$C3" "fsspec http" "(b) pd.read_parquet(NGINX_URL, columns=[...], filesystem=fsspec.filesystem('http'))" 0 -- \
        "$PYNEW" "$PYREAD" "$DAV_BASE/$R" "$COLUMN" http
    PREP="rm -f $(q "$local_file")" CHECK="check_sum \$out" WARM="$WARM_PD; $WARM_CLI" ALOG=$PLAT_ALOG COLB=$COL_BYTES
    row "$C3" cli "(c) cta-data --profile platform get PATH FILE, then pd.read_parquet(FILE, columns=[...])" 0 -- \
        bash -c "$(printf '%q ' "${CTA[@]}") --profile platform get $R $(q "$local_file") && exec $(q "$PYNEW") $(q "$PYREAD") $(q "$local_file") $COLUMN"
    CHECK="check_sum \$out" WARM=$WARM_PD ALOG=$DAV_ALOG COLB=$COL_BYTES
    row "$C3" pandas "pd.read_parquet(NGINX_URL, columns=[...]) (no filesystem: pandas' urllib)" 0 -- \
        "$PYNEW" "$PYREAD" "$DAV_BASE/$R" "$COLUMN"
    CHECK="check_sum \$out" WARM=$WARM_PD
    row "$C3" pandas "pd.read_parquet(LOCAL_FILE, columns=[...]) (no transfer; reference)" 0 -- \
        "$PYNEW" "$PYREAD" "$SRC/data.parquet" "$COLUMN"
    rm -f "$local_file"
fi

# ----------------------------------------------------------------- report ----
cta_ver=$("$CTA_BIN" --version 2>/dev/null | head -1)
if ((BUILD)); then
    cta_rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "?")
    git -C "$REPO" diff --quiet HEAD -- 2>/dev/null || cta_rev="$cta_rev+dirty"
    cta_rev="git $cta_rev"
else
    cta_rev="--no-build: existing builds"
fi
pyv() { "$1" -c "import importlib.metadata as m; print(', '.join(f'{p} {m.version(p)}' for p in '$2'.split()))" 2>/dev/null; }
{
    echo
    echo "## Python package benchmark ($(date -u +'%Y-%m-%d %H:%M UTC'))"
    echo
    echo "Goals: Python within 1.1× of the CLI (cases 1-2: the × CLI column of the \`python\` rows ≤ 1.10×); reading one Parquet column in place sends ≤ 1.2× the column's bytes (case 3 (a): × column ≤ 1.20×)."
    echo
    echo "- server: the platform double (ctadata-platform, release: hub, downloadservice in front of $(nginx -v 2>&1 | sed 's/^nginx version: //'), 127.0.0.1; $SERVER_NOTE"
    echo "- clients: $cta_ver ($cta_rev, release); Python package ctadata $("$PYNEW" -c 'import importlib.metadata as m; print(m.version("ctadata"))') (this repo, maturin release wheel) with $(pyv "$PYNEW" 'pandas pyarrow fsspec aiohttp'); old ctadata $OLD_VERSION from PyPI with $(pyv "$PYOLD" 'requests webdav4'), in its own venv; $(python3 -c 'import sys; print("Python", sys.version.split()[0])'); $(curl -V | head -1 | cut -d' ' -f1-2)"
    echo "- machine: $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB RAM; load average $LOAD_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at end; $CACHE_NOTE"
    echo "- $RUNS run(s) per row; wall time median (and range) in seconds, Python rows including interpreter start and imports (the client's own files are read once, untimed, after the page cache is dropped: only the data is cold); × CLI: median over the case's cli row; CPU s: median user+sys of the client; peak RSS: maximum over runs"
    want_case 1 && echo "- case 1: $BIG_LABEL to local disk"
    want_case 2 && echo "- case 2: $SMALL_N × 64 KiB in $SMALL_DIRS directories, to local disk; old ctadata uses its own fetch_and_save_file_or_dir (a list, then per file a list and a fetch, one at a time)"
    want_case 3 && echo "- case 3: $(python3 -c "print(f'{$PQ_FILE_BYTES:,}')") bytes of Parquet, 8 float64 columns, $PQ_ROWS rows in $PQ_GROUPS row groups, uncompressed; column $COLUMN: $(python3 -c "print(f'{$COL_BYTES:,}')") bytes (sum of its chunks' total_compressed_size)"
    echo
    python3 "$LIB" table-py "$RESULTS"
    if [[ -s $FAILURES ]]; then
        echo
        echo "## Failures"
        echo
        cat "$FAILURES"
    fi
}
if ((BAD)); then
    log "some client failed or produced wrong data (see the status column)"
    exit 1
fi
