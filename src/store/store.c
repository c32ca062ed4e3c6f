/* Store-and-forward on SQLite (see store.h). */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "base/time.h"
#include "base/util.h"
#include "store/gap.h"
#include "store/token.h"

#define STORE_GAP_RESERVE 4096 /* bytes kept free for the gap row and its token */
#define STORE_SCHEMA_VERSION 1
/* Acknowledgements held: reaching this many commits them on their own, so at
 * most one waits for the next commit (a crash then resends it, beside the
 * upload in flight: at most two duplicates per crash). */
#define STORE_ACKS_MAX 2
/* WAL pages between automatic checkpoints. */
#define STORE_WAL_CHECKPOINT_PAGES 1000
/* Frames the preallocated WAL holds beyond the checkpoint threshold, for the
 * commit that crosses it with several pages. */
#define STORE_WAL_SPARE_FRAMES 256
/* Appends packed with one dictionary before the next is taken (an hour of
 * 10-s batches): values drift over a day, keys and blocks do not. */
#define STORE_DICT_ROWS 360

enum stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INSERT,
	ST_META_GET,
	ST_META_SET,
	ST_SET_JWT,
	ST_UNSIGNED,
	ST_PEEK,
	ST_DELETE,
	ST_OLDEST,
	ST_OLDER_THAN,
	ST_BETWEEN,
	ST_DICT_GET,
	ST_DICT_ADD,
	ST_DICT_GC,
	ST_COUNT
};

static const char *const stmt_sql[] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_INSERT] =
		"INSERT INTO rows(seq, kind, created_ms, payload, jwt, size) VALUES (?, ?, ?, ?, ?, ?)",
	[ST_META_GET] = "SELECT value FROM meta WHERE key = ?",
	[ST_META_SET] = "INSERT INTO meta(key, value) VALUES (?, ?) "
			"ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	[ST_SET_JWT] =
		"UPDATE rows SET jwt = ?2, payload = '', size = ?3 WHERE seq = ?1 AND jwt IS NULL",
	[ST_UNSIGNED] =
		"SELECT seq, kind, created_ms, payload FROM rows WHERE jwt IS NULL ORDER BY seq LIMIT ?",
	[ST_PEEK] =
		"SELECT seq, kind, created_ms, jwt FROM rows WHERE seq > ? ORDER BY seq LIMIT ?",
	[ST_DELETE] = "DELETE FROM rows WHERE seq = ? RETURNING kind, size, payload, jwt IS NULL, "
		      "CASE WHEN kind = 1 THEN jwt END",
	[ST_OLDEST] = "SELECT seq FROM rows ORDER BY seq LIMIT 1",
	[ST_OLDER_THAN] = "SELECT seq, created_ms FROM rows ORDER BY seq",
	[ST_BETWEEN] = "SELECT 1 FROM rows WHERE seq > ? AND seq < ? LIMIT 1",
	[ST_DICT_GET] = "SELECT data FROM dicts WHERE id = ?",
	[ST_DICT_ADD] = "INSERT INTO dicts(use_from, data) VALUES (?, ?)",
	/* A row of seq q is packed only with the dictionary of the greatest
	 * use_from <= q (or none), so the dictionaries before the one that
	 * covers the oldest row are used by no row. */
	[ST_DICT_GC] =
		"DELETE FROM dicts WHERE use_from < (SELECT MAX(use_from) FROM dicts "
		"WHERE use_from <= (SELECT COALESCE(MIN(seq), 9223372036854775807) FROM rows))",
};
_Static_assert(ARRAY_SIZE(stmt_sql) == ST_COUNT, "one SQL text per statement");

