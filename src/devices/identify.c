/* Identification: the serial register of the profile, the frequency
 * fallback, and the SunSpec model walk. */
#include "devices/device_int.h"
#include "devices/identify.h"

/* ---- the rules (identify.h) ----------------------------------------------- */

int ident_block(const struct reg_def *r, struct mb_block *ret)
{
	return device_plan_single(r, ret);
}

/* An answer as the decoders take it (heap: it is 254 bytes). */
static struct block_result *answer(const struct mb_block *b, const uint16_t *regs, unsigned count)
{
	struct block_result *br = malloc(sizeof(*br));

	if (!br)
		return NULL;
	br->b = *b;
	br->b.count = (uint16_t)MIN(count, (unsigned)PROFILE_MAX_BLOCK);
	br->err = 0;
	memcpy(br->regs, regs, br->b.count * sizeof(uint16_t));
	return br;
}

int ident_serial(const struct profile *p, const struct mb_block *b, const uint16_t *regs,
		 unsigned count, char *buf, size_t cap)
{
	struct block_result *br = answer(b, regs, count);
	int r;

	if (!br)
		return -ENOMEM;
	r = profile_decode_serial(p, br, 1, buf, cap);
	free(br);
	return r == 0 ? -EGW_EUNAVAILABLE : r;
}

int ident_frequency(const struct profile *p, const struct mb_block *b, const uint16_t *regs,
		    unsigned count)
{
	struct block_result *br = answer(b, regs, count);
	double hz;
	int r;

	if (!br)
		return -ENOMEM;
	r = profile_decode_value(p->frequency, br, 1, &hz);
	free(br);
	if (r < 0)
		return r;
	return hz >= IDENT_HZ_MIN && hz <= IDENT_HZ_MAX ? 0 : -EGW_EPROFILE;
}

void ident_sunspec_common(const uint16_t *regs, unsigned count, char *mn, size_t mn_cap, char *sn,
			  size_t sn_cap)
{
	mn[0] = sn[0] = 0;
	if (count < IDENT_SS_COMMON_WORDS)
		return;
	reg_ascii(regs, 16, mn, mn_cap);
	reg_ascii(regs + 48, 16, sn, sn_cap);
}

/* ---- identification ------------------------------------------------------- */

void device_set_profile(struct device *d, const struct profile *p)
{
	struct mb_block *full = NULL;
	struct block_result *res;
	int nkey = 0;
	unsigned cap;

	if (p->nblocks) {
		full = calloc(p->nblocks, sizeof(*full));
		if (!full)
			return;
		memcpy(full, p->blocks, p->nblocks * sizeof(*full));
	}
	/* without a short plan (nkey 0) every poll reads the blocks */
	nkey = profile_plan_key(p, d->key, DEV_KEY_BLOCKS);
	if (nkey < 0)
		nkey = 0;
	cap = MAX(p->nblocks, (unsigned)nkey);
	res = calloc(cap ? cap : 1, sizeof(*res));
	if (!res) {
		free(full);
		return;
	}
	free(d->full);
	free(d->res);
	d->full = full;
	d->nfull = p->nblocks;
	d->nkey = (unsigned)nkey;
	d->res = res;
	d->prof = p;
}

static void identity_found(struct device *d, const char *serial)
{
	if (d->identified && strcmp(d->serial, serial) != 0) {
		char old[DEV_SERIAL_LEN];
		snprintf(old, sizeof(old), "%s", d->serial);
		snprintf(d->serial, sizeof(d->serial), "%s", serial);
		d->st.identity_changes++;
		/* A different unit answers at this address: its totals start afresh. */
		reading_mono_init(&d->mono);
		d->have_reading = false;
		if (d->set->hooks.on_identity_change)
			d->set->hooks.on_identity_change(d->set->ud, d, old, serial);
	} else {
		snprintf(d->serial, sizeof(d->serial), "%s", serial);
	}
	d->identified = true;
	device_go(d, DEV_POLLING, "identified %.40s", d->serial);
}

/* No serial register: the MAC of the host (from the ARP table) is the identity,
 * or, where there is none (loopback, serial lines), the address itself. */
static void fallback_identity(const struct device *d, char *buf, size_t cap)
{
	FILE *f = d->conf.kind != MB_TRANSPORT_RTU ? fopen("/proc/net/arp", "re") : NULL;
	char line[256], ip[64], hw[64];

	if (f) {
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "%63s %*s %*s %63s", ip, hw) == 2 &&
			    strcmp(ip, d->conf.host) == 0 && strcmp(hw, "00:00:00:00:00:00") != 0) {
				snprintf(buf, cap, "%s", hw);
				fclose(f);
				return;
			}
		}
		fclose(f);
	}
	if (d->conf.kind == MB_TRANSPORT_RTU)
		snprintf(buf, cap, "%.60s#%u", d->conf.serial_port, d->conf.unit);
	else
		snprintf(buf, cap, "%.60s:%u#%u", d->conf.host, d->conf.port, d->conf.unit);
}

