/* Generic fallback profile "unknown": only the grid frequency at holding 0.
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row. */
#include "profiles/table.h"

static const struct reg_def unknown_regs[] = {
	REG_MAP(0, FH, 1, U16, WB, KEY, 0.01, "Hz", "Grid frequency", RF_METER_HZ, 1),
};

const struct profile profile_unknown = {
	.name = "unknown",
	.brand = "unknown",
	.family = "unknown",
	.dtype = "inverter",
	PROFILE_TABLE(unknown_regs),
	.frequency = &unknown_regs[0],
};
