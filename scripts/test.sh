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

# Node 22, the runtime the image ships (.tools/node22, from scripts/setup.sh): the unit and
# dataplane suites once more, on full runs. Its closing line reads "node22: N passed, ...".
if [ $# -eq 0 ]; then
  if [ -x .tools/node22/bin/node ]; then
    echo "== Node $(.tools/node22/bin/node --version): unit and dataplane suites =="
    PATH="$PWD/.tools/node22/bin:$PATH" .tools/node22/bin/node scripts/run-tests.mjs /src/ dataplane/test/
  else
    echo "== Node 22 run skipped: no .tools/node22 (see scripts/setup.sh) =="
  fi
fi

# Worker mode passes the dataplane suite unchanged (docs/performance.md): the same tests once
# more with every daemon they start at --workers 2 (RTFTP_WORKERS). Its closing line reads
# "workers2: N passed, ...".
if [ $# -eq 0 ]; then
  echo "== Worker mode: the dataplane suite with RTFTP_WORKERS=2 =="
  RTFTP_WORKERS=2 RTFTP_TEST_LABEL=workers2 node scripts/run-tests.mjs dataplane/test/
fi

# The images, built from the Dockerfile and run as the chart's pods (docs/images.md): after
# every other suite, on a full run only. All three, the full dataplane image included (its
# build boots its libguestfs appliance under TCG); the container tests must run here, not skip.
if [ $# -eq 0 ]; then
  ./scripts/build-image.sh
  RTFTP_REQUIRE_CONTAINERS=1 node scripts/run-tests.mjs e2e/containers/
fi
