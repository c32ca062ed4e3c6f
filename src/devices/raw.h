/* Raw Modbus on a running device: a read or write of registers the user
 * names (/api/inverter/modbus...), queued on the device's own client behind
 * its polling, so nothing runs concurrently on the wire, and decoding of what
 * a read returns.  A device that is not running (not in the running set, or
 * a P1 meter, which has no registers) is not reached: no client is ever built
 * from the settings on the side.  Loop thread only. */
#pragma once
#include <jansson.h>
#include <stdint.h>

#include "modbus/client.h"

struct devices;

#define RAW_TYPE_NAMES "u16, i16, u32, i32, u64, f32, str"

/* How to decode a raw read. */
struct raw_read {
	uint8_t fc; /* 3 (holding) or 4 (input) */
	uint16_t addr, count;
	uint8_t type;  /* enum reg_type */
	uint8_t order; /* enum word_order */
	double scale;
};

/* The type named name (RAW_TYPE_NAMES): 0 with its reg_type and the words
 * one value takes, or -EINVAL. */
int raw_type_parse(const char *name, uint8_t *ret_type, unsigned *ret_words);
/* The name of a type raw_type_parse accepts, or NULL. */
const char *raw_type_name(uint8_t type);

/* The values of an answered read: one per value for numbers (null where the
 * device's sentinel says unavailable), one string for "str".  New
 * reference, NULL on ENOMEM. */
json_t *raw_decode(const struct raw_read *rr, const uint16_t *regs, unsigned count);

/* Queues a read (fc 3/4) or write (fc 6 for one register, 16 for more) on
 * the running device id's own client, at the device's unit (*ret_unit).
 * cb runs exactly once, later, unless this returns an error; -ECANCELED
 * there means the device was removed or its connection reset.  Returns 0,
 * -ENOENT (no running device with this id), -ENOTSUP (a P1 meter), or
 * mb_client_read/write's errors (-ENOBUFS: its queue is full). */
int devices_raw_read(struct devices *ds, const char *id, uint8_t fc, uint16_t addr, uint16_t count,
		     mb_read_cb cb, void *ud, uint8_t *ret_unit);
int devices_raw_write(struct devices *ds, const char *id, uint16_t addr, const uint16_t *values,
		      uint16_t count, mb_write_cb cb, void *ud, uint8_t *ret_unit);
