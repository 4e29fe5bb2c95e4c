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

# torch first: anything that pulls torch unpinned would otherwise fetch a multi-GB CUDA build.
echo "[setup] installing $TORCH_SPEC${TORCH_INDEX:+ from $TORCH_INDEX}"
$PIP install ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} "$TORCH_SPEC"
echo "[setup] installing recbole_reg4rec and its dependencies (RecBole's real runtime needs, ray[tune])"
$PIP install -e ".[test]"
echo "[setup] installing recbole==1.2.1 (without its stale pins)"
$PIP install --no-deps "recbole==1.2.1"
"$VENV/bin/python" -c "import recbole_reg4rec, torch, numpy, pandas, ray; print('[setup] ok: recbole_reg4rec', recbole_reg4rec.__version__, '| torch', torch.__version__, '| numpy', numpy.__version__, '| pandas', pandas.__version__, '| ray', ray.__version__)"
