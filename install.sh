#!/usr/bin/env bash
# Create .venv beside this file and install the pinned requirements plus blend_modules (editable).
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt -e .
