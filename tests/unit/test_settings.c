/* Settings: defaults, every kind of validation error naming its key, layered
 * load/override/patch, masking, atomic save, --set parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/err.h"
#include "base/file.h"
#include "config/settings.h"

struct fixture {
	char dir[64];
	char path[128];
	struct settings *s;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/egw-test-settings-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/settings.json", fx->dir);
	if (settings_new(fx->path, &fx->s) < 0)
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	DIR *d = opendir(fx->dir);
	struct dirent *de;
	char p[400];
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", fx->dir, de->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(fx->dir);
	settings_free(fx->s);
	free(fx);
	return 0;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *read_file(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* True when reading key in a child process ends it with SIGABRT. */
static bool aborts(struct settings *s, const char *key)
{
	int status;
	pid_t pid = fork();
	if (pid == 0) {
		/* no core dump, no cmocka handler: just the assert's verdict */
		signal(SIGABRT, SIG_DFL);
		(void)settings_get_int(s, key);
		_exit(0);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void test_defaults(void **state)
{
	struct fixture *fx = *state;
	struct settings *s = fx->s;
	static const struct { const char *key; int64_t v; } ints[] = {
		{ "http.port", 5000 }, { "http.max_connections", 64 },
		{ "http.max_body_bytes", 65536 }, { "http.request_timeout_s", 10 },
		{ "harvest.poll_interval_ms", 1000 }, { "harvest.batch_interval_ms", 10000 },
		{ "frequency.interval_ms", 100 }, { "frequency.device", 0 },
		{ "name.interval_ms", 10000 }, { "name.refresh_interval_ms", 3600000 },
		{ "store.max_bytes", 512 << 20 }, { "store.max_age_s", 30 * 86400 },
		{ "signer.i2c_address", 0x60 }, { "modbus.min_gap_ms", 0 },
		{ "modbus.timeout_ms", 1000 }, { "mqtt.port", 1883 },
		{ "backend.rate_per_s", 100 }, { "backend.timeout_ms", 10000 },
	};
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		if (settings_get_int(s, ints[i].key) != ints[i].v)
			fail_msg("%s: %lld", ints[i].key, (long long)settings_get_int(s, ints[i].key));
	}
	assert_string_equal(settings_values(s)->signer_backend, "auto");
	assert_string_equal(settings_values(s)->signer_i2c_bus, "/dev/i2c-1");
	assert_string_equal(settings_values(s)->backend_graphql_url, "");
	assert_string_equal(settings_values(s)->log_level, "info");
	assert_string_equal(settings_values(s)->mqtt_topic_prefix, "egw");
	assert_string_equal(settings_values(s)->mqtt_discovery_prefix, "homeassistant");
	assert_false(settings_values(s)->mqtt_enabled);
	assert_false(settings_values(s)->mqtt_tls);
	assert_true(json_is_array(settings_values(s)->devices));
	assert_int_equal(json_array_size(settings_values(s)->devices), 0);
	assert_true(json_is_array(settings_values(s)->backend_data_urls));
	assert_true(json_is_array(settings_values(s)->modbus_write_allowlist));
	/* A key not in the schema is a programmer error: it asserts, it never
	 * reads silently as 0. */
	assert_true(aborts(s, "http.nope"));
	assert_true(aborts(s, "nope"));
	assert_true(aborts(s, "devices.x"));
	assert_false(aborts(s, "http.port"));
}

/* Each invalid document with the key and a fragment of the message it must give. */
static const struct bad {
	const char *doc, *key, *msg;
} bads[] = {
	{ "{\"http\":{\"port\":\"5000\"}}", "http.port", "expected an integer, got a string" },
	{ "{\"http\":{\"port\":5000.5}}", "http.port", "expected an integer" },
	{ "{\"http\":{\"port\":70000}}", "http.port", "70000 is out of range 1..65535" },
	{ "{\"http\":{\"port\":0}}", "http.port", "out of range" },
	{ "{\"http\":5}", "http", "expected an object" },
	{ "{\"foo\":1}", "foo", "unknown key" },
	{ "{\"http\":{\"prot\":1}}", "http.prot", "unknown key" },
	{ "{\"signer\":{\"backend\":\"tpm\"}}", "signer.backend",
	  "unknown value \"tpm\" (expected one of auto, software, atecc608)" },
	{ "{\"log_level\":\"loud\"}", "log_level", "unknown value" },
	{ "{\"signer\":{\"i2c_bus\":\"software\"}}", "signer.i2c_bus", "is not an I2C bus" },
	{ "{\"signer\":{\"i2c_bus\":\"/dev/i2c-256\"}}", "signer.i2c_bus", "is not an I2C bus" },
	{ "{\"signer\":{\"i2c_bus\":7}}", "signer.i2c_bus", "expected a string" },
	{ "{\"mqtt\":{\"enabled\":\"yes\"}}", "mqtt.enabled", "expected a boolean" },
	{ "{\"mqtt\":{\"password\":7}}", "mqtt.password", "expected a string" },
	{ "{\"backend\":{\"data_urls\":\"http://x\"}}", "backend.data_urls", "expected an array" },
	{ "{\"backend\":{\"data_urls\":[\"ftp://x\"]}}", "backend.data_urls[0]", "URL" },
	{ "{\"backend\":{\"graphql_url\":\"nope\"}}", "backend.graphql_url", "URL" },
	{ "{\"devices\":{}}", "devices", "expected an array" },
	{ "{\"devices\":[5]}", "devices[0]", "expected an object" },
	{ "{\"devices\":[{\"connection\":\"usb\",\"profile\":\"huawei\",\"host\":\"h\"}]}",
	  "devices[0].connection", "unknown value \"usb\"" },
	{ "{\"devices\":[{\"connection\":\"tcp\",\"profile\":\"huawei\",\"host\":\"h\"},"
	  "{\"connection\":\"tcp\",\"profile\":\"huawei\",\"host\":\"h\",\"port\":\"502\"}]}",
	  "devices[1].port", "expected an integer" },
	{ "{\"devices\":[{\"connection\":\"tcp\",\"profile\":\"huawei\",\"host\":\"h\",\"unit_id\":300}]}",
	  "devices[0].unit_id", "out of range 0..255" },
	{ "{\"devices\":[{\"connection\":\"tcp\",\"host\":\"h\"}]}", "devices[0].profile", "missing" },
	{ "{\"devices\":[{\"connection\":\"rtu\",\"profile\":\"huawei\"}]}", "devices[0].serial_port",
	  "missing" },
	{ "{\"devices\":[{\"connection\":\"tcp\",\"profile\":\"huawei\",\"host\":\"h\",\"colour\":1}]}",
	  "devices[0].colour", "unknown key" },
	{ "{\"devices\":[{\"connection\":\"rtu\",\"profile\":\"huawei\",\"serial_port\":\"/dev/ttyS0\","
	  "\"parity\":\"X\"}]}", "devices[0].parity", "unknown value" },
	{ "{\"devices\":[{\"connection\":\"tcp\",\"profile\":7,\"host\":\"h\"}]}",
	  "devices[0].profile", "expected a string" },
	{ "{\"store\":{\"max_bytes\":10}}", "store.max_bytes", "out of range" },
	{ "{\"backend\":{\"data_urls\":[\"http://a\",\"http://a\",\"http://a\",\"http://a\","
	  "\"http://a\",\"http://a\",\"http://a\",\"http://a\",\"http://a\"]}}",
	  "backend.data_urls", "more than 8 entries" },
	{ "[1,2]", "", "must be a JSON object" },
};

static void test_validation_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		struct settings_error err = { 0 };
		json_t *doc = json_loads(bads[i].doc, JSON_DECODE_ANY, NULL);
		assert_non_null(doc);
		int r = settings_validate(doc, &err);
		json_decref(doc);
		if (r != -EGW_ESCHEMA || strcmp(err.key, bads[i].key) != 0 ||
		    !strstr(err.msg, bads[i].msg))
			fail_msg("%s: r=%d key='%s' msg='%s'", bads[i].doc, r, err.key, err.msg);
	}
}

