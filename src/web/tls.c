#include "web/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/file.h"
#include "base/log.h"
#include "base/util.h"
#include "config/settings.h"
#include "egw.h"
#include "loop/loop.h"
#include "sched/sched.h"
#include "web/web.h"

#define PEM_MAX (64 * 1024)
#define VALID_DAYS 3650
/* A Raspberry Pi has no clock battery and may believe it is 1970 until NTP
 * answers; a certificate made then would have expired before it is used.
 * Its validity never starts before 2025-01-01. */
#define NOT_BEFORE_FLOOR ((time_t)1735689600)
/* A port that could not be had is tried again this often while HTTPS is
 * off because of it (another program held it at boot). */
#define RETRY_USEC (5 * USEC_PER_SEC)
/* TLS 1.2 and 1.3 only (GnuTLS priority string). */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* ---- certificate ------------------------------------------------------ */

void tls_cert_clear(struct tls_cert *c)
{
	if (!c)
		return;
	free(c->cert_pem);
	if (c->key_pem) {
		OPENSSL_cleanse(c->key_pem, strlen(c->key_pem));
		free(c->key_pem);
	}
	memset(c, 0, sizeof(*c));
}

/* The whole file, NUL-terminated, at most PEM_MAX bytes. */
static int read_text(const char *path, char **ret)
{
	struct stat st;
	char *buf;
	size_t len = 0;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out_close;
	}
	if (st.st_size > PEM_MAX) {
		r = -EFBIG;
		goto out_close;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out_close;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	*ret = buf;
out_close:
	close(fd);
	return r;
}

/* Host names that may go into a DNS subjectAltName as they are. */
static bool dns_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
			return false;
	return true;
}

static void put(char *buf, size_t len, size_t *off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Appends to buf; what does not fit is left out whole. */
static void put(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*off >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < len - *off)
		*off += (size_t)n;
	else
		buf[*off] = 0;
}

/* "DNS:host,DNS:host.local,DNS:localhost,IP:127.0.0.1,IP:::1,IP:<each IPv4>"
 * and the host name for the subject (empty when unusable). */
static void alt_names(char *buf, size_t len, char *host, size_t hostlen)
{
	struct ifaddrs *ifs = NULL;
	size_t off = 0;

	buf[0] = 0;
	if (gethostname(host, hostlen - 1) != 0)
		host[0] = 0;
	host[hostlen - 1] = 0; /* not terminated when cut */
	if (!dns_name_ok(host))
		host[0] = 0;
	if (host[0] && strcmp(host, "localhost") != 0) {
		size_t label = strcspn(host, ".");
		size_t n = strlen(host);
		put(buf, len, &off, "DNS:%s,", host);
		/* mDNS: the first label under .local */
		if (!(n > 6 && strcmp(host + n - 6, ".local") == 0))
			put(buf, len, &off, "DNS:%.*s.local,", (int)label, host);
	}
	put(buf, len, &off, "DNS:localhost,IP:127.0.0.1,IP:::1");
	if (getifaddrs(&ifs) != 0)
		return;
	for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
		char a[INET_ADDRSTRLEN];
		const struct sockaddr_in *sin = (const struct sockaddr_in *)i->ifa_addr;

		if (!sin || sin->sin_family != AF_INET ||
		    (ntohl(sin->sin_addr.s_addr) >> 24) == 127)
			continue;
		if (inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a)))
			put(buf, len, &off, ",IP:%s", a);
	}
	freeifaddrs(ifs);
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok;

	if (!ext)
		return -EIO;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -EIO;
}

/* Writes bio's contents to path atomically with mode. */
static int bio_save(BIO *b, const char *path, unsigned mode)
{
	char *data;
	long n = BIO_get_mem_data(b, &data);

	if (n <= 0)
		return -EIO;
	return file_write_atomic(path, data, (size_t)n, mode);
}

/* A new key and self-signed certificate, written key first: a crash between
 * the two leaves a key without a certificate, which the next start replaces. */
