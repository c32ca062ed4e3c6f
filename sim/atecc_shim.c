/* A /dev/i2c-N with an emulated ATECC608 on it, for tests.
 *
 * Loaded with LD_PRELOAD (libegw-atecc-shim.so) or linked into a test
 * program, it intercepts open(), ioctl(), read(), write() and close() on one
 * device path, so that cryptoauthlib's unchanged Linux I2C HAL talks to
 * atecc_emu.c: open(path) gives a descriptor (a real one, on /dev/null, so
 * it stays unique), ioctl(I2C_SLAVE) picks the 7-bit address, write() and
 * read() are one I2C transaction each, a NACK fails with ENXIO as the
 * i2c-dev driver does.  Every other descriptor and path goes to the C
 * library untouched.
 *
 * Environment: EGW_ATECC_EMU_DIR, the chip's directory (see atecc_emu.h;
 * without it nothing is intercepted); EGW_ATECC_EMU_DEV, the path to
 * intercept (default /dev/i2c-1). */
/* open and open64 are both defined here: keep the headers from aliasing them. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/i2c-dev.h>
#include <linux/i2c.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "atecc_emu.h"

#define MAX_FDS 16

/* Interposed C library entry points (their prototypes are the library's). */
int open(const char *path, int flags, ...);
int open64(const char *path, int flags, ...);
int ioctl(int fd, unsigned long req, ...);
ssize_t read(int fd, void *buf, size_t n);
ssize_t write(int fd, const void *buf, size_t n);
int close(int fd);

/* Recursive: the emulator reads files, and OpenSSL may read /dev/urandom. */
static pthread_mutex_t lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static struct atecc_emu *emu;
static char emu_dir[4096]; /* the chip emu was opened from */
static struct {
	int fd;
	unsigned addr;
} fds[MAX_FDS];
static int nfds;

static int (*real_open)(const char *, int, ...);
static int (*real_ioctl)(int, unsigned long, ...);
static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_close)(int);

static void resolve(void)
{
	if (real_open)
		return;
	real_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
	real_read = (ssize_t(*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
	real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
	real_open = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static bool is_device(const char *path)
{
	const char *dev = getenv("EGW_ATECC_EMU_DEV");

	if (!getenv("EGW_ATECC_EMU_DIR") || !path)
		return false;
	return strcmp(path, dev && *dev ? dev : "/dev/i2c-1") == 0;
}

/* Index of fd in fds[] or -1.  Called with lock held. */
static int find(int fd)
{
	for (int i = 0; i < nfds; i++)
		if (fds[i].fd == fd)
			return i;
	return -1;
}

static int open_device(void)
{
	int fd, r;

	const char *dir = getenv("EGW_ATECC_EMU_DIR");

	pthread_mutex_lock(&lock);
	/* A test may move to another chip: only when no descriptor is open. */
	if (emu && nfds == 0 && strcmp(dir, emu_dir) != 0) {
		atecc_emu_close(emu);
		emu = NULL;
	}
	if (!emu && strlen(dir) < sizeof(emu_dir)) {
		r = atecc_emu_open(dir, &emu);
		if (r == 0)
			strcpy(emu_dir, dir);
	}
	if (!emu || nfds == MAX_FDS) {
		pthread_mutex_unlock(&lock);
		errno = emu ? EMFILE : ENODEV;
		return -1;
	}
	fd = real_open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		fds[nfds].fd = fd;
		fds[nfds].addr = 0;
		nfds++;
	}
	pthread_mutex_unlock(&lock);
	return fd;
}

static int open_common(const char *path, int flags, va_list ap)
{
	mode_t mode = 0;

	resolve();
	if (flags & (O_CREAT | __O_TMPFILE))
		mode = (mode_t)va_arg(ap, int);
	if (is_device(path))
		return open_device();
	return real_open(path, flags, mode);
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	int r;

	va_start(ap, flags);
	r = open_common(path, flags, ap);
	va_end(ap);
	return r;
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	int r;

	va_start(ap, flags);
	r = open_common(path, flags | O_LARGEFILE, ap);
	va_end(ap);
	return r;
}

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;
	int i;

	resolve();
	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	pthread_mutex_lock(&lock);
	i = find(fd);
	if (i < 0) {
		pthread_mutex_unlock(&lock);
		return real_ioctl(fd, req, arg);
	}
	if (req == I2C_SLAVE || req == I2C_SLAVE_FORCE) {
		/* The address is passed as an int: only its low 32 bits are set. */
		unsigned a = (unsigned)(uintptr_t)arg;

		pthread_mutex_unlock(&lock);
		if (a > 0x7f) {
			errno = EINVAL;
			return -1;
		}
		pthread_mutex_lock(&lock);
		fds[i].addr = (unsigned)a;
		pthread_mutex_unlock(&lock);
		return 0;
	}
	if (req == I2C_FUNCS) {
		*(unsigned long *)arg = I2C_FUNC_I2C;
		pthread_mutex_unlock(&lock);
		return 0;
	}
	pthread_mutex_unlock(&lock);
	errno = ENOTTY;
	return -1;
}

ssize_t read(int fd, void *buf, size_t n)
{
	int i, r;

	resolve();
	pthread_mutex_lock(&lock);
	i = find(fd);
	if (i < 0) {
		pthread_mutex_unlock(&lock);
		return real_read(fd, buf, n);
	}
	r = atecc_emu_read(emu, fds[i].addr, buf, n, now_us());
	pthread_mutex_unlock(&lock);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return (ssize_t)n;
}

ssize_t write(int fd, const void *buf, size_t n)
{
	int i, r;

	resolve();
	pthread_mutex_lock(&lock);
	i = find(fd);
	if (i < 0) {
		pthread_mutex_unlock(&lock);
		return real_write(fd, buf, n);
	}
	r = atecc_emu_write(emu, fds[i].addr, buf, n, now_us());
	pthread_mutex_unlock(&lock);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return (ssize_t)n;
}

int close(int fd)
{
	int i;

	resolve();
	pthread_mutex_lock(&lock);
	i = find(fd);
	if (i >= 0)
		fds[i] = fds[--nfds];
	pthread_mutex_unlock(&lock);
	return real_close(fd);
}
