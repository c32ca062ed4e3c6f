/* Device profiles: register tables, decode, encode, block planner, SunSpec.
 *
 * A profile is a static const table (one file per brand, src/profiles/<brand>.c)
 * written from /work/shared/reference/inverter-registers.tsv.  It lists every
 * register row of the reference for that profile ([sn], [key], [sf], [def],
 * [slim-def]; [block] rows become `blocks`), and for the rows that feed the
 * data model (reading.h) the field and the conversion to SI units.
 *
 * Pure functions, no I/O: the devices module reads the blocks over Modbus and
 * hands the raw words here; egw-sim uses the encode side (regimage) to serve
 * the same tables.
 *
 * Decoding:  value = raw * scale               (scale: the reference's factor)
 *            value = raw * 10^sf               (SunSpec, sf read in the same
 *                                               results; `scale` is the fallback
 *                                               when the sf register was not read)
 *            field = value * mul + add         (to SI units and sign convention)
 * Words are big-endian registers; WO_LITTLE reverses the word order (CDAB).
 * Sentinels (0xFFFF U16, 0x8000 I16, 0xFFFFFFFF U32, 0x80000000 I32,
 * 0xFFFFFFFFFFFFFFFF U64, NaN or infinite F32; also 0x7FFF I16 and 0x7FFFFFFF I32) mean
 * unavailable and never become a value; a SunSpec sf of 0x8000 makes its values
 * unavailable.  A failed block leaves exactly the registers it covers
 * unavailable. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profiles/reading.h"

#define PROFILE_MAX_BLOCK 125  /* registers per read request (Modbus limit) */
#define PROFILE_PLAN_MAX_GAP 4 /* profile_plan bridges holes up to this many registers */

enum reg_fc {
	REG_FC_HOLDING = 3, /* read holding registers (0x03) */
	REG_FC_INPUT = 4,   /* read input registers (0x04) */
};

enum reg_type {
	REG_U16,
	REG_I16,
	REG_U32,
	REG_I32,
	REG_U64,
	REG_F32,
	REG_STR,   /* ASCII, two chars per register, high byte first, NULs stripped */
	REG_MLD,   /* multi-register vendor structure: raw only, never decoded */
	REG_BYTES, /* raw bytes: raw only, never decoded */
	REG_TYPE_COUNT
};

enum word_order {
	WO_BIG,    /* ABCD: first register holds the most significant word */
	WO_LITTLE, /* CDAB: word order reversed, bytes in a word stay big-endian */
};

/* Which kind of reference row a table row is (the TSV `meaning` tag). */
enum reg_tag {
	TAG_DEF,      /* [def] full decoder table entry */
	TAG_SLIM_DEF, /* [slim-def] alternative (Deye) decoder entry */
	TAG_SN,       /* [sn] serial number / identity */
	TAG_KEY,      /* [key] small typed register set (short polls) */
	TAG_SF,       /* [sf] SunSpec scale-factor exponent register */
	TAG_DOC,      /* not in the reference: written from the vendor document the
	                 row's comment cites (test_profiles_tsv lists them) */
	REG_TAG_COUNT
};

enum reg_flags {
	REG_F_SUM = 1 << 0,     /* add into the field (first contributor sets it) */
	REG_F_CONST = 1 << 1,   /* fixed content (SunSpec marker, model id/length): the
	                         encoder writes the raw integer held in `add` */
	REG_F_KEY = 1 << 2,     /* a TAG_DOC row read on short polls too, like [key] rows */
	REG_F_ZERO_NA = 1 << 3, /* raw 0 means "nothing there" (an offset temperature
	                           of a sensor that is not fitted) */
};

#define REG_NO_SF (-1)
#define REG_NO_FIELD (-1)

