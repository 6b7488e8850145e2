/* tune/database.c: the tuning database on SQLite (see database.h and
 * docs/database.md).
 *
 * Invariants: every statement is prepared once at open with bound
 * parameters (no SQL is ever built from data) and reset right after use,
 * so no read transaction outlives a call; each write is its own implicit
 * transaction, committed before the call returns; a record is failed
 * exactly when its error is non-NULL, and then its median is NULL (a CHECK
 * constraint keeps it so). */
#include "tune/database.h"

#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ir/ir.h"

/* PRAGMA application_id: "kiln" in ASCII, so other SQLite files are told
 * apart from ours. */
#define KILN_APP_ID 0x6B696C6E

enum {
    S_WL_INSERT,
    S_WL_FIND,
    S_WL_LIST,
    S_REC_INSERT,
    S_REC_FIND,
    S_COUNT_WL,
    S_COUNT_ALL,
    S_BEST,
    S_TOPK,
    S_RECORDS_WL,
    S_RECORDS_ALL,
    S_EXPORT_WL,
    S_EXPORT_ALL,
    S_PRUNE,
    S_COUNT_
};

#define RECORD_COLS                                                                                \
    "id, workload, trace, trace_hash, features, nrows, times_ms, median_ms, gflops, error, "       \
    "verified, threads, created"