static const char store_schema[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS rows("
	" seq INTEGER PRIMARY KEY,"
	" kind INTEGER NOT NULL,"
	" created_ms INTEGER NOT NULL,"
	" payload TEXT NOT NULL,"
	" jwt TEXT,"
	" size INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS rows_unsigned ON rows(seq) WHERE jwt IS NULL;"
	/* Compression dictionaries of packed tokens (token.h): data is
	 * u32 n | zlib(the raw form of a token), used by rows from use_from. */
	"CREATE TABLE IF NOT EXISTS dicts(id INTEGER PRIMARY KEY, use_from INTEGER NOT NULL,"
	" data BLOB NOT NULL);"
	/* No index on created_ms: it cost a page write per append and per
	 * delete; rows age out oldest first in seq order (drop_by_age). */
	"DROP INDEX IF EXISTS rows_created;";

struct store {
	pthread_mutex_t lock; /* serializes SQLite use; held across commits (fsync) */
	/* The loop thread must never wait for a commit: it reads a snapshot of
	 * the counters and reserves sequence numbers under this short lock,
	 * which is never held across a SQLite call. */
	pthread_mutex_t snap_lock;
	struct store_stats snap;
	struct loop *loop;
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	char *path;
	int64_t max_bytes, max_age_s, max_file_bytes;
	int64_t next_seq;    /* next seq to reserve (memory) */
	int64_t next_seq_db; /* meta.next_seq as committed */
	struct store_stats stats;
	/* Acknowledged rows not deleted yet: their deletes ride on the next
	 * commit (an append, the bounds check) instead of a commit of their
	 * own, or are committed alone once STORE_ACKS_MAX wait.  Lost with a
	 * crash, they are only sent again (at least once; the backend
	 * deduplicates by seq).  Counted as gone in stats at once. */
	int64_t acks[STORE_ACKS_MAX];
	unsigned n_acks;
	int64_t meta_delivered; /* meta.delivered as committed */
	/* The dictionary new tokens are packed with: the raw form of an
	 * earlier token, kept in dicts and replaced every STORE_DICT_ROWS
	 * appends.  A row of seq q uses it only when use_from <= q. */
	struct {
		int64_t id, use_from;
		uint8_t *data;
		size_t n;
		unsigned uses;
	} dict;
	struct {
		int64_t id;
		uint8_t *data;
		size_t n;
	} dict_read; /* the last other one a read needed */
};

static bool ack_pending(const struct store *s, int64_t seq);
static int acks_delete(struct store *s);
static int acks_finish(struct store *s, bool count);
static int acks_apply(struct store *s, bool count);
static int acks_flush(struct store *s);

/* Release the SQLite lock after publishing the counters for the loop thread. */
static void store_unlock(struct store *s)
{
	pthread_mutex_lock(&s->snap_lock);
	s->snap = s->stats;
	pthread_mutex_unlock(&s->snap_lock);
	pthread_mutex_unlock(&s->lock);
}

/* ---- errors ---- */

/* Maps an SQLite result to an egw error and notes disk-full state. */
static int store_err(struct store *s, int rc)
{
	int r;

	if (rc == SQLITE_FULL ||
	    ((rc & 0xff) == SQLITE_IOERR && sqlite3_system_errno(s->db) == ENOSPC))
		r = -ENOSPC;
	else if (rc == SQLITE_NOMEM)
		r = -ENOMEM;
	else if ((rc & 0xff) == SQLITE_CONSTRAINT)
		r = -EEXIST;
	else
		r = -EGW_ESTORE;
	s->stats.disk_full = r == -ENOSPC;
	s->stats.last_err = r;
	return r;
}

static sqlite3_stmt *stmt(struct store *s, enum stmt id)
{
	sqlite3_stmt *st = s->st[id];

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

/* Runs a statement that returns no row we need. */
static int step_done(struct store *s, enum stmt id)
{
	int rc = sqlite3_step(s->st[id]);

	sqlite3_reset(s->st[id]);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int tx_begin(struct store *s)
{
	stmt(s, ST_BEGIN);
	return step_done(s, ST_BEGIN);
}

static int tx_commit(struct store *s)
{
	stmt(s, ST_COMMIT);
	return step_done(s, ST_COMMIT);
}

static void tx_rollback(struct store *s)
{
	if (!sqlite3_get_autocommit(s->db)) {
		stmt(s, ST_ROLLBACK);
		step_done(s, ST_ROLLBACK);
	}
}

static int meta_get(struct store *s, const char *key, int64_t *ret)
{
	sqlite3_stmt *st = stmt(s, ST_META_GET);
	int rc;

	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		*ret = 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int meta_set(struct store *s, const char *key, int64_t value)
{
	sqlite3_stmt *st = stmt(s, ST_META_SET);

	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, value);
	return step_done(s, ST_META_SET);
}

/* ---- open ---- */

static int exec_int(sqlite3 *db, const char *sql, int64_t *ret)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		*ret = 0;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

static void store_db_close(struct store *s)
{
	free(s->dict.data);
	free(s->dict_read.data);
	memset(&s->dict, 0, sizeof(s->dict));
	memset(&s->dict_read, 0, sizeof(s->dict_read));
	for (unsigned i = 0; i < ST_COUNT; i++) {
		sqlite3_finalize(s->st[i]);
		s->st[i] = NULL;
	}
	sqlite3_close(s->db);
	s->db = NULL;
}

/* Bytes of the WAL file: a header, the frames up to the checkpoint threshold
 * and spare ones, rounded up to whole 4 KiB blocks. */
static int64_t store_wal_bytes(int64_t page_size)
{
	int64_t n = 32 + (STORE_WAL_CHECKPOINT_PAGES + STORE_WAL_SPARE_FRAMES) * (page_size + 24);
	return (n + 4095) / 4096 * 4096;
}

/* Gives the WAL file its full size now, written with zeros, and keeps it at
 * that size (journal_size_limit).  Growing by a frame per commit, every
 * fsync of the WAL also had to commit the file system's journal (the new
 * size, a block allocated every fourth commit): on ext4 a journal commit of
 * three blocks beside the frame's own.  Overwriting blocks that are already
 * allocated and written (zeros, not fallocate's unwritten extents, whose
 * conversion is metadata again), a commit's fdatasync writes the frame only.
 * SQLite reads a WAL up to the first frame that does not carry its header's
 * salt and a valid checksum, so zeros past the last frame are never taken
 * for data, after a crash included.  Only zeros beyond the file's current
 * end are written: frames already there are never touched.  A file system
 * without room for it is no error (the WAL then grows as SQLite writes).
 * Written 4 KiB at a time: a longer write fills the page cache with large
 * folios, and Linux 6.18 counts a whole folio in write_bytes each time a
 * commit dirties it again (1 MiB per commit after one 1 MiB write, measured),
 * although only the changed blocks reach the disk. */
static int store_wal_prealloc(struct store *s, int64_t page_size)
{
	static const char zeros[4096];
	int64_t want = store_wal_bytes(page_size);
	char wal[PATH_MAX + 8], sql[64];
	struct stat sb;
	int fd, rc;

	snprintf(sql, sizeof(sql), "PRAGMA journal_size_limit=%lld", (long long)want);
	rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return rc;
	snprintf(wal, sizeof(wal), "%s-wal", s->path);
	fd = open(wal, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		log_warn("store", "%s: not preallocated: %s", wal, egw_strerror(-errno));
		return SQLITE_OK;
	}
	if (fstat(fd, &sb) == 0 && sb.st_size < want) {
		/* from the block the current end is in, so a partly written
		 * block is only completed, never rewritten before the end */
		int64_t off = sb.st_size;
		while (off < want) {
			size_t n = (size_t)MIN(want - off, (int64_t)sizeof(zeros) - off % 4096);
			ssize_t w = pwrite(fd, zeros, n, off);
			if (w <= 0) {
				log_warn("store", "%s: preallocated up to %lld of %lld bytes: %s",
					 wal, (long long)off, (long long)want,
					 egw_strerror(w < 0 ? -errno : -ENOSPC));
				break;
			}
			off += w;
		}
		if (fdatasync(fd) < 0)
			log_warn("store", "%s: fdatasync: %s", wal, egw_strerror(-errno));
	}
	close(fd);
	return SQLITE_OK;
}

/* ---- compression dictionaries ---- */

/* The inflated dictionary of a dicts.data value, or NULL (damaged: then the
 * rows packed with it are reported damaged when read). */
static uint8_t *dict_unpack(const uint8_t *b, size_t n, size_t *ret_n)
{
	uLongf got;
	uint8_t *out;
	uint32_t want;

	if (!b || n < 5)
		return NULL;
	want = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	if (want == 0 || want > 16u << 20)
		return NULL;
	out = malloc(want);
	got = want;
	if (!out || uncompress(out, &got, b + 4, n - 4) != Z_OK || got != want) {
		free(out);
		return NULL;
	}
	*ret_n = want;
	return out;
}

/* The newest dictionary becomes the current one (after a restart the rows
 * go on with it). */
static int dict_load_current(struct store *s)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db,
				    "SELECT id, use_from, data FROM dicts ORDER BY id DESC LIMIT 1",
				    -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		s->dict.id = sqlite3_column_int64(st, 0);
		s->dict.use_from = sqlite3_column_int64(st, 1);
		s->dict.data = dict_unpack(sqlite3_column_blob(st, 2),
					   (size_t)sqlite3_column_bytes(st, 2), &s->dict.n);
		if (!s->dict.data)
			log_warn("store", "compression dictionary %lld does not unpack",
				 (long long)s->dict.id);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

/* token_dict_fn over the store's dictionaries. */
static int dict_lookup(void *ud, int64_t id, struct token_dict *ret)
{
	struct store *s = ud;
	sqlite3_stmt *st;
	uint8_t *data = NULL;
	size_t n = 0;
	int rc;

	if (s->dict.data && s->dict.id == id) {
		*ret = (struct token_dict){ .id = id, .data = s->dict.data, .n = s->dict.n };
		return 0;
	}
	if (!s->dict_read.data || s->dict_read.id != id) {
		st = stmt(s, ST_DICT_GET);
		sqlite3_bind_int64(st, 1, id);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			data = dict_unpack(sqlite3_column_blob(st, 0),
					   (size_t)sqlite3_column_bytes(st, 0), &n);
		sqlite3_reset(st);
		if (!data)
			return -ENOENT;
		free(s->dict_read.data);
		s->dict_read.id = id;
		s->dict_read.data = data;
		s->dict_read.n = n;
	}
	*ret = (struct token_dict){ .id = id, .data = s->dict_read.data, .n = s->dict_read.n };
	return 0;
}

/* Inside the append's transaction: stores raw as the dictionary of the rows
 * from the next unreserved seq on, and deletes the ones no row uses. */
static int dict_add(struct store *s, const uint8_t *raw, size_t rn, int64_t use_from,
		    int64_t *ret_id)
{
	sqlite3_stmt *st;
	uLongf zn = compressBound(rn);
	uint8_t *z = malloc(4 + zn);
	int rc;

	if (!z)
		return SQLITE_NOMEM;
	if (compress2(z + 4, &zn, raw, rn, 9) != Z_OK) {
		free(z);
		return SQLITE_NOMEM;
	}
	z[0] = (uint8_t)(rn >> 24);
	z[1] = (uint8_t)(rn >> 16);
	z[2] = (uint8_t)(rn >> 8);
	z[3] = (uint8_t)rn;
	st = stmt(s, ST_DICT_ADD);
	sqlite3_bind_int64(st, 1, use_from);
	sqlite3_bind_blob(st, 2, z, (int)(4 + zn), SQLITE_STATIC);
	rc = step_done(s, ST_DICT_ADD);
	free(z);
	if (rc != SQLITE_OK)
		return rc;
	*ret_id = sqlite3_last_insert_rowid(s->db);
	stmt(s, ST_DICT_GC);
	return step_done(s, ST_DICT_GC);
}

/* The dictionary a row of seq packs with now, or NULL. */
static const struct token_dict *dict_for(const struct store *s, int64_t seq, struct token_dict *buf)
{
	if (!s->dict.data || s->dict.use_from > seq)
		return NULL;
	*buf = (struct token_dict){ .id = s->dict.id, .data = s->dict.data, .n = s->dict.n };
	return buf;
}

/* Opens the database and loads the counters.  Returns an SQLite code, with
 * SQLITE_CORRUPT standing for every sign that the file is not a usable store. */
static int store_db_open(struct store *s)
{
	sqlite3_stmt *st;
	const char *txt;
	int64_t v = 0, page_size = 0;
	int rc;

	rc = sqlite3_open_v2(s->path, &s->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, 2000);

	/* Flash wear is counted in pages: every commit appends its dirty pages
	 * to the WAL and a checkpoint writes them again.  A batch row is about
	 * 1 KB, so 1 KiB pages write a quarter of what 4 KiB pages do per
	 * commit (effective only when the file is created). */
	rc = sqlite3_exec(s->db, "PRAGMA page_size=1024", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return rc;
	/* egwd is the store's only user.  In exclusive locking mode, set
	 * before the first WAL access, the WAL index lives in egwd's heap
	 * instead of a shared-memory file (-shm): that file's pages were
	 * dirtied by every commit and written back by the kernel every 30 s,
	 * about a third of the store's flash writes.  Another process cannot
	 * read the store while egwd runs (SQLITE_BUSY); after egwd stopped,
	 * or was killed, it can. */
	rc = sqlite3_exec(s->db, "PRAGMA locking_mode=EXCLUSIVE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	txt = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
	if (rc == SQLITE_ROW && (!txt || strcmp(txt, "wal") != 0))
		rc = SQLITE_CANTOPEN; /* e.g. a file system without shared memory */
	else if (rc == SQLITE_ROW)
		rc = SQLITE_OK;
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return rc;
	/* Debian builds SQLite with secure_delete on, which overwrites every
	 * freed page with zeros: one more page per delivered batch, to hide
	 * signed data that was sent to the backend anyway. */
	rc = sqlite3_exec(s->db, "PRAGMA secure_delete=OFF", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return rc;
	/* Checkpoint every 1000 pages (1 MiB of WAL): a page written by many
	 * commits in between (the meta row, the index tails, the newest leaf)
	 * goes to the database file once.  journal_size_limit is set with the
	 * WAL's preallocation (store_wal_prealloc) once the page size is known. */
	rc = sqlite3_wal_autocheckpoint(s->db, STORE_WAL_CHECKPOINT_PAGES);
	if (rc != SQLITE_OK)
		return rc;
	/* The store appends at one end and reads at the other, each batch once:
	 * a big page cache would only hold pages nobody reads again (SQLite's
	 * default is 2 MiB, which is most of egwd's private memory). */
	rc = sqlite3_exec(s->db, "PRAGMA cache_size=-256", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return rc;

	/* Reading every page once costs little at boot and finds damage now,
	 * not in the middle of an upload. */
	rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		txt = (const char *)sqlite3_column_text(st, 0);
		rc = txt && strcmp(txt, "ok") == 0 ? SQLITE_OK : SQLITE_CORRUPT;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return rc;

	rc = exec_int(s->db, "PRAGMA user_version", &v);
	if (rc != SQLITE_OK)
		return rc;
	if (v != 0 && v != STORE_SCHEMA_VERSION)
		return SQLITE_CORRUPT; /* not our format */
	rc = sqlite3_exec(s->db, store_schema, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return (rc & 0xff) == SQLITE_ERROR ? SQLITE_CORRUPT : rc;
	rc = sqlite3_exec(s->db, "PRAGMA user_version=1", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return rc;

	for (unsigned i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&s->st[i], NULL);
		if (rc != SQLITE_OK)
			return (rc & 0xff) == SQLITE_ERROR ? SQLITE_CORRUPT : rc;
	}

	rc = exec_int(s->db, "PRAGMA page_size", &page_size);
	if (rc != SQLITE_OK)
		return rc;
	rc = store_wal_prealloc(s, page_size);
	if (rc != SQLITE_OK)
		return rc;

	if (s->max_file_bytes > 0) {
		char sql[64];
		snprintf(sql, sizeof(sql), "PRAGMA max_page_count=%lld",
			 (long long)MAX(s->max_file_bytes / MAX(page_size, 512), 2));
		rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return rc;
	}

	rc = meta_get(s, "next_seq", &s->next_seq_db);
	if (rc == SQLITE_OK)
		rc = exec_int(s->db, "SELECT COALESCE(MAX(seq), 0) FROM rows", &v);
	if (rc != SQLITE_OK)
		return rc;
	s->next_seq_db = MAX(MAX(s->next_seq_db, v + 1), 1);
	s->next_seq = s->next_seq_db;
	s->stats.last_seq = s->next_seq_db - 1;
	rc = meta_get(s, "delivered", &s->stats.delivered);
	s->meta_delivered = s->stats.delivered;
	if (rc == SQLITE_OK)
		rc = meta_get(s, "dropped", &s->stats.dropped);
	if (rc == SQLITE_OK)
		rc = exec_int(s->db, "SELECT COUNT(*) FROM rows", &s->stats.backlog);
	if (rc == SQLITE_OK)
		rc = exec_int(s->db, "SELECT COUNT(*) FROM rows WHERE jwt IS NULL",
			      &s->stats.unsigned_rows);
	if (rc == SQLITE_OK)
		rc = exec_int(s->db, "SELECT COALESCE(SUM(size), 0) FROM rows", &s->stats.bytes);
	if (rc == SQLITE_OK)
		rc = dict_load_current(s);
	return rc;
}

static bool store_rc_corrupt(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_IOERR:
	case SQLITE_FORMAT:
	case SQLITE_MISMATCH:
	case SQLITE_SCHEMA:
		return true;
	default:
		return false;
	}
}

/* Renames path (and its -wal/-shm) to <path>.corrupt-<unix time>[.n]. */
static int store_move_aside(const char *path, char *ret_to, size_t to_size)
{
	char from[PATH_MAX + 8], to[PATH_MAX + 48];
	long t = (long)(wall_ms() / 1000);
	int n;

	for (n = 0; n < 100; n++) {
		if (n == 0)
			snprintf(to, sizeof(to), "%s.corrupt-%ld", path, t);
		else
			snprintf(to, sizeof(to), "%s.corrupt-%ld.%d", path, t, n);
		if (access(to, F_OK) != 0)
			break;
	}
	if (rename(path, to) < 0 && errno != ENOENT)
		return -errno;
	snprintf(ret_to, to_size, "%s", to);
	snprintf(from, sizeof(from), "%s-wal", path);
	strncat(to, "-wal", sizeof(to) - strlen(to) - 1);
	if (rename(from, to) < 0 && errno != ENOENT)
		return -errno;
	snprintf(from, sizeof(from), "%s-shm", path);
	unlink(from); /* shared-memory index only: rebuilt from the WAL */
	return 0;
}

int store_open(struct loop *l, const struct store_config *cfg, struct store **ret)
{
	char aside[PATH_MAX + 48];
	struct store *s;
	int rc, r;

	if (!cfg || !cfg->path || !*cfg->path || !ret)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->path = strdup(cfg->path);
	if (!s->path || pthread_mutex_init(&s->lock, NULL) != 0 ||
	    pthread_mutex_init(&s->snap_lock, NULL) != 0) {
		free(s->path);
		free(s);
		return -ENOMEM;
	}
	s->loop = l;
	s->max_bytes = cfg->max_bytes;
	s->max_age_s = cfg->max_age_s;
	s->max_file_bytes = cfg->max_file_bytes;

	rc = store_db_open(s);
	if (rc != SQLITE_OK && store_rc_corrupt(rc)) {
		store_db_close(s);
		memset(&s->stats, 0, sizeof(s->stats));
		r = store_move_aside(s->path, aside, sizeof(aside));
		if (r < 0) {
			log_error("store", "%s is corrupt (%s) and could not be moved aside: %s",
				  s->path, sqlite3_errstr(rc), egw_strerror(r));
			goto fail;
		}
		log_warn(
			"store",
			"%s is corrupt or unreadable (%s); moved it aside to %s and started a fresh store",
			s->path, sqlite3_errstr(rc), aside);
		s->stats.recovered = true;
		rc = store_db_open(s);
	}
	if (rc != SQLITE_OK) {
		r = rc == SQLITE_FULL ? -ENOSPC : rc == SQLITE_NOMEM ? -ENOMEM : -EGW_ESTORE;
		goto fail;
	}
	s->snap = s->stats;
	*ret = s;
	return 0;
fail:
	store_db_close(s);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->snap_lock);
	free(s->path);
	free(s);
	return r;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->db && acks_flush(s) != SQLITE_OK)
		log_warn("store", "acknowledgements not recorded: those batches go again");
	pthread_mutex_unlock(&s->lock);
	store_db_close(s);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->snap_lock);
	free(s->path);
	free(s);
}

int64_t store_next_seq(struct store *s)
{
	int64_t seq;

	pthread_mutex_lock(&s->snap_lock);
	seq = s->next_seq++;
	pthread_mutex_unlock(&s->snap_lock);
	return seq;
}

static int64_t peek_next_seq(struct store *s)
{
	int64_t seq;

	pthread_mutex_lock(&s->snap_lock);
	seq = s->next_seq;
	pthread_mutex_unlock(&s->snap_lock);
	return seq;
}

/* ---- writes ---- */

/* Inserts one row and advances meta.next_seq; inside a transaction. */
static int insert_row(struct store *s, int64_t seq, enum store_kind kind, int64_t created_ms,
		      const char *payload, const char *jwt, int64_t *ret_size, uint8_t **ret_raw,
		      size_t *ret_rn)
{
	sqlite3_stmt *st = stmt(s, ST_INSERT);
	struct token_dict buf;
	void *packed = NULL;
	int64_t size;
	int rc;

	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_int(st, 2, (int)kind);
	sqlite3_bind_int64(st, 3, created_ms);
	if (jwt) {
		/* stored once: the token carries the payload */
		sqlite3_bind_text(st, 4, "", 0, SQLITE_STATIC);
		size = store_token_bind(st, 5, jwt, dict_for(s, seq, &buf), &packed, ret_raw,
					ret_rn);
	} else {
		sqlite3_bind_text(st, 4, payload, -1, SQLITE_STATIC);
		sqlite3_bind_null(st, 5);
		size = (int64_t)strlen(payload);
	}
	sqlite3_bind_int64(st, 6, size);
	rc = step_done(s, ST_INSERT);
	free(packed);
	/* meta.next_seq is not written here: while the row exists MAX(seq)
	 * says as much; next_seq_guard writes it before a delete could hide
	 * it. */
	*ret_size = size;
	return rc;
}

/* After a committed insert. */
static void account_insert(struct store *s, int64_t seq, bool is_unsigned, int64_t size)
{
	s->next_seq_db = MAX(s->next_seq_db, seq + 1);
	s->stats.last_seq = MAX(s->stats.last_seq, seq);
	s->stats.backlog++;
	s->stats.unsigned_rows += is_unsigned;
	s->stats.bytes += size;
	s->stats.appended += size;
	s->stats.disk_full = false;
}

int store_append(struct store *s, int64_t seq, int64_t created_ms, const char *payload_json,
		 const char *jwt_or_null)
{
	int64_t size = 0, md, dict_id = 0, use_from = 0;
	uint8_t *raw = NULL;
	size_t rn = 0;
	bool packs, renew;
	int rc, r = 0;

	if (!payload_json)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	if (seq <= 0 || seq >= peek_next_seq(s)) {
		r = -EINVAL;
		goto unlock;
	}
	md = s->meta_delivered;
	packs = jwt_or_null && s->dict.data && s->dict.use_from <= seq;
	renew = jwt_or_null && (!s->dict.data || s->dict.uses >= STORE_DICT_ROWS);
	rc = tx_begin(s);
	/* The acknowledged rows go first: at the usual pace (each batch
	 * delivered before the next one is sealed) the one row left is
	 * deleted and the new one takes its page, so the commit writes that
	 * one page and nothing else (inserting first would split the page,
	 * allocate, then free: four or five pages).  The next_seq guard runs
	 * after the insert, which keeps MAX(seq), so meta is not written. */
	if (rc == SQLITE_OK)
		rc = acks_delete(s);
	if (rc == SQLITE_OK)
		rc = insert_row(s, seq, STORE_BATCH, created_ms, payload_json, jwt_or_null, &size,
				renew ? &raw : NULL, &rn);
	if (rc == SQLITE_OK && raw) {
		use_from = peek_next_seq(s);
		rc = dict_add(s, raw, rn, use_from, &dict_id);
	}
	if (rc == SQLITE_OK)
		rc = acks_finish(s, false);
	if (rc == SQLITE_OK)
		rc = tx_commit(s);
	if (rc != SQLITE_OK) {
		tx_rollback(s);
		s->meta_delivered = md; /* what is committed */
		r = store_err(s, rc);
		goto unlock;
	}
	s->n_acks = 0;
	account_insert(s, seq, !jwt_or_null, size);
	s->dict.uses += packs;
	if (raw) {
		free(s->dict.data);
		s->dict.id = dict_id;
		s->dict.use_from = use_from;
		s->dict.data = raw;
		s->dict.n = rn;
		s->dict.uses = 0;
		raw = NULL;
	}
unlock:
	free(raw);
	store_unlock(s);
	return r;
}

static void append_work(struct loop_work *w)
{
	struct store_append_req *req = container_of(w, struct store_append_req, work);

	req->result =
		store_append(req->store, req->seq, req->created_ms, req->payload_json, req->jwt);
}

static void append_done(struct loop_work *w)
{
	struct store_append_req *req = container_of(w, struct store_append_req, work);

	req->done(req);
}

int store_append_async(struct store *s, struct store_append_req *req)
{
	if (!s->loop || !req->done)
		return -EINVAL;
	if (req->work.busy)
		return -EBUSY;
	req->store = s;
	req->result = 0;
	req->work.work = append_work;
	req->work.done = append_done;
	return loop_work_submit(s->loop, &req->work);
}

int store_set_jwt(struct store *s, int64_t seq, const char *jwt)
{
	sqlite3_stmt *st;
	struct token_dict buf;
	int64_t jlen, old = 0;
	void *packed = NULL;
	int rc, r = 0;
	char sql[80];

	if (!jwt)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	snprintf(sql, sizeof(sql), "SELECT size FROM rows WHERE seq = %lld", (long long)seq);
	rc = exec_int(s->db, sql, &old);
	if (rc != SQLITE_OK) {
		r = store_err(s, rc);
		goto unlock;
	}
	st = stmt(s, ST_SET_JWT);
	sqlite3_bind_int64(st, 1, seq);
	jlen = store_token_bind(st, 2, jwt, dict_for(s, seq, &buf), &packed, NULL, NULL);
	sqlite3_bind_int64(st, 3, jlen);
	/* A single statement is its own transaction. */
	rc = step_done(s, ST_SET_JWT);
	free(packed);
	if (rc != SQLITE_OK) {
		r = store_err(s, rc);
		goto unlock;
	}
	if (sqlite3_changes(s->db) == 0) {
		int64_t exists = 0;
		snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM rows WHERE seq = %lld",
			 (long long)seq);
		rc = exec_int(s->db, sql, &exists);
		r = rc != SQLITE_OK ? store_err(s, rc) : exists ? -EEXIST : -ENOENT;
		goto unlock;
	}
	s->stats.unsigned_rows--;
	s->stats.bytes += jlen - old;
	s->stats.appended += jlen - old;
	s->stats.disk_full = false;
unlock:
	store_unlock(s);
	return r;
}

/* ---- reads ---- */

void store_rows_clear(struct store_row *rows, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		free(rows[i].payload);
		free(rows[i].jwt);
		rows[i].payload = rows[i].jwt = NULL;
	}
}

static char *column_strdup(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	return t ? strdup((const char *)t) : NULL;
}

int store_unsigned(struct store *s, unsigned max, struct store_row *rows, unsigned *ret_n)
{
	sqlite3_stmt *st;
	unsigned n = 0;
	int rc, r = 0;

	pthread_mutex_lock(&s->lock);
	st = stmt(s, ST_UNSIGNED);
	sqlite3_bind_int64(st, 1, max);
	while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_row *row = &rows[n];
		*row = (struct store_row){
			.seq = sqlite3_column_int64(st, 0),
			.kind = (enum store_kind)sqlite3_column_int(st, 1),
			.created_ms = sqlite3_column_int64(st, 2),
			.payload = column_strdup(st, 3),
		};
		n++;
		if (!row->payload) {
			r = -ENOMEM;
			break;
		}
	}
	if (r == 0 && n < max && rc != SQLITE_DONE)
		r = store_err(s, rc);
	sqlite3_reset(st);
	store_unlock(s);
	if (r < 0) {
		store_rows_clear(rows, n);
		return r;
	}
	*ret_n = n;
	return 0;
}

int store_peek(struct store *s, int64_t after_seq, unsigned max, struct store_row *rows,
	       unsigned *ret_n)
{
	sqlite3_stmt *st;
	unsigned n = 0;
	int rc = SQLITE_DONE, r = 0;

	pthread_mutex_lock(&s->lock);
	st = stmt(s, ST_PEEK);
	sqlite3_bind_int64(st, 1, after_seq);
	sqlite3_bind_int64(st, 2, (int64_t)max + s->n_acks);
	while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_row *row = &rows[n];
		if (ack_pending(s, sqlite3_column_int64(st, 0)))
			continue; /* delivered, deleted with the next commit */
		if (sqlite3_column_type(st, 3) == SQLITE_NULL) {
			rc = SQLITE_DONE; /* unsigned: later rows wait, order is kept */
			break;
		}
		*row = (struct store_row){
			.seq = sqlite3_column_int64(st, 0),
			.kind = (enum store_kind)sqlite3_column_int(st, 1),
			.created_ms = sqlite3_column_int64(st, 2),
			.jwt = store_token_column(st, 3, dict_lookup, s),
		};
		if (!row->jwt && errno == EBADMSG) {
			/* It can never be sent: the rows after it must not wait
			 * for it.  It stays (for a look at the file) until the
			 * store's bounds drop it. */
			log_error("store", "batch %lld cannot be read back (damaged row): skipped",
				  (long long)row->seq);
			continue;
		}
		n++;
		if (!row->jwt) {
			r = -ENOMEM;
			break;
		}
	}
	if (r == 0 && n < max && rc != SQLITE_DONE)
		r = store_err(s, rc);
	sqlite3_reset(st);
	store_unlock(s);
	if (r < 0) {
		store_rows_clear(rows, n);
		return r;
	}
	*ret_n = n;
	return 0;
}

/* ---- deletes ---- */

struct deleted {
	enum store_kind kind;
	int64_t size;
	bool was_unsigned;
	char *payload; /* gap rows only */
};

/* Deletes one row inside a transaction.  Returns an SQLite code;
 * SQLITE_NOTFOUND if there was no such row. */
static int delete_row(struct store *s, int64_t seq, struct deleted *ret)
{
	sqlite3_stmt *st = stmt(s, ST_DELETE);
	int rc;

	sqlite3_bind_int64(st, 1, seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		ret->kind = (enum store_kind)sqlite3_column_int(st, 0);
		ret->size = sqlite3_column_int64(st, 1);
		ret->was_unsigned = sqlite3_column_int(st, 3);
		ret->payload = NULL;
		if (ret->kind == STORE_GAP) {
			const unsigned char *t = sqlite3_column_text(st, 2);
			if (t && *t)
				ret->payload = strdup((const char *)t);
			else if (sqlite3_column_type(st, 4) != SQLITE_NULL)
				ret->payload = store_token_payload(st, 4, dict_lookup, s);
		}
		rc = sqlite3_step(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_NOTFOUND;
	}
	sqlite3_reset(st);
	return rc;
}

static void account_delete(struct store *s, const struct deleted *d)
{
	s->stats.backlog--;
	s->stats.unsigned_rows -= d->was_unsigned;
	s->stats.bytes -= d->size;
}

static bool ack_pending(const struct store *s, int64_t seq)
{
	for (unsigned i = 0; i < s->n_acks; i++)
		if (s->acks[i] == seq)
			return true;
	return false;
}

/* Inside a transaction that deleted rows: if the newest committed row is
 * gone, MAX(seq) no longer tells the next seq, so meta.next_seq must. */
static int next_seq_guard(struct store *s)
{
	int64_t max = 0, meta = 0;
	int rc = exec_int(s->db, "SELECT COALESCE(MAX(seq), 0) FROM rows", &max);

	if (rc == SQLITE_OK && max + 1 < s->next_seq_db)
		rc = meta_get(s, "next_seq", &meta);
	if (rc == SQLITE_OK && max + 1 < s->next_seq_db && meta < s->next_seq_db)
		rc = meta_set(s, "next_seq", s->next_seq_db);
	return rc;
}

/* Deletes the acknowledged rows inside the caller's transaction (their
 * counters were taken at store_ack).  The caller clears n_acks once the
 * transaction committed.  meta.delivered is written when count, or when
 * 64 have gone uncounted (a crash may cost the counter that many). */
static int acks_delete(struct store *s)
{
	int rc = SQLITE_OK;

	for (unsigned i = 0; i < s->n_acks && rc == SQLITE_OK; i++) {
		struct deleted d = { 0 };
		rc = delete_row(s, s->acks[i], &d);
		free(d.payload);
		if (rc == SQLITE_NOTFOUND)
			rc = SQLITE_OK;
	}
	return rc;
}

/* After acks_delete (and whatever the transaction inserts): keeps
 * meta.next_seq and meta.delivered true. */
static int acks_finish(struct store *s, bool count)
{
	int rc;

	if (s->n_acks == 0)
		return SQLITE_OK;
	rc = next_seq_guard(s);
	if (rc == SQLITE_OK && (count || s->stats.delivered - s->meta_delivered >= 64)) {
		rc = meta_set(s, "delivered", s->stats.delivered);
		if (rc == SQLITE_OK)
			s->meta_delivered =
				s->stats.delivered; /* a rollback restores the old value */
	}
	return rc;
}

static int acks_apply(struct store *s, bool count)
{
	int rc = acks_delete(s);

	return rc == SQLITE_OK ? acks_finish(s, count) : rc;
}

/* Commits the waiting acknowledgements on their own. */
static int acks_flush(struct store *s)
{
	int64_t md = s->meta_delivered;
	int rc;

	if (s->n_acks == 0)
		return SQLITE_OK;
	rc = tx_begin(s);
	if (rc == SQLITE_OK)
		rc = acks_apply(s, true);
	if (rc == SQLITE_OK)
		rc = tx_commit(s);
	if (rc != SQLITE_OK) {
		tx_rollback(s);
		s->meta_delivered = md;
		return rc;
	}
	s->n_acks = 0;
	return SQLITE_OK;
}

int store_ack(struct store *s, int64_t seq)
{
	sqlite3_stmt *q = NULL;
	struct deleted d = { 0 };
	int rc, r = 0;

	pthread_mutex_lock(&s->lock);
	if (ack_pending(s, seq)) {
		r = -ENOENT;
		goto unlock;
	}
	rc = sqlite3_prepare_v2(s->db, "SELECT kind, size, jwt IS NULL FROM rows WHERE seq = ?", -1,
				&q, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, seq);
		rc = sqlite3_step(q);
		if (rc == SQLITE_ROW) {
			d.kind = (enum store_kind)sqlite3_column_int(q, 0);
			d.size = sqlite3_column_int64(q, 1);
			d.was_unsigned = sqlite3_column_int(q, 2);
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			rc = SQLITE_NOTFOUND;
		}
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_OK) {
		r = rc == SQLITE_NOTFOUND ? -ENOENT : store_err(s, rc);
		goto unlock;
	}
	s->acks[s->n_acks++] = seq;
	account_delete(s, &d);
	s->stats.delivered++;
	if (s->n_acks == STORE_ACKS_MAX) {
		rc = acks_flush(s);
		if (rc != SQLITE_OK) {
			/* still counted as delivered: the deletes are retried
			 * with the next commit; the list is full, so drop the
			 * oldest wait (it is only sent again) */
			r = 0;
			store_err(s, rc);
			memmove(s->acks, s->acks + 1, (STORE_ACKS_MAX - 1) * sizeof(s->acks[0]));
			s->n_acks--;
		}
	}
unlock:
	store_unlock(s);
	return r;
}

/* ---- bounds ---- */

/* store_gap_merge's question to the database: does a row lie between? */
static int row_between(void *ud, int64_t after, int64_t before)
{
	struct store *s = ud;
	sqlite3_stmt *st = stmt(s, ST_BETWEEN);
	int rc;

	sqlite3_bind_int64(st, 1, after);
	sqlite3_bind_int64(st, 2, before);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc;
}

static int drop_row(struct store *s, struct store_gap *g, int64_t seq)
{
	struct deleted d = { 0 };
	int rc = delete_row(s, seq, &d);

	if (rc == SQLITE_NOTFOUND)
		return SQLITE_OK;
	if (rc != SQLITE_OK)
		return rc;
	account_delete(s, &d);
	if (d.kind == STORE_GAP)
		store_gap_absorb(g, d.payload);
	else {
		g->dropped += g->dropped < INT64_MAX;
		g->batches++;
	}
	free(d.payload);
	store_gap_add(g, seq, seq);
	g->rows++;
	return SQLITE_OK;
}

static int drop_by_age(struct store *s, struct store_gap *g, int64_t cutoff_ms)
{
	sqlite3_stmt *st = stmt(s, ST_OLDER_THAN);
	int64_t *seqs = NULL;
	size_t n = 0, cap = 0;
	int rc;

	/* oldest first, while older than the cutoff (rows are appended in
	 * time order; one stamped earlier behind a newer one, after the clock
	 * stepped back, waits for the rows before it) */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_int64(st, 1) >= cutoff_ms) {
			rc = SQLITE_DONE;
			break;
		}
		if (n == cap) {
			int64_t *p = realloc(seqs, (cap = cap ? 2 * cap : 64) * sizeof(*p));
			if (!p) {
				rc = SQLITE_NOMEM;
				break;
			}
			seqs = p;
		}
		seqs[n++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	for (size_t i = 0; rc == SQLITE_OK && i < n; i++)
		rc = drop_row(s, g, seqs[i]);
	free(seqs);
	return rc;
}

static int drop_by_bytes(struct store *s, struct store_gap *g)
{
	int64_t target = s->max_bytes - MIN((int64_t)STORE_GAP_RESERVE, s->max_bytes / 4);
	int rc = SQLITE_OK;

	while (rc == SQLITE_OK && s->stats.bytes > target && s->stats.backlog > 0) {
		sqlite3_stmt *st = stmt(s, ST_OLDEST);
		int64_t seq;
		rc = sqlite3_step(st);
		seq = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
		sqlite3_reset(st);
		if (rc != SQLITE_ROW)
			return rc == SQLITE_DONE ? SQLITE_OK : rc;
		rc = drop_row(s, g, seq);
	}
	return rc;
}

int store_enforce_bounds(struct store *s, int64_t now_ms)
{
	struct store_stats saved;
	struct store_gap g = { 0 };
	bool by_age = false, by_bytes = false;
	int64_t seq = 0, size = 0, md;
	char *payload = NULL;
	bool reserved = false;
	int rc, r = 0;

	pthread_mutex_lock(&s->lock);
	if (s->max_age_s <= 0 && (s->max_bytes <= 0 || s->stats.bytes <= s->max_bytes))
		goto unlock;
	saved = s->stats;
	md = s->meta_delivered;
	rc = tx_begin(s);
	if (rc == SQLITE_OK)
		rc = acks_apply(s, false);
	if (rc == SQLITE_OK && s->max_age_s > 0) {
		unsigned before = g.rows;
		rc = drop_by_age(s, &g, now_ms - s->max_age_s * 1000);
		by_age = g.rows > before;
	}
	if (rc == SQLITE_OK && s->max_bytes > 0 && s->stats.bytes > s->max_bytes) {
		unsigned before = g.rows;
		rc = drop_by_bytes(s, &g);
		by_bytes = g.rows > before;
	}
	if (rc == SQLITE_OK && g.rows == 0) {
		tx_rollback(s);
		s->meta_delivered = md;
		goto unlock;
	}
	/* (committed below with the gap row; before that, an error leaves
	 * the acknowledgements waiting) */
	if (rc == SQLITE_OK && g.oom)
		rc = SQLITE_NOMEM;
	if (rc == SQLITE_OK)
		rc = store_gap_merge(&g, row_between, s);
	if (rc == SQLITE_OK) {
		seq = store_next_seq(s);
		reserved = true;
		payload = store_gap_payload(&g, seq, now_ms,
					    by_age && by_bytes ? "max_age,max_bytes"
						    : by_age   ? "max_age"
							       : "max_bytes");
		rc = payload ? SQLITE_OK : SQLITE_NOMEM;
	}
	if (rc == SQLITE_OK)
		rc = insert_row(s, seq, STORE_GAP, now_ms, payload, NULL, &size, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = meta_set(s, "dropped", saved.dropped + g.batches);
	if (rc == SQLITE_OK)
		rc = tx_commit(s);
	if (rc != SQLITE_OK) {
		tx_rollback(s);
		s->stats = saved; /* nothing was deleted */
		s->meta_delivered = md;
		if (reserved) {
			/* Give the seq back unless a batch reserved one since. */
			pthread_mutex_lock(&s->snap_lock);
			if (s->next_seq == seq + 1)
				s->next_seq = seq;
			pthread_mutex_unlock(&s->snap_lock);
		}
		r = store_err(s, rc);
		goto unlock;
	}
	s->n_acks = 0;
	account_insert(s, seq, true, size);
	s->stats.dropped = saved.dropped + g.batches;
	r = (int)MIN(g.rows, (unsigned)INT_MAX);
unlock:
	store_unlock(s);
	free(payload);
	store_gap_clear(&g);
	return r;
}

void store_set_bounds(struct store *s, int64_t max_bytes, int64_t max_age_s)
{
	pthread_mutex_lock(&s->lock);
	s->max_bytes = max_bytes;
	s->max_age_s = max_age_s;
	store_unlock(s);
}

void store_get_stats(const struct store *cs, struct store_stats *ret)
{
	struct store *s = (struct store *)cs; /* the lock is not part of the value */

	pthread_mutex_lock(&s->snap_lock);
	*ret = s->snap;
	pthread_mutex_unlock(&s->snap_lock);
}