struct reg_def {
	uint16_t addr;   /* zero-based PDU address */
	uint8_t fc;      /* enum reg_fc */
	uint8_t words;   /* number of registers */
	uint8_t type;    /* enum reg_type */
	uint8_t order;   /* enum word_order */
	uint8_t tag;     /* enum reg_tag */
	uint8_t flags;   /* enum reg_flags */
	double scale;    /* reference factor: raw * scale = value in `unit`; on a SunSpec
	                    row the fallback when the sf was not read (0: none, the
	                    value is then unavailable) */
	int32_t sf_addr; /* SunSpec: address of the I16 sf register (same fc), or REG_NO_SF */
	int16_t field;   /* enum reading_field, or REG_NO_FIELD */
	double mul;      /* field = value * mul + add (only when field >= 0) */
	double add;
	const char *unit; /* reference unit of `value` ("-" when none) */
	const char *name; /* short description from the reference */
};

/* One read request. */
struct mb_block {
	uint8_t fc;     /* enum reg_fc */
	uint16_t addr;  /* first register */
	uint16_t count; /* 1..PROFILE_MAX_BLOCK */
};

struct profile;
struct block_result;
struct sunspec_model_hdr;

/* Battery control (grid services): how egw commands a hybrid inverter's
 * battery power, from the vendor's document (doc/battery-control.md).  Data,
 * beside the read tables; battctl_setpoint() turns a setpoint into writes.
 * Setpoints are W in the data model's sign: > 0 charges, < 0 discharges. */
#define BCTL_MAX_VALUES 4
struct bctl_write {
	uint16_t addr; /* holding register, zero-based */
	uint8_t count; /* 1: function 6; more: function 16 */
	uint16_t values[BCTL_MAX_VALUES];
};

enum bctl_layout {
	/* [command, power U16 magnitude] in one write at cmd_addr (Sungrow SH) */
	BCTL_CMD_THEN_POWER_U16,
	/* [charge power U32, discharge power U32] at power_addr, then the
	 * command at cmd_addr (Huawei LUNA2000 forcible charge/discharge) */
	BCTL_POWER_PAIR_U32_THEN_CMD,
	/* SunSpec 124: [OutWRte, InWRte] = [-r, r] at power_addr (r: percent of
	 * WChaMax in units of 10^InOutWRte_SF, a window that pins the power), then
	 * StorCtl_Mod = cmd (3: both limits) at cmd_addr; needs struct bctl_ref */
	BCTL_SUNSPEC_124,
};

/* What a BCTL_SUNSPEC_124 setpoint is relative to, read from the device:
 * WChaMax in W (its sf applied) and the exponent of InOutWRte_SF. */
struct bctl_ref {
	double wchamax_w;
	int rate_sf;
};

struct battery_control {
	const char *doc;               /* the vendor document and section */
	const struct bctl_write *take; /* taking control, in order */
	unsigned ntake;
	const struct bctl_write *release; /* back to the inverter's own mode, in order */
	unsigned nrelease;
	const struct bctl_write *keepalive; /* rewritten every keepalive_ms while in control */
	unsigned nkeepalive;
	unsigned keepalive_ms;
	unsigned timeout_s; /* the inverter's own remote-control timeout
	                                       (it leaves forced mode by itself); 0: none documented */
	uint8_t layout;     /* enum bctl_layout */
	uint16_t cmd_addr;
	uint16_t cmd_charge, cmd_discharge, cmd_stop;
	uint16_t cmd_zero;            /* the command that holds 0 W while in control (the
	                                       battery follows egw at 0 W too; cmd_stop may hand
	                                       it back to its own mode instead) */
	uint16_t power_addr;          /* BCTL_POWER_PAIR_U32_THEN_CMD */
	uint32_t power_max_w;         /* the power register's documented range */
	int32_t limit_charge_addr;    /* holding U32 W, the battery's charge limit; -1: none */
	int32_t limit_discharge_addr; /* likewise for discharging; -1: none */
	uint16_t ref_addr, ref_sf_addr, rate_sf_addr; /* BCTL_SUNSPEC_124: WChaMax, its sf,
	                                                 InOutWRte_SF */
};

