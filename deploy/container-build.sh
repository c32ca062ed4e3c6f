#!/bin/sh
# The build stage of the egwd and egw-sim images.  Runs on the build machine's
# architecture and compiles for the target's: natively when they are the same,
# otherwise with Debian's cross compiler, the target's -dev packages and the
# meson cross file deploy/cross/<arch>.ini.
#   container-build.sh deps               install compiler and -dev packages
#   container-build.sh build TARGET...    configure /build and build the targets
#   container-build.sh cryptoauthlib      build and install the chip library
# Chip support: when deploy/vendor/ holds Microchip's cryptoauthlib release
# (cryptoauthlib-3.7.8.tar.gz, sha256 checked; scripts/setup and the tests
# copy it there from shared/vendor, it is never committed), it is built for
# the target (with the cross compiler when cross-compiling) and egwd gets the
# ATECC608 signer; /out-lib then holds the library for the runtime stage.
# Without it egwd is built without chip support and says so when
# signer.backend asks for it.
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
  libmosquitto-dev libcmocka-dev zlib1g-dev"

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
		meson ninja-build pkg-config python3 ca-certificates binutils cmake $pkgs
	rm -rf /var/lib/apt/lists/*
	;;
cryptoauthlib)
	mkdir -p /out-lib
	cal=deploy/vendor/cryptoauthlib-3.7.8.tar.gz
	cal_sha=4b4fbe540a301e44ec86b7f01493cb64dd20875e671adce168fa2c566f0ae011
	if [ ! -f "$cal" ]; then
		echo "container-build: no $cal: egwd without ATECC608 support"
		exit 0
	fi
	echo "$cal_sha  $cal" | sha256sum -c -
	mkdir -p /tmp/cal
	tar -xzf "$cal" -C /tmp/cal --strip-components=1
	if [ "$arch" = "$build_arch" ]; then
		# The release installs its library in /usr/lib.
		set --
		libdir=/usr/lib
	else
		case "$arch" in arm64) cpu=aarch64 ;; *) cpu=arm ;; esac
		set -- -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=$cpu \
			-DCMAKE_C_COMPILER=$triplet-gcc -DCMAKE_INSTALL_PREFIX=/usr \
			-DCMAKE_INSTALL_LIBDIR=lib/$triplet
		# where the cross file's pkg-config looks
		libdir=/usr/lib/$triplet
	fi
	cmake -G Ninja -S /tmp/cal -B /tmp/cal/b -DCMAKE_BUILD_TYPE=Release \
		-DATCA_HAL_I2C=ON -DATCA_HAL_CUSTOM=ON "$@"
	cmake --build /tmp/cal/b
	cmake --install /tmp/cal/b
	cp -a "$libdir"/libcryptoauth.so.* /out-lib/
	rm -rf /tmp/cal
	;;
build)
	shift
	mkdir -p /out-lib
	# The library built by the cryptoauthlib step: egwd must find it (a
	# failing build, not an image silently without the chip).
	atecc=disabled
	if ls /out-lib/libcryptoauth.so.* >/dev/null 2>&1; then
		atecc=enabled
	fi
	cross=""
	[ "$arch" = "$build_arch" ] || cross="--cross-file=deploy/cross/$arch.ini"
	# shellcheck disable=SC2086
	meson setup /build $cross --prefix=/usr --buildtype=release -Db_ndebug=true -Datecc=$atecc
	ninja -C /build "$@"
	# Symbols are not needed at run time; the image is smaller without them.
	strip=strip
	[ "$arch" = "$build_arch" ] || strip=$triplet-strip
	for t in "$@"; do $strip "/build/$t"; done
	;;
*)
	echo "usage: container-build.sh deps | cryptoauthlib | build TARGET..." >&2
	exit 2
	;;
esac
