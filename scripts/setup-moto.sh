#!/usr/bin/env bash
# Creates .venv with the pinned moto server the handler tests run against (tests/moto/requirements.txt).
# A no-op when .venv already holds exactly those requirements.
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=tests/moto/requirements.txt
stamp=.venv/.installed-requirements
if [ -x .venv/bin/moto_server ] && cmp -s "$requirements" "$stamp"; then
    exit 0
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r "$requirements"
cp "$requirements" "$stamp"