/* The writes that set the battery power to setpoint_w (rounded to 1 W,
 * magnitude clamped to c->power_max_w; BCTL_SUNSPEC_124: to WChaMax), in
 * order, into ret (cap entries).  ref is needed by BCTL_SUNSPEC_124 only
 * (NULL otherwise).  Returns the number of writes (1 or 2), -ENOSPC or
 * -EINVAL (NaN, or a SunSpec setpoint without a usable ref). */
int battctl_setpoint(const struct battery_control *c, double setpoint_w, const struct bctl_ref *ref,
		     struct bctl_write *ret, unsigned cap);


/* Optional per-profile quirk applied after the table decode (e.g. Deye
 * high-voltage models).  Returns 0 or -errno. */
typedef int (*profile_fixup_fn)(const struct profile *p, const struct block_result *res,
				unsigned nres, struct reading *r);

struct regimage;

/* Optional inverse of the fixup, applied at the end of profile_encode. */
typedef int (*profile_encode_fixup_fn)(const struct profile *p, const struct reading *r,
				       struct regimage *img);

struct profile {
	const char *name;  /* "huawei_hybrid", "sungrow", "sdm630", "sunspec", ... */
	const char *brand; /* "Huawei", "Sungrow", ... */
	const char *
		family; /* profiles sharing one register layout: "huawei", "sunspec", "deye", ... */
	const char *dtype; /* "inverter", "hybrid", "meter" */
	const struct reg_def *regs;
	unsigned nregs;
	const struct mb_block *blocks; /* the verbose reads: the [block] rows (SunSpec: each
	                                  model in <= 125-register chunks); NULL/0 when
	                                  the reference has none ("unknown": read the
	                                  key registers, profile_plan_key) */
	unsigned nblocks;
	bool short_reads_fields;           /* true: the [key] rows are only identity and frequency,
	                                  so short polls read the registers behind every
	                                  reading field instead (profile_plan_key).  Either
	                                  way, every 10th poll reads the blocks */
	const struct reg_def *short_extra; /* short_reads_fields: registers the fixup reads
	                                      besides the fields', read on short polls too */
	unsigned nshort_extra;
	const struct reg_def *serial;    /* identity register, or NULL (then identity by the
	                                    frequency check + MAC, see TSV README [key]) */
	const struct reg_def *frequency; /* grid frequency register (field RF_METER_HZ), or NULL */
	profile_fixup_fn fixup;          /* NULL for most */
	profile_encode_fixup_fn encode_fixup; /* NULL for most */
	uint16_t sunspec_base;                /* SunSpec profiles: address of "SunS"; else 0.  A
	                          device configured with such a profile is read
	                          through the model walk (sunspec_build_as): the
	                          static table is the vendor's documented map */
	const struct sunspec_model_hdr *ss_models; /* a brand's SunSpec profile: the model
	                                              chain its vendor documents (what
	                                              /api/device/supported lists it
	                                              reading); NULL otherwise */
	unsigned nss_models;
	bool heap; /* built by sunspec_build_profile: free with profile_free */
	const struct battery_control *control; /* battery control registers, or NULL */
};

/* Static profile by name (case-insensitive); NULL if unknown.  "sunspec" is
 * the generic SunSpec template (SunS at 40000, models 1, 103, 160, 203, 802),
 * whose encode side writes a complete SunSpec map for egw-sim. */
const struct profile *profile_find(const char *name);

/* All static profiles; *ret_n gets the count. */
const struct profile *const *profile_all(unsigned *ret_n);

/* The results of block reads: one entry per block, err < 0 if that block failed
 * (its regs are then ignored). */
struct block_result {
	struct mb_block b;
	int err;
	uint16_t regs[PROFILE_MAX_BLOCK];
};

/* Decodes one register from its words (d->words of them, as on the wire) into
 * raw * scale (no sf, no field mapping).  Returns 0, -EGW_EUNAVAILABLE for a
 * sentinel, -EINVAL for types that are not numeric (STR, MLD, BYTES). */
