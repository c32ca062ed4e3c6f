/* Files written whole or not at all: the one atomic write every module that
 * keeps state in a file (settings, keys, certificates, tokens, the device
 * id map) goes through. */
#pragma once
#include <stddef.h>

/* Writes len bytes to path atomically: path.tmp.<pid> created with mode
 * (exclusive, close-on-exec; a leftover of a crashed run with the same pid is
 * removed first), written, chmod to mode (the umask does not weaken it),
 * fsync, renamed over path, then the directory fsynced so the rename itself
 * survives a power cut.  A reader sees the old file or the new one, never a
 * part.  The temp file never survives a failure.  Returns 0 or -errno
 * (-ENAMETOOLONG when path leaves no room for the suffix). */
int file_write_atomic(const char *path, const void *data, size_t len, unsigned mode);