static void test_valid_document(void **state)
{
	struct settings_error err = { 0 };
	json_t *doc = json_loads(
		"{\"http\":{\"port\":8080},\"devices\":[{\"connection\":\"tcp\",\"host\":\"127.0.0.1\","
		"\"port\":5502,\"unit_id\":1,\"profile\":\"solaredge\",\"name\":\"roof\"},"
		"{\"connection\":\"rtu\",\"serial_port\":\"/dev/ttyUSB0\",\"baudrate\":9600,"
		"\"parity\":\"E\",\"stopbits\":1,\"unit_id\":2,\"profile\":\"huawei\","
		"\"poll_interval_ms\":2000}],"
		"\"backend\":{\"data_urls\":[\"https://a.example/data\"],\"graphql_url\":\"\"},"
		"\"mqtt\":{\"enabled\":true,\"password\":\"pw\"},\"log_level\":\"debug\"}", 0, NULL);
	(void)state;
	assert_non_null(doc);
	assert_int_equal(settings_validate(doc, &err), 0);
	json_decref(doc);
}

static void test_load_file(void **state)
{
	struct fixture *fx = *state;
	struct settings_error err = { 0 };

	/* missing file: defaults, no error, nothing created */
	assert_int_equal(settings_load(fx->s, &err), 0);
	assert_int_equal(access(fx->path, F_OK), -1);

	write_file(fx->path, "{\"http\": {\"port\": 8081}, \"harvest\": {\"batch_interval_ms\": 100}}");
	assert_int_equal(settings_load(fx->s, &err), 0);
	assert_int_equal(settings_values(fx->s)->http_port, 8081);
	assert_int_equal(settings_values(fx->s)->harvest_batch_interval_ms, 100);
	assert_int_equal(settings_values(fx->s)->harvest_poll_interval_ms, 1000);

	/* malformed JSON: error with line and column, previous settings kept */
	write_file(fx->path, "{\n  \"http\": {\"port\": 80,,}\n}");
	assert_int_equal(settings_load(fx->s, &err), -EGW_EJSON);
	assert_string_equal(err.key, "");
	assert_non_null(strstr(err.msg, "settings.json:2:"));
	assert_non_null(strstr(err.msg, "malformed JSON"));
	assert_int_equal(settings_values(fx->s)->http_port, 8081);

	/* invalid value: names the key, file left as it was */
	write_file(fx->path, "{\"http\": {\"port\": 99999}}");
	assert_int_equal(settings_load(fx->s, &err), -EGW_ESCHEMA);
	assert_string_equal(err.key, "http.port");
	assert_int_equal(settings_values(fx->s)->http_port, 8081);
	assert_string_equal(read_file(fx->path), "{\"http\": {\"port\": 99999}}");

	/* duplicate keys are rejected, not silently merged */
	write_file(fx->path, "{\"log_level\": \"info\", \"log_level\": \"debug\"}");
	assert_int_equal(settings_load(fx->s, &err), -EGW_EJSON);
}