int reg_decode(const struct reg_def *d, const uint16_t *words, double *ret_value);

/* The words of register d found in res (a successful block of the same fc
 * covering all of it).  Returns a pointer into res, or NULL. */
const uint16_t *profile_find_words(const struct reg_def *d, const struct block_result *res,
				   unsigned nres);

/* Decodes d from res into the field's unit: scale or SunSpec sf, then mul and
 * add.  Returns 0, -ENOENT if d is not in a successful block (or its sf is
 * not and d has no fallback scale),
 * -EGW_EUNAVAILABLE for a sentinel. */
int profile_decode_value(const struct reg_def *d, const struct block_result *res, unsigned nres,
			 double *ret_value);

/* Decodes every mapped register of p found in res into *ret (cleared first:
 * everything not found stays NAN), then applies p->fixup.  Returns the number
 * of fields available (>= 0), or -errno from the fixup. */
int profile_decode(const struct profile *p, const struct block_result *res, unsigned nres,
		   struct reading *ret);

/* The text of n registers holding ASCII, two characters each, high byte
 * first: printable characters only, leading and trailing spaces dropped,
 * NUL-terminated in out (cap bytes).  Returns its length.  The one decoder
 * of register text (serials, the scan's SunSpec names, raw reads). */
size_t reg_ascii(const uint16_t *w, unsigned n, char *out, size_t cap);

/* The device identity: p->serial decoded from res as text (STR: ASCII with NULs
 * and padding spaces stripped; integers: decimal).  Returns the length, or
 * -ENOENT (no serial register / not read), -EGW_EUNAVAILABLE (sentinel or
 * empty), -ENOSPC (cap too small, including the NUL). */
int profile_decode_serial(const struct profile *p, const struct block_result *res, unsigned nres,
			  char *buf, size_t cap);

/* Plans reads covering regs[0..n): sorted by (fc, addr), one fc per block,
 * merged while the block stays <= PROFILE_MAX_BLOCK registers and holes are at
 * most PROFILE_PLAN_MAX_GAP registers.  A SunSpec sf register is not added
 * automatically: list it in regs.  Returns the number of blocks, -ENOSPC if
 * cap is too small, -EINVAL if a register is wider than a block. */
int profile_plan(const struct reg_def *regs, unsigned n, struct mb_block *ret, unsigned cap);

/* Plans the short-poll reads of p: its [key] rows plus their sf registers;
 * for a profile with short_reads_fields, the registers of every reading
 * field (and sf), each block inside one of p->blocks, plus the [key] rows
 * outside them.  Returns the number of blocks, -ENOSPC or -E2BIG. */
int profile_plan_key(const struct profile *p, struct mb_block *ret, unsigned cap);

/* Plans the reads for one register d plus its sf register (e.g. the 10 Hz
 * frequency read of p->frequency).  Returns the number of blocks (1 or 2). */
int profile_plan_one(const struct reg_def *d, struct mb_block *ret, unsigned cap);

/* Raw map for the signed payload: {"<address>": raw u16 value, ...} of every
 * register of every successful block.  Address-keyed like the original
 * gateway: where an input and a holding block cover the same address the
 * holding value wins.  Returns a new reference or NULL on allocation failure. */
json_t *profile_raw_json(const struct block_result *res, unsigned nres);

/* Frees a heap profile (p->heap); does nothing for static profiles and NULL. */
void profile_free(const struct profile *p);

/* ---- encode side (egw-sim) ---------------------------------------------- */

/* A device's register space: holding and input, 65536 registers each, with a
 * "defined" bitmap.  Opaque (declared above). */

/* Returns 0 or -ENOMEM. */
int regimage_new(struct regimage **ret);
void regimage_free(struct regimage *img);

