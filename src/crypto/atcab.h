/* Microchip cryptoauthlib, the ATECC608's library (built when it is
 * installed: EGW_HAVE_ATECC).  Calls used: atcab_init, atcab_release,
 * atcab_read_serial_number, atcab_get_pubkey, atcab_sign (signer.c), and
 * for --chip-info and --chip-provision atcab_info, atcab_info_base,
 * atcab_read_config_zone, atcab_read_bytes_zone, atcab_write_bytes_zone,
 * atcab_is_config_locked, atcab_is_data_locked, atcab_lock_config_zone_crc,
 * atcab_genkey, atcab_lock_data_zone and atCRC. */
#pragma once
#include "egw-config.h"

#if EGW_HAVE_ATECC
#include <cryptoauthlib.h>
#endif