static const char *const stmt_sql[S_COUNT_] = {
    [S_WL_INSERT] = "INSERT INTO workload(hash, name, target, program, created) "
                    "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(hash) DO NOTHING",
    [S_WL_FIND] = "SELECT id, target, program FROM workload WHERE hash = ?1",
    [S_WL_LIST] =
        "SELECT w.id, w.hash, w.name, w.target, w.created, "
        "(SELECT count(*) FROM record r WHERE r.workload = w.id), "
        "(SELECT count(*) FROM record r WHERE r.workload = w.id AND r.error IS NOT NULL), "
        "(SELECT r.median_ms FROM record r WHERE r.workload = w.id AND r.median_ms IS NOT NULL "
        " ORDER BY r.median_ms, r.id LIMIT 1), "
        "(SELECT r.gflops FROM record r WHERE r.workload = w.id AND r.median_ms IS NOT NULL "
        " ORDER BY r.median_ms, r.id LIMIT 1) "
        "FROM workload w ORDER BY w.id",
    [S_REC_INSERT] = "INSERT INTO record(workload, trace, trace_hash, features, nrows, times_ms, "
                     "median_ms, gflops, error, verified, threads, created) "
                     "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
                     "ON CONFLICT(workload, trace_hash) DO NOTHING",
    [S_REC_FIND] = "SELECT id FROM record WHERE workload = ?1 AND trace_hash = ?2",
    [S_COUNT_WL] = "SELECT count(*), count(error) FROM record WHERE workload = ?1",
    [S_COUNT_ALL] = "SELECT count(*), count(error) FROM record",
    [S_BEST] = "SELECT " RECORD_COLS " FROM record WHERE workload = ?1 AND median_ms IS NOT NULL "
               "AND (?2 = 0 OR verified = 1) ORDER BY median_ms, id LIMIT 1",
    [S_TOPK] = "SELECT " RECORD_COLS " FROM record WHERE workload = ?1 AND median_ms IS NOT NULL "
               "ORDER BY median_ms, id LIMIT ?2",
    [S_RECORDS_WL] = "SELECT " RECORD_COLS " FROM record WHERE workload = ?1 ORDER BY id",
    [S_RECORDS_ALL] = "SELECT " RECORD_COLS " FROM record ORDER BY id",
    [S_EXPORT_WL] = "SELECT w.name, w.hash, w.target, r.trace, r.trace_hash, r.times_ms, "
                    "r.median_ms, r.gflops, r.error, r.verified, r.threads, r.created "
                    "FROM record r JOIN workload w ON w.id = r.workload "
                    "WHERE r.workload = ?1 ORDER BY r.id",
    [S_EXPORT_ALL] = "SELECT w.name, w.hash, w.target, r.trace, r.trace_hash, r.times_ms, "
                     "r.median_ms, r.gflops, r.error, r.verified, r.threads, r.created "
                     "FROM record r JOIN workload w ON w.id = r.workload ORDER BY r.id",
    /* Rank each workload's successes by time; delete every failure and
     * every success past `keep`. */
    [S_PRUNE] = "DELETE FROM record WHERE id IN (SELECT id FROM ("
                " SELECT id, median_ms, row_number() OVER (PARTITION BY workload"
                "  ORDER BY median_ms IS NULL, median_ms, id) AS rank"
                " FROM record WHERE ?1 = 0 OR workload = ?1)"
                " WHERE median_ms IS NULL OR rank > ?2)",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS workload("
    " id INTEGER PRIMARY KEY,"
    " hash TEXT NOT NULL UNIQUE,"
    " name TEXT NOT NULL,"
    " target TEXT NOT NULL,"
    " program TEXT NOT NULL,"
    " created REAL NOT NULL);"
    "CREATE TABLE IF NOT EXISTS record("
    " id INTEGER PRIMARY KEY,"
    " workload INTEGER NOT NULL REFERENCES workload(id),"
    " trace TEXT NOT NULL,"
    " trace_hash TEXT NOT NULL,"
    " features BLOB,"
    " nrows INTEGER NOT NULL DEFAULT 0,"
    " times_ms TEXT NOT NULL DEFAULT '[]',"
    " median_ms REAL,"
    " gflops REAL,"
    " error TEXT,"
    " verified INTEGER NOT NULL DEFAULT 0,"
    " threads INTEGER NOT NULL DEFAULT 0,"
    " created REAL NOT NULL,"
    " UNIQUE(workload, trace_hash),"
    " CHECK((error IS NULL) = (median_ms IS NOT NULL)));"
    "CREATE INDEX IF NOT EXISTS record_by_time ON record(workload, median_ms);";

struct TuneDb {
    sqlite3 *h;
    char *path;
    sqlite3_stmt *st[S_COUNT_];
};

/* ================================================================ hashing */

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

/* A full-avalanche 64-bit finaliser (every input bit flips each output bit
 * with probability ~1/2). */
static inline uint64_t avalanche(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ull;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dull;
    x ^= x >> 33;
    return x;
}

static inline uint64_t load64le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Two 64-bit lanes absorb 16-byte blocks with multiply-rotate rounds that
 * feed each other; the tail is zero-padded and the length folded in, so
 * inputs differing only in trailing zeros or length still differ. */
void tune_hash128(const void *data, size_t n, uint64_t seed, uint64_t out[2])
{
    const uint64_t K1 = 0x9e3779b97f4a7c15ull, K2 = 0xc2b2ae3d27d4eb4full;
    const uint64_t K3 = 0x165667b19e3779f9ull, K4 = 0xd6e8feb86659fd93ull;
    const unsigned char *p = data;
    uint64_t a = seed ^ K3, b = rotl64(seed, 32) ^ K4;
    for (size_t i = 0; i < n; i += 16) {
        size_t left = n - i;
        uint64_t w1 = load64le(p + i, left >= 8 ? 8 : left);
        uint64_t w2 = left > 8 ? load64le(p + i + 8, left >= 16 ? 8 : left - 8) : 0;
        a ^= rotl64(w1 * K1, 31) * K2;
        a = rotl64(a, 27) + b;
        a = a * 5 + 0x52dce729;
        b ^= rotl64(w2 * K2, 33) * K1;
        b = rotl64(b, 31) + a;
        b = b * 5 + 0x38495ab5;
    }
    a ^= (uint64_t)n;
    b ^= (uint64_t)n * K1;
    a += b;
    b += a;
    a = avalanche(a);
    b = avalanche(b);
    a += b;
    b += a;
    out[0] = a;
    out[1] = b;
}

static void hash_hex(const void *data, size_t n, char hex[TUNE_HASH_HEX])
{
    uint64_t h[2];
    tune_hash128(data, n, 0, h);
    snprintf(hex, TUNE_HASH_HEX, "%016llx%016llx", (unsigned long long)h[0],
             (unsigned long long)h[1]);
}

void tune_workload_hash(const char *program, const char *target, char hex[TUNE_HASH_HEX])
{
    /* program NUL target: the program text holds no NUL, so the split is
     * unambiguous.  Hash the two parts in one buffer-free pass by chaining:
     * the target's hash seeds the program's. */
    uint64_t th[2];
    const char *t = target ? target : "";
    const char *p = program ? program : "";
    tune_hash128(t, strlen(t), 0x74617267ull, th); /* "targ" */
    uint64_t h[2];
    tune_hash128(p, strlen(p), th[0] ^ rotl64(th[1], 17), h);
    h[1] ^= avalanche(th[1] + h[0]);
    snprintf(hex, TUNE_HASH_HEX, "%016llx%016llx", (unsigned long long)h[0],
             (unsigned long long)h[1]);
}

static bool word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-' || c == '+';
}

void tune_trace_hash(const char *trace, char hex[TUNE_HASH_HEX])
{
    /* Canonical form: comments and blank lines dropped; inside a line,
     * whitespace kept (as one space) only where it separates two word
     * characters, which is the only place the parser would see it. */
    const char *s = trace ? trace : "";
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (!c) {
        /* Without memory fall back to the raw text: still deterministic
         * for identical texts, which is what dedup relies on. */
        hash_hex(s, n, hex);
        return;
    }
    size_t len = 0;
    while (*s) {
        size_t line_start = len;
        bool pending_space = false;
        for (; *s && *s != '\n'; s++) {
            if (*s == '#') {
                while (*s && *s != '\n')
                    s++;
                break;
            }
            if (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\f' || *s == '\v') {
                pending_space = len > line_start;
                continue;
            }
            if (pending_space && word_char(c[len - 1]) && word_char(*s))
                c[len++] = ' ';
            pending_space = false;
            c[len++] = *s;
        }
        if (*s == '\n')
            s++;
        if (len > line_start)
            c[len++] = '\n';
    }
    hash_hex(c, len, hex);
    free(c);
}

/* ================================================================ helpers */

static double now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Turns an SQLite failure into a kiln error naming the file. */
static int db_fail(const TuneDb *db, kiln_error *e, int rc, const char *what)
{
    int code = (rc & 0xff) == SQLITE_NOMEM ? KILN_ENOMEM : KILN_EIO;
    const char *msg = db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc);
    return ir_error(e, code, db->path, (Loc){0, 0}, "%s: %s", what, msg);
}

