# syntax=docker/dockerfile:1
# Three images from one Dockerfile; scripts/build-image.sh builds all of them (docs/images.md):
#   --target operator          rtftp-operator: the operator and its `sync` sidecar mode
#   --target dataplane-native  rtftp-dataplane:<tag>-native: the TFTP server, native NBD reader only
#   --target dataplane         rtftp-dataplane:<tag>: the same plus libguestfs and its fixed appliance
# The chart's image values name the same three (charts/test/dockerfile.test.ts checks both).
#
# Node 22 (an LTS with security support through 2027) on Debian bookworm, the Debian the
# project develops on. The runtime images start from debian:bookworm-slim and take only the
# node binary out of the official Node image: no npm, yarn or corepack at run time.
ARG NODE_IMAGE=node:22-bookworm-slim
ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No install scripts needed for a tsc build; the runtime keeps production deps only.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY common/src common/src
COPY dataplane/src dataplane/src
COPY operator/src operator/src
COPY bin bin
# /out/operator and /out/dataplane: each one's launchers, compiled code and production
# dependencies; the dataplane imports no Kubernetes client (dockerfile.test.ts checks it), so
# its tree drops @kubernetes/client-node (57 MB). Source maps and type declarations go.
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && for part in operator dataplane; do \
      mkdir -p /out/$part/dist \
      && cp -a package.json package-lock.json node_modules bin /out/$part/ \
      && cp -a dist/common dist/$part /out/$part/dist/; \
    done \
 && cd /out/dataplane \
 && npm pkg delete 'dependencies.@kubernetes/client-node' \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && cd /out \
 && rm operator/package-lock.json dataplane/package-lock.json \
 && find . -type f \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \) -delete \
 && find . -type d -empty -delete

# The node binary without its debug symbols (107 MB instead of 125 MB; its dynamic symbols
# stay). A stage of its own: it changes only with the Node image, so a source change never
# rebuilds a step that copies node (the appliance step does).
FROM ${NODE_IMAGE} AS node
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && mkdir /out \
 && cp /usr/local/bin/node /out/node \
 && strip /out/node \
 && /out/node -e 'process.exit(0)'

# What every image shares: Debian, the rtftp user, no setuid or setgid binary (the dataplane
# keeps allowPrivilegeEscalation for its file capability: leave it nothing to escalate through).
FROM ${DEBIAN_IMAGE} AS runtime
RUN groupadd --gid 10001 rtftp \
 && useradd --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin rtftp \
 && find / -xdev -type f -perm /6000 -exec chmod a-s {} +
ENV NODE_ENV=production
WORKDIR /app

FROM runtime AS operator
COPY --from=node /out/node /usr/local/bin/node
COPY --from=build /out/operator /app
USER 10001:10001
EXPOSE 8080/tcp 9670/tcp
CMD ["node", "/app/bin/rtftp-operator.js"]
# Last, so that a new revision rebuilds only this step. RTFTP_REVISION and RTFTP_VERSION
# feed the rtftp_build_info metric; build-image.sh passes the git revision.
ARG REVISION=unknown
ARG VERSION=0.1.0
ENV RTFTP_REVISION=${REVISION} RTFTP_VERSION=${VERSION}
LABEL org.opencontainers.image.title=rtftp-operator \
      org.opencontainers.image.revision=${REVISION} \
      org.opencontainers.image.version=${VERSION}

# The dataplane's node carries the file capability cap_net_bind_service (Kubernetes gives a
# non-root process no ambient capability, so binding UDP 69 needs one). It is set in the step
# that writes the binary, so the image holds node once. Only with NET_BIND_SERVICE in the
# bounding set can node be executed at all (EPERM otherwise): the chart keeps it there for
# every port and voids the file capability with no_new_privs where the port needs none
# (docs/images.md, "Capabilities"). tini is PID 1: it reaps orphaned guestfish and qemu
# processes and forwards signals to node.
FROM runtime AS dataplane-native
RUN --mount=type=bind,from=node,source=/out,target=/mnt/node \
    apt-get update \
 && apt-get install -y --no-install-recommends tini libcap2-bin \
 && cp /mnt/node/node /usr/local/bin/node \
 && setcap cap_net_bind_service=+ep /usr/local/bin/node \
 && apt-get purge -y --auto-remove libcap2-bin \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
COPY --from=build /out/dataplane /app
USER 10001:10001
EXPOSE 69/udp 9669/tcp
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "/app/bin/rtftp.js"]
ARG REVISION=unknown
ARG VERSION=0.1.0
ENV RTFTP_REVISION=${REVISION} RTFTP_VERSION=${VERSION}
LABEL org.opencontainers.image.title=rtftp-dataplane \
      org.opencontainers.image.revision=${REVISION} \
      org.opencontainers.image.version=${VERSION}

