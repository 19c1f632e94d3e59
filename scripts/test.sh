#!/usr/bin/env bash
# The whole test suite: installs what it needs (scripts/setup.sh), then typecheck, lint,
# unit tests, integration and e2e tests with real parts, then the images (built and run as
# the chart runs them). Extra arguments filter test files (and skip the images).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
npx tsc --noEmit
npx eslint .
npx prettier --check . >/dev/null || { npx prettier --check .; exit 1; }
node scripts/run-tests.mjs "$@"

# The images, built from the Dockerfile and run as the chart's pods (docs/images.md): after
# every other suite, on a full run only. The container tests must run here, not skip.
if [ $# -eq 0 ]; then
  ./scripts/build-image.sh
  RTFTP_REQUIRE_CONTAINERS=1 node scripts/run-tests.mjs e2e/containers/
fi
