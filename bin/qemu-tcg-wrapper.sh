#!/bin/sh
# A qemu wrapper for libguestfs (LIBGUESTFS_HV; guestfs(3), "QEMU WRAPPERS"), used only
# when the appliance runs under TCG. It turns libguestfs's "-machine accel=tcg" into
# "-accel tcg,tb-size=N": QEMU's translation cache defaults to 1 GiB and an appliance
# touches ~180 MiB of it; 64 MiB took qemu's peak RSS from 542 to 378 MiB with the same
# launch time and throughput (bench/nbd-guestfs.ts). Everything else passes unchanged,
# and exec makes this process the qemu that libguestfs waits for and kills.
#   RTFTP_TCG_CACHE_MIB  translation cache in MiB (default 64)
#   RTFTP_QEMU           the real qemu (default: qemu-system-x86_64 on PATH)
set -eu
tb=${RTFTP_TCG_CACHE_MIB:-64}
qemu=${RTFTP_QEMU:-$(command -v qemu-system-x86_64)}
count=$#
while [ "$count" -gt 0 ]; do
  arg=$1
  shift
  count=$((count - 1))
  if [ "$arg" = "-machine" ] && [ "$count" -gt 0 ]; then
    machine=$1
    shift
    count=$((count - 1))
    case ",$machine," in
      *,accel=tcg,*)
        rest=$(printf '%s' ",$machine," | sed 's/,accel=tcg,/,/; s/^,//; s/,$//')
        if [ -n "$rest" ]; then set -- "$@" -machine "$rest"; fi
        set -- "$@" -accel "tcg,tb-size=$tb"
        ;;
      *) set -- "$@" -machine "$machine" ;;
    esac
  else
    set -- "$@" "$arg"
  fi
done
exec "$qemu" "$@"
