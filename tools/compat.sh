#!/usr/bin/env bash
# `make test-compat`: the tests that need no torch, on every Python from 3.10 to 3.13 this machine has.
#
# For each version it looks for python3.X on PATH, then under pyenv; an absent one is skipped with a message.
# Each gets its own environment (.venv-compat/3.X) with VibeML and the test tools from the lock (the lock is
# universal: the lines for that Python are taken), then pytest runs with torch absent, so the tests that need
# it skip themselves. The transcript goes to bench/results/compat.txt.
#
# COMPAT_TRAIN=1 also installs the demo set (VibeML + training, from the lock) for each Python in
# .venv-compat/3.X-train and runs the real demo fine-tune there. Where no CPU build of torch is at hand for that
# Python, that is the registry's CUDA build with its nvidia-* wheels: several GB per Python.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${COMPAT_OUT:-bench/results/compat.txt}
versions=${COMPAT_PYTHONS:-3.10 3.11 3.12 3.13}
mkdir -p "$(dirname "$out")"

find_python() {
  local v=$1 candidate
  if candidate=$(command -v "python$v") && "$candidate" -c 'import sys' >/dev/null 2>&1; then
    echo "$candidate"; return 0
  fi
  if command -v pyenv >/dev/null 2>&1; then
    for candidate in $(ls -d "$(pyenv root)/versions/$v".* 2>/dev/null | sort -V -r); do
      if [[ -x $candidate/bin/python$v ]] && "$candidate/bin/python$v" -c 'import sys' >/dev/null 2>&1; then
        echo "$candidate/bin/python$v"; return 0
      fi
    done
  fi
  return 1
}

{
  echo "# make test-compat ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -sm), $(nproc) cores)"
  echo "# command: make test-compat   (tools/compat.sh: per Python, tools/venv.sh .venv-compat/3.X PYTHON compat;"
  echo "#          then .venv-compat/3.X/bin/python -m pytest -q -p no:cacheprovider)"
} > "$out"

failed=0
for v in $versions; do
  if ! py=$(find_python "$v"); then
    echo "== Python $v: not on this machine, skipped" | tee -a "$out"
    continue
  fi
  venv=.venv-compat/$v
  echo "== Python $v ($("$py" -c 'import platform; print(platform.python_version())'), $py)" | tee -a "$out"
  start=$(date +%s)
  if ! tools/venv.sh "$venv" "$py" compat >>"$out" 2>&1; then
    echo "   install from the lock FAILED (see above)" | tee -a "$out"
    failed=1
    continue
  fi
  "$venv/bin/python" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("torch") is not None)' || {
    echo "   torch is installed in $venv: the compat set must not have it" | tee -a "$out"; failed=1; continue; }
  "$venv/bin/vibeml" --version >>"$out" 2>&1 || true
  if "$venv/bin/python" -m pytest -q -p no:cacheprovider >"$venv/pytest.log" 2>&1; then
    status=passed
  else
    status=FAILED
    failed=1
    grep -E "^(FAILED|ERROR) " "$venv/pytest.log" | head -40 >>"$out"
  fi
  summary=$(tail -n 1 "$venv/pytest.log")
  echo "   $status: $summary (install + tests: $(( $(date +%s) - start )) s)" | tee -a "$out"
  if [[ ${COMPAT_TRAIN:-0} == 1 ]]; then
    start=$(date +%s)
    if tools/venv.sh "$venv-train" "$py" demo >>"$out" 2>&1 &&
       VIBEML_HOME=$(mktemp -d) "$venv-train/bin/vibeml" launch --demo --follow --json >"$venv-train/demo.json" 2>&1; then
      echo "   demo fine-tune: $("$venv-train/bin/python" - "$venv-train/demo.json" <<'PY'
import json, sys
text, dec, objs, i = open(sys.argv[1], encoding="utf-8").read(), json.JSONDecoder(), [], 0
while (i := text.find("{", i)) >= 0:  # --follow --json prints one object per update: the last is the end
    obj, i = dec.raw_decode(text, i)
    objs.append(obj)
job = objs[-1]
p = job.get("progress") or {}
import torch, transformers, trl, peft
print(f"{job.get('status')}, {p.get('step')} steps, loss {p.get('first_loss'):.3f} -> {p.get('loss'):.3f} "
      f"(torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, peft {peft.__version__})")
PY
) ($(( $(date +%s) - start )) s with the install)" | tee -a "$out"
    else
      echo "   demo fine-tune FAILED:" | tee -a "$out"; tail -n 20 "$venv-train/demo.json" >>"$out" 2>/dev/null
      failed=1
    fi
  fi
done
exit $failed
