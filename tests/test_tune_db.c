/* tests/test_tune_db.c: the tuning database (tune/database.c) — hashes,
 * add/query round trips, best and top-k ordering (failures never win),
 * trace dedup, reopen, JSON-lines export parsed back line by line,
 * pruning, two writers at once, a writer SIGKILLed mid-run (everything
 * acknowledged is still there, the file passes integrity_check), and bad
 * files (garbage, corrupt pages, foreign SQLite, newer schema) that must
 * give errors, never crashes. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"
#include "tune/database.h"

static char dir[1024];

static const char *path_in(const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}

/* Removes a database and its WAL side files. */
static void rm_db(const char *path)
{
    char b[1200];
    unlink(path);
    snprintf(b, sizeof b, "%s-wal", path);
    unlink(b);
    snprintf(b, sizeof b, "%s-shm", path);
    unlink(b);
    snprintf(b, sizeof b, "%s-journal", path);
    unlink(b);
}

/* ------------------------------------------------------------- mini JSON */
/* A strict little JSON parser: enough to prove each export line is one
 * valid JSON object and to read its fields back. */
typedef struct {
    const char *p;
    bool ok;
} J;

static void jws(J *j)
{
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
        j->p++;
}

static bool jvalue(J *j);

/* Parses a string; when out is non-NULL stores its unescaped text. */
static bool jstring(J *j, char *out, size_t n)
{
    if (*j->p != '"')
        return false;
    j->p++;
    size_t len = 0;
    while (*j->p && *j->p != '"') {
        char c = *j->p++;
        if ((unsigned char)c < 0x20)
            return false;
        if (c == '\\') {
            char x = *j->p++;
            switch (x) {
            case '"':
                c = '"';
                break;
            case '\\':
                c = '\\';
                break;
            case '/':
                c = '/';
                break;
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case 'r':
                c = '\r';
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'u': {
                unsigned v = 0;
                for (int i = 0; i < 4; i++) {
                    char h = *j->p++;
                    v <<= 4;
                    if (h >= '0' && h <= '9')
                        v |= (unsigned)(h - '0');
                    else if (h >= 'a' && h <= 'f')
                        v |= (unsigned)(h - 'a' + 10);
                    else if (h >= 'A' && h <= 'F')
                        v |= (unsigned)(h - 'A' + 10);
                    else
                        return false;
                }
                c = (char)v;
                break;
            }
            default:
                return false;
            }
        }
        if (out && len + 1 < n)
            out[len++] = c;
    }
    if (*j->p != '"')
        return false;
    j->p++;
    if (out)
        out[len] = 0;
    return true;
}

static bool jnumber(J *j, double *v)
{
    char *end;
    double d = strtod(j->p, &end);
    if (end == j->p || (*j->p != '-' && (*j->p < '0' || *j->p > '9')))
        return false;
    j->p = end;
    if (v)
        *v = d;
    return true;
}

static bool jlit(J *j, const char *w)
{
    size_t n = strlen(w);
    if (strncmp(j->p, w, n))
        return false;
    j->p += n;
    return true;
}

static bool jvalue(J *j)
{
    jws(j);
    char c = *j->p;
    if (c == '"')
        return jstring(j, NULL, 0);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        jws(j);
        if (*j->p == close) {
            j->p++;
            return true;
        }
        for (;;) {
            jws(j);
            if (c == '{') {
                if (!jstring(j, NULL, 0))
                    return false;
                jws(j);
                if (*j->p++ != ':')
                    return false;
            }
            if (!jvalue(j))
                return false;
            jws(j);
            if (*j->p == ',') {
                j->p++;
                continue;
            }
            if (*j->p++ != close)
                return false;
            return true;
        }
    }
    if (c == 't')
        return jlit(j, "true");
    if (c == 'f')
        return jlit(j, "false");
    if (c == 'n')
        return jlit(j, "null");
    return jnumber(j, NULL);
}

/* Finds top-level key `key` in the object text and leaves j->p at its
 * value.  The whole line must be exactly one JSON object. */
static bool jfind(const char *line, const char *key, J *j)
{
    j->p = line;
    jws(j);
    if (*j->p != '{')
        return false;
    j->p++;
    for (;;) {
        jws(j);
        char k[128];
        if (!jstring(j, k, sizeof k))
            return false;
        jws(j);
        if (*j->p++ != ':')
            return false;
        jws(j);
        if (!strcmp(k, key))
            return true;
        if (!jvalue(j))
            return false;
        jws(j);
        if (*j->p != ',')
            return false;
        j->p++;
    }
}

