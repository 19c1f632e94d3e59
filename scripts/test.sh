#!/usr/bin/env bash
# The whole test suite: installs what it needs (scripts/setup.sh), then typecheck, lint,
# unit tests, integration and e2e tests with real parts. Extra arguments filter test files.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
npx tsc --noEmit
npx eslint .
npx prettier --check . >/dev/null || { npx prettier --check .; exit 1; }
exec node scripts/run-tests.mjs "$@"
