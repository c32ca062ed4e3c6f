# egwd, the gateway daemon.  Multi-stage: build on Debian 12, run on Debian 12
# slim with only the runtime libraries, as an unprivileged user.
# Multi-arch: docker buildx build --platform linux/arm64,linux/amd64 -t egw .
FROM debian:12-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      meson ninja-build pkg-config gcc libc6-dev \
      libmicrohttpd-dev libjansson-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev \
      libmosquitto-dev libcmocka-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN meson setup /build --prefix=/usr --buildtype=release -Db_ndebug=true \
 && ninja -C /build \
 && DESTDIR=/out meson install -C /build --no-rebuild --skip-subprojects

FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libmicrohttpd12 libjansson4 libsqlite3-0 libcurl4 libssl3 libmosquitto1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 998 i2c \
 && useradd --system --uid 990 --gid nogroup --groups i2c --home-dir /var/lib/egw egw \
 && install -d -o egw -m 0700 /var/lib/egw
COPY --from=build /out/usr/sbin/egwd /usr/sbin/egwd
USER egw
VOLUME /var/lib/egw
# 5000: HTTP, 5443: HTTPS (http.tls_port, certificate generated in the volume)
EXPOSE 5000 5443
HEALTHCHECK --interval=30s --timeout=5s CMD ["/usr/sbin/egwd", "--check", "--port", "5000", "--state-dir", "/var/lib/egw"]
ENTRYPOINT ["/usr/sbin/egwd", "--state-dir", "/var/lib/egw", "--port", "5000"]
