#!/usr/bin/env bash
# Run the test suite (sets the project up first when needed). Extra arguments go to pytest.
# The set-up includes .venv-vlmeval, so VLMEvalKit's runner is tested, not skipped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/setup.sh" --with-vlmeval
cd "$ROOT"
set +e
"$ROOT/.venv/bin/python" -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
