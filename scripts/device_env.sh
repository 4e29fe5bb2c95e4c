# Sourced by the scripts that run on a lent GPU machine (scripts/gpu_check.sh,
# scripts/gpu_pars_sweep.sh): that machine has torch/numpy/pandas but no package registry, so
# RecBole and its small pure-Python needs travel as wheels in .whl/ (see the README's GPU section).
# Prepare them here with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 --platform any -d .whl \
#       recbole==1.2.1 colorlog==4.7.2 colorama==0.4.4 texttable thop
# and name .whl in the device tool's carry. Sets PY, OUT and PYTHONPATH; prints the versions.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-/tmp/gpu_out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled
PY="${PYTHON:-python3}"

if [ -d .whl ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
fi
if ! "$PY" -c "import ray" 2>/dev/null; then
    # RecBole's quick_start imports ray.tune at module level although training never uses it, and
    # the ray wheel is too big to carry: an empty stand-in, on that machine only (no sweeps there).
    mkdir -p /tmp/site/ray && touch /tmp/site/ray/__init__.py /tmp/site/ray/tune.py
    export PYTHONPATH="/tmp/site:$PWD"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
"$PY" -c "import sys, torch, numpy, pandas, recbole, recbole_reg4rec; print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda', torch.cuda.is_available(), '| numpy', numpy.__version__, '| pandas', pandas.__version__, '| recbole', recbole.__version__)" || exit 1
