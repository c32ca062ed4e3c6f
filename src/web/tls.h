/* HTTPS listener: a second libmicrohttpd daemon serving the same routes as
 * the plain one (web.c) over TLS, on http.bind:http.tls_port, driven by the
 * same loop (its own epoll fd watch and timeout task).
 *
 * The certificate: http.tls_cert / http.tls_key when set, else
 * <state-dir>/https-cert.pem (0644) and <state-dir>/https-key.pem (0600),
 * generated at the first start that finds neither: a self-signed X.509 v3
 * certificate for an ECDSA P-256 key of its own (never the device's signing
 * key), valid 10 years, subjectAltName the host name, <host>.local,
 * localhost, 127.0.0.1, ::1 and the machine's IPv4 addresses of that moment.
 * A pair that exists but does not load is never overwritten: HTTPS stays off
 * and /api/state says why (delete both files to get a new pair).
 *
 * Nothing here stops egwd: a missing TLS build of libmicrohttpd, a bad
 * certificate or a taken port leave the plain listener serving, with the
 * reason in the log and in /api/state under "https" (enabled, listening,
 * address, port, fingerprint_sha256, not_after, cert, error); a port that
 * cannot be had is tried again every 5 s.  Changes of
 * http.tls, http.tls_port, http.tls_cert, http.tls_key, http.bind and
 * http.max_connections apply at run time: a new listener starts before the
 * old one stops, so a failed move keeps the old one.  Certificate files
 * replaced in place are read at the next start (or the next settings change
 * while HTTPS is failing).  http.max_connections caps each listener on its
 * own: the HTTPS one cannot use up the plain one's connections. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct egw;
struct web;
struct web_tls;
struct sockaddr_in;
struct MHD_Daemon;
struct MHD_OptionItem;

/* A certificate and its key, as PEM text (what libmicrohttpd takes). */
struct tls_cert {
	char *cert_pem;
	char *key_pem;        /* cleansed when freed */
	char fingerprint[96]; /* SHA-256 of the DER certificate, "AB:CD:..." */
	char not_after[32];   /* "2036-12-03T08:00:00Z" */
};

/* Loads the pair at cert_path/key_path.  With generate, when either file is
 * missing a new pair is written first (see above) and *ret_created is set.
 * Returns 0, -ENOENT (a file is missing and generate is false), -EINVAL (not
 * PEM, not a certificate and key, or the key does not match the
 * certificate), -EFBIG (a file over 64 KiB), -ENOMEM, -EIO (OpenSSL failed)
 * or -errno; err gets a sentence naming the file on failure. */
int tls_cert_load_or_create(const char *cert_path, const char *key_path, bool generate,
			    struct tls_cert *ret, bool *ret_created, char *err, size_t errlen);
void tls_cert_clear(struct tls_cert *c);

/* The listener.  Returns 0 (whatever became of HTTPS) or -ENOMEM. */
int web_tls_new(struct web *w, struct egw *e, struct web_tls **ret);
/* Stops the listener; its connections close.  Accepts NULL. */
void web_tls_free(struct web_tls *t);
/* Settings changed: moves, restarts or stops the listener (shortly after, on
 * the loop, once the answer to the request that changed them is out). */
void web_tls_apply(struct web_tls *t);
/* Whether t (which may be NULL) is listening on exactly sin. */
bool web_tls_listens_on(const struct web_tls *t, const struct sockaddr_in *sin);
/* Runs the listener soon: connections of its daemon were resumed, which
 * libmicrohttpd only serves on a later run.  Accepts NULL. */
void web_tls_kick(struct web_tls *t);

/* web.c: a daemon with the plain listener's handlers and limits, with the
 * extra options tls (NULL: plain).  NULL on failure, *err = -errno. */
struct MHD_Daemon *web_start_daemon(struct web *w, const struct sockaddr_in *sin, unsigned maxc,
				    const struct MHD_OptionItem *tls, int *err);
/* web.c: resumes every suspended connection (live streams end, held answers
 * go out), as libmicrohttpd will not stop a daemon that has any. */
void web_release_suspended(struct web *w);
