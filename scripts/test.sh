#!/usr/bin/env bash
# Run the test suite (sets the project up first when needed). Extra arguments go to pytest,
# e.g. `bash scripts/test.sh tests/rewards -x -q`; pytest's own options: .venv/bin/python -m pytest --help.
# The set-up includes .venv-vlmeval, so VLMEvalKit's runner is tested, not skipped.
# pytest reports the 30 slowest tests (--durations=30; a --durations of yours replaces it).
# Tests run on 2 workers (pytest-xdist, -n 2 --dist worksteal): most of the suite waits on
# servers, subprocesses and model loads rather than computing, so 2 workers fit a 2-core machine;
# each worker starts its own session services (Redis, the sandbox instance) on free ports.
# `-n 0` runs everything in this process (for pdb or -x), `-n 4` on 4 workers.
# Markers deselect what this machine lacks (pyproject.toml [tool.pytest.ini_options]):
#   -m "not redis"    tests that start a redis-server (tool manager, sandbox, search cache)
#   -m "not browser"  tests that drive the demo page in headless chromium
#   -m "not vlmeval"  tests that run VLMEvalKit from .venv-vlmeval
#   -m "not slow"     end-to-end runs (training, the full pipeline)
# e.g. `bash scripts/test.sh -m "not redis and not browser"`.
# -h/--help prints this text and exits, without set-up.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
    exit 0
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/setup.sh" --with-vlmeval
cd "$ROOT"
set +e
"$ROOT/.venv/bin/python" -m pytest --durations=30 -n 2 --dist worksteal "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
