#!/bin/sh
# The build stage of the egwd and egw-sim images.  Runs on the build machine's
# architecture and compiles for the target's: natively when they are the same,
# otherwise with Debian's cross compiler, the target's -dev packages and the
# meson cross file deploy/cross/<arch>.ini.
#   container-build.sh deps               install compiler and -dev packages
#   container-build.sh build TARGET...    configure /build and build the targets
# TARGETARCH (amd64, arm64, arm) is set by `docker buildx` / `podman build
# --platform`; without it the build machine's architecture is the target.
set -eu

build_arch=$(dpkg --print-architecture)
case "${TARGETARCH:-$build_arch}" in
	amd64) arch=amd64 triplet=x86_64-linux-gnu ;;
	arm64) arch=arm64 triplet=aarch64-linux-gnu ;;
	arm|armhf) arch=armhf triplet=arm-linux-gnueabihf ;;
	*) echo "container-build: unsupported TARGETARCH ${TARGETARCH:-}" >&2; exit 1 ;;
esac

DEV="libmicrohttpd-dev libjansson-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev
  libmosquitto-dev libcmocka-dev"

case "${1:-}" in
deps)
	if [ "$arch" = "$build_arch" ]; then
		pkgs="gcc libc6-dev $DEV"
	else
		dpkg --add-architecture "$arch"
		pkgs="gcc-$triplet libc6-dev:$arch"
		for p in $DEV; do pkgs="$pkgs $p:$arch"; done
	fi
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		meson ninja-build pkg-config python3 ca-certificates binutils $pkgs
	rm -rf /var/lib/apt/lists/*
	;;
build)
	shift
	cross=""
	[ "$arch" = "$build_arch" ] || cross="--cross-file=deploy/cross/$arch.ini"
	# shellcheck disable=SC2086
	meson setup /build $cross --prefix=/usr --buildtype=release -Db_ndebug=true
	ninja -C /build "$@"
	# Symbols are not needed at run time; the image is smaller without them.
	strip=strip
	[ "$arch" = "$build_arch" ] || strip=$triplet-strip
	for t in "$@"; do $strip "/build/$t"; done
	;;
*)
	echo "usage: container-build.sh deps | build TARGET..." >&2
	exit 2
	;;
esac
