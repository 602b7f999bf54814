#!/usr/bin/env bash
# Benchmark of `cta-data cp` between two doors (issue 14): a file on XRootD instance A
# copied to instance B by HTTP third-party copy in pull mode (B fetches from A; the bytes
# never reach the client) against the same copy streamed through the client
# (`--mode stream`: a GET from A piped into a PUT to B), with a plain curl COPY (pull, the
# same headers) and gfal-copy (when installed) as peers.
#
#   bench/tpc.sh                       # 2 GiB, 1 run per row
#   bench/tpc.sh --size 256M --runs 3  # quicker, median of 3
#
# Options:
#   --size SIZE     file size (dd suffixes: K, M, G; default 2G)
#   --runs N        timed runs per row (default 1); the median is reported
#   --tools LIST    rows to run (default cta-pull,cta-stream,curl,gfal)
#   --dir DIR       parent of the temporary work directory (default /tmp)
#   --keep          keep the work directory at exit
#   --no-build      use the existing release binaries
#
# The servers: two private XRootD 5.5 (Debian's xrootd-server + HTTP-TPC plugin) started by
# the test-support binary ctadata-xrootd-pair, over TLS on 127.0.0.1 with one test CA, and
# WLCG tokens of one test issuer trusted by both. Each run copies to a fresh name on B; the
# copy is compared byte for byte with the source (cmp) after the first run of each row, and
# a row whose copy differs is reported WRONG DATA (exit 1). Wall time is bash's
# $EPOCHREALTIME around the command, process start included. The token reaches cta-data
# through its profile's token_file, curl through a header file (-H @file), gfal-copy
# through BEARER_TOKEN; never an argv. Only 127.0.0.1 is contacted. The report goes to
# stdout, progress to stderr.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}

die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 2; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

SIZE=2G RUNS=1 TOOLS=cta-pull,cta-stream,curl,gfal PARENT=/tmp KEEP=0 BUILD=1
while [[ $# -gt 0 ]]; do
    case $1 in
        --size) SIZE=${2:?}; shift 2 ;;
        --runs) RUNS=${2:?}; shift 2 ;;
        --tools) TOOLS=${2:?}; shift 2 ;;
        --dir) PARENT=${2:?}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs needs a positive number"
command -v xrootd >/dev/null || die "xrootd is not installed (tests/run-all.sh installs it)"

if [[ $BUILD -eq 1 ]]; then
    log "building: cargo build --release -p cta-data -p ctadata-testsupport"
    (cd "$REPO" && cargo build --release -p cta-data -p ctadata-testsupport \
        --bin cta-data --bin ctadata-xrootd-pair) >&2 || die "cargo build failed"
fi
CTA=$TARGET/release/cta-data
PAIR=$TARGET/release/ctadata-xrootd-pair
[[ -x $CTA && -x $PAIR ]] || die "$CTA or $PAIR missing (build them or drop --no-build)"

