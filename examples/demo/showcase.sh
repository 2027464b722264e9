#!/usr/bin/env bash
# `make demo`: an offline showcase of LifeOS on the demo project.
# Copies examples/demo/ into a temporary git repository and runs the engine's
# missions and the test harness there. Needs no network and no API key.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
lifeos="$(cd "$here/../.." && pwd)/.venv/bin/lifeos"
work="$(mktemp -d "${TMPDIR:-/tmp}/lifeos-demo.XXXXXX")"
cp -R "$here/." "$work/"
rm -f "$work/showcase.sh"
cd "$work"
export GIT_AUTHOR_NAME="LifeOS Demo" GIT_AUTHOR_EMAIL="demo@lifeos.invalid"
export GIT_COMMITTER_NAME="LifeOS Demo" GIT_COMMITTER_EMAIL="demo@lifeos.invalid"
git init -q -b main && git add -A && git commit -q -m "demo project"

step() { printf '\n\033[1m$ lifeos %s\033[0m\n' "$*"; }
run() { step "$@"; set +e; "$lifeos" "$@"; rc=$?; set -e; echo "(exit $rc)"; }

run status
run init
run config validate
run mission list
run mission run echo --param message="hello from LifeOS"
# The daily loop pauses for a human to confirm the priorities (exit 4) ...
step mission run daily_loop --state daily/state.yaml
set +e; "$lifeos" mission run daily_loop --state daily/state.yaml | tee "$work/.paused"; rc=${PIPESTATUS[0]}; set -e
echo "(exit $rc)"
run_id=$(sed -n 's/.*(run \([0-9a-f-]*\)).*/\1/p' "$work/.paused" | head -1)
rm -f "$work/.paused"
# ... and the same run completes once the step is approved.
run mission run daily_loop --state daily/state.yaml --run-id "$run_id" --approve daily-confirm-priorities --note "looks right"
run mission run run_tests --params '{"target": "."}'
run test run harness/smoke.yaml
# Every mission run above is in the store and the ledger; sign the tree head and verify.
run runs list
run ledger checkpoint
run ledger verify
# Bad input fails closed: one line, a reason code, exit 2.
run mission run deploy_everything
printf '\nThe demo repository is at %s\n' "$work"
