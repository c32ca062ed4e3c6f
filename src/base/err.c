#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static const char *const egw_errors[] = {
	[EGW_EFRAME - EGW_EFRAME] = "malformed frame",
	[EGW_ECRC - EGW_EFRAME] = "CRC mismatch",
	[EGW_ETID - EGW_EFRAME] = "transaction id mismatch",
	[EGW_EPROTO - EGW_EFRAME] = "protocol, unit or function mismatch",
	[EGW_ELENGTH - EGW_EFRAME] = "length field disagrees with data",
	[EGW_EFUNCTION - EGW_EFRAME] = "unsupported function code",
	[EGW_EUNAVAILABLE - EGW_EFRAME] = "value not available",
	[EGW_EJSON - EGW_EFRAME] = "malformed JSON",
	[EGW_ESCHEMA - EGW_EFRAME] = "value violates the schema",
	[EGW_ESIGNER - EGW_EFRAME] = "signer failure",
	[EGW_ESTORE - EGW_EFRAME] = "store failure",
	[EGW_EBACKEND - EGW_EFRAME] = "backend failure",
	[EGW_EAUTH - EGW_EFRAME] = "missing or wrong credentials",
	[EGW_EPROFILE - EGW_EFRAME] = "unknown or mismatched profile",
	[EGW_EBADSIG - EGW_EFRAME] = "signature does not verify",
	[EGW_ENOHOST - EGW_EFRAME] = "host name not found",
	[EGW_ELOGGER - EGW_EFRAME] = "data logger serial number mismatch",
};
_Static_assert(ARRAY_SIZE(egw_errors) == EGW_ERR_END - EGW_EFRAME, "one string per error code");

static const char *const mb_exceptions[] = {
	[1] = "Modbus exception 1: illegal function",
	[2] = "Modbus exception 2: illegal data address",
	[3] = "Modbus exception 3: illegal data value",
	[4] = "Modbus exception 4: server device failure",
	[5] = "Modbus exception 5: acknowledge",
	[6] = "Modbus exception 6: server device busy",
	[8] = "Modbus exception 8: memory parity error",
	[10] = "Modbus exception 10: gateway path unavailable",
	[11] = "Modbus exception 11: gateway target failed to respond",
};

const char *egw_strerror(int err)
{
	err = abs(err);
	if (err > EGW_EMB_EXCEPTION_BASE && err < EGW_EFRAME) {
		int code = err - EGW_EMB_EXCEPTION_BASE;
		if ((size_t)code < ARRAY_SIZE(mb_exceptions) && mb_exceptions[code])
			return mb_exceptions[code];
		return "Modbus exception (unknown code)";
	}
	if (err >= EGW_EFRAME && err < EGW_ERR_END)
		return egw_errors[err - EGW_EFRAME];
	if (err < EGW_ERR_BASE)
		return strerror(err);
	return "unknown error";
}