W=$(mktemp -d "$PARENT/ctadata-tpc-bench.XXXXXX")
PAIR_PID=""
cleanup() {
    if [[ -n $PAIR_PID ]]; then
        kill -TERM "$PAIR_PID" 2>/dev/null || true
        wait "$PAIR_PID" 2>/dev/null || true
    fi
    if [[ $KEEP -eq 1 ]]; then log "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

log "starting two XRootD servers"
mkfifo "$W/pair.in"
"$PAIR" --stop-at-eof <"$W/pair.in" >"$W/pair.out" 2>"$W/pair.err" &
PAIR_PID=$!
exec 7>"$W/pair.in" # held open: its end stops the servers
for _ in $(seq 600); do
    grep -q '^READY=1' "$W/pair.out" 2>/dev/null && break
    kill -0 "$PAIR_PID" 2>/dev/null || die "ctadata-xrootd-pair exited: $(cat "$W/pair.err")"
    sleep 0.1
done
grep -q '^READY=1' "$W/pair.out" || die "the servers did not start in 60 s"
val() { sed -n "s/^$1=//p" "$W/pair.out"; }
A_URL=$(val A_URL) A_ROOT=$(val A_ROOT) B_URL=$(val B_URL) B_ROOT=$(val B_ROOT)
CA_FILE=$(val CA_FILE) TOKEN_FILE=$(val TOKEN_FILE) SERVER_USER=$(val SERVER_USER)

log "writing a $SIZE file on A"
dd if=/dev/urandom of="$A_ROOT/big.dat" bs=1M count="$(numfmt --from=iec "$SIZE" | awk '{print int(($1+1048575)/1048576)}')" \
    iflag=fullblock status=none
BYTES=$(stat -c %s "$A_ROOT/big.dat")
[[ $SERVER_USER != - ]] && chown "$SERVER_USER:$SERVER_USER" "$A_ROOT/big.dat"
mkdir -p "$B_ROOT/copies"
[[ $SERVER_USER != - ]] && chown "$SERVER_USER:$SERVER_USER" "$B_ROOT/copies"

cat >"$W/config.toml" <<EOF
[profiles.xa]
backend = "dcache"
url = "$A_URL"
token_file = "$TOKEN_FILE"
ca_file = "$CA_FILE"
[profiles.xb]
backend = "dcache"
url = "$B_URL"
token_file = "$TOKEN_FILE"
ca_file = "$CA_FILE"
EOF
mkdir -p "$W/home"
cta() { env -i PATH="$PATH" HOME="$W/home" "$CTA" --config "$W/config.toml" --profile xa "$@"; }
{
    printf 'Authorization: Bearer %s\n' "$(cat "$TOKEN_FILE")"
    printf 'TransferHeaderAuthorization: Bearer %s\n' "$(cat "$TOKEN_FILE")"
} >"$W/curl-headers"
chmod 600 "$W/curl-headers"
mkdir -p "$W/capath" # hashed, for gfal2 (neon/davix read X509_CERT_DIR)
cp "$CA_FILE" "$W/capath/$(openssl x509 -hash -noout -in "$CA_FILE").0"

# One run of a row: copies big.dat to copies/NAME; prints the seconds, fails on error.
run_row() {
    local tool=$1 name=$2 t0 t1 out
    t0=$EPOCHREALTIME
    case $tool in
        cta-pull)
            out=$(cta --json cp /big.dat "xb:/copies/$name") || return 1
            grep -q '"mode": "pull"' <<<"$out" || { log "cta-data did not run in pull mode: $out"; return 1; } ;;
        cta-stream)
            cta -q cp --mode stream /big.dat "xb:/copies/$name" || return 1 ;;
        curl)
            out=$(curl -sS --cacert "$CA_FILE" -X COPY -H @"$W/curl-headers" \
                -H "Source: $A_URL/big.dat" -H "Credential: none" \
                "$B_URL/copies/$name") || return 1
            grep -q '^success' <<<"$out" || { log "curl COPY: $(tail -2 <<<"$out")"; return 1; } ;;
        gfal)
            GFAL_PYTHONBIN=/usr/bin/python3 X509_CERT_DIR="$W/capath" BEARER_TOKEN="$(cat "$TOKEN_FILE")" \
                gfal-copy -f --copy-mode pull "davs://${A_URL#https://}/big.dat" \
                "davs://${B_URL#https://}/copies/$name" >"$W/gfal.log" 2>&1 || {
                log "gfal-copy: $(tail -3 "$W/gfal.log")"
                return 1
            } ;;
    esac
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A RESULT
STATUS=0
IFS=, read -ra ROWS <<<"$TOOLS"
for tool in "${ROWS[@]}"; do
    if [[ $tool == gfal ]] && ! command -v gfal-copy >/dev/null; then
        RESULT[$tool]="not installed"
        continue
    fi
    times=()
    for i in $(seq "$RUNS"); do
        log "$tool run $i"
        if ! s=$(run_row "$tool" "$tool-$i.dat"); then
            RESULT[$tool]="failed"
            break
        fi
        times+=("$s")
        if [[ $i -eq 1 ]] && ! cmp -s "$A_ROOT/big.dat" "$B_ROOT/copies/$tool-$i.dat"; then
            RESULT[$tool]="WRONG DATA"
            STATUS=1
            break
        fi
        rm -f "$B_ROOT/copies/$tool-$i.dat"
    done
    if [[ -z ${RESULT[$tool]:-} ]]; then
        m=$(printf '%s\n' "${times[@]}" | median)
        RESULT[$tool]=$(awk -v s="$m" -v b="$BYTES" 'BEGIN { printf "%8.2f s  %7.1f MiB/s", s, b / s / 1048576 }')
    fi
done

echo "# cta-data cp between two XRootD servers ($(numfmt --to=iec "$BYTES") file, median of $RUNS)"
echo "- servers: XRootD $(xrootd -v 2>&1 | head -1) x2 on 127.0.0.1, TLS, WLCG tokens, HTTP-TPC plugin"
echo "- machine: $(nproc) cores, $(uname -r)"
echo
for tool in "${ROWS[@]}"; do
    case $tool in
        cta-pull) label="cta-data cp (auto: pull mode)" ;;
        cta-stream) label="cta-data cp --mode stream" ;;
        curl) label="curl -X COPY (pull)" ;;
        gfal) label="gfal-copy --copy-mode pull" ;;
        *) label=$tool ;;
    esac
    printf '%-32s %s\n' "$label" "${RESULT[$tool]}"
done
exit $STATUS