static bool json_line_valid(const char *line)
{
    J j = {line, true};
    jws(&j);
    if (*j.p != '{' || !jvalue(&j))
        return false;
    jws(&j);
    return *j.p == 0;
}

static bool jget_string(const char *line, const char *key, char *out, size_t n)
{
    J j;
    return jfind(line, key, &j) && jstring(&j, out, n);
}

static bool jget_number(const char *line, const char *key, double *v)
{
    J j;
    return jfind(line, key, &j) && jnumber(&j, v);
}

static bool jget_null(const char *line, const char *key)
{
    J j;
    return jfind(line, key, &j) && jlit(&j, "null");
}

/* ---------------------------------------------------------------- hashes */
static int popcount128(const uint64_t a[2], const uint64_t b[2])
{
    return __builtin_popcountll(a[0] ^ b[0]) + __builtin_popcountll(a[1] ^ b[1]);
}

static void test_hashes(void)
{
    uint64_t h1[2], h2[2];
    tune_hash128("hello", 5, 0, h1);
    tune_hash128("hello", 5, 0, h2);
    CHECK(h1[0] == h2[0] && h1[1] == h2[1]);
    tune_hash128("hello", 5, 1, h2);
    CHECK(h1[0] != h2[0] || h1[1] != h2[1]);
    /* Trailing zero bytes and lengths matter. */
    char z[32] = {0};
    tune_hash128(z, 7, 0, h1);
    tune_hash128(z, 8, 0, h2);
    CHECK(h1[0] != h2[0]);
    tune_hash128(z, 0, 0, h1);
    tune_hash128(z, 16, 0, h2);
    CHECK(h1[0] != h2[0]);

    /* Avalanche: flipping any one input bit flips about half the output
     * bits, on average over all bit positions. */
    unsigned char buf[40];
    for (int i = 0; i < 40; i++)
        buf[i] = (unsigned char)(i * 37 + 11);
    uint64_t base[2];
    tune_hash128(buf, sizeof buf, 0, base);
    double total = 0;
    int worst = 128;
    for (int bit = 0; bit < 40 * 8; bit++) {
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        tune_hash128(buf, sizeof buf, 0, h1);
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        int d = popcount128(base, h1);
        total += d;
        if (d < worst)
            worst = d;
    }
    double mean = total / (40 * 8);
    CHECKF(mean > 56 && mean < 72, "mean flipped bits %.1f", mean);
    CHECKF(worst > 30, "worst flip %d", worst);

    /* No collisions among many near-identical keys. */
    enum { N = 20000 };
    uint64_t *hs = malloc(sizeof(uint64_t) * N);
    char key[64];
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof key, "C.i0, C.i1 = split(C.i, %d)", i);
        tune_hash128(key, (size_t)n, 0, h1);
        hs[i] = h1[0] ^ h1[1];
    }
    int dup = 0;
    for (int i = 0; i < N && !dup; i++)
        for (int k = i + 1; k < N; k++)
            if (hs[i] == hs[k]) {
                dup = 1;
                break;
            }
    CHECK(!dup);
    free(hs);

    /* Hex form; the workload hash covers program and target. */
    char a[TUNE_HASH_HEX], b[TUNE_HASH_HEX], c[TUNE_HASH_HEX];
    tune_workload_hash("prog", "skylake +avx2", a);
    tune_workload_hash("prog", "skylake +avx2", b);
    CHECK(strlen(a) == 32 && strspn(a, "0123456789abcdef") == 32);
    CHECK(!strcmp(a, b));
    tune_workload_hash("prog", "sapphirerapids +avx512f", c);
    CHECK(strcmp(a, c) != 0);
    tune_workload_hash("prog2", "skylake +avx2", c);
    CHECK(strcmp(a, c) != 0);
    /* The boundary between program and target is part of the key. */
    tune_workload_hash("ab", "c", b);
    tune_workload_hash("a", "bc", c);
    CHECK(strcmp(b, c) != 0);

    /* Trace hash ignores formatting, comments and blank lines, not content. */
    tune_trace_hash("C.io, C.ii = split(C.i, 32)\nparallel(C.io)\n", a);
    tune_trace_hash("# tuned\n  C.io,C.ii=split( C.i , 32 )  # inner\n\n\tparallel(C.io)", b);
    CHECKF(!strcmp(a, b), "%s vs %s", a, b);
    tune_trace_hash("C.io, C.ii = split(C.i, 16)\nparallel(C.io)\n", c);
    CHECK(strcmp(a, c) != 0);
    tune_trace_hash("parallel(C.io)\nC.io, C.ii = split(C.i, 32)\n", c);
    CHECK(strcmp(a, c) != 0);
    tune_trace_hash("", b);
    tune_trace_hash("# only a comment\n\n", c);
    CHECK(!strcmp(b, c));
}

