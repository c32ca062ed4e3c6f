/* Minimal sd_notify(3): tell systemd we are ready, alive (watchdog) or
 * stopping, over the datagram socket named by $NOTIFY_SOCKET.  Without that
 * variable every call is a no-op returning 0, so egwd needs no libsystemd. */
#pragma once
#include <stdint.h>

/* Send `state` (e.g. "READY=1", "WATCHDOG=1", "STOPPING=1").  Returns 1 if
 * sent, 0 if not under systemd, or -errno. */
int sdnotify(const char *state);
/* The watchdog interval in microseconds from $WATCHDOG_USEC (0 when off). */
uint64_t sdnotify_watchdog_usec(void);
