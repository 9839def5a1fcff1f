#!/usr/bin/env bash
# The main job on embedded defaults, end to end on MovieLens ml-latest-small:
# ingest -> item vectors -> computed profiles for everyone -> LLM narratives for
# a few users -> a profile -> the learned ranker -> recommendations -> why -> a
# newcomer with one rating (the short-history path) -> the agent. Safe
# to rerun: every step is idempotent (the ranker is retrained on the events there are).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ANONYMIZED_TELEMETRY=False
tb() { .venv/bin/tastebud "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
DEMO_USER=${DEMO_USER:-1}

echo "tastebud demo (TASTEBUD_HOME=${TASTEBUD_HOME})"
step "1. ingest MovieLens ml-latest-small (events + catalog; bad rows would be quarantined)"
tb ingest movielens examples/ml-latest-small
tb status

step "2. embed catalog items into Chroma (content-hashed: unchanged items are skipped)"
tb index

step "3. computed profiles for every user (tags with evidence, dislikes, drift; profile vectors from item vectors)"
tb refresh --all --no-narratives

step "4. LLM narratives for a handful of users with the embedded model"
tb refresh --user "$DEMO_USER" --user 414 --user 610

step "5. the living profile of user $DEMO_USER"
tb profile show "$DEMO_USER"

step "6. train the learned ranker (LightGBM on a validation split of the events; about a minute)"
tb train-ranker

step "7. recommendations for user $DEMO_USER"
tb recommend "$DEMO_USER" -k 5
TOP=$(tb recommend "$DEMO_USER" -k 1 --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["item_id"])')

step "8. why was item $TOP recommended to user $DEMO_USER?"
tb why "$DEMO_USER" "$TOP"

step "9. a newcomer with one rating (Heat, 1995): what people who started there went on to"
printf '%s\n' '{"user_id": "newcomer", "item_id": "6", "type": "rating", "timestamp": "2023-11-14T22:13:20Z", "value": 5}' \
  | tb ingest events - --format jsonl
tb refresh --user newcomer --no-narratives
tb recommend newcomer -k 5
NEW_TOP=$(tb recommend newcomer -k 1 --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["item_id"])')
tb why newcomer "$NEW_TOP"

if tb ask --help >/dev/null 2>&1; then
  step "10. ask the agent (embedded model)"
  tb ask --user "$DEMO_USER" "why was item $TOP recommended to me?"
  printf '\nChat yourself:  TASTEBUD_HOME=%s .venv/bin/tastebud chat --user %s\n' "$TASTEBUD_HOME" "$DEMO_USER"
fi
