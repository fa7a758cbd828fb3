#!/usr/bin/env bash
# Create a virtual environment and install one set of VibeML's dependencies into it, every version from the
# lock (src/vibeml/locks/main.txt) and nothing else.
#
#   tools/venv.sh VENV PYTHON SET     SET: demo (VibeML + training), test (demo + test tools + QLoRA +
#                                     SkyPilot, and the official vastai source for a conformance test),
#                                     compat (VibeML + test tools, no torch)
#
# The installer is uv, bootstrapped into the environment with pip from the registry (its version from the
# lock too); where uv can't be had, pip does the same installs. Either way the lock is a constraint file:
# the resolver picks only locked versions, and only what the set needs on this platform (a CPU build of
# torch needs none of the nvidia-* wheels a CUDA build pulls in). VIBEML_INSTALLER=pip uses pip even where uv
# could be had.
set -euo pipefail

venv=$1 python=$2 set=$3
root=$(cd "$(dirname "$0")/.." && pwd)
lock=$root/src/vibeml/locks/main.txt
cd "$root"

case $set in
  demo) extras=train ;;
  test) extras=train,dev,qlora ;;
  compat) extras=dev ;;
  *) echo "tools/venv.sh: unknown set '$set' (demo, test or compat)" >&2; exit 2 ;;
esac

if [[ ! -x $venv/bin/python ]]; then
  "$python" -m venv "$venv"
fi
py=$venv/bin/python

# uv reads no pip configuration: a wheel folder pip is set up with (PIP_FIND_LINKS or pip.conf, e.g. a local
# CPU build of torch) is handed to uv as well, so both installers see the same files.
if [[ -z ${UV_FIND_LINKS:-} ]]; then
  links=${PIP_FIND_LINKS:-$("$py" -m pip config get global.find-links 2>/dev/null || true)}
  [[ -n $links ]] && export UV_FIND_LINKS=$links
fi
export UV_PYTHON_DOWNLOADS=never

if [[ ${VIBEML_INSTALLER:-uv} == pip ]]; then
  uv_ok=false  # asked for pip (to check the fallback)
elif [[ -x $venv/bin/uv ]] || "$py" -m pip install --quiet --disable-pip-version-check -c "$lock" uv 2>/dev/null; then
  uv_ok=true
else
  uv_ok=false
fi
if $uv_ok; then
  install=("$venv/bin/uv" pip install --quiet --python "$py")
  echo "installing the '$set' set with uv $("$venv/bin/uv" --version | cut -d' ' -f2) from the lock"
else
  install=("$py" -m pip install --quiet --disable-pip-version-check)
  echo "installing the '$set' set with pip from the lock$([[ ${VIBEML_INSTALLER:-uv} == pip ]] || echo " (uv could not be installed)")"
fi

# pip and setuptools are in the lock (SkyPilot and torch need them): the copies venv seeds are brought to it.
"${install[@]}" -c "$lock" pip setuptools
if [[ $set == test ]]; then
  "${install[@]}" -c "$lock" -e ".[$extras]" -r requirements/sky-runtime.in
  # SkyPilot's own pins on click/uvicorn clash with ours (requirements/overrides.in): it goes in last, alone.
  "${install[@]}" -c "$lock" --no-deps skypilot
  # The official Vast.ai SDK, unpacked (not installed: its pins clash with the lock), sha256-checked, for the
  # wire-conformance test (tests/vast/test_vast_conformance.py).
  "$py" tools/fetch_vastai.py
else
  "${install[@]}" -c "$lock" -e ".[$extras]"
fi
