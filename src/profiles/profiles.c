/* The list of built-in profiles. */
#include <strings.h>

#include "profiles/table.h"

static const struct profile *const all[] = {
	&profile_huawei,    &profile_huawei_hybrid, &profile_sungrow, &profile_sungrow_sf,
	&profile_solaredge, &profile_solaredge_us,  &profile_fronius, &profile_fronius_sf,
	&profile_sma,       &profile_growatt,       &profile_goodwe,  &profile_sofar,
	&profile_solis,     &profile_solis_hybrid,  &profile_deye,    &profile_deye_micro,
	&profile_solax,     &profile_ferroamp,      &profile_sdm630,  &profile_lqt40s,
	&profile_unknown,   &profile_sunspec,
};

const struct profile *profile_find(const char *name)
{
	if (!name)
		return NULL;
	for (unsigned i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (strcasecmp(all[i]->name, name) == 0)
			return all[i];
	return NULL;
}

const struct profile *const *profile_all(unsigned *ret_n)
{
	*ret_n = sizeof(all) / sizeof(all[0]);
	return all;
}