static int generate(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
	char san[2048], host[256];
	unsigned char serial[16];
	EVP_PKEY *pk = NULL;
	X509 *x = NULL;
	BIGNUM *bn = NULL;
	BIO *kb = NULL, *cb = NULL;
	X509V3_CTX ctx;
	time_t now = time(NULL), nb;
	int r = -EIO;

	/* Its own key: the device's signing key never serves TLS. */
	pk = EVP_EC_gen("P-256");
	x = X509_new();
	if (!pk || !x)
		goto out;
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto out;
	serial[0] = (serial[0] & 0x7f) | 0x40; /* positive, 16 bytes long */
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		goto out;
	alt_names(san, sizeof(san), host, sizeof(host));
	X509_NAME *name = X509_get_subject_name(x);
	if (!X509_set_version(x, 2) ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"egw", -1,
					-1, 0) ||
	    !X509_NAME_add_entry_by_txt(
		    name, "CN", MBSTRING_UTF8,
		    (const unsigned char *)(host[0] && strlen(host) <= 64 ? host : "egw gateway"),
		    -1, -1, 0) ||
	    !X509_set_issuer_name(x, name))
		goto out;
	nb = now - 86400 > NOT_BEFORE_FLOOR ? now - 86400 : NOT_BEFORE_FLOOR;
	if (!ASN1_TIME_set(X509_getm_notBefore(x), nb) ||
	    !ASN1_TIME_adj(X509_getm_notAfter(x), nb, VALID_DAYS, 0) || !X509_set_pubkey(x, pk))
		goto out;
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	/* A server certificate, not a CA (Firefox refuses a CA certificate
	 * as a server's), and no keyUsage: OpenSSL only accepts a self-signed
	 * certificate as its own trust anchor if keyUsage, when present,
	 * includes keyCertSign, which browsers refuse in a server's. */
	if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, &ctx, NID_ext_key_usage, "serverAuth") < 0 ||
	    add_ext(x, &ctx, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(x, &ctx, NID_subject_alt_name, san) < 0)
		goto out;
	if (X509_sign(x, pk, EVP_sha256()) <= 0)
		goto out;
	kb = BIO_new(BIO_s_secmem());
	cb = BIO_new(BIO_s_mem());
	if (!kb || !cb || !PEM_write_bio_PrivateKey(kb, pk, NULL, NULL, 0, NULL, NULL) ||
	    !PEM_write_bio_X509(cb, x))
		goto out;
	r = bio_save(kb, key_path, 0600);
	if (r < 0) {
		snprintf(err, errlen, "writing %s: %s", key_path, egw_strerror(r));
		goto out;
	}
	r = bio_save(cb, cert_path, 0644);
	if (r < 0)
		snprintf(err, errlen, "writing %s: %s", cert_path, egw_strerror(r));
out:
	if (r == -EIO)
		snprintf(err, errlen, "generating a certificate failed (OpenSSL)");
	BIO_free(kb);
	BIO_free(cb);
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(pk);
	return r;
}

static bool missing(const char *path)
{
	struct stat st;
	return stat(path, &st) < 0 && errno == ENOENT;
}