static int oom(const TuneDb *db, kiln_error *e)
{
    return ir_error(e, KILN_ENOMEM, db ? db->path : NULL, (Loc){0, 0}, "out of memory");
}

static int inval(kiln_error *e, const char *msg)
{
    return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "%s", msg);
}

/* The prepared statement `which`, reset with no bindings. */
static sqlite3_stmt *stmt(TuneDb *db, int which)
{
    sqlite3_stmt *s = db->st[which];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

static char *dup_text(sqlite3_stmt *s, int col, bool *oom_flag)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    if (!t) {
        if (sqlite3_errcode(sqlite3_db_handle(s)) == SQLITE_NOMEM)
            *oom_flag = true;
        return NULL;
    }
    char *r = strdup((const char *)t);
    if (!r)
        *oom_flag = true;
    return r;
}

/* Runs a statement that yields one integer (a PRAGMA). */
static int pragma_int(TuneDb *db, const char *sql, int *out, kiln_error *e)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db->h, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int(s, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            *out = 0;
            rc = SQLITE_OK;
        }
    }
    int ret = rc == SQLITE_OK ? KILN_OK : db_fail(db, e, rc, "cannot read the database");
    sqlite3_finalize(s);
    return ret;
}

static int exec(TuneDb *db, const char *sql, const char *what, kiln_error *e)
{
    int rc = sqlite3_exec(db->h, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? KILN_OK : db_fail(db, e, rc, what);
}

/* ================================================================== open */

/* Creates the schema when the file has none.  BEGIN IMMEDIATE serialises
 * two processes opening a new file at once; the loser sees the version
 * the winner wrote and does nothing. */
static int create_schema(TuneDb *db, kiln_error *e)
{
    int rc = exec(db, "BEGIN IMMEDIATE", "cannot create the schema", e);
    if (rc)
        return rc;
    int ver = 0;
    rc = pragma_int(db, "PRAGMA user_version", &ver, e);
    if (!rc && ver == 0) {
        rc = exec(db, schema_sql, "cannot create the schema", e);
        if (!rc) {
            char sql[96];
            snprintf(sql, sizeof sql, "PRAGMA application_id = %d; PRAGMA user_version = %d",
                     KILN_APP_ID, TUNE_DB_SCHEMA_VERSION);
            rc = exec(db, sql, "cannot create the schema", e);
        }
    }
    if (rc) {
        sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return exec(db, "COMMIT", "cannot create the schema", e);
}

static int open_checked(TuneDb *db, kiln_error *e)
{
    int rc = sqlite3_open_v2(db->path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK)
        return db_fail(db, e, rc, "cannot open the database");
    sqlite3_extended_result_codes(db->h, 1);
    /* Several tuners may share one file: wait for a writer instead of
     * failing at once. */
    sqlite3_busy_timeout(db->h, 10000);

    /* The first read of the header: a file that is not SQLite fails here. */
    int ver = 0, app = 0;
    if ((rc = pragma_int(db, "PRAGMA user_version", &ver, e)) ||
        (rc = pragma_int(db, "PRAGMA application_id", &app, e)))
        return rc;
    if (app != 0 && app != KILN_APP_ID)
        return ir_error(e, KILN_EIO, db->path, (Loc){0, 0},
                        "not a kiln database (an SQLite file of another application)");
    if (ver > TUNE_DB_SCHEMA_VERSION)
        return ir_error(e, KILN_EIO, db->path, (Loc){0, 0},
                        "database schema version %d is newer than this kiln reads (%d): "
                        "use a newer kiln or another file",
                        ver, TUNE_DB_SCHEMA_VERSION);
    if (ver == 0) {
        int ntables = 0;
        rc = pragma_int(db,
                        "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' "
                        "ESCAPE '\\'",
                        &ntables, e);
        if (rc)
            return rc;
        if (ntables > 0 && app != KILN_APP_ID)
            return ir_error(e, KILN_EIO, db->path, (Loc){0, 0},
                            "not a kiln database (an SQLite file with other tables)");
    }

    /* WAL: readers never block the writer and a killed writer leaves the
     * file consistent.  synchronous=FULL: a committed record is on disk
     * (survives a power cut, not only a killed process); one fsync per
     * record is negligible next to a measurement.  A read-only file keeps
     * its mode and can still be queried. */
    bool ro = sqlite3_db_readonly(db->h, "main") == 1;
    if (!ro && ((rc = exec(db, "PRAGMA journal_mode = WAL", "cannot set the journal mode", e)) ||
                (rc = exec(db, "PRAGMA synchronous = FULL", "cannot set synchronous mode", e))))
        return rc;
    if ((rc = exec(db, "PRAGMA foreign_keys = ON", "cannot enable foreign keys", e)))
        return rc;
    if (ver < TUNE_DB_SCHEMA_VERSION) {
        if (ro)
            return ir_error(e, KILN_EIO, db->path, (Loc){0, 0},
                            "cannot create the schema: the file is read-only");
        if ((rc = create_schema(db, e)))
            return rc;
    }
    for (int i = 0; i < S_COUNT_; i++) {
        rc =
            sqlite3_prepare_v3(db->h, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &db->st[i], NULL);
        if (rc != SQLITE_OK)
            return db_fail(db, e, rc, "cannot prepare a query (is the schema damaged?)");
    }
    return KILN_OK;
}

int tune_db_open(const char *path, TuneDb **out, kiln_error *e)
{
    if (!out)
        return inval(e, "tune_db_open: out is NULL");
    *out = NULL;
    TuneDb *db = calloc(1, sizeof *db);
    if (!db)
        return oom(NULL, e);
    db->path = strdup(path ? path : TUNE_DB_DEFAULT_PATH);
    if (!db->path) {
        free(db);
        return oom(NULL, e);
    }
    int rc = open_checked(db, e);
    if (rc) {
        tune_db_close(db);
        return rc;
    }
    *out = db;
    return KILN_OK;
}

void tune_db_close(TuneDb *db)
{
    if (!db)
        return;
    for (int i = 0; i < S_COUNT_; i++)
        sqlite3_finalize(db->st[i]);
    /* close_v2: never fails for unfinalized statements (there are none
     * left); the WAL is checkpointed when this is the last connection. */
    sqlite3_close_v2(db->h);
    free(db->path);
    free(db);
}

const char *tune_db_path(const TuneDb *db)
{
    return db ? db->path : NULL;
}

int tune_db_check(TuneDb *db, kiln_error *e)
{
    if (!db)
        return inval(e, "tune_db_check: db is NULL");
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db->h, "PRAGMA integrity_check", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return db_fail(db, e, rc, "integrity check failed");
    rc = sqlite3_step(s);
    int ret = KILN_OK;
    if (rc == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(s, 0);
        if (!r || strcmp(r, "ok") != 0)
            ret = ir_error(e, KILN_EIO, db->path, (Loc){0, 0}, "database is damaged: %s",
                           r ? r : "(no report)");
    } else {
        ret = db_fail(db, e, rc, "integrity check failed");
    }
    sqlite3_finalize(s);
    return ret;
}

/* ============================================================= workloads */

int tune_db_find_workload(TuneDb *db, const char *hash, int64_t *id, kiln_error *e)
{
    if (!db || !hash || !id)
        return inval(e, "tune_db_find_workload: db, hash or id is NULL");
    *id = 0;
    sqlite3_stmt *s = stmt(db, S_WL_FIND);
    sqlite3_bind_text(s, 1, hash, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(s, 0);
    int ret = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? KILN_OK
                                                      : db_fail(db, e, rc, "cannot read workloads");
    sqlite3_reset(s);
    return ret;
}

int tune_db_workload(TuneDb *db, const char *hash, const char *name, const char *target,
                     const char *program, int64_t *id, kiln_error *e)
{
    if (!db || !name || !target || !program || !id)
        return inval(e, "tune_db_workload: db, name, target, program or id is NULL");
    *id = 0;
    char h[TUNE_HASH_HEX];
    if (!hash) {
        tune_workload_hash(program, target, h);
        hash = h;
    }
    sqlite3_stmt *s = stmt(db, S_WL_INSERT);
    sqlite3_bind_text(s, 1, hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, target, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, program, -1, SQLITE_STATIC);
    sqlite3_bind_double(s, 5, now_unix());
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return db_fail(db, e, rc, "cannot add a workload");

    s = stmt(db, S_WL_FIND);
    sqlite3_bind_text(s, 1, hash, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    int ret = KILN_OK;
    if (rc == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(s, 1);
        const char *p = (const char *)sqlite3_column_text(s, 2);
        if (!t || !p || strcmp(t, target) != 0 || strcmp(p, program) != 0)
            ret = ir_error(e, KILN_EINVAL, db->path, (Loc){0, 0},
                           "workload hash %s already names a different program or target "
                           "(hash collision)",
                           hash);
        else
            *id = sqlite3_column_int64(s, 0);
    } else {
        ret = db_fail(db, e, rc, "cannot read workloads");
    }
    sqlite3_reset(s);
    return ret;
}

void tune_workloads_free(TuneWorkloadInfo *w, int n)
{
    if (!w)
        return;
    for (int i = 0; i < n; i++) {
        free(w[i].hash);
        free(w[i].name);
        free(w[i].target);
    }
    free(w);
}

int tune_db_workloads(TuneDb *db, TuneWorkloadInfo **out, int *n, kiln_error *e)
{
    if (!db || !out || !n)
        return inval(e, "tune_db_workloads: db, out or n is NULL");
    *out = NULL;
    *n = 0;
    TuneWorkloadInfo *v = NULL;
    int len = 0, cap = 0, ret = KILN_OK, rc;
    bool no_mem = false;
    sqlite3_stmt *s = stmt(db, S_WL_LIST);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (len == cap) {
            int nc = cap ? cap * 2 : 16;
            TuneWorkloadInfo *t = realloc(v, sizeof *v * (size_t)nc);
            if (!t) {
                no_mem = true;
                break;
            }
            v = t;
            cap = nc;
        }
        TuneWorkloadInfo *w = &v[len++];
        memset(w, 0, sizeof *w);
        w->id = sqlite3_column_int64(s, 0);
        w->hash = dup_text(s, 1, &no_mem);
        w->name = dup_text(s, 2, &no_mem);
        w->target = dup_text(s, 3, &no_mem);
        w->created = sqlite3_column_double(s, 4);
        w->nrecords = sqlite3_column_int64(s, 5);
        w->nfailed = sqlite3_column_int64(s, 6);
        w->best_ms = sqlite3_column_double(s, 7); /* NULL reads as 0 */
        w->best_gflops = sqlite3_column_double(s, 8);
        if (no_mem)
            break;
    }
    if (no_mem)
        ret = oom(db, e);
    else if (rc != SQLITE_DONE)
        ret = db_fail(db, e, rc, "cannot list workloads");
    sqlite3_reset(s);
    if (ret) {
        tune_workloads_free(v, len);
        return ret;
    }
    *out = v;
    *n = len;
    return KILN_OK;
}

/* =============================================================== records */

void tune_record_fini(TuneRecord *r)
{
    if (!r)
        return;
    free(r->trace);
    free(r->features);
    free(r->times_ms);
    free(r->error);
    memset(r, 0, sizeof *r);
}

void tune_records_free(TuneRecord *r, int n)
{
    if (!r)
        return;
    for (int i = 0; i < n; i++)
        tune_record_fini(&r[i]);
    free(r);
}

/* times as a JSON array of numbers; malloc'd. */
static char *times_json(const double *t, int n)
{
    size_t cap = (size_t)n * 32 + 3;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t len = 0;
    s[len++] = '[';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%.9g", i ? "," : "", t[i]);
    s[len++] = ']';
    s[len] = 0;
    return s;
}

/* Parses the JSON array of numbers written by times_json (tolerating
 * spaces and nulls, which are skipped). */
static int parse_times(const char *s, double **out, int *n)
{
    *out = NULL;
    *n = 0;
    if (!s)
        return KILN_OK;
    int count = 0;
    for (const char *p = s; *p; p++)
        if (*p == ',')
            count++;
    double *v = malloc(sizeof(double) * (size_t)(count + 1));
    if (!v)
        return KILN_ENOMEM;
    int len = 0;
    const char *p = s;
    while (*p) {
        if (*p == '[' || *p == ']' || *p == ',' || *p == ' ' || *p == '\t' || *p == '\n') {
            p++;
            continue;
        }
        char *end;
        double d = strtod(p, &end);
        if (end == p) { /* null or junk: skip to the next separator */
            while (*p && *p != ',' && *p != ']')
                p++;
            continue;
        }
        if (len <= count)
            v[len++] = d;
        p = end;
    }
    if (!len) {
        free(v);
        v = NULL;
    }
    *out = v;
    *n = len;
    return KILN_OK;
}

/* Reads a row of RECORD_COLS into r (zeroed first). */
static int read_record(TuneDb *db, sqlite3_stmt *s, TuneRecord *r, kiln_error *e)
{
    memset(r, 0, sizeof *r);
    bool no_mem = false;
    r->id = sqlite3_column_int64(s, 0);
    r->workload = sqlite3_column_int64(s, 1);
    r->trace = dup_text(s, 2, &no_mem);
    const unsigned char *th = sqlite3_column_text(s, 3);
    snprintf(r->trace_hash, sizeof r->trace_hash, "%s", th ? (const char *)th : "");
    const void *blob = sqlite3_column_blob(s, 4);
    int bytes = sqlite3_column_bytes(s, 4);
    int nrows = sqlite3_column_int(s, 5);
    if (blob && bytes > 0 && nrows > 0 && bytes % (int)(sizeof(float) * (size_t)nrows) == 0) {
        r->features = malloc((size_t)bytes);
        if (r->features) {
            memcpy(r->features, blob, (size_t)bytes);
            r->nrows = nrows;
            r->ncols = bytes / (int)sizeof(float) / nrows;
        } else {
            no_mem = true;
        }
    }
    if (parse_times((const char *)sqlite3_column_text(s, 6), &r->times_ms, &r->ntimes))
        no_mem = true;
    r->median_ms = sqlite3_column_double(s, 7);
    r->gflops = sqlite3_column_double(s, 8);
    if (sqlite3_column_type(s, 9) != SQLITE_NULL)
        r->error = dup_text(s, 9, &no_mem);
    r->verified = sqlite3_column_int(s, 10);
    r->threads = sqlite3_column_int(s, 11);
    r->created = sqlite3_column_double(s, 12);
    if (no_mem) {
        tune_record_fini(r);
        return oom(db, e);
    }
    return KILN_OK;
}

/* Steps s to the end, appending each row as a record. */
static int read_records(TuneDb *db, sqlite3_stmt *s, TuneRecord **out, int *n, kiln_error *e)
{
    TuneRecord *v = NULL;
    int len = 0, cap = 0, rc, ret = KILN_OK;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (len == cap) {
            int nc = cap ? cap * 2 : 16;
            TuneRecord *t = realloc(v, sizeof *v * (size_t)nc);
            if (!t) {
                ret = oom(db, e);
                break;
            }
            v = t;
            cap = nc;
        }
        if ((ret = read_record(db, s, &v[len], e)))
            break;
        len++;
    }
    if (!ret && rc != SQLITE_DONE)
        ret = db_fail(db, e, rc, "cannot read records");
    sqlite3_reset(s);
    if (ret) {
        tune_records_free(v, len);
        return ret;
    }
    *out = v;
    *n = len;
    return KILN_OK;
}

int tune_db_add(TuneDb *db, const TuneRecord *r, int64_t *id, bool *inserted, kiln_error *e)
{
    if (id)
        *id = 0;
    if (inserted)
        *inserted = false;
    if (!db || !r)
        return inval(e, "tune_db_add: db or record is NULL");
    if (r->workload <= 0 || !r->trace)
        return inval(e, "tune_db_add: the record has no workload or no trace");
    if (!r->error && !(isfinite(r->median_ms) && r->median_ms > 0))
        return inval(e, "tune_db_add: a successful record needs a positive median time");
    if (r->ntimes < 0 || (r->ntimes > 0 && !r->times_ms))
        return inval(e, "tune_db_add: bad times");
    for (int i = 0; i < r->ntimes; i++)
        if (!isfinite(r->times_ms[i]))
            return inval(e, "tune_db_add: a time is not a finite number");
    if (r->nrows < 0 || r->ncols < 0 || (r->nrows && r->ncols && !r->features))
        return inval(e, "tune_db_add: bad feature rows");

    char th[TUNE_HASH_HEX];
    const char *trace_hash = r->trace_hash;
    if (!trace_hash[0]) {
        tune_trace_hash(r->trace, th);
        trace_hash = th;
    }
    char *times = times_json(r->times_ms, r->ntimes);
    if (!times)
        return oom(db, e);

    sqlite3_stmt *s = stmt(db, S_REC_INSERT);
    sqlite3_bind_int64(s, 1, r->workload);
    sqlite3_bind_text(s, 2, r->trace, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, trace_hash, -1, SQLITE_STATIC);
    sqlite3_uint64 fbytes = (sqlite3_uint64)r->nrows * (sqlite3_uint64)r->ncols * sizeof(float);
    if (fbytes)
        sqlite3_bind_blob64(s, 4, r->features, fbytes, SQLITE_STATIC);
    sqlite3_bind_int(s, 5, fbytes ? r->nrows : 0);
    sqlite3_bind_text(s, 6, times, -1, SQLITE_STATIC);
    if (!r->error) {
        sqlite3_bind_double(s, 7, r->median_ms);
        if (isfinite(r->gflops))
            sqlite3_bind_double(s, 8, r->gflops);
    } else {
        sqlite3_bind_text(s, 9, r->error, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int(s, 10, r->verified ? 1 : 0);
    sqlite3_bind_int(s, 11, r->threads);
    sqlite3_bind_double(s, 12, r->created > 0 ? r->created : now_unix());
    int rc = sqlite3_step(s);
    bool added = sqlite3_changes(db->h) == 1;
    int64_t rowid = sqlite3_last_insert_rowid(db->h);
    sqlite3_reset(s);
    free(times);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return ir_error(e, KILN_EINVAL, db->path, (Loc){0, 0},
                        "tune_db_add: no workload with id %lld", (long long)r->workload);
    if (rc != SQLITE_DONE)
        return db_fail(db, e, rc, "cannot add a record");
    if (added) {
        if (id)
            *id = rowid;
        if (inserted)
            *inserted = true;
        return KILN_OK;
    }
    /* Already there: report the existing record. */
    s = stmt(db, S_REC_FIND);
    sqlite3_bind_int64(s, 1, r->workload);
    sqlite3_bind_text(s, 2, trace_hash, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && id)
        *id = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? KILN_OK : db_fail(db, e, rc, "cannot read records");
}

int tune_db_has_trace(TuneDb *db, int64_t workload, const char *trace_hash, bool *has,
                      kiln_error *e)
{
    if (!db || !trace_hash || !has)
        return inval(e, "tune_db_has_trace: db, trace_hash or has is NULL");
    *has = false;
    sqlite3_stmt *s = stmt(db, S_REC_FIND);
    sqlite3_bind_int64(s, 1, workload);
    sqlite3_bind_text(s, 2, trace_hash, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *has = rc == SQLITE_ROW;
    sqlite3_reset(s);
    return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? KILN_OK
                                                   : db_fail(db, e, rc, "cannot read records");
}

int tune_db_count(TuneDb *db, int64_t workload, int64_t *total, int64_t *failed, kiln_error *e)
{
    if (failed)
        *failed = 0;
    if (!db || !total)
        return inval(e, "tune_db_count: db or total is NULL");
    *total = 0;
    sqlite3_stmt *s = stmt(db, workload ? S_COUNT_WL : S_COUNT_ALL);
    if (workload)
        sqlite3_bind_int64(s, 1, workload);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *total = sqlite3_column_int64(s, 0);
        if (failed)
            *failed = sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? KILN_OK : db_fail(db, e, rc, "cannot count records");
}

int tune_db_best(TuneDb *db, int64_t workload, bool verified_only, TuneRecord *out, kiln_error *e)
{
    if (!db || !out)
        return inval(e, "tune_db_best: db or out is NULL");
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = stmt(db, S_BEST);
    sqlite3_bind_int64(s, 1, workload);
    sqlite3_bind_int(s, 2, verified_only ? 1 : 0);
    int rc = sqlite3_step(s), ret = KILN_OK;
    if (rc == SQLITE_ROW)
        ret = read_record(db, s, out, e);
    else if (rc != SQLITE_DONE)
        ret = db_fail(db, e, rc, "cannot read records");
    sqlite3_reset(s);
    return ret;
}

int tune_db_top_k(TuneDb *db, int64_t workload, int k, TuneRecord **out, int *n, kiln_error *e)
{
    if (!db || !out || !n)
        return inval(e, "tune_db_top_k: db, out or n is NULL");
    *out = NULL;
    *n = 0;
    if (k <= 0)
        return KILN_OK;
    sqlite3_stmt *s = stmt(db, S_TOPK);
    sqlite3_bind_int64(s, 1, workload);
    sqlite3_bind_int(s, 2, k);
    return read_records(db, s, out, n, e);
}

int tune_db_records(TuneDb *db, int64_t workload, TuneRecord **out, int *n, kiln_error *e)
{
    if (!db || !out || !n)
        return inval(e, "tune_db_records: db, out or n is NULL");
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = stmt(db, workload ? S_RECORDS_WL : S_RECORDS_ALL);
    if (workload)
        sqlite3_bind_int64(s, 1, workload);
    return read_records(db, s, out, n, e);
}

/* ================================================================ export */

static void json_string(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

static void json_number_or_null(FILE *f, sqlite3_stmt *s, int col, int digits)
{
    if (sqlite3_column_type(s, col) == SQLITE_NULL || !isfinite(sqlite3_column_double(s, col)))
        fputs("null", f);
    else
        fprintf(f, "%.*g", digits, sqlite3_column_double(s, col));
}

int tune_db_export(TuneDb *db, int64_t workload, FILE *out, kiln_error *e)
{
    if (!db || !out)
        return inval(e, "tune_db_export: db or out is NULL");
    sqlite3_stmt *s = stmt(db, workload ? S_EXPORT_WL : S_EXPORT_ALL);
    if (workload)
        sqlite3_bind_int64(s, 1, workload);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        fputs("{\"workload\":", out);
        json_string(out, (const char *)sqlite3_column_text(s, 0));
        fputs(",\"workload_hash\":", out);
        json_string(out, (const char *)sqlite3_column_text(s, 1));
        fputs(",\"target\":", out);
        json_string(out, (const char *)sqlite3_column_text(s, 2));
        fputs(",\"trace\":", out);
        json_string(out, (const char *)sqlite3_column_text(s, 3));
        fputs(",\"trace_hash\":", out);
        json_string(out, (const char *)sqlite3_column_text(s, 4));
        /* Re-serialise the times so the line is valid JSON even if the
         * column was edited by hand. */
        double *t = NULL;
        int nt = 0;
        if (parse_times((const char *)sqlite3_column_text(s, 5), &t, &nt)) {
            sqlite3_reset(s);
            return oom(db, e);
        }
        fputs(",\"times_ms\":[", out);
        for (int i = 0; i < nt; i++)
            fprintf(out, "%s%.9g", i ? "," : "", isfinite(t[i]) ? t[i] : 0.0);
        free(t);
        fputs("],\"median_ms\":", out);
        json_number_or_null(out, s, 6, 9);
        fputs(",\"gflops\":", out);
        json_number_or_null(out, s, 7, 6);
        fputs(",\"error\":", out);
        json_string(out, (const char *)sqlite3_column_text(s, 8));
        fprintf(out, ",\"verified\":%s,\"threads\":%d,\"created\":",
                sqlite3_column_int(s, 9) ? "true" : "false", sqlite3_column_int(s, 10));
        json_number_or_null(out, s, 11, 15);
        fputs("}\n", out);
    }
    int ret = rc == SQLITE_DONE ? KILN_OK : db_fail(db, e, rc, "cannot read records");
    sqlite3_reset(s);
    if (!ret && (fflush(out) != 0 || ferror(out)))
        ret = ir_error(e, KILN_EIO, NULL, (Loc){0, 0}, "cannot write the export");
    return ret;
}

int tune_db_prune(TuneDb *db, int64_t workload, int keep, int64_t *deleted, kiln_error *e)
{
    if (deleted)
        *deleted = 0;
    if (!db || keep < 0)
        return inval(e, "tune_db_prune: db is NULL or keep is negative");
    sqlite3_stmt *s = stmt(db, S_PRUNE);
    sqlite3_bind_int64(s, 1, workload);
    sqlite3_bind_int(s, 2, keep);
    int rc = sqlite3_step(s);
    int64_t n = sqlite3_changes64(db->h);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return db_fail(db, e, rc, "cannot prune records");
    if (deleted)
        *deleted = n;
    return KILN_OK;
}
