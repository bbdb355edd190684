# Sourced by scripts/demo.sh and scripts/test.sh: create or reuse .venv and install what rnnlab needs.
# torch is installed first and pinned: an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
TORCH_VERSION="${RNNLAB_TORCH_VERSION:-2.13.0}"
venv="${RNNLAB_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
py="$venv/bin/python"
stamp="$venv/.rnnlab-installed"
want="torch==$TORCH_VERSION $(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setting up $venv (torch==$TORCH_VERSION, then rnnlab[dev,export]) ..." >&2
    "$py" -m pip install -q --disable-pip-version-check "torch==$TORCH_VERSION"
    "$py" -m pip install -q --disable-pip-version-check -e ".[dev,export]"
    echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