/* -------------------------------------------------------------- records */
static int64_t add_ok(TuneDb *db, int64_t wl, const char *trace, double ms, int verified)
{
    double times[3] = {ms * 1.01, ms, ms * 0.99 + 0.001};
    TuneRecord r;
    memset(&r, 0, sizeof r);
    r.workload = wl;
    r.trace = (char *)trace;
    r.times_ms = times;
    r.ntimes = 3;
    r.median_ms = ms;
    r.gflops = 100.0 / ms;
    r.verified = verified;
    r.threads = 2;
    int64_t id = 0;
    bool ins = false;
    kiln_error e;
    kiln_error_clear(&e);
    int rc = tune_db_add(db, &r, &id, &ins, &e);
    CHECKF(rc == KILN_OK, "%s", e.msg);
    CHECK(ins);
    CHECK(id > 0);
    return id;
}

static int64_t add_fail(TuneDb *db, int64_t wl, const char *trace, const char *why)
{
    TuneRecord r;
    memset(&r, 0, sizeof r);
    r.workload = wl;
    r.trace = (char *)trace;
    r.error = (char *)why;
    r.median_ms = 1e-9; /* a tempting time that must never count */
    r.gflops = 1e9;
    int64_t id = 0;
    kiln_error e;
    kiln_error_clear(&e);
    CHECKF(tune_db_add(db, &r, &id, NULL, &e) == KILN_OK, "%s", e.msg);
    return id;
}

