/* Fuzz the settings file: the bytes are written to a scratch file and read
 * with settings_load, as egwd does at start and on SIGHUP.  Checks: no
 * crash; an error names a reason and leaves the defaults untouched; an
 * accepted file gives an effective document that validates again. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "config/settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[128];

static int write_input(const uint8_t *data, size_t size)
{
	int fd;

	if (!path[0]) {
		const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
		snprintf(path, sizeof(path), "%s/egw-fuzz-settings-%d.json", dir, (int)getpid());
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	while (size > 0) {
		ssize_t n = write(fd, data, size);
		if (n <= 0) {
			close(fd);
			return -EIO;
		}
		data += n;
		size -= (size_t)n;
	}
	close(fd);
	return 0;
}

static void cleanup(void)
{
	if (path[0])
		unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int registered;
	struct settings_error err = { 0 };
	struct settings *s = NULL;
	json_t *before, *after;
	int r;

	if (!registered) {
		atexit(cleanup);
		registered = 1;
	}
	if (write_input(data, size) < 0 || settings_new(path, &s) < 0)
		return 0;
	before = settings_to_json(s, false);
	r = settings_load(s, &err);
	after = settings_to_json(s, false);
	assert(before && after);
	if (r < 0) {
		assert(r == -EGW_EJSON || r == -EGW_ESCHEMA || r == -ENOMEM || r == -EIO);
		assert(r == -ENOMEM || err.msg[0] != '\0');
		assert(json_equal(before, after));
	} else {
		struct settings_error e2 = { 0 };
		assert(settings_validate(after, &e2) == 0);
	}
	json_decref(before);
	json_decref(after);
	settings_free(s);
	return 0;
}
