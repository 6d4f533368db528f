#!/usr/bin/env bash
# Install sleap-nn 0.3.5 in a virtual environment of its own, for bench/vs_sleapnn.py.
#
#   bash bench/install_sleapnn.sh [VENV]        (default VENV: /tmp/vs_sleapnn/venv)
#
# Environment:
#   PYTHON      interpreter that creates the venv (default: python3.11, else python3;
#               sleap-nn 0.3.5 needs Python >= 3.11, < 3.14)
#   TORCH_SPEC  torch pins (default "torch==2.14.1 torchvision==0.29.1": the torch of our own
#               venv, so both tools run the same torch; sleap-nn 0.3.5 accepts any torch with
#               torchvision >= 0.20)
#
# The venv lives outside the repository (never inside it: .gitignore covers only .venv/).
set -euo pipefail

VENV="${1:-/tmp/vs_sleapnn/venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
if [ -z "${PYTHON:-}" ]; then
    if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi

"$PYTHON" - <<'PY'
import sys
if not ((3, 11) <= sys.version_info[:2] < (3, 14)):
    sys.exit(f"sleap-nn 0.3.5 needs Python 3.11 to 3.13, this is {sys.version.split()[0]}")
PY

case "$(cd "$(dirname "$VENV")" 2>/dev/null && pwd)/" in
    "$(cd "$(dirname "$0")/.." && pwd)/"*)
        echo "warning: $VENV is inside the repository; keep it under /tmp or an ignored folder" >&2 ;;
esac

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)

# torch first, pinned, so that sleap-nn's dependencies cannot pull another (multi-GB) torch.
# shellcheck disable=SC2086
"${PIP[@]}" $TORCH_SPEC
# shellcheck disable=SC2086
"${PIP[@]}" "sleap-nn==0.3.5" $TORCH_SPEC

echo "checking the install"
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import torch
import sleap_nn  # noqa: F401
print("sleap-nn", md.version("sleap-nn"), "| sleap-io", md.version("sleap-io"),
      "| torch", torch.__version__, "| lightning", md.version("lightning"))
assert md.version("sleap-nn") == "0.3.5", md.version("sleap-nn")
PY
"$VENV/bin/sleap-nn" --help >/dev/null
echo "sleap-nn CLI runs: $VENV/bin/sleap-nn"
echo "use it with: python bench/vs_sleapnn.py --sleapnn-venv $VENV"