static void test_round_trips(void)
{
    char path[1100];
    path_in("rt.db", path, sizeof path);
    rm_db(path);
    kiln_error e;
    kiln_error_clear(&e);
    TuneDb *db = NULL;
    CHECKF(tune_db_open(path, &db, &e) == KILN_OK, "%s", e.msg);
    if (!db)
        return;
    CHECK(!strcmp(tune_db_path(db), path));
    CHECK(tune_db_check(db, NULL) == KILN_OK);

    /* Workloads: same hash -> same id; other target -> other workload. */
    const char *prog = "name: mm\ncompute: C[i,j] += A[i,k]*B[k,j]\n";
    int64_t w1 = 0, w1b = 0, w2 = 0, w3 = 0;
    CHECK(tune_db_workload(db, NULL, "mm", "cpuA +f1", prog, &w1, &e) == KILN_OK);
    CHECK(tune_db_workload(db, NULL, "mm", "cpuA +f1", prog, &w1b, &e) == KILN_OK);
    CHECK(w1 > 0 && w1 == w1b);
    CHECK(tune_db_workload(db, NULL, "mm", "cpuB +f2", prog, &w2, &e) == KILN_OK);
    CHECK(w2 > 0 && w2 != w1);
    char h[TUNE_HASH_HEX];
    tune_workload_hash(prog, "cpuA +f1", h);
    int64_t found = -1;
    CHECK(tune_db_find_workload(db, h, &found, &e) == KILN_OK && found == w1);
    CHECK(tune_db_find_workload(db, "0123", &found, &e) == KILN_OK && found == 0);
    /* An explicit hash that already names another program: collision. */
    kiln_error_clear(&e);
    CHECK(tune_db_workload(db, h, "other", "cpuA +f1", "name: other\n", &w3, &e) == KILN_EINVAL);
    CHECKF(strstr(e.msg, "collision") != NULL, "%s", e.msg);
    CHECK(w3 == 0);

    /* Records: successes, failures (with tempting times), features. */
    int64_t ids[6];
    ids[0] = add_ok(db, w1, "C.io, C.ii = split(C.i, 8)\n", 5.0, 1);
    ids[1] = add_ok(db, w1, "C.io, C.ii = split(C.i, 16)\n", 2.0, 0);
    ids[2] = add_fail(db, w1, "C.io, C.ii = split(C.i, 3)\n", "crash: worker killed by SIGSEGV");
    ids[3] = add_ok(db, w1, "C.io, C.ii = split(C.i, 32)\n", 3.0, 1);
    ids[4] = add_fail(db, w1, "C.io, C.ii = split(C.i, 5)\n", "timeout after 1000 ms");
    ids[5] = add_ok(db, w1, "C.io, C.ii = split(C.i, 64)\n", 4.0, 1);
    CHECK(ids[0] < ids[1] && ids[4] < ids[5]);
    add_ok(db, w2, "C.io, C.ii = split(C.i, 8)\n", 0.5, 1); /* the other CPU's record */

    /* A record with features. */
    float feat[3 * 4];
    for (int i = 0; i < 12; i++)
        feat[i] = (float)i * 0.5f - 1.0f;
    TuneRecord fr;
    memset(&fr, 0, sizeof fr);
    fr.workload = w1;
    fr.trace = "C.io, C.ii = split(C.i, 128)\nparallel(C.io)\n";
    fr.features = feat;
    fr.nrows = 3;
    fr.ncols = 4;
    fr.median_ms = 6.0;
    fr.gflops = 16.5;
    fr.threads = 7;
    fr.created = 1700000000.25;
    int64_t fid = 0;
    CHECK(tune_db_add(db, &fr, &fid, NULL, &e) == KILN_OK && fid > 0);

    /* Dedup: the same trace, formatted differently, is not added again. */
    TuneRecord dup = fr;
    dup.trace = "# again\nC.io,C.ii = split(C.i,128)\n  parallel( C.io )";
    dup.median_ms = 0.1;
    int64_t did = 0;
    bool ins = true;
    CHECK(tune_db_add(db, &dup, &did, &ins, &e) == KILN_OK);
    CHECK(!ins && did == fid);
    bool has = false;
    char th[TUNE_HASH_HEX];
    tune_trace_hash(fr.trace, th);
    CHECK(tune_db_has_trace(db, w1, th, &has, &e) == KILN_OK && has);
    CHECK(tune_db_has_trace(db, w2, th, &has, &e) == KILN_OK && !has);
    tune_trace_hash("C.io, C.ii = split(C.i, 3)\n", th); /* a failed one counts too */
    CHECK(tune_db_has_trace(db, w1, th, &has, &e) == KILN_OK && has);
    tune_trace_hash("C.io, C.ii = split(C.i, 4)\n", th);
    CHECK(tune_db_has_trace(db, w1, th, &has, &e) == KILN_OK && !has);

    /* Counts (so a resumed tuner continues its trial numbering). */
    int64_t total = 0, failed = 0;
    CHECK(tune_db_count(db, w1, &total, &failed, &e) == KILN_OK);
    CHECK(total == 7 && failed == 2);
    CHECK(tune_db_count(db, 0, &total, NULL, &e) == KILN_OK && total == 8);
    CHECK(tune_db_count(db, 99999, &total, &failed, &e) == KILN_OK && total == 0 && failed == 0);

    /* Best: fastest success; failures never; verified_only skips 2.0 ms. */
    TuneRecord best;
    CHECK(tune_db_best(db, w1, false, &best, &e) == KILN_OK);
    CHECK(best.id == ids[1] && best.median_ms == 2.0 && best.error == NULL);
    CHECK(best.trace && !strcmp(best.trace, "C.io, C.ii = split(C.i, 16)\n"));
    CHECK(best.ntimes == 3 && fabs(best.times_ms[0] - 2.02) < 1e-9 && best.times_ms[1] == 2.0);
    CHECK(best.threads == 2 && best.verified == 0 && fabs(best.gflops - 50.0) < 1e-9);
    tune_record_fini(&best);
    CHECK(best.trace == NULL && best.id == 0);
    CHECK(tune_db_best(db, w1, true, &best, &e) == KILN_OK);
    CHECK(best.id == ids[3] && best.median_ms == 3.0 && best.verified == 1);
    tune_record_fini(&best);
    /* A workload with only failures has no best. */
    int64_t wf = 0;
    CHECK(tune_db_workload(db, NULL, "bad", "cpuA +f1", "name: bad\n", &wf, &e) == KILN_OK);
    add_fail(db, wf, "x", "verify: C[3] is 1, the interpreter says 2");
    CHECK(tune_db_best(db, wf, false, &best, &e) == KILN_OK && best.id == 0 && !best.trace);
    TuneRecord *top = NULL;
    int ntop = -1;
    CHECK(tune_db_top_k(db, wf, 5, &top, &ntop, &e) == KILN_OK && ntop == 0 && !top);

    /* Top-k: ordered by time, failures left out, k respected. */
    CHECK(tune_db_top_k(db, w1, 3, &top, &ntop, &e) == KILN_OK);
    CHECK(ntop == 3);
    if (ntop == 3) {
        CHECK(top[0].median_ms == 2.0 && top[1].median_ms == 3.0 && top[2].median_ms == 4.0);
        for (int i = 0; i < 3; i++)
            CHECK(top[i].error == NULL && top[i].workload == w1);
    }
    tune_records_free(top, ntop);
    CHECK(tune_db_top_k(db, w1, 100, &top, &ntop, &e) == KILN_OK && ntop == 5);
    for (int i = 1; i < ntop; i++)
        CHECK(top[i - 1].median_ms <= top[i].median_ms);
    tune_records_free(top, ntop);
    CHECK(tune_db_top_k(db, w1, 0, &top, &ntop, &e) == KILN_OK && ntop == 0);

    /* All records for training: failures included, in insertion order,
     * features intact. */
    TuneRecord *all = NULL;
    int nall = 0;
    CHECK(tune_db_records(db, w1, &all, &nall, &e) == KILN_OK && nall == 7);
    for (int i = 1; i < nall; i++)
        CHECK(all[i - 1].id < all[i].id);
    int nfail = 0;
    for (int i = 0; i < nall; i++) {
        if (all[i].error) {
            nfail++;
            CHECK(strstr(all[i].error, "crash") || strstr(all[i].error, "timeout"));
        }
        if (all[i].id == fid) {
            CHECK(all[i].nrows == 3 && all[i].ncols == 4);
            CHECK(all[i].features && !memcmp(all[i].features, feat, sizeof feat));
            CHECK(all[i].threads == 7 && all[i].created == 1700000000.25);
            CHECK(all[i].ntimes == 0 && all[i].times_ms == NULL);
            CHECK(strlen(all[i].trace_hash) == 32);
        }
    }
    CHECK(nfail == 2);
    tune_records_free(all, nall);
    CHECK(tune_db_records(db, 0, &all, &nall, &e) == KILN_OK && nall == 9);
    tune_records_free(all, nall);

    /* Workload list. */
    TuneWorkloadInfo *wls = NULL;
    int nwl = 0;
    CHECK(tune_db_workloads(db, &wls, &nwl, &e) == KILN_OK && nwl == 3);
    if (nwl == 3) {
        CHECK(wls[0].id == w1 && !strcmp(wls[0].name, "mm") && !strcmp(wls[0].target, "cpuA +f1"));
        CHECK(wls[0].nrecords == 7 && wls[0].nfailed == 2);
        CHECK(wls[0].best_ms == 2.0 && fabs(wls[0].best_gflops - 50.0) < 1e-9);
        CHECK(!strcmp(wls[0].hash, h));
        CHECK(wls[1].id == w2 && wls[1].best_ms == 0.5 && wls[1].nrecords == 1);
        CHECK(wls[2].id == wf && wls[2].best_ms == 0 && wls[2].nfailed == 1);
        CHECK(wls[0].created > 1.6e9);
    }
    tune_workloads_free(wls, nwl);

    /* Bad arguments are errors, not crashes. */
    TuneRecord bad;
    memset(&bad, 0, sizeof bad);
    kiln_error_clear(&e);
    CHECK(tune_db_add(db, &bad, NULL, NULL, &e) == KILN_EINVAL);
    bad.workload = w1;
    bad.trace = "t";
    bad.median_ms = NAN;
    kiln_error_clear(&e);
    CHECK(tune_db_add(db, &bad, NULL, NULL, &e) == KILN_EINVAL);
    bad.median_ms = 1.0;
    bad.workload = 424242;
    kiln_error_clear(&e);
    CHECK(tune_db_add(db, &bad, NULL, NULL, &e) == KILN_EINVAL);
    CHECKF(strstr(e.msg, "424242") != NULL, "%s", e.msg);
    CHECK(tune_db_add(NULL, &bad, NULL, NULL, NULL) == KILN_EINVAL);
    CHECK(tune_db_workload(db, NULL, NULL, "t", "p", &w3, NULL) == KILN_EINVAL);
    CHECK(tune_db_best(NULL, 1, false, &best, NULL) == KILN_EINVAL);
    CHECK(tune_db_open(path, NULL, NULL) == KILN_EINVAL);
    tune_db_close(NULL);
    tune_record_fini(NULL);
    tune_records_free(NULL, 3);
    tune_workloads_free(NULL, 3);
    tune_db_close(db);

    /* Reopen: everything is still there. */
    db = NULL;
    kiln_error_clear(&e);
    CHECKF(tune_db_open(path, &db, &e) == KILN_OK, "%s", e.msg);
    if (!db)
        return;
    CHECK(tune_db_count(db, w1, &total, &failed, &e) == KILN_OK && total == 7 && failed == 2);
    CHECK(tune_db_best(db, w1, false, &best, &e) == KILN_OK && best.id == ids[1]);
    tune_record_fini(&best);
    CHECK(tune_db_workload(db, NULL, "mm", "cpuA +f1", prog, &w1b, &e) == KILN_OK && w1b == w1);

    /* Export: one valid JSON object per line, fields as stored. */
    char xpath[1100];
    path_in("export.jsonl", xpath, sizeof xpath);
    FILE *f = fopen(xpath, "w+");
    CHECK(f != NULL);
    if (f) {
        CHECK(tune_db_export(db, w1, f, &e) == KILN_OK);
        rewind(f);
        char line[8192];
        int nlines = 0, nerr = 0, nok = 0;
        while (fgets(line, sizeof line, f)) {
            nlines++;
            CHECKF(json_line_valid(line), "line %d: %s", nlines, line);
            char s[512];
            CHECK(jget_string(line, "workload", s, sizeof s) && !strcmp(s, "mm"));
            CHECK(jget_string(line, "workload_hash", s, sizeof s) && !strcmp(s, h));
            CHECK(jget_string(line, "target", s, sizeof s) && !strcmp(s, "cpuA +f1"));
            CHECK(jget_string(line, "trace", s, sizeof s) && strstr(s, "split(C.i, ") != NULL);
            CHECK(jget_string(line, "trace_hash", s, sizeof s) && strlen(s) == 32);
            double ms = 0;
            if (jget_null(line, "error")) {
                nok++;
                CHECK(jget_number(line, "median_ms", &ms) && ms >= 2.0 && ms <= 6.0);
            } else {
                nerr++;
                CHECK(jget_string(line, "error", s, sizeof s) && s[0]);
                CHECK(jget_null(line, "median_ms") && jget_null(line, "gflops"));
            }
        }
        CHECK(nlines == 7 && nok == 5 && nerr == 2);
        /* Everything, with a trace holding quotes, backslashes, tabs and a
         * control character. */
        add_ok(db, w2, "# \"quoted\" \\ back\tslash \x01 end\nC.i0, C.i1 = split(C.i, 2)\n", 1.0,
               1);
        rewind(f);
        CHECK(ftruncate(fileno(f), 0) == 0);
        CHECK(tune_db_export(db, 0, f, &e) == KILN_OK);
        rewind(f);
        nlines = 0;
        bool seen = false;
        while (fgets(line, sizeof line, f)) {
            nlines++;
            CHECKF(json_line_valid(line), "line %d: %s", nlines, line);
            char s[512];
            if (jget_string(line, "trace", s, sizeof s) &&
                strstr(s, "\"quoted\" \\ back\tslash \x01"))
                seen = true;
        }
        CHECK(nlines == 10 && seen);
        fclose(f);
    }

    /* Prune: keep the best 2 per workload; failures go. */
    int64_t deleted = 0;
    CHECK(tune_db_prune(db, w1, 2, &deleted, &e) == KILN_OK && deleted == 5);
    CHECK(tune_db_count(db, w1, &total, &failed, &e) == KILN_OK && total == 2 && failed == 0);
    CHECK(tune_db_top_k(db, w1, 10, &top, &ntop, &e) == KILN_OK && ntop == 2);
    if (ntop == 2)
        CHECK(top[0].median_ms == 2.0 && top[1].median_ms == 3.0);
    tune_records_free(top, ntop);
    CHECK(tune_db_count(db, w2, &total, NULL, &e) == KILN_OK && total == 2); /* untouched */
    CHECK(tune_db_prune(db, 0, 1, &deleted, &e) == KILN_OK && deleted == 3);
    CHECK(tune_db_count(db, 0, &total, NULL, &e) == KILN_OK && total == 2);
    CHECK(tune_db_check(db, &e) == KILN_OK);
    tune_db_close(db);
    rm_db(path);
    unlink(xpath);
}