static void fingerprint(X509 *x, char *buf, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	size_t off = 0;

	buf[0] = 0;
	if (!X509_digest(x, EVP_sha256(), md, &n))
		return;
	for (unsigned i = 0; i < n && off + 3 < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%02X", i ? ":" : "", md[i]);
}

int tls_cert_load_or_create(const char *cert_path, const char *key_path, bool generate_missing,
			    struct tls_cert *ret, bool *ret_created, char *err, size_t errlen)
{
	struct tls_cert c = { 0 };
	const char *bad = NULL;
	EVP_PKEY *pk = NULL;
	X509 *x = NULL;
	BIO *b = NULL;
	struct tm tm;
	bool created = false;
	int r;

	if (missing(cert_path) || missing(key_path)) {
		if (!generate_missing) {
			snprintf(err, errlen, "%s does not exist",
				 missing(cert_path) ? cert_path : key_path);
			return -ENOENT;
		}
		r = generate(cert_path, key_path, err, errlen);
		if (r < 0)
			return r;
		created = true;
	}
	r = read_text(cert_path, &c.cert_pem);
	if (r < 0) {
		snprintf(err, errlen, "reading %s: %s", cert_path, egw_strerror(r));
		goto out;
	}
	r = read_text(key_path, &c.key_pem);
	if (r < 0) {
		snprintf(err, errlen, "reading %s: %s", key_path, egw_strerror(r));
		goto out;
	}
	r = -EINVAL;
	b = BIO_new_mem_buf(c.cert_pem, -1);
	x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	b = BIO_new_mem_buf(c.key_pem, -1);
	pk = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (!x)
		bad = "not a PEM certificate";
	else if (!pk)
		bad = "not a PEM private key (or one with a passphrase)";
	else if (X509_check_private_key(x, pk) != 1)
		bad = "the key does not match the certificate";
	if (bad) {
		snprintf(err, errlen, "%s: %s", x ? key_path : cert_path, bad);
		goto out;
	}
	fingerprint(x, c.fingerprint, sizeof(c.fingerprint));
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
		strftime(c.not_after, sizeof(c.not_after), "%Y-%m-%dT%H:%M:%SZ", &tm);
	*ret = c;
	memset(&c, 0, sizeof(c));
	*ret_created = created;
	r = 0;
out:
	ERR_clear_error();
	X509_free(x);
	EVP_PKEY_free(pk);
	tls_cert_clear(&c);
	return r;
}

/* ---- listener --------------------------------------------------------- */

/* What the settings ask for. */
struct want {
	bool enabled;
	bool generate; /* the default paths in the state directory */
	struct sockaddr_in sin;
	unsigned maxc;
	char cert_path[PATH_MAX], key_path[PATH_MAX];
};

struct web_tls {
	struct web *web;
	struct egw *egw;
	struct loop *loop;
	struct MHD_Daemon *d;
	struct loop_io io;
	struct task timer;    /* MHD's timeout */
	struct task rebind;   /* settings changed */
	struct want cur;      /* what d was started with */
	struct tls_cert cert; /* d's certificate */
	char error[320];      /* why HTTPS is not served as asked, "" when it is */
};

static void want_read(const struct web_tls *t, struct want *w)
{
	const struct settings *s = t->egw->settings;
	const char *cert = settings_values(s)->http_tls_cert;
	const char *key = settings_values(s)->http_tls_key;

	memset(w, 0, sizeof(*w));
	w->enabled = settings_values(s)->http_tls;
	w->sin.sin_family = AF_INET;
	w->sin.sin_port = htons((uint16_t)settings_values(s)->http_tls_port);
	if (inet_pton(AF_INET, settings_values(s)->http_bind, &w->sin.sin_addr) != 1)
		w->sin.sin_port = 0; /* no address: refused when started */
	w->maxc = (unsigned)settings_values(s)->http_max_connections;
	w->generate = !*cert && !*key;
	/* A path too long is cut and then not found: HTTPS says so. */
	if (snprintf(w->cert_path, sizeof(w->cert_path), "%s%s", *cert ? cert : t->egw->state_dir,
		     *cert ? "" : "/https-cert.pem") >= (int)sizeof(w->cert_path))
		w->generate = false;
	if (snprintf(w->key_path, sizeof(w->key_path), "%s%s", *key ? key : t->egw->state_dir,
		     *key ? "" : "/https-key.pem") >= (int)sizeof(w->key_path))
		w->generate = false;
}

static bool want_same(const struct want *a, const struct want *b)
{
	return a->enabled == b->enabled && a->sin.sin_port == b->sin.sin_port &&
		a->sin.sin_addr.s_addr == b->sin.sin_addr.s_addr && a->maxc == b->maxc &&
		strcmp(a->cert_path, b->cert_path) == 0 && strcmp(a->key_path, b->key_path) == 0;
}

static void run(struct web_tls *t)
{
	const union MHD_DaemonInfo *i;
	MHD_UNSIGNED_LONG_LONG ms;
	unsigned before, after;

	if (!t->d)
		return;
	i = MHD_get_daemon_info(t->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	before = i ? i->num_connections : 0;
	MHD_run(t->d);
	i = MHD_get_daemon_info(t->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	after = i ? i->num_connections : 0;
	/* At its cap MHD stops watching the listening socket and only watches it
	 * again at the start of a run: after a close there, run again now. */
	if (before >= t->cur.maxc && after < before)
		loop_task_add(t->loop, &t->timer, now_usec());
	else if (MHD_get_timeout(t->d, &ms) == MHD_YES)
		loop_task_add(t->loop, &t->timer, now_usec() + (usec_t)ms * USEC_PER_MSEC);
	else
		loop_task_cancel(t->loop, &t->timer);
}

static void on_io(struct loop_io *io, uint32_t events)
{
	UNUSED(events);
	run(container_of(io, struct web_tls, io));
}

static int on_timer(struct task *task, usec_t now)
{
	UNUSED(now);
	run(container_of(task, struct web_tls, timer));
	return 0;
}

static void stop(struct web_tls *t)
{
	struct MHD_Daemon *d = t->d;

	if (!d)
		return;
	t->d = NULL; /* a kick from what follows finds no daemon to run */
	/* MHD refuses to stop with connections suspended. */
	web_release_suspended(t->web);
	loop_io_del(t->loop, &t->io);
	loop_task_cancel(t->loop, &t->timer);
	MHD_stop_daemon(d);
	tls_cert_clear(&t->cert);
}

static void set_error(struct web_tls *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Logged when it changes: a retry that fails the same way says nothing. */
static void set_error(struct web_tls *t, const char *fmt, ...)
{
	char msg[sizeof(t->error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (strcmp(msg, t->error) != 0)
		log_error("http", "HTTPS: %s", msg);
	memcpy(t->error, msg, sizeof(msg));
}

/* Brings the listener to what w asks for.  On failure the old listener, if
 * any, keeps serving (unless it had to stop to free its own port). */
static void start(struct web_tls *t, const struct want *w)
{
	struct tls_cert c = { 0 };
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *info;
	char addr[INET_ADDRSTRLEN] = "?", msg[288];
	bool created = false;
	int err = 0;

	if (!w->enabled) {
		if (t->d)
			log_info("http", "HTTPS listener stopped (http.tls is false)");
		stop(t);
		t->cur = *w;
		t->error[0] = 0;
		return;
	}
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		set_error(t, "this libmicrohttpd has no TLS support: HTTPS is off");
		t->cur = *w;
		return;
	}
	inet_ntop(AF_INET, &w->sin.sin_addr, addr, sizeof(addr));
	if (!w->sin.sin_port) {
		set_error(t, "http.bind \"%s\" is not an IPv4 address",
			  settings_values(t->egw->settings)->http_bind);
		return;
	}
	if (tls_cert_load_or_create(w->cert_path, w->key_path, w->generate, &c, &created, msg,
				    sizeof(msg)) < 0) {
		set_error(t, "certificate: %s%s", msg,
			  w->generate ? " (remove both https-*.pem files to get a new pair)" : "");
		return;
	}
	if (created) {
		/* On the console once, so the first visit can be checked. */
		fprintf(stderr, "egwd: created HTTPS certificate %s (SHA-256 %s)\n", w->cert_path,
			c.fingerprint);
		log_info("http", "created HTTPS certificate %s (key %s, mode 0600)", w->cert_path,
			 w->key_path);
	}
	const struct MHD_OptionItem opts[] = {
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, c.key_pem },
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, c.cert_pem },
		{ MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES },
		{ MHD_OPTION_END, 0, NULL },
	};
	/* The same port cannot be bound twice: free it first. */
	if (t->d && t->cur.sin.sin_port == w->sin.sin_port &&
	    t->cur.sin.sin_addr.s_addr == w->sin.sin_addr.s_addr)
		stop(t);
	d = web_start_daemon(t->web, &w->sin, w->maxc, opts, &err);
	if (!d) {
		set_error(t, "cannot listen on %s:%u: %s%s", addr, ntohs(w->sin.sin_port),
			  egw_strerror(err), t->d ? "; still on the old port" : "");
		tls_cert_clear(&c);
		if (!t->d)
			loop_task_add(t->loop, &t->rebind, now_usec() + RETRY_USEC);
		return;
	}
	stop(t);
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);
	err = info ? loop_io_add(t->loop, &t->io, info->epoll_fd, EPOLLIN, on_io) : -EINVAL;
	if (err < 0) {
		MHD_stop_daemon(d);
		tls_cert_clear(&c);
		set_error(t, "cannot watch the listener: %s", egw_strerror(err));
		return;
	}
	t->d = d;
	t->cert = c;
	t->cur = *w;
	t->error[0] = 0;
	run(t);
	log_info("http", "listening on https://%s:%u/ (certificate SHA-256 %s)", addr,
		 ntohs(w->sin.sin_port), t->cert.fingerprint);
}

void web_tls_kick(struct web_tls *t)
{
	if (t && t->d)
		loop_task_add(t->loop, &t->timer, now_usec());
}

static int on_rebind(struct task *task, usec_t now)
{
	struct web_tls *t = container_of(task, struct web_tls, rebind);
	struct want w;

	UNUSED(now);
	want_read(t, &w);
	start(t, &w);
	return 0;
}

void web_tls_apply(struct web_tls *t)
{
	struct want w;

	if (!t)
		return;
	want_read(t, &w);
	/* Also retried when it is not serving as asked (port taken, files
	 * fixed by hand): any settings change is a new attempt. */
	if (!want_same(&w, &t->cur) || t->error[0])
		/* After the answer to the request that changed them has gone out. */
		loop_task_add(t->loop, &t->rebind, now_usec() + 300 * USEC_PER_MSEC);
}

bool web_tls_listens_on(const struct web_tls *t, const struct sockaddr_in *sin)
{
	return t && t->d && t->cur.sin.sin_port == sin->sin_port &&
		t->cur.sin.sin_addr.s_addr == sin->sin_addr.s_addr;
}

static json_t *section(void *ud)
{
	struct web_tls *t = ud;
	const struct settings *s = t->egw->settings;
	char addr[INET_ADDRSTRLEN] = "";
	int port = (int)settings_values(s)->http_tls_port;

	if (t->d) {
		inet_ntop(AF_INET, &t->cur.sin.sin_addr, addr, sizeof(addr));
		port = ntohs(t->cur.sin.sin_port);
	}
	return json_pack("{s:b,s:b,s:b,s:s*,s:i,s:s*,s:s*,s:s*,s:s?}", "enabled",
			 settings_values(s)->http_tls, "available",
			 MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES, "listening",
			 t->d != NULL, "address", t->d ? addr : NULL, "port", port,
			 "fingerprint_sha256", t->d ? t->cert.fingerprint : NULL, "not_after",
			 t->d && t->cert.not_after[0] ? t->cert.not_after : NULL, "cert",
			 t->d ? t->cur.cert_path : NULL, "error", t->error[0] ? t->error : NULL);
}

int web_tls_new(struct web *web, struct egw *e, struct web_tls **ret)
{
	struct web_tls *t = calloc(1, sizeof(*t));
	struct want w;

	if (!t)
		return -ENOMEM;
	t->web = web;
	t->egw = e;
	t->loop = e->loop;
	t->io.fd = -1;
	t->timer = (struct task){ .name = "https", .run = on_timer, .prio = 0 };
	t->timer.idx = SCHED_NOT_QUEUED;
	t->rebind = (struct task){ .name = "https-rebind", .run = on_rebind, .prio = 1 };
	t->rebind.idx = SCHED_NOT_QUEUED;
	if (web_add_section(web, "https", section, t, true) < 0) {
		free(t);
		return -ENOMEM;
	}
	want_read(t, &w);
	start(t, &w);
	if (!w.enabled)
		log_info("http", "HTTPS is off (http.tls is false)");
	*ret = t;
	return 0;
}

void web_tls_free(struct web_tls *t)
{
	if (!t)
		return;
	loop_task_cancel(t->loop, &t->rebind);
	stop(t);
	free(t);
}
