#!/usr/bin/env bash
# Build the Dockerfile with no registry and start the image with no
# container daemon, as root on a Debian machine (a few minutes; fetches
# Debian packages from the configured mirror):
#   1. mmdebstrap makes the two base images from Debian packages (minbase,
#      and minbase without docs, man pages and locales for the "-slim"
#      tag) and podman imports them as debian:12 and debian:12-slim;
#   2. podman builds the Dockerfile with the vfs storage driver and chroot
#      isolation (no overlayfs, no OCI runtime needed for RUN steps);
#   3. the image's filesystem is exported and started the way Kubernetes
#      would with the deploy/ security context: root filesystem read-only,
#      UID/GID 65532, no capabilities, a config mounted on /etc/tidepool
#      (like the ConfigMap); the script waits for /livez, prints the image
#      size and the process's credentials, and stops it with SIGTERM.
# `podman run` itself is not used: on machines whose cgroups are in hybrid
# mode or which forbid setrlimit in the runtime, crun cannot start
# containers (see doc/deployment.md).
#
#   deploy/image/build-offline.sh            work dir under /tmp, removed at the end
#   KEEP=1 deploy/image/build-offline.sh     keep it (and the podman storage)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

[ "$(id -u)" -eq 0 ] || { echo "build-offline.sh: run as root" >&2; exit 1; }
for pkg in podman mmdebstrap; do
    command -v "$pkg" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman mmdebstrap </dev/null >/dev/null
done

WORK=$(mktemp -d /tmp/tidepool-image.XXXXXX)
P=(podman --storage-driver vfs --root "$WORK/storage" --runroot "$WORK/run")
TP_PID=
cleanup() {
    [ -n "$TP_PID" ] && kill -KILL "$TP_PID" 2>/dev/null
    "${P[@]}" rm -a -f >/dev/null 2>&1 || true
    [ -n "${KEEP:-}" ] || { chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"; }
}
trap cleanup EXIT
say() { printf '==> %s\n' "$*" >&2; }

SLIM_EXCLUDES=()
for d in doc man info locale lintian linda; do
    SLIM_EXCLUDES+=(--dpkgopt="path-exclude=/usr/share/$d/*")
done
SLIM_EXCLUDES+=(--dpkgopt='path-include=/usr/share/doc/*/copyright')

say "base images from Debian packages (mmdebstrap)"
mmdebstrap --quiet --variant=minbase --mode=root bookworm "$WORK/base.tar"
mmdebstrap --quiet --variant=minbase --mode=root "${SLIM_EXCLUDES[@]}" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$WORK/slim.tar"
"${P[@]}" import -q "$WORK/base.tar" docker.io/library/debian:12 >/dev/null
"${P[@]}" import -q "$WORK/slim.tar" docker.io/library/debian:12-slim >/dev/null

say "podman build (vfs, chroot isolation)"
"${P[@]}" build -q --pull=never --isolation=chroot -t localhost/tidepool:offline . >/dev/null

size=$("${P[@]}" image inspect localhost/tidepool:offline --format '{{.Size}}')
base=$("${P[@]}" image inspect docker.io/library/debian:12-slim --format '{{.Size}}')
say "image size $((size / 1000000)) MB (base $((base / 1000000)) MB + tidepool layers $(((size - base) / 1000000)) MB)"

say "starting the image's filesystem read-only as 65532"
cid=$("${P[@]}" create localhost/tidepool:offline)
mkdir "$WORK/rootfs" "$WORK/config"
"${P[@]}" export "$cid" | tar -x -C "$WORK/rootfs"
user=$(chroot "$WORK/rootfs" /usr/bin/stat -c '%u:%g' /usr/bin/tidepool)
entry=$("${P[@]}" image inspect localhost/tidepool:offline --format '{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{.Config.User}}')
say "entrypoint, cmd, user: $entry"
port=$((20000 + RANDOM % 10000)); http=$((port + 1))
sed -e "s/^listen_port = .*/listen_port = $port/" -e "s/^metrics_port = .*/metrics_port = $http/" \
    "$WORK/rootfs/etc/tidepool/tidepool.ini" > "$WORK/config/tidepool.ini"
unshare --mount --propagation private -- sh -c '
    set -e
    root=$1
    mount --bind "$root" "$root"
    mount --bind "$2" "$root/etc/tidepool"
    mount -t proc proc "$root/proc"
    mount -o remount,bind,ro "$root/etc/tidepool"
    mount -o remount,bind,ro "$root"
    exec chroot --userspec=65532:65532 --groups= "$root" /usr/bin/tidepool /etc/tidepool/tidepool.ini
' sh "$WORK/rootfs" "$WORK/config" 2>"$WORK/tidepool.log" &
TP_PID=$!
up=
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$http" && printf 'GET /livez HTTP/1.0\r\n\r\n' >&3 && grep -q '^ok' <&3) 2>/dev/null; then
        up=1; break
    fi
    sleep 0.1
done
[ -n "$up" ] || { cat "$WORK/tidepool.log" >&2; say "the image did not start"; exit 1; }
say "/livez answered; $(grep -E '^(Uid|Gid|CapEff|CapPrm)' "/proc/$TP_PID/status" | tr -s '\t\n' '  ')"
kill -TERM "$TP_PID"
wait "$TP_PID" && rc=0 || rc=$?
TP_PID=
say "exited with status $rc after SIGTERM; stderr:"
cat "$WORK/tidepool.log" >&2
[ "$rc" -eq 0 ] && echo "image ok: $((size / 1000000)) MB"