void device_start_identify(struct device *d)
{
	struct mb_block b;
	int r;

	if (d->conf.sunspec) {
		d->ss_base_i = 0;
		d->ss_n = 0;
		b = (struct mb_block){ .fc = REG_FC_HOLDING, .addr = sunspec_bases[0], .count = 2 };
		r = device_send(d, REQ_SS_MARKER, 0, &b);
	} else if (d->prof->serial && ident_block(d->prof->serial, &b) == 0) {
		r = device_send(d, REQ_IDENT, 0, &b);
	} else if (d->prof->frequency && ident_block(d->prof->frequency, &b) == 0) {
		r = device_send(d, REQ_FREQ_ID, 0, &b);
	} else {
		/* Nothing to identify with: the address is the identity. */
		char id[DEV_SERIAL_LEN];
		fallback_identity(d, id, sizeof(id));
		device_go(d, DEV_IDENTIFYING, "no identity register");
		identity_found(d, id);
		return;
	}
	if (r < 0)
		device_connect_failed(d, r);
}

void device_on_ident(struct device *d, const struct dev_req *q, int err, const uint16_t *regs,
		     unsigned count)
{
	char serial[DEV_SERIAL_LEN];
	int r;

	if (device_link_error(err)) {
		device_connect_failed(d, err);
		return;
	}
	device_go(d, DEV_IDENTIFYING, "connected");
	if (err < 0) {
		device_identify_failed(d, "serial", err);
		return;
	}
	if (q->kind == REQ_FREQ_ID) {
		r = ident_frequency(d->prof, &q->b, regs, count);
		if (r < 0) {
			device_identify_failed(d, "frequency identity", r);
			return;
		}
		fallback_identity(d, serial, sizeof(serial));
		identity_found(d, serial);
		return;
	}
	r = ident_serial(d->prof, &q->b, regs, count, serial, sizeof(serial));
	if (r < 0) {
		device_identify_failed(d, "serial", r);
		return;
	}
	identity_found(d, serial);
}

static void ss_walk_next(struct device *d, uint16_t addr)
{
	struct mb_block b = { .fc = REG_FC_HOLDING, .addr = addr, .count = 2 };
	int r = device_send(d, REQ_SS_MODEL, 0, &b);
	if (r < 0)
		device_identify_failed(d, "SunSpec walk", r);
}

void device_on_ss_marker(struct device *d, int err, const uint16_t *regs, unsigned count)
{
	if (d->fsm.state == DEV_CONNECTING) {
		/* a host name that does not resolve never connected either */
		if (device_link_error(err) || err == -EGW_ENOHOST) {
			device_connect_failed(d, err);
			return;
		}
		device_go(d, DEV_IDENTIFYING, "connected");
	}
	if (err == 0 && count >= 2 && sunspec_is_marker(regs)) {
		d->ss_base = sunspec_bases[d->ss_base_i];
		ss_walk_next(d, (uint16_t)(d->ss_base + 2));
		return;
	}
	if (device_link_error(err)) {
		device_identify_failed(d, "SunSpec probe", err);
		return;
	}
	if (++d->ss_base_i >= SUNSPEC_NBASES) {
		device_identify_failed(d, "SunSpec", -EGW_EPROFILE);
		return;
	}
	struct mb_block b = { .fc = REG_FC_HOLDING,
			      .addr = sunspec_bases[d->ss_base_i],
			      .count = 2 };
	int r = device_send(d, REQ_SS_MARKER, 0, &b);
	if (r < 0)
		device_identify_failed(d, "SunSpec probe", r);
}

static void ss_finish(struct device *d)
{
	struct profile *p = NULL;
	int r = sunspec_build_as(d->conf.profile, d->ss_base, d->ss_models, d->ss_n, &p);
	struct mb_block b;

	if (r < 0) {
		device_identify_failed(d, "SunSpec models", r);
		return;
	}
	if (d->heap_prof && d->prof == d->heap_prof)
		d->prof = d->conf.profile;
	profile_free(d->heap_prof);
	d->heap_prof = p;
	device_set_profile(d, p);
	if (d->prof != p) {
		device_identify_failed(d, "SunSpec profile", -ENOMEM);
		return;
	}
	if (p->serial && ident_block(p->serial, &b) == 0) {
		r = device_send(d, REQ_IDENT, 0, &b);
		if (r < 0)
			device_identify_failed(d, "serial", r);
		return;
	}
	char id[DEV_SERIAL_LEN];
	fallback_identity(d, id, sizeof(id));
	identity_found(d, id);
}

void device_on_ss_model(struct device *d, const struct dev_req *q, int err, const uint16_t *regs,
			unsigned count)
{
	struct sunspec_model_hdr m;
	uint16_t next;
	int r;

	if (err < 0 || count < 2) {
		/* Some devices answer an exception instead of the end marker. */
		if (d->ss_n && !device_link_error(err)) {
			ss_finish(d);
			return;
		}
		device_identify_failed(d, "SunSpec walk", err < 0 ? err : -EGW_EFRAME);
		return;
	}
	r = sunspec_next(regs, q->b.addr, &m, &next);
	if (r < 0) {
		device_identify_failed(d, "SunSpec walk", r);
		return;
	}
	if (r == 0 || d->ss_n >= DEV_MAX_MODELS) {
		ss_finish(d);
		return;
	}
	d->ss_models[d->ss_n++] = m;
	ss_walk_next(d, next);
}
