#!/usr/bin/env bash
# The main job on embedded defaults: ingest MovieLens, show status.
# Later stages (profiles, recommendations, chat) extend this script.
set -euo pipefail
cd "$(dirname "$0")/.."
tb() { .venv/bin/tastebud "$@"; }
echo "== tastebud demo (home: ${TASTEBUD_HOME})"
tb ingest movielens examples/ml-latest-small
tb status
