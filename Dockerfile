# egwd, the gateway daemon.  Two stages: the build stage compiles on the build
# machine (cross-compiling when the target is another architecture), the
# runtime stage holds egwd, its shared libraries and the CA certificates, and
# runs it as an unprivileged user.
#   podman build --format docker -t egw/egwd -f Dockerfile .
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t egw/egwd .
# The build stage is the same in Dockerfile.sim, so building both shares it.
# The base images: DEBIAN for the runtime stage (the target's architecture),
# BUILD_DEBIAN for the build stage (the build machine's).  With a multi-arch
# debian:12-slim both stay as they are; with local single-architecture images
# (podman 4.3 runs the build stage on the target platform otherwise) name them.
ARG DEBIAN=debian:12-slim
ARG BUILD_DEBIAN=debian:12-slim
FROM --platform=$BUILDPLATFORM $BUILD_DEBIAN AS build
ARG TARGETARCH
COPY deploy/container-build.sh /usr/local/bin/container-build
RUN container-build deps
# The chip library before the source: its layer stays cached while the source changes.
COPY deploy/vendor/ /src/deploy/vendor/
WORKDIR /src
RUN container-build cryptoauthlib
COPY . .
RUN container-build build egwd sim/egw-sim

FROM $DEBIAN
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libmicrohttpd12 libjansson4 libsqlite3-0 libcurl4 libssl3 libmosquitto1 zlib1g \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 998 i2c \
 && useradd --system --uid 990 --gid nogroup --groups i2c --home-dir /var/lib/egw egw \
 && install -d -o egw -m 0700 /var/lib/egw
# The CA bundle alone: ca-certificates would bring openssl and its scripts.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /build/egwd /usr/sbin/egwd
# cryptoauthlib, when the build stage had it (empty otherwise)
COPY --from=build /out-lib/ /usr/lib/
USER egw
VOLUME /var/lib/egw
# 5000: HTTP, 5443: HTTPS (http.tls_port, certificate generated in the volume)
EXPOSE 5000 5443
HEALTHCHECK --interval=30s --timeout=5s CMD ["/usr/sbin/egwd", "--check", "--port", "5000", "--state-dir", "/var/lib/egw"]
ENTRYPOINT ["/usr/sbin/egwd", "--state-dir", "/var/lib/egw", "--port", "5000"]