/* Copies count registers from (fc, addr).  Returns 0, -EINVAL (bad fc, count 0
 * or past 65535), or -(EGW_EMB_EXCEPTION_BASE + 2) (illegal data address) if
 * any of them is undefined. */
int regimage_get(const struct regimage *img, uint8_t fc, uint16_t addr, uint16_t count,
		 uint16_t *out);

/* Sets and defines one register.  fc other than 3/4 is ignored. */
void regimage_set(struct regimage *img, uint8_t fc, uint16_t addr, uint16_t value);

bool regimage_defined(const struct regimage *img, uint8_t fc, uint16_t addr);

/* Encodes one value (in the unit of raw * scale, i.e. before mul/add) into
 * d->words words: inverse scale, rounding, word order; NAN or out of range
 * gives the type's "not implemented" sentinel.  STR/MLD/BYTES: -EINVAL. */
int reg_encode(const struct reg_def *d, double value, uint16_t *ret_words);

/* Fills every register of p from r: every block range and every table row is
 * defined (unmapped ones 0), mapped fields are encoded (inverse of mul/add,
 * scale or a chosen SunSpec sf, word order; NAN -> sentinel), the serial
 * register gets `serial` (NULL: left 0).  Returns 0 or -EINVAL. */
int profile_encode(const struct profile *p, const struct reading *r, const char *serial,
		   struct regimage *img);

/* ---- SunSpec ------------------------------------------------------------ */

/* Where the "SunS" marker is probed, in this order. */
#define SUNSPEC_NBASES 3
extern const uint16_t sunspec_bases[SUNSPEC_NBASES]; /* 0, 40000, 50000 */

#define SUNSPEC_END_ID 0xFFFF

/* One model found while walking the map. */
struct sunspec_model_hdr {
	uint16_t id;   /* model id */
	uint16_t addr; /* address of the model's ID register; points start at addr + 2 */
	uint16_t len;  /* L: number of registers after the 2-register header */
};

/* True if the two registers are "SunS" (0x5375 0x6e53). */
bool sunspec_is_marker(const uint16_t words[2]);

/* Walk step: hdr = the two registers read at addr (ID, L).  Returns 1 and fills
 * *ret_model and *ret_next (addr of the next header) for a model, 0 at the end
 * marker (ID 0xFFFF), -EGW_EPROTO if the map runs past 65535. */
int sunspec_next(const uint16_t hdr[2], uint16_t addr, struct sunspec_model_hdr *ret_model,
		 uint16_t *ret_next);

/* The models of the "sunspec" template profile (SunS at 40000). */
#define SUNSPEC_TEMPLATE_NMODELS 5
extern const struct sunspec_model_hdr sunspec_template_models[SUNSPEC_TEMPLATE_NMODELS];

/* True if egw knows model id (1, 101-103, 111-113, 120-124, 160, 201-204,
 * 701, 702, 713, 714, 802); 121 and 123 are walked past, not read. */
bool sunspec_model_known(uint16_t id);

/* Builds a heap profile for a device whose "SunS" marker is at base_addr, from
 * the models discovered (unknown ids are skipped; the first meter model makes
 * it a meter, a battery model a hybrid; only the first common model and the
 * first meter model are read: later ones belong to other devices behind it).  Blocks are planned per model (sf
 * registers are inside the model, so each value is read with its sf).  Free
 * with profile_free().  Returns 0, -ENOMEM, -EGW_EPROFILE (no known model). */
int sunspec_build_profile(uint16_t base_addr, const struct sunspec_model_hdr *models, unsigned n,
			  struct profile **ret);

/* The same for a brand's SunSpec profile `as` (solaredge, fronius, ...: a
 * static profile with sunspec_base set): the profile built from the walk
 * carries as's name, brand, family and dtype.  as NULL or the generic
 * "sunspec" template: as sunspec_build_profile. */
int sunspec_build_as(const struct profile *as, uint16_t base_addr,
		     const struct sunspec_model_hdr *models, unsigned n, struct profile **ret);