/* ---------------------------------------------------------- concurrency */
static void writer_child(const char *path, int64_t wl, int who, int n, int ack_fd)
{
    TuneDb *db = NULL;
    if (tune_db_open(path, &db, NULL) != KILN_OK)
        _exit(10);
    for (int i = 0; n < 0 || i < n; i++) {
        char trace[64];
        snprintf(trace, sizeof trace, "C.a%d, C.b%d = split(C.i, %d)\n", who, i, i + 1);
        double times[1] = {1.0 + i};
        TuneRecord r;
        memset(&r, 0, sizeof r);
        r.workload = wl;
        r.trace = trace;
        r.times_ms = times;
        r.ntimes = 1;
        r.median_ms = 1.0 + i;
        r.gflops = 1.0;
        if (tune_db_add(db, &r, NULL, NULL, NULL) != KILN_OK)
            _exit(11);
        /* Acknowledge only after the add returned: the parent may rely
         * on everything it was told about. */
        if (ack_fd >= 0 && write(ack_fd, &i, sizeof i) != (ssize_t)sizeof i)
            _exit(12);
    }
    tune_db_close(db);
    _exit(0);
}

static int64_t make_workload(const char *path, const char *name)
{
    TuneDb *db = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    int64_t wl = 0;
    if (tune_db_open(path, &db, &e) == KILN_OK)
        tune_db_workload(db, NULL, name, "cpu", name, &wl, &e);
    CHECKF(wl > 0, "%s", e.msg);
    /* Closed before forking: an SQLite handle must not cross a fork. */
    tune_db_close(db);
    return wl;
}

