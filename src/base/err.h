/* Error codes.  Functions that can fail return int: >= 0 on success, -errno
 * or -EGW_E* on failure.  egw's own codes live above the errno range; Modbus
 * exception codes map to EGW_EMB_EXCEPTION_BASE + code.  egw_strerror()
 * names any of them. */
#pragma once

enum {
	EGW_ERR_BASE = 4096,
	/* Modbus exception responses: -(EGW_EMB_EXCEPTION_BASE + exception code) */
	EGW_EMB_EXCEPTION_BASE = EGW_ERR_BASE, /* + 1..255 */
	EGW_EFRAME = EGW_ERR_BASE + 256,       /* malformed frame */
	EGW_ECRC,                              /* RTU CRC mismatch */
	EGW_ETID,                              /* Modbus transaction id mismatch */
	EGW_EPROTO,                            /* protocol id / unit id / function mismatch */
	EGW_ELENGTH,                           /* length field disagrees with data */
	EGW_EFUNCTION,                         /* unsupported function code */
	EGW_EUNAVAILABLE,                      /* value is a "not implemented" sentinel */
	EGW_EJSON,                             /* malformed JSON */
	EGW_ESCHEMA,                           /* JSON valid but violates the schema */
	EGW_ESIGNER,                           /* signer (secure element) failure */
	EGW_ESTORE,                            /* store failure */
	EGW_EBACKEND,                          /* backend rejected or failed */
	EGW_EAUTH,                             /* missing or wrong credentials */
	EGW_EPROFILE,                          /* unknown profile or profile mismatch */
	EGW_EBADSIG,                           /* signature does not verify */
	EGW_ENOHOST,                           /* host name does not resolve */
	EGW_ELOGGER,                           /* a Solarman logger of another serial answered */
	EGW_ERR_END
};

/* A static string describing err (negative or positive, errno or EGW_E*). */
const char *egw_strerror(int err);
