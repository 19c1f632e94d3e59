# syntax=docker/dockerfile:1
# One image, both entry points: the TFTP dataplane (bin/rtftp.js) and the operator
# (bin/rtftp-operator.js, also its `sync` sidecar mode). Built elsewhere (no Docker engine
# on the development machines); charts/test/dockerfile.test.ts checks what it copies and
# runs, and charts/test/bind-privileges.test.ts the node-netbind capability on a real kernel.
#
# Node 22 (an LTS with security support through 2027) on Debian bookworm: the official
# image ships Node in /usr/local/bin on the same Debian the project develops on, whose
# own nodejs package (18) is out of support.
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No install scripts needed for a tsc build; the runtime keeps production deps only.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY common/src common/src
COPY dataplane/src dataplane/src
COPY operator/src operator/src
RUN npm run build && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
ARG DEBIAN_FRONTEND=noninteractive
# libguestfs (guestfish, qemu) and a kernel for its appliance. The appliance is built once
# here as a "fixed appliance" (kernel, initrd, root image), so a pod never runs supermin at
# start and needs no write access outside its emptyDirs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libguestfs-tools linux-image-amd64 libcap2-bin e2fsprogs ca-certificates \
 && mkdir -p /usr/lib/rtftp/appliance \
# It launches the appliance once to check it: under TCG, since a build host has no KVM
# or, nested, a broken one (qemu then hangs instead of falling back).
 && LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg \
      libguestfs-make-fixed-appliance /usr/lib/rtftp/appliance \
# Its root is a sparse 4 GiB ext2 image and image layers keep no holes: shrink the file
# system to its content (~700 MB) and cut the file there. (shrink-appliance-root)
 && cd /usr/lib/rtftp/appliance \
 && e2fsck -fy root && resize2fs -M root \
 && blocks=$(dumpe2fs -h root 2>/dev/null | sed -n 's/^Block count: *//p') \
 && block_size=$(dumpe2fs -h root 2>/dev/null | sed -n 's/^Block size: *//p') \
 && truncate -s $((blocks * block_size)) root \
 && cd / && chmod -R a+rX /usr/lib/rtftp/appliance \
# Kubernetes gives a non-root process no ambient capabilities, so binding UDP 69 needs a
# file capability. Only a copy carries it: a binary with a file capability cannot even be
# executed where that capability is outside the bounding set (the operator, high ports).
 && cp /usr/local/bin/node /usr/local/bin/node-netbind \
 && setcap cap_net_bind_service=+ep /usr/local/bin/node-netbind \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/tmp/.guestfs-* /tmp/.guestfs-* \
# The dataplane keeps allowPrivilegeEscalation for node-netbind: leave it no setuid or
# setgid binary (su, mount, passwd, ...) to escalate through.
 && find / -xdev -type f -perm /6000 -exec chmod a-s {} +
RUN groupadd --gid 10001 rtftp \
 && useradd --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin rtftp
ENV NODE_ENV=production \
    LIBGUESTFS_PATH=/usr/lib/rtftp/appliance \
    LIBGUESTFS_BACKEND=direct
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# The launchers run dist/ when no TypeScript sources are present, as here.
COPY bin ./bin
USER 10001:10001
EXPOSE 69/udp 9669/tcp
CMD ["node", "/app/bin/rtftp.js"]