static void test_layers_and_patch(void **state)
{
	struct fixture *fx = *state;
	struct settings_error err = { 0 };
	json_t *v;

	write_file(fx->path, "{\"mqtt\": {\"password\": \"s3cret\", \"username\": \"u\"}}");
	assert_int_equal(settings_load(fx->s, &err), 0);

	/* override wins over the file and survives a reload */
	v = json_integer(6000);
	assert_int_equal(settings_override(fx->s, "http.port", v, &err), 0);
	json_decref(v);
	assert_int_equal(settings_load(fx->s, &err), 0);
	assert_int_equal(settings_values(fx->s)->http_port, 6000);

	/* a bad set names the key and changes nothing */
	uint64_t gen = settings_generation(fx->s);
	v = json_string("x");
	assert_int_equal(settings_set(fx->s, "modbus.timeout_ms", v, &err), -EGW_ESCHEMA);
	assert_string_equal(err.key, "modbus.timeout_ms");
	assert_int_equal(settings_set(fx->s, "no.such", v, &err), -EGW_ESCHEMA);
	assert_string_equal(err.key, "no.such");
	json_decref(v);
	assert_int_equal(settings_generation(fx->s), gen);

	/* masked when served; "***" in a patch keeps the secret */
	json_t *doc = settings_to_json(fx->s, true);
	assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "mqtt"), "password")), "***");
	assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "mqtt"), "username")), "u");
	json_decref(doc);
	/* ... only for the host and port it was given for */
	json_t *patch = json_loads("{\"mqtt\": {\"password\": \"***\", \"host\": \"broker\"}}", 0, NULL);
	assert_int_equal(settings_patch(fx->s, patch, &err), -EGW_ESCHEMA);
	assert_string_equal(err.key, "mqtt.password");
	json_decref(patch);
	assert_string_equal(settings_values(fx->s)->mqtt_host, "localhost");
	patch = json_loads("{\"mqtt\": {\"password\": \"***\", \"username\": \"u2\"}}", 0, NULL);
	assert_int_equal(settings_patch(fx->s, patch, &err), 0);
	json_decref(patch);
	patch = json_loads("{\"mqtt\": {\"host\": \"broker\"}}", 0, NULL);
	assert_int_equal(settings_patch(fx->s, patch, &err), 0);
	json_decref(patch);
	assert_string_equal(settings_values(fx->s)->mqtt_password, "s3cret");
	assert_string_equal(settings_values(fx->s)->mqtt_host, "broker");
	assert_string_equal(settings_values(fx->s)->mqtt_username, "u2");
	/* the same for the MQTT uplink's password (its group is uplink.mqtt) */
	patch = json_loads("{\"uplink\": {\"mqtt\": {\"password\": \"p1\"}}}", 0, NULL);
	assert_int_equal(settings_patch(fx->s, patch, &err), 0);
	json_decref(patch);
	patch = json_loads("{\"uplink\": {\"mqtt\": {\"password\": \"***\", \"topic\": \"t/<serial>\"}}}",
	                   0, NULL);
	assert_int_equal(settings_patch(fx->s, patch, &err), 0);
	json_decref(patch);
	assert_string_equal(settings_values(fx->s)->uplink_mqtt_password, "p1");
	patch = json_loads("{\"uplink\": {\"mqtt\": {\"password\": \"***\", \"port\": 8884}}}", 0,
	                   NULL);
	assert_int_equal(settings_patch(fx->s, patch, &err), -EGW_ESCHEMA);
	assert_string_equal(err.key, "uplink.mqtt.password");
	json_decref(patch);

	/* URLs: credentials and key-like parameters masked; a masked URL posted
	 * back is the stored one only where it masks to exactly that */
	patch = json_loads("{\"backend\": {\"data_urls\": [\"https://a:b@h:8/d?api_key=k&x=1\"]}}",
	                   0, NULL);
	assert_int_equal(settings_patch(fx->s, patch, &err), 0);
	json_decref(patch);
	doc = settings_to_json(fx->s, true);
	assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(doc,
	                    "backend"), "data_urls"), 0)), "https://***@h:8/d?api_key=***&x=1");
	json_decref(doc);
	patch = json_loads("{\"backend\": {\"data_urls\": [\"https://***@h:8/d?api_key=***&x=1\"]}}",
	                   0, NULL);
	assert_int_equal(settings_patch(fx->s, patch, &err), 0);
	json_decref(patch);
	assert_string_equal(json_string_value(json_array_get(settings_values(fx->s)->backend_data_urls,
							     0)),
			    "https://a:b@h:8/d?api_key=k&x=1");
	patch = json_loads("{\"backend\": {\"data_urls\": [\"https://***@h:9/d?api_key=***&x=1\"]}}",
	                   0, NULL);
	assert_int_equal(settings_patch(fx->s, patch, &err), -EGW_ESCHEMA);
	assert_string_equal(err.key, "backend.data_urls[0]");
	json_decref(patch);

	patch = json_loads("{\"mqtt\": {\"port\": -1}}", 0, NULL);
	assert_int_equal(settings_patch(fx->s, patch, &err), -EGW_ESCHEMA);
	assert_string_equal(err.key, "mqtt.port");
	json_decref(patch);

	/* a patch of an overridden key wins over the override (and only that key) */
	v = json_integer(1200);
	assert_int_equal(settings_override(fx->s, "modbus.timeout_ms", v, &err), 0);
	json_decref(v);
	patch = json_loads("{\"modbus\": {\"timeout_ms\": 900}}", 0, NULL);
	assert_int_equal(settings_patch(fx->s, patch, &err), 0);
	json_decref(patch);
	assert_int_equal(settings_values(fx->s)->modbus_timeout_ms, 900);
	assert_int_equal(settings_values(fx->s)->http_port, 6000);

	/* saved file holds the file layer only: no override, real password */
	assert_int_equal(settings_save(fx->s), 0);
	const char *text = read_file(fx->path);
	assert_non_null(strstr(text, "\"s3cret\""));
	assert_non_null(strstr(text, "\"broker\""));
	assert_null(strstr(text, "6000"));
}

