#!/usr/bin/env bash
# The demo: installs what it needs, then serves a demo root with a demo NBD disk on
# 127.0.0.1 UDP 6969 (DEMO_PORT to change) until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec node --import tsx scripts/demo.ts
