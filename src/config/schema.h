/* The settings schema: one row per key, the only place a key is declared.
 * settings.c expands it into its const validation table; settings.h expands
 * it into struct settings_values, the typed view every module reads.
 *
 *   X(field, "dotted.key", TYPE, default and bounds)
 *
 * field   the key with each '.' written '_' (test_settings holds the two
 *         together); it names the member of struct settings_values.
 * TYPE    the member's C type and what validation accepts:
 *           INT                       int64_t; default first, then .min, .max
 *           BOOL                      bool; default 0 or 1
 *           STR, ENUM, URL, HOST,     const char *, default .def_str; ENUM
 *           BIND, I2C_BUS             names its .values list (settings.c),
 *                                     URL is "" or http(s)://, HOST an IP
 *                                     literal or host name, BIND an IPv4
 *                                     literal, I2C_BUS "" or /dev/i2c-N,
 *                                     i2c-N, N
 *           URL_LIST, DEVICES,        const json_t *, an array (DEVICES goes
 *           ARRAY, NAME_LIST          through devices/devconf.h)
 *         .flags = SF_SECRET masks the value in every answer ("***").
 *
 * Adding a key is this one line, kept in key order, e.g.
 *
 *   X(fcr_enabled, "fcr.enabled", BOOL, 0) \
 *
 * and the code reads settings_values(s)->fcr_enabled; a misspelt field does
 * not compile.  MIB, DAY_S, SF_SECRET and the ENUM value lists are defined
 * in settings.c, where the table is expanded. */
#pragma once

