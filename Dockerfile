# tidepool container image.
#
#   docker build -t tidepool .        (or: podman build / buildah bud)
#
# Two stages: a Debian 12 build stage with the compilers and -dev packages,
# and a Debian 12 slim runtime with only the shared libraries tidepool links
# (libevent, OpenSSL, c-ares; not libpq, see src/pq.c) and CA certificates. The result runs as
# UID/GID 65532 with no capabilities and a read-only root filesystem: the
# pooler writes only to stderr and, if unix_socket_dir is set, to that
# directory (mount an emptyDir there). Nothing at run time needs a shell.
#
# test/integration/test_image_layout.py installs the build the same way
# (make install-strip DESTDIR=, bindir /usr/bin, this ini at
# /etc/tidepool/tidepool.ini), checks that RUNTIME_PACKAGES provide every
# library the binary needs and nothing it does not, and runs it as 65532 with the tree read-only.

ARG DEBIAN_RELEASE=12

FROM debian:${DEBIAN_RELEASE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential autoconf automake libtool pkg-config \
        libevent-dev libssl-dev libc-ares-dev libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN autoreconf -fi \
 && ./configure --prefix=/usr --sysconfdir=/etc \
 && make -j"$(nproc)" \
 && make install-strip DESTDIR=/out \
 && install -D -m 0644 deploy/image/tidepool.ini /out/etc/tidepool/tidepool.ini \
 && /out/usr/bin/tidepool --version

FROM debian:${DEBIAN_RELEASE}-slim
ARG DEBIAN_FRONTEND=noninteractive
# keep in step with test/integration/test_image_layout.py (it reads this line)
ARG RUNTIME_PACKAGES="libevent-2.1-7 libssl3 libc-ares2 ca-certificates"
RUN apt-get update \
 && apt-get install -y --no-install-recommends ${RUNTIME_PACKAGES} \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/* \
 && groupadd --gid 65532 tidepool \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin tidepool
COPY --from=build /out/usr/bin/tidepool /usr/bin/tidepool
COPY --from=build /out/etc/tidepool/tidepool.ini /etc/tidepool/tidepool.ini
USER 65532:65532
# client port, HTTP (/metrics, /livez, /readyz)
EXPOSE 6432 9127
ENTRYPOINT ["/usr/bin/tidepool"]
CMD ["/etc/tidepool/tidepool.ini"]
