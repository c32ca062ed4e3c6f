/* What identifies a Modbus device: the rules a device's own identification
 * (identify.c, in the device state machine) and the LAN scan (scan.c) both
 * apply to the registers they read, so the two never disagree on what a
 * serial, a plausible grid frequency or a SunSpec device is.  Pure functions
 * over answered registers; the callers do the reading. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "modbus/client.h"
#include "profiles/profile.h"

#define IDENT_HZ_MIN 48.0 /* a plausible grid frequency, for identification */
#define IDENT_HZ_MAX 62.0

/* SunSpec common model (model 1) from its first data register (base + 4):
 * manufacturer (Mn) and serial number (SN) are registers 0..15 and 48..63. */
#define IDENT_SS_COMMON_OFFSET 4
#define IDENT_SS_COMMON_WORDS 64

/* The one request that reads register r (with its SunSpec sf register when
 * they fit one block).  Returns 0 or -EINVAL (no plan: r does not fit a
 * Modbus read). */
int ident_block(const struct reg_def *r, struct mb_block *ret);

/* The serial of profile p from the answer to its serial register's block b
 * (regs, count words).  Returns its length (> 0), or as
 * profile_decode_serial (-ENOENT, -EGW_EUNAVAILABLE: blank, -ENOSPC, ...),
 * or -ENOMEM. */
int ident_serial(const struct profile *p, const struct mb_block *b, const uint16_t *regs,
		 unsigned count, char *buf, size_t cap);

/* Whether the answer to p's frequency block b holds a plausible grid
 * frequency (IDENT_HZ_MIN..IDENT_HZ_MAX, after the profile's scaling).
 * Returns 0 (plausible), -EGW_EPROFILE (implausible), or the decoder's
 * error. */
int ident_frequency(const struct profile *p, const struct mb_block *b, const uint16_t *regs,
		    unsigned count);

/* Manufacturer and serial from IDENT_SS_COMMON_WORDS registers of the
 * SunSpec common model (each "" when blank; count short: both ""). */
void ident_sunspec_common(const uint16_t *regs, unsigned count, char *mn, size_t mn_cap, char *sn,
			  size_t sn_cap);
