#!/usr/bin/env bash
# Set up a fresh machine for mmada-bench: Java for the caption metrics, chromium for the report test,
# then the package and its dependencies (torch, transformers, accelerate, lm-eval, open_clip, pycocoevalcap,
# math-verify, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v java >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openjdk-17-jre-headless
fi
if ! command -v chromium >/dev/null 2>&1; then  # headless browser of the report test (tests/harness/test_report.py)
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; } \
    || echo "warning: chromium could not be installed; the report's browser test will be skipped"
fi
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[test]"
