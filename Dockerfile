# egwd, the gateway daemon.  Multi-stage: build on Debian 12, run on Debian 12
# slim with only the runtime libraries, as an unprivileged user.
# Multi-arch: docker buildx build --platform linux/arm64,linux/amd64 -t egw .
FROM debian:12-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      meson ninja-build pkg-config gcc libc6-dev \
      libmicrohttpd-dev libjansson-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev \
      libmosquitto-dev libcmocka-dev cmake \
 && rm -rf /var/lib/apt/lists/*
# Microchip cryptoauthlib 3.7.8 for the ATECC608 (Debian does not package it), the
# pinned release from the named build context "vendor" (shared/vendor beside the
# checkout): docker buildx build --build-context vendor=../shared/vendor .
COPY --from=vendor cryptoauthlib-3.7.8.tar.gz /tmp/
RUN echo "4b4fbe540a301e44ec86b7f01493cb64dd20875e671adce168fa2c566f0ae011  /tmp/cryptoauthlib-3.7.8.tar.gz" \
      | sha256sum -c - \
 && mkdir /tmp/cal && tar -xzf /tmp/cryptoauthlib-3.7.8.tar.gz -C /tmp/cal --strip-components=1 \
 && cmake -G Ninja -S /tmp/cal -B /tmp/cal/b -DCMAKE_BUILD_TYPE=Release -DATCA_HAL_I2C=ON -DATCA_HAL_CUSTOM=ON \
 && cmake --build /tmp/cal/b -j"$(nproc)" \
 && cmake --install /tmp/cal/b && DESTDIR=/out cmake --install /tmp/cal/b \
 && rm -rf /tmp/cal /tmp/cryptoauthlib-3.7.8.tar.gz
WORKDIR /src
COPY . .
RUN meson setup /build --prefix=/usr --buildtype=release -Db_ndebug=true -Datecc=enabled \
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
COPY --from=build /out/usr/lib/libcryptoauth.so.3.7.8 /usr/lib/libcryptoauth.so.3
USER egw
VOLUME /var/lib/egw
# 5000: HTTP, 5443: HTTPS (http.tls_port, certificate generated in the volume)
EXPOSE 5000 5443
HEALTHCHECK --interval=30s --timeout=5s CMD ["/usr/sbin/egwd", "--check", "--port", "5000", "--state-dir", "/var/lib/egw"]
ENTRYPOINT ["/usr/sbin/egwd", "--state-dir", "/var/lib/egw", "--port", "5000"]