FROM runtime AS dataplane
ARG DEBIAN_FRONTEND=noninteractive
# One step, so that nothing it drops stays in a layer below: guestfish (libguestfs, qemu)
# and, only to build the appliance, libguestfs-tools and a kernel. The appliance is built
# once here as a "fixed appliance" (kernel, initrd, root image), so a pod never runs supermin
# and needs no write access outside its emptyDirs; then the kernel package, the tools and
# documentation go.
RUN --mount=type=bind,from=node,source=/out,target=/mnt/node \
    apt-get update \
# No initramfs for the kernel (INITRD=No): the appliance boots an initrd supermin makes.
 && INITRD=No apt-get install -y --no-install-recommends \
      guestfish libguestfs-tools linux-image-amd64 tini libcap2-bin e2fsprogs xz-utils \
# The appliance's kernel is the one just installed, named explicitly: not the build host's
# (`uname -r` in a build container reports the host's kernel).
 && { set -- /lib/modules/*; [ $# -eq 1 ] || { echo "expected one kernel: $*" >&2; exit 1; }; } \
 && kernel=${1##*/} \
# Every module of it goes into the appliance, xz-compressed: ~100 MB instead of ~400 MB.
# The appliance's kmod loads .ko.xz; supermin unpacks the few its initrd needs.
 && find /lib/modules/$kernel -name '*.ko' -print0 \
      | xargs -0 -r -n 64 -P "$(nproc)" xz -0 --check=crc32 \
 && depmod $kernel \
 && mkdir -p /usr/lib/rtftp/appliance \
# It launches the appliance once to check it: under TCG, since a build host has no KVM
# or, nested, a broken one (qemu then hangs instead of falling back).
 && SUPERMIN_KERNEL=/boot/vmlinuz-$kernel SUPERMIN_MODULES=/lib/modules/$kernel \
      LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg \
      libguestfs-make-fixed-appliance /usr/lib/rtftp/appliance \
# Its root is a sparse 4 GiB ext2 image and image layers keep no holes: shrink the file
# system to its content, then give it 32 MiB of free space back. The appliance writes to
# its root as it runs (/etc/machine-id, /tmp/lvm, and the daemon captures every command's
# output in /tmp files): on a full root those writes fail with ENOSPC, and libguestfs'
# list-filesystems fails with "ls exited with status 2" (docs/images.md, "The appliance's
# free space"). What it writes was measured under 1 MiB. (shrink-appliance-root)
 && cd /usr/lib/rtftp/appliance \
 && e2fsck -fy root && resize2fs -M root \
 && blocks=$(dumpe2fs -h root 2>/dev/null | sed -n 's/^Block count: *//p') \
 && block_size=$(dumpe2fs -h root 2>/dev/null | sed -n 's/^Block size: *//p') \
 && resize2fs root $((blocks * block_size / 1024 + 32768))K \
 && cd / && chmod -R a+rX /usr/lib/rtftp/appliance \
# ... and uses it once as the dataplane will: list the file systems of a disk, mount, read.
 && LIBGUESTFS_PATH=/usr/lib/rtftp/appliance LIBGUESTFS_BACKEND=direct \
      LIBGUESTFS_BACKEND_SETTINGS=force_tcg \
      guestfish -N /tmp/appliance-check.img=fs:ext4:32M -- list-filesystems : mount /dev/sda1 / : ls / \
 && rm -f /tmp/appliance-check.img \
 && cp /mnt/node/node /usr/local/bin/node \
 && setcap cap_net_bind_service=+ep /usr/local/bin/node \
# The compressed modules are no package's files: the purge would leave them behind.
 && rm -rf /lib/modules/$kernel \
# (libcap2-bin stays: iproute2, which libguestfs needs, depends on it.)
 && apt-get purge -y --auto-remove libguestfs-tools \
      $(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 'linux-image-*' | awk '$1 == "ii" {print $2}') \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/tmp/.guestfs-* /tmp/.guestfs-* \
      /usr/share/doc /usr/share/man /usr/share/info /usr/share/locale /boot/* \
      /vmlinuz* /initrd.img* \
 && find / -xdev -type f -perm /6000 -exec chmod a-s {} + \
# What the dataplane runs is still there after the purge.
 && guestfish --version && qemu-system-x86_64 --version && tini --version
COPY --from=build /out/dataplane /app
# guestfish runs the fixed appliance under libguestfs' direct backend (no libvirtd).
ENV LIBGUESTFS_PATH=/usr/lib/rtftp/appliance \
    LIBGUESTFS_BACKEND=direct
USER 10001:10001
EXPOSE 69/udp 9669/tcp
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "/app/bin/rtftp.js"]
ARG REVISION=unknown
ARG VERSION=0.1.0
ENV RTFTP_REVISION=${REVISION} RTFTP_VERSION=${VERSION}
LABEL org.opencontainers.image.title=rtftp-dataplane \
      org.opencontainers.image.revision=${REVISION} \
      org.opencontainers.image.version=${VERSION}
