#!/usr/bin/env bash
# Everything the tests need, on top of the runtime: the README's test command runs this, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install -q -r requirements-dev.txt
# Triton serving (tests/test_triton.py): see requirements-triton.txt for why pytriton goes in without deps.
# A failure here is loud but not fatal: tests/test_triton.py then skips with the reason.
{ python -m pip install -q -r requirements-triton.txt \
  && python -m pip install -q --no-deps nvidia-pytriton==0.7.0 \
  && python -m serve.triton --setup; } || echo "warning: Triton serving could not be set up; its tests will skip"

# The real-browser test drives Debian's Chromium through Playwright (no browser download).
if ! command -v chromium >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; the browser test will be skipped"
fi