static void test_atomic_save(void **state)
{
	struct fixture *fx = *state;
	struct settings_error err = { 0 };
	struct stat st;
	json_t *v = json_integer(1234);

	write_file(fx->path, "{\"http\": {\"port\": 5001}}");
	assert_int_equal(stat(fx->path, &st), 0);
	ino_t old_ino = st.st_ino;
	assert_int_equal(settings_load(fx->s, &err), 0);
	assert_int_equal(settings_set(fx->s, "http.port", v, &err), 0);
	json_decref(v);
	assert_int_equal(settings_save(fx->s), 0);

	/* replaced by rename: new inode, mode 0600, no temp file left */
	assert_int_equal(stat(fx->path, &st), 0);
	assert_true(st.st_ino != old_ino);
	assert_int_equal(st.st_mode & 0777, 0600);
	DIR *d = opendir(fx->dir);
	struct dirent *de;
	int files = 0;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.') {
			files++;
			assert_null(strstr(de->d_name, ".tmp"));
		}
	closedir(d);
	assert_int_equal(files, 1);

	/* and it loads back */
	struct settings *s2;
	assert_int_equal(settings_new(fx->path, &s2), 0);
	assert_int_equal(settings_load(s2, &err), 0);
	assert_int_equal(settings_values(s2)->http_port, 1234);
	settings_free(s2);

	/* a failing write leaves nothing behind */
	char bad[200];
	snprintf(bad, sizeof(bad), "%s/no-such-dir/x.json", fx->dir);
	assert_int_equal(file_write_atomic(bad, "x", 1, 0600), -ENOENT);
}

