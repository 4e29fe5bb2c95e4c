#!/usr/bin/env bash
# Build (or update) the project's virtual environment in ./.venv on a fresh machine.
#
#   TORCH_SPEC   which torch to install first (default: torch==2.13.0, the local CPU build on
#                our dev/CI machines). Keep your own CUDA build with e.g. TORCH_SPEC="torch>=2.6"
#                once it is installed, or point it at the wheel/index you use.
#   TORCH_INDEX  optional extra index for torch only. Where PyPI's default torch wheel is the CUDA
#                build (Linux, Python 3.12 without a local CPU wheel: ~2 GB of nvidia-* packages),
#                TORCH_INDEX=https://download.pytorch.org/whl/cpu keeps a small CPU-only build.
#   PYTHON       interpreter for the venv (default: python3; 3.11 or 3.12).
#   VENV         venv folder (default: .venv).
#
# RecBole 1.2.1 pins ray<=2.6.3, which cannot be installed beside numpy 2 / Python 3.12, so
# recbole is installed without its declared dependencies and we install its real runtime needs
# ourselves (setup.cfg's install_requires). recbole goes in last: pip then has no installed
# package whose stale pin it could report while resolving ours. `pip check` still lists the pin.
#
# The installs go through uv (`pip install uv` into the venv first): it resolves the same versions
# as pip from the same sources about 8x faster (13 s vs 109 s for this project on 2 cores), which
# is most of a fresh CI run's set-up. uv does not read pip's configuration, so the pip settings
# that choose sources (index-url, extra-index-url, find-links, constraint, cert) are handed to it;
# USE_UV=0, or any failure of uv, falls back to plain pip.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
TORCH_INDEX="${TORCH_INDEX:-}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"

# one of pip's source settings, for uv: its PIP_* variable, else pip's config files (empty: not set)
pip_setting() {
    local var="PIP_$(echo "$1" | tr 'a-z-' 'A-Z_')"
    if [ -n "${!var:-}" ]; then echo "${!var}"; return; fi
    # `pip config list`, not `pip config get`: get misses keys of some config files (e.g. /etc/xdg/pip's constraint)
    "$VENV/bin/python" -m pip config list 2>/dev/null | sed -n "s/^global\.$1='\(.*\)'\$/\1/p" | tr '\n' ' ' || true
}
use_uv() {
    [ "${USE_UV:-1}" = "1" ] || return 1
    [ -x "$VENV/bin/uv" ] || $PIP install uv >/dev/null 2>&1 || return 1
    local pair key var value
    # pip setting -> uv variable (a uv variable the user already set wins)
    for pair in index-url:UV_INDEX_URL extra-index-url:UV_EXTRA_INDEX_URL find-links:UV_FIND_LINKS \
                constraint:UV_CONSTRAINT cert:SSL_CERT_FILE; do
        key="${pair%%:*}"; var="${pair#*:}"
        value="$(pip_setting "$key")"
        [ -z "$value" ] || [ -n "${!var:-}" ] || export "$var=${value% }"
    done
    # pip takes the best version over all sources; uv's default stops at the first index that has the package
    export UV_INDEX_STRATEGY="${UV_INDEX_STRATEGY:-unsafe-best-match}"
    # pip writes each module's bytecode at install; uv does not by default, and then every process of
    # the test suite that starts before the first has written it compiles torch, Ray and RecBole again
    export UV_COMPILE_BYTECODE="${UV_COMPILE_BYTECODE:-1}"
    return 0
}
# pkg_install ARGS...: with uv when it works, else with pip
pkg_install() {
    if [ "$UV_OK" = "1" ] && "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" "$@"; then
        return 0
    fi
    [ "$UV_OK" = "1" ] && echo "[setup] uv failed; installing with pip instead"
    $PIP install "$@"
}
UV_OK=0
if use_uv; then UV_OK=1; echo "[setup] installing with uv $("$VENV/bin/uv" --version | cut -d' ' -f2)"; fi

# torch first: anything that pulls torch unpinned would otherwise fetch a multi-GB CUDA build.
echo "[setup] installing $TORCH_SPEC${TORCH_INDEX:+ from $TORCH_INDEX}"
pkg_install ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} "$TORCH_SPEC"
echo "[setup] installing recbole_reg4rec and its dependencies (RecBole's real runtime needs, ray[tune])"
pkg_install -e ".[test]"
echo "[setup] installing recbole==1.2.1 (without its stale pins)"
pkg_install --no-deps "recbole==1.2.1"
"$VENV/bin/python" -c "import recbole_reg4rec, torch, numpy, pandas, ray; print('[setup] ok: recbole_reg4rec', recbole_reg4rec.__version__, '| torch', torch.__version__, '| numpy', numpy.__version__, '| pandas', pandas.__version__, '| ray', ray.__version__)"
