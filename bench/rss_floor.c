/*
 * rss-floor: the memory that egwd's libraries cost by themselves.
 *
 * Linked against exactly the libraries egwd links (meson's egw_deps), it
 * uses each of them once, the least egwd could: one P-256 key and one
 * ES256 signature (OpenSSL), one SQLite database in WAL mode with one row,
 * one libcurl multi transfer (to a closed loopback port), one
 * libmicrohttpd daemon on a loopback port without threads, one jansson
 * round trip, one libmosquitto client object.  Then it prints its own
 * RSS, PSS and private memory (kB, /proc/self/smaps_rollup), the same
 * figures bench/http.sh reads for egwd.  egwd's private memory minus this
 * floor is what egwd's own code and data cost.
 *
 *   rss-floor DIR        (DIR: a scratch directory for the SQLite file)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "base/mem.h"
#include "egw-config.h"
#if EGW_HAVE_MQTT
#include <mosquitto.h>
#endif

static long
status_kb(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

static int
sign_once(void)
{
	unsigned char digest[32] = { 1 }, sig[80];
	size_t siglen = sizeof(sig);
	EVP_PKEY *key = EVP_EC_gen("P-256");
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = key != NULL && ctx != NULL &&
	    EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestSign(ctx, sig, &siglen, digest, sizeof(digest)) == 1;

	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(key);
	return ok ? 0 : -1;
}

static int
store_once(const char *dir)
{
	char path[4096];
	sqlite3 *db = NULL;
	int rc;

	snprintf(path, sizeof(path), "%s/floor.db", dir);
	rc = sqlite3_open(path, &db);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db,
		    "PRAGMA journal_mode=WAL;"
		    "CREATE TABLE IF NOT EXISTS b(seq INTEGER PRIMARY KEY, jwt BLOB);"
		    "INSERT INTO b(jwt) VALUES(x'00');"
		    "SELECT count(*) FROM b;", NULL, NULL, NULL);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

static int
curl_once(void)
{
	CURLM *multi;
	CURL *easy;
	int running = 1, rounds = 0;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	multi = curl_multi_init();
	easy = curl_easy_init();
	if (multi == NULL || easy == NULL)
		return -1;
	/* Port 1 on loopback is closed: a connect that fails at once. */
	curl_easy_setopt(easy, CURLOPT_URL, "http://127.0.0.1:1/");
	curl_multi_add_handle(multi, easy);
	while (running > 0 && rounds++ < 100) {
		curl_multi_perform(multi, &running);
		curl_multi_poll(multi, NULL, 0, 10, NULL);
	}
	curl_multi_remove_handle(multi, easy);
	curl_easy_cleanup(easy);
	curl_multi_cleanup(multi);
	return 0;
}

static enum MHD_Result
answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *data, size_t *size, void **state)
{
	(void)cls; (void)c; (void)url; (void)method; (void)version;
	(void)data; (void)size; (void)state;
	return MHD_NO;
}

int
main(int argc, char **argv)
{
	struct MHD_Daemon *mhd;
	struct sockaddr_in lo = { .sin_family = AF_INET };
	struct mem_usage u;
	json_t *j;
	char *s;

	if (argc != 2) {
		fprintf(stderr, "usage: rss-floor DIR\n");
		return 2;
	}
	printf("at exec: VmRSS %ld kB\n", status_kb("VmRSS"));

	if (sign_once() < 0 || store_once(argv[1]) < 0 || curl_once() < 0) {
		fprintf(stderr, "rss-floor: a library call failed\n");
		return 1;
	}
	/* 127.0.0.1, port 0 (the kernel picks one); no MHD threads. */
	lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	mhd = MHD_start_daemon(MHD_USE_ERROR_LOG, 0, NULL, NULL, answer, NULL,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&lo, MHD_OPTION_END);
	if (mhd == NULL) {
		fprintf(stderr, "rss-floor: MHD_start_daemon: %s\n", strerror(errno));
		return 1;
	}
	j = json_pack("{s:s, s:I}", "message", "floor", "seq", (json_int_t)1);
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	j = json_loads(s, 0, NULL);
	free(s);
	json_decref(j);
#if EGW_HAVE_MQTT
	mosquitto_lib_init();
	mosquitto_destroy(mosquitto_new("floor", true, NULL));
#endif
	mem_trim();
	mem_usage_read(&u);
	printf("after one use of each library: rss %llu kB, pss %llu kB, private %llu kB "
	    "(dirty %llu kB)\n", (unsigned long long)u.rss_kb, (unsigned long long)u.pss_kb,
	    (unsigned long long)u.private_kb, (unsigned long long)u.private_dirty_kb);
	MHD_stop_daemon(mhd);
	return 0;
}