static void test_parse_assignment(void **state)
{
	char key[64];
	json_t *v;
	(void)state;

	assert_int_equal(settings_parse_assignment("harvest.batch_interval_ms=100", key, sizeof(key), &v), 0);
	assert_string_equal(key, "harvest.batch_interval_ms");
	assert_true(json_is_integer(v));
	assert_int_equal(json_integer_value(v), 100);
	json_decref(v);

	assert_int_equal(settings_parse_assignment("mqtt.host=broker.local", key, sizeof(key), &v), 0);
	assert_string_equal(json_string_value(v), "broker.local");
	json_decref(v);

	assert_int_equal(settings_parse_assignment("mqtt.host=\"quoted\"", key, sizeof(key), &v), 0);
	assert_string_equal(json_string_value(v), "quoted");
	json_decref(v);

	assert_int_equal(settings_parse_assignment("mqtt.enabled=true", key, sizeof(key), &v), 0);
	assert_true(json_is_true(v));
	json_decref(v);

	assert_int_equal(settings_parse_assignment(
		"devices=[{\"connection\":\"tcp\",\"host\":\"127.0.0.1\",\"port\":5502,\"unit_id\":1,"
		"\"profile\":\"solaredge\"}]", key, sizeof(key), &v), 0);
	assert_string_equal(key, "devices");
	assert_true(json_is_array(v));
	assert_int_equal(json_array_size(v), 1);
	json_decref(v);

	/* value with '=' inside, and an empty value */
	assert_int_equal(settings_parse_assignment("a.b=x=y", key, sizeof(key), &v), 0);
	assert_string_equal(key, "a.b");
	assert_string_equal(json_string_value(v), "x=y");
	json_decref(v);
	assert_int_equal(settings_parse_assignment("mqtt.username=", key, sizeof(key), &v), 0);
	assert_string_equal(json_string_value(v), "");
	json_decref(v);

	/* a JSON-looking but broken value is taken as a string */
	assert_int_equal(settings_parse_assignment("k=[1,", key, sizeof(key), &v), 0);
	assert_string_equal(json_string_value(v), "[1,");
	json_decref(v);

	assert_int_equal(settings_parse_assignment("noequals", key, sizeof(key), &v), -EINVAL);
	assert_int_equal(settings_parse_assignment("=5", key, sizeof(key), &v), -EINVAL);
	assert_int_equal(settings_parse_assignment("abcdefgh=1", key, 4, &v), -EINVAL);
}

static void test_set_groups(void **state)
{
	struct fixture *fx = *state;
	struct settings_error err = { 0 };
	char key[64];
	json_t *v;

	/* a whole group merges; a bad member inside is named with its full key */
	assert_int_equal(settings_parse_assignment("mqtt={\"enabled\":true,\"port\":8883}", key,
						   sizeof(key), &v), 0);
	assert_int_equal(settings_override(fx->s, key, v, &err), 0);
	json_decref(v);
	assert_true(settings_values(fx->s)->mqtt_enabled);
	assert_int_equal(settings_values(fx->s)->mqtt_port, 8883);
	assert_string_equal(settings_values(fx->s)->mqtt_topic_prefix, "egw");

	assert_int_equal(settings_parse_assignment("mqtt={\"tls\":1}", key, sizeof(key), &v), 0);
	assert_int_equal(settings_override(fx->s, key, v, &err), -EGW_ESCHEMA);
	json_decref(v);
	assert_string_equal(err.key, "mqtt.tls");

	char buf[400];
	assert_string_equal(settings_error_str(&err, buf, sizeof(buf)),
			    "mqtt.tls: expected a boolean, got an integer");
}

