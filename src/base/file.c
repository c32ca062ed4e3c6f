/* The atomic file write; see file.h. */
#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fsync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, r = 0;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int file_write_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
	char tmp[PATH_MAX];
	const char *p = data;
	int fd, r = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	unlink(tmp); /* a leftover from a crashed run with the same pid */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
	if (fd < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto err_unlink;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fchmod(fd, (mode_t)mode) < 0 || fsync(fd) < 0) {
		r = -errno;
		goto err_unlink;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		goto err_unlink;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto err_unlink;
	}
	return fsync_dir_of(path);
err_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return r;
}