static void test_two_writers(void)
{
    char path[1100];
    path_in("two.db", path, sizeof path);
    rm_db(path);
    int64_t wl = make_workload(path, "two");
    pid_t a = fork();
    if (a == 0)
        writer_child(path, wl, 0, 40, -1);
    pid_t b = fork();
    if (b == 0)
        writer_child(path, wl, 1, 40, -1);
    int sa = -1, sb = -1;
    waitpid(a, &sa, 0);
    waitpid(b, &sb, 0);
    CHECKF(WIFEXITED(sa) && WEXITSTATUS(sa) == 0, "writer a status %d", sa);
    CHECKF(WIFEXITED(sb) && WEXITSTATUS(sb) == 0, "writer b status %d", sb);
    TuneDb *db = NULL;
    int64_t total = 0;
    CHECK(tune_db_open(path, &db, NULL) == KILN_OK);
    CHECK(tune_db_count(db, wl, &total, NULL, NULL) == KILN_OK && total == 80);
    tune_db_close(db);
    rm_db(path);
}

static void test_sigkill(void)
{
    char path[1100];
    path_in("kill.db", path, sizeof path);
    rm_db(path);
    int64_t wl = make_workload(path, "kill");
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        writer_child(path, wl, 0, -1, fds[1]);
    }
    close(fds[1]);
    /* Let it commit a good number of records, then kill it mid-stream. */
    int acked = 0, v;
    while (acked < 60 && read(fds[0], &v, sizeof v) == (ssize_t)sizeof v) {
        CHECK(v == acked);
        acked++;
    }
    CHECK(kill(pid, SIGKILL) == 0);
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    /* Acks still in the pipe were sent before the kill: they count too. */
    while (read(fds[0], &v, sizeof v) == (ssize_t)sizeof v) {
        CHECK(v == acked);
        acked++;
    }
    close(fds[0]);
    CHECK(acked >= 60);

    /* The killed writer's WAL is recovered on open. */
    TuneDb *db = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    CHECKF(tune_db_open(path, &db, &e) == KILN_OK, "%s", e.msg);
    if (!db)
        return;
    CHECKF(tune_db_check(db, &e) == KILN_OK, "%s", e.msg);
    int64_t total = 0;
    CHECK(tune_db_count(db, wl, &total, NULL, &e) == KILN_OK);
    CHECKF(total >= acked && total <= acked + 1, "total %lld acked %d", (long long)total, acked);
    for (int i = 0; i < acked; i++) {
        char trace[64], th[TUNE_HASH_HEX];
        snprintf(trace, sizeof trace, "C.a0, C.b%d = split(C.i, %d)\n", i, i + 1);
        tune_trace_hash(trace, th);
        bool has = false;
        CHECK(tune_db_has_trace(db, wl, th, &has, &e) == KILN_OK);
        CHECKF(has, "acknowledged record %d is missing", i);
    }
    /* The tuner carries on in the same file. */
    add_ok(db, wl, "after the crash", 1.0, 1);
    tune_db_close(db);

    /* Independent check with SQLite itself. */
    sqlite3 *h = NULL;
    CHECK(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    sqlite3_stmt *s = NULL;
    CHECK(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &s, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(s) == SQLITE_ROW);
    CHECK(!strcmp((const char *)sqlite3_column_text(s, 0), "ok"));
    sqlite3_finalize(s);
    sqlite3_close(h);
    rm_db(path);
}