/* The typed view: each member is named after its key, holds what the
 * document holds after every kind of change, and follows a rollback. */
#define NAME_ROW(field, key, type, ...) { #field, key },
static const struct { const char *field, *key; } names[] = { SETTINGS_SCHEMA(NAME_ROW) };
#undef NAME_ROW

static void check_typed(const struct settings *s)
{
	const struct settings_values *v = settings_values(s);
	const json_t *j;
#define CHECK_INT(field, key) assert_int_equal(v->field, json_integer_value(j))
#define CHECK_BOOL(field, key) assert_int_equal(v->field, json_is_true(j))
#define CHECK_STR(field, key) assert_string_equal(v->field, json_string_value(j))
#define CHECK_ENUM CHECK_STR
#define CHECK_URL CHECK_STR
#define CHECK_HOST CHECK_STR
#define CHECK_BIND CHECK_STR
#define CHECK_I2C_BUS CHECK_STR
#define CHECK_ARRAY(field, key) assert_ptr_equal(v->field, j)
#define CHECK_URL_LIST CHECK_ARRAY
#define CHECK_DEVICES CHECK_ARRAY
#define CHECK_NAME_LIST CHECK_ARRAY
#define CHECK(field, key, type, ...) \
	j = settings_get_json(s, key); \
	assert_non_null(j); \
	CHECK_##type(field, key);
	SETTINGS_SCHEMA(CHECK)
#undef CHECK
}

static void test_typed_values(void **state)
{
	struct fixture *fx = *state;
	struct settings_error err = { 0 };
	struct settings *snap;
	char want[128];
	json_t *patch;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(want, sizeof(want), "%s", names[i].key);
		for (char *p = want; *p; p++)
			if (*p == '.')
				*p = '_';
		if (strcmp(want, names[i].field) != 0)
			fail_msg("schema row \"%s\" names its member %s, expected %s", names[i].key,
				 names[i].field, want);
		if (i > 0 && strcmp(names[i - 1].key, names[i].key) >= 0)
			fail_msg("schema rows out of key order at \"%s\"", names[i].key);
	}
	check_typed(fx->s);
	assert_int_equal(settings_values(fx->s)->http_port, 5000);
	assert_false(settings_values(fx->s)->mqtt_enabled);

	snap = settings_snapshot(fx->s);
	assert_non_null(snap);
	patch = json_loads("{\"http\": {\"port\": 8081}, \"mqtt\": {\"enabled\": true, "
			   "\"host\": \"broker\"}, \"devices\": [{\"host\": \"10.0.0.5\", "
			   "\"profile\": \"sungrow\"}]}", 0, NULL);
	assert_non_null(patch);
	assert_int_equal(settings_patch(fx->s, patch, &err), 0);
	json_decref(patch);
	check_typed(fx->s);
	assert_int_equal(settings_values(fx->s)->http_port, 8081);
	assert_true(settings_values(fx->s)->mqtt_enabled);
	assert_string_equal(settings_values(fx->s)->mqtt_host, "broker");
	assert_int_equal(json_array_size(settings_values(fx->s)->devices), 1);

	json_t *port = json_integer(7000);
	assert_int_equal(settings_override(fx->s, "http.port", port, &err), 0);
	json_decref(port);
	check_typed(fx->s);
	assert_int_equal(settings_values(fx->s)->http_port, 7000);

	/* A refused change leaves the typed view as it was. */
	patch = json_loads("{\"http\": {\"port\": 70000}}", 0, NULL);
	assert_int_equal(settings_patch(fx->s, patch, &err), -EGW_ESCHEMA);
	json_decref(patch);
	assert_int_equal(settings_values(fx->s)->http_port, 7000);

	settings_rollback(fx->s, snap);
	check_typed(fx->s);
	assert_int_equal(settings_values(fx->s)->http_port, 5000);
	assert_false(settings_values(fx->s)->mqtt_enabled);
	assert_int_equal(json_array_size(settings_values(fx->s)->devices), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test(test_validation_errors),
		cmocka_unit_test(test_valid_document),
		cmocka_unit_test_setup_teardown(test_load_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layers_and_patch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atomic_save, setup, teardown),
		cmocka_unit_test(test_parse_assignment),
		cmocka_unit_test_setup_teardown(test_set_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_typed_values, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