/* clang-format off */
#define SETTINGS_SCHEMA(X) \
	X(backend_compression, "backend.compression", ENUM, .def_str = "auto", \
	  .values = compressions) \
	X(backend_data_urls, "backend.data_urls", URL_LIST) \
	X(backend_format, "backend.format", ENUM, .def_str = "egw", .values = batch_formats) \
	X(backend_graphql_url, "backend.graphql_url", URL, .def_str = "") \
	X(backend_max_in_flight, "backend.max_in_flight", INT, 8, .min = 1, \
	  .max = 64) /* UPLOADER_MAX_IN_FLIGHT */ \
	X(backend_rate_per_s, "backend.rate_per_s", INT, 100, .min = 1, .max = 10000) \
	X(backend_timeout_ms, "backend.timeout_ms", INT, 10000, .min = 100, .max = 600000) \
	X(devices, "devices", DEVICES) \
	/* grid services (grid/fcr.h; checked as a whole by fcr_conf_parse) */ \
	X(fcr_battery_device, "fcr.battery_device", STR, .def_str = "") \
	X(fcr_enabled, "fcr.enabled", BOOL, 0) \
	X(fcr_frequency_device, "fcr.frequency_device", STR, .def_str = "") \
	X(fcr_products, "fcr.products", ARRAY) \
	X(fcr_soc_max, "fcr.soc_max", INT, 90, .min = 0, .max = 100) \
	X(fcr_soc_min, "fcr.soc_min", INT, 10, .min = 0, .max = 100) \
	X(frequency_device, "frequency.device", INT, 0, .min = 0, .max = 255) \
	X(frequency_interval_ms, "frequency.interval_ms", INT, 100, .min = 10, .max = 60000) \
	X(harvest_batch_interval_ms, "harvest.batch_interval_ms", INT, 10000, .min = 10, \
	  .max = 3600000) \
	X(harvest_poll_interval_ms, "harvest.poll_interval_ms", INT, 1000, .min = 10, \
	  .max = 3600000) \
	X(http_allowed_hosts, "http.allowed_hosts", NAME_LIST) \
	X(http_bind, "http.bind", BIND, .def_str = "0.0.0.0") \
	X(http_max_body_bytes, "http.max_body_bytes", INT, 65536, .min = 1024, .max = 16 * MIB) \
	X(http_max_connections, "http.max_connections", INT, 64, .min = 1, .max = 4096) \
	X(http_port, "http.port", INT, 5000, .min = 1, .max = 65535) \
	X(http_request_timeout_s, "http.request_timeout_s", INT, 10, .min = 1, .max = 3600) \
	X(http_tls, "http.tls", BOOL, 1) \
	/* "": <state-dir>/https-cert.pem and https-key.pem */ \
	X(http_tls_cert, "http.tls_cert", STR, .def_str = "") \
	X(http_tls_key, "http.tls_key", STR, .def_str = "") \
	X(http_tls_port, "http.tls_port", INT, 5443, .min = 1, .max = 65535) \
	X(log_level, "log_level", ENUM, .def_str = "info", .values = log_levels) \
	X(memory_trim_interval_s, "memory.trim_interval_s", INT, 60, .min = 0, .max = 86400) \
	X(modbus_min_gap_ms, "modbus.min_gap_ms", INT, 0, .min = 0, .max = 10000) \
	X(modbus_timeout_ms, "modbus.timeout_ms", INT, 1000, .min = 10, .max = 60000) \
	X(modbus_write_allowlist, "modbus_write_allowlist", ARRAY) \
	X(mqtt_ca_file, "mqtt.ca_file", STR, .def_str = "") \
	X(mqtt_discovery_prefix, "mqtt.discovery_prefix", STR, .def_str = "homeassistant") \
	X(mqtt_enabled, "mqtt.enabled", BOOL, 0) \
	X(mqtt_host, "mqtt.host", HOST, .def_str = "localhost") \
	X(mqtt_password, "mqtt.password", STR, .def_str = "", .flags = SF_SECRET) \
	X(mqtt_port, "mqtt.port", INT, 1883, .min = 1, .max = 65535) \
	X(mqtt_tls, "mqtt.tls", BOOL, 0) \
	X(mqtt_topic_prefix, "mqtt.topic_prefix", STR, .def_str = "egw") \
	X(mqtt_username, "mqtt.username", STR, .def_str = "") \
	X(name_interval_ms, "name.interval_ms", INT, 10000, .min = 100, .max = 86400000) \
	X(name_refresh_interval_ms, "name.refresh_interval_ms", INT, 3600000, .min = 1000, \
	  .max = 30 * DAY_S * 1000) \
	X(proxy_allow_writes, "proxy.allow_writes", BOOL, 0) \
	X(proxy_bind, "proxy.bind", BIND, .def_str = "0.0.0.0") \
	X(proxy_enabled, "proxy.enabled", BOOL, 0) \
	X(proxy_max_age_ms, "proxy.max_age_ms", INT, 1000, .min = 0, .max = 3600000) \
	X(proxy_port, "proxy.port", INT, 5020, .min = 1, .max = 65535) \
	X(signer_backend, "signer.backend", ENUM, .def_str = "auto", .values = signer_backends) \
	X(signer_i2c_address, "signer.i2c_address", INT, 0x60, .min = 0, .max = 127) \
	X(signer_i2c_bus, "signer.i2c_bus", I2C_BUS, .def_str = "/dev/i2c-1") \
	X(store_max_age_s, "store.max_age_s", INT, 30 * DAY_S, .min = 60, .max = 3650 * DAY_S) \
	X(store_max_bytes, "store.max_bytes", INT, 512 * MIB, .min = MIB, \
	  .max = INT64_C(1) << 40) \
	X(uplink_mqtt_auth, "uplink.mqtt.auth", ENUM, .def_str = "jwt", .values = uplink_auths) \
	X(uplink_mqtt_ca_file, "uplink.mqtt.ca_file", STR, .def_str = "") /* "": system CAs */ \
	X(uplink_mqtt_enabled, "uplink.mqtt.enabled", BOOL, 0) \
	X(uplink_mqtt_host, "uplink.mqtt.host", HOST, .def_str = "localhost") \
	X(uplink_mqtt_jwt_lifetime_s, "uplink.mqtt.jwt_lifetime_s", INT, 3600, .min = 10, \
	  .max = 30 * DAY_S) \
	X(uplink_mqtt_max_in_flight, "uplink.mqtt.max_in_flight", INT, 8, .min = 1, .max = 64) \
	X(uplink_mqtt_password, "uplink.mqtt.password", STR, .def_str = "", \
	  .flags = SF_SECRET) /* auth "password" */ \
	X(uplink_mqtt_port, "uplink.mqtt.port", INT, 8883, .min = 1, .max = 65535) \
	X(uplink_mqtt_tls, "uplink.mqtt.tls", BOOL, 1) \
	X(uplink_mqtt_topic, "uplink.mqtt.topic", STR, .def_str = "egw/<serial>/batches") \
	X(uplink_mqtt_username, "uplink.mqtt.username", STR, .def_str = "") /* "": the serial */
/* clang-format on */