/* ------------------------------------------------------------ bad files */
static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK(fwrite(data, 1, n, f) == n);
        fclose(f);
    }
}

static void expect_open_error(const char *path, const char *needle)
{
    TuneDb *db = (TuneDb *)1;
    kiln_error e;
    kiln_error_clear(&e);
    int rc = tune_db_open(path, &db, &e);
    CHECKF(rc == KILN_EIO, "rc %d for %s", rc, path);
    CHECK(db == NULL);
    CHECKF(strstr(e.msg, needle) != NULL, "message '%s' lacks '%s'", e.msg, needle);
    CHECKF(!strcmp(e.file, path), "file '%s'", e.file);
}

static void exec_sql(const char *path, const char *sql)
{
    sqlite3 *h = NULL;
    CHECK(sqlite3_open(path, &h) == SQLITE_OK);
    CHECK(sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(h);
}

static void test_bad_files(void)
{
    char path[1100];

    /* Garbage bytes. */
    path_in("garbage.db", path, sizeof path);
    rm_db(path);
    char junk[8192];
    unsigned x = 12345;
    for (size_t i = 0; i < sizeof junk; i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (char)(x >> 16);
    }
    write_file(path, junk, sizeof junk);
    expect_open_error(path, "not a database");
    /* A text file. */
    write_file(path, "hello, this is not sqlite\n", 26);
    expect_open_error(path, "not a database");
    rm_db(path);

    /* A directory. */
    path_in("a_directory.db", path, sizeof path);
    mkdir(path, 0755);
    {
        TuneDb *db = NULL;
        kiln_error e;
        kiln_error_clear(&e);
        CHECK(tune_db_open(path, &db, &e) == KILN_EIO && db == NULL);
        CHECK(e.msg[0] != 0);
    }
    rmdir(path);

    /* Some other application's SQLite file: ours must not touch it. */
    path_in("foreign.db", path, sizeof path);
    rm_db(path);
    exec_sql(path, "CREATE TABLE notes(x TEXT); INSERT INTO notes VALUES('keep me');");
    expect_open_error(path, "not a kiln database");
    rm_db(path);
    exec_sql(path, "PRAGMA application_id = 42; CREATE TABLE t(x);");
    expect_open_error(path, "not a kiln database");
    rm_db(path);

    /* A newer schema than this kiln knows. */
    path_in("newer.db", path, sizeof path);
    rm_db(path);
    {
        TuneDb *db = NULL;
        CHECK(tune_db_open(path, &db, NULL) == KILN_OK);
        tune_db_close(db);
    }
    exec_sql(path, "PRAGMA user_version = 99;");
    expect_open_error(path, "newer");
    rm_db(path);

    /* Corrupt pages in a real database: an error (at open, at a query or
     * from the integrity check), never a crash. */
    path_in("corrupt.db", path, sizeof path);
    rm_db(path);
    {
        TuneDb *db = NULL;
        CHECK(tune_db_open(path, &db, NULL) == KILN_OK);
        int64_t wl = 0;
        tune_db_workload(db, NULL, "c", "cpu", "c", &wl, NULL);
        char trace[64];
        for (int i = 0; i < 300; i++) {
            snprintf(trace, sizeof trace, "C.i0, C.i1 = split(C.i, %d)", i + 1);
            add_ok(db, wl, trace, 1.0 + i, 1);
        }
        tune_db_close(db); /* checkpoints the WAL into the main file */
        int fd = open(path, O_WRONLY);
        CHECK(fd >= 0);
        struct stat sb;
        fstat(fd, &sb);
        CHECK(sb.st_size > 4 * 4096);
        CHECK(pwrite(fd, junk, 4096 * 2, 4096) == 4096 * 2); /* pages 2 and 3 */
        close(fd);
        db = NULL;
        kiln_error e;
        kiln_error_clear(&e);
        int rc = tune_db_open(path, &db, &e);
        bool reported = rc != KILN_OK;
        if (db) {
            TuneRecord *all = NULL;
            int n = 0;
            if (tune_db_records(db, 0, &all, &n, &e) != KILN_OK)
                reported = true;
            tune_records_free(all, n);
            if (tune_db_check(db, &e) != KILN_OK)
                reported = true;
            tune_db_close(db);
        }
        CHECK(reported);
        CHECK(e.code == KILN_EIO);
    }
    rm_db(path);
}

int main(int argc, char **argv)
{
    const char *base = argc > 2 ? argv[2] : "/tmp";
    snprintf(dir, sizeof dir, "%s/test_tune_db.tmp", base);
    mkdir(dir, 0755);
    test_hashes();
    test_round_trips();
    test_two_writers();
    test_sigkill();
    test_bad_files();
    return t_done("test_tune_db");
}
