/* tools/kiln.c: the `kiln` command-line program.  Thin: parses flags and
 * calls the public API (include/kiln/kiln.h) and nothing else.
 *
 * Exit status: 0 on success (for `run`: only when the result verified),
 * 1 on an error in the input or a failed verification, 2 on bad usage. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kiln/kiln.h"

static const char usage[] =
    "usage:\n"
    "  kiln run FILE.yaml [--schedule TRACE | --db PATH] [--threads T] [--json]\n"
    "                     [--min-time MS] [--repeats N] [--seed S]\n"
    "  kiln compile FILE.yaml [--schedule TRACE | --db PATH] -o OUT.o   (also writes OUT.h)\n"
    "  kiln show FILE.yaml [--schedule TRACE | --db PATH] [--after PASS | --llvm | --llvm-opt | "
    "--asm]\n"
    "  kiln tune FILE.yaml [--trials N] [--db PATH] [--seed S] [--threads T] [--json]\n"
    "                      [--strategy evolutionary|random] [--space TRACE] [--curve OUT.csv]\n"
    "                      [--min-time MS] [--repeats N] [--timeout MS]\n"
    "  kiln db list|best|export [--db PATH] [FILE.yaml]\n"
    "\n"
    "Without --schedule, kiln uses the best record of the program in the database\n"
    "(--db PATH, else ./kiln.db when it exists), else its default schedule.  A\n"
    "schedule may be a trace with sampling instructions (docs/tuning.md).  Every\n"
    "command also takes --param NAME=VALUE (repeatable) to override a param of\n"
    "the file.  `kiln show` without a view prints the schedule as text.\n";

typedef struct Opts {
    const char *cmd, *file, *schedule, *out, *after;
    const char *db, *space, *curve, *dbcmd; /* tune / db */
    int trials, strategy, seed_given, timeout_ms;
    const char *view; /* for show: "schedule", "llvm", "llvm-opt", "asm", or a pass */
    int threads;      /* -1: not given */
    int json, repeats;
    double min_time;
    unsigned seed;
    int nparams; /* --param NAME=VALUE overrides */
    const char *param_names[64];
    long long param_values[64];
    char param_store[64][64];
} Opts;

/* Prints "kiln: <before><arg><after>" and the usage; returns 2. */
static int usage_error(const char *before, const char *arg, const char *after)
{
    fprintf(stderr, "kiln: %s%s%s\n%s", before, arg, after, usage);
    return 2;
}

static int report(const kiln_error *e)
{
    char buf[1024];
    fprintf(stderr, "%s\n", kiln_error_format(e, buf, sizeof buf));
    return 1;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, Opts *o)
{
    memset(o, 0, sizeof *o);
    o->threads = -1;
    o->view = "schedule";
    o->seed = 1;
    if (argc < 2)
        return usage_error("", "no command given", "");
    o->cmd = argv[1];
    if (!strcmp(o->cmd, "-h") || !strcmp(o->cmd, "--help") || !strcmp(o->cmd, "help")) {
        fputs(usage, stdout);
        exit(0);
    }
    if (strcmp(o->cmd, "run") && strcmp(o->cmd, "compile") && strcmp(o->cmd, "show") &&
        strcmp(o->cmd, "tune") && strcmp(o->cmd, "db"))
        return usage_error("unknown command '", o->cmd, "'");
    o->trials = 64;
    int first = 2;
    if (!strcmp(o->cmd, "db")) {
        if (argc < 3 ||
            (strcmp(argv[2], "list") && strcmp(argv[2], "best") && strcmp(argv[2], "export")))
            return usage_error("db needs list, best or export", "", "");
        o->dbcmd = argv[2];
        first = 3;
    }
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        long v;
#define NEED_VAL()                                                                                 \
    do {                                                                                           \
        if (!val)                                                                                  \
            return usage_error("option ", a, " needs a value");                                    \
        i++;                                                                                       \
    } while (0)
        if (!strcmp(a, "--schedule")) {
            NEED_VAL();
            o->schedule = val;
        } else if (!strcmp(a, "--db")) {
            NEED_VAL();
            o->db = val;
        } else if (!strcmp(a, "--space")) {
            NEED_VAL();
            o->space = val;
        } else if (!strcmp(a, "--curve")) {
            NEED_VAL();
            o->curve = val;
        } else if (!strcmp(a, "--trials")) {
            NEED_VAL();
            if (parse_int(val, 1, 1000000, &v))
                return usage_error("--trials takes a number from 1 to 1000000, not '", val, "'");
            o->trials = (int)v;
        } else if (!strcmp(a, "--timeout")) {
            NEED_VAL();
            if (parse_int(val, 1, 3600000, &v))
                return usage_error("--timeout takes milliseconds (1 to 3600000), not '", val, "'");
            o->timeout_ms = (int)v;
        } else if (!strcmp(a, "--strategy")) {
            NEED_VAL();
            if (!strcmp(val, "evolutionary"))
                o->strategy = KILN_STRATEGY_EVOLUTIONARY;
            else if (!strcmp(val, "random"))
                o->strategy = KILN_STRATEGY_RANDOM;
            else
                return usage_error("--strategy takes evolutionary or random, not '", val, "'");
        } else if (!strcmp(a, "-o")) {
            NEED_VAL();
            o->out = val;
        } else if (!strcmp(a, "--threads")) {
            NEED_VAL();
            if (parse_int(val, 0, 1024, &v))
                return usage_error("--threads takes a number from 0 to 1024, not '", val, "'");
            o->threads = (int)v;
        } else if (!strcmp(a, "--repeats")) {
            NEED_VAL();
            if (parse_int(val, 1, 1000, &v))
                return usage_error("--repeats takes a number from 1 to 1000, not '", val, "'");
            o->repeats = (int)v;
        } else if (!strcmp(a, "--seed")) {
            NEED_VAL();
            if (parse_int(val, 0, 2147483647L, &v))
                return usage_error("--seed takes a non-negative number, not '", val, "'");
            o->seed = (unsigned)v;
            o->seed_given = 1;
        } else if (!strcmp(a, "--min-time")) {
            NEED_VAL();
            if (parse_int(val, 1, 600000, &v))
                return usage_error("--min-time takes milliseconds (1 to 600000), not '", val, "'");
            o->min_time = (double)v;
        } else if (!strcmp(a, "--param")) {
            NEED_VAL();
            const char *eq = strchr(val, '=');
            char *end;
            long long pv = eq ? strtoll(eq + 1, &end, 10) : 0;
            if (!eq || eq == val || (size_t)(eq - val) >= sizeof o->param_store[0] || !eq[1] ||
                *end || o->nparams == 64)
                return usage_error("--param takes NAME=INTEGER, not '", val, "'");
            memcpy(o->param_store[o->nparams], val, (size_t)(eq - val));
            o->param_store[o->nparams][eq - val] = 0;
            o->param_names[o->nparams] = o->param_store[o->nparams];
            o->param_values[o->nparams++] = pv;
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if (!strcmp(a, "--after")) {
            NEED_VAL();
            o->view = val;
        } else if (!strcmp(a, "--llvm")) {
            o->view = "llvm";
        } else if (!strcmp(a, "--llvm-opt")) {
            o->view = "llvm-opt";
        } else if (!strcmp(a, "--asm")) {
            o->view = "asm";
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option '", a, "'");
        } else if (!o->file) {
            o->file = a;
        } else {
            return usage_error("unexpected argument '", a, "'");
        }
#undef NEED_VAL
    }
    if (!o->file && !o->dbcmd)
        return usage_error("", o->cmd, " needs a YAML file");
    if (o->schedule && o->db)
        return usage_error("", "give --schedule or --db, not both", "");
    if (!strcmp(o->cmd, "compile") && !o->out)
        return usage_error("", "compile needs -o OUT.o", "");
    return 0;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    for (;;) {
        if (!s)
            break;
        size_t n = fread(s + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
        if (cap - len < 2) {
            char *t = realloc(s, cap * 2);
            if (!t) {
                free(s);
                s = NULL;
                break;
            }
            s = t;
            cap *= 2;
        }
    }
    if (s)
        s[len] = 0;
    if (s && ferror(f)) {
        free(s);
        s = NULL;
    }
    fclose(f);
    return s;
}

/* Loads the program and its schedule (given, else the default one). */
static int load(const Opts *o, kiln_program **p, kiln_schedule **s, kiln_error *e)
{
    *s = NULL;
    if (kiln_program_parse_file_params(o->file, o->nparams, o->param_names, o->param_values, p, e))
        return 1;
    if (o->schedule) {
        *s = kiln_schedule_new(*p);
        if (!*s) {
            fprintf(stderr, "kiln: out of memory\n");
            return 1;
        }
        char *text = read_text(o->schedule);
        if (!text) {
            fprintf(stderr, "%s: cannot read schedule file\n", o->schedule);
            return 1;
        }
        int rc = kiln_schedule_apply_trace(*s, text, o->schedule, o->seed, e);
        free(text);
        if (rc)
            return 1;
    } else if (strcmp(o->cmd, "tune") && (o->db || access("kiln.db", F_OK) == 0)) {
        /* the best verified record of this program for the thread count
         * it will run with, when there is one */
        double gf = 0;
        if (o->threads >= 0)
            kiln_set_num_threads(o->threads);
        if (kiln_db_best_schedule(o->db, *p, s, &gf, e))
            return 1;
        if (*s)
            fprintf(stderr, "kiln: using the best record in %s (%.2f GFLOP/s when tuned)\n",
                    o->db ? o->db : "kiln.db", gf);
        else if (!(*s = kiln_schedule_default(*p))) {
            fprintf(stderr, "kiln: out of memory\n");
            return 1;
        }
    } else {
        *s = kiln_schedule_default(*p);
        if (!*s) {
            fprintf(stderr, "kiln: out of memory\n");
            return 1;
        }
    }
    return 0;
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static int cmd_run(const Opts *o, kiln_program *p, kiln_schedule *s, kiln_error *e)
{
    if (o->threads >= 0)
        kiln_set_num_threads(o->threads);
    kiln_run_options ro = {o->min_time, o->repeats, o->seed, 0};
    kiln_run_result r;
    int rc = kiln_run(s, &ro, &r, e);
    if (rc && rc != KILN_EVERIFY)
        return report(e);
    if (rc == KILN_EVERIFY)
        report(e);
    if (o->json) {
        printf("{\"name\": ");
        json_string(kiln_program_name(p));
        printf(", \"verified\": %s, \"max_abs_err\": %.3g, \"max_rel_err\": %.3g, "
               "\"compile_ms\": %.3f, \"compile_cpu_ms\": %.3f, \"median_ms\": %.6f, \"gflops\": "
               "%.3f, \"threads\": %d, "
               "\"flops\": %.0f}\n",
               r.verified ? "true" : "false", r.max_abs_err, r.max_rel_err, r.compile_ms,
               r.compile_cpu_ms, r.median_ms, r.gflops, r.threads, kiln_program_flops(p));
    } else {
        printf("%s: %s (max abs err %.3g)\n", kiln_program_name(p),
               r.verified ? "verified against the interpreter" : "WRONG RESULT", r.max_abs_err);
        if (r.verified)
            printf("  compile %.2f ms, run %.4f ms (median), %.2f GFLOP/s on %d thread%s\n",
                   r.compile_ms, r.median_ms, r.gflops, r.threads, r.threads == 1 ? "" : "s");
    }
    return r.verified ? 0 : 1;
}

static int cmd_compile(const Opts *o, kiln_schedule *s, kiln_error *e)
{
    size_t n = strlen(o->out);
    char *hdr = malloc(n + 3);
    if (!hdr)
        return 1;
    memcpy(hdr, o->out, n + 1);
    if (n > 2 && !strcmp(hdr + n - 2, ".o"))
        strcpy(hdr + n - 2, ".h");
    else
        strcat(hdr, ".h");
    int rc = kiln_emit_object(s, o->out, hdr, e);
    if (!rc)
        printf("wrote %s and %s\n", o->out, hdr);
    free(hdr);
    return rc ? report(e) : 0;
}

static int cmd_show(const Opts *o, kiln_schedule *s, kiln_error *e)
{
    char *text = NULL;
    if (kiln_show(s, o->view, &text, e))
        return report(e);
    fputs(text, stdout);
    if (*text && text[strlen(text) - 1] != '\n')
        putchar('\n');
    kiln_free(text);
    return 0;
}

static void progress_line(const kiln_tune_progress *pr, void *ctx)
{
    (void)ctx;
    int eta = (int)(pr->eta_s + 0.5);
    fprintf(stderr,
            "\r\033[K%d/%d trials, %d failed, best %.2f GFLOP/s (%.4f ms), %.1f trials/s, "
            "%d:%02d left",
            pr->trials, pr->target, pr->failures, pr->best_gflops, pr->best_ms, pr->trials_per_s,
            eta / 60, eta % 60);
    fflush(stderr);
}

static int cmd_tune(const Opts *o, kiln_program *p, kiln_error *e)
{
    kiln_tune_options to;
    kiln_tune_options_init(&to);
    to.trials = o->trials;
    to.seed = o->seed_given ? o->seed : 1;
    to.threads = o->threads > 0 ? o->threads : 0;
    to.db_path = o->db;
    to.strategy = (kiln_tune_strategy)o->strategy;
    to.space_path = o->space;
    to.curve_path = o->curve;
    if (o->min_time > 0)
        to.min_time_ms = o->min_time;
    if (o->repeats > 0)
        to.repeats = o->repeats;
    if (o->timeout_ms > 0)
        to.timeout_ms = o->timeout_ms;
    bool tty = isatty(2);
    if (tty)
        to.progress = progress_line;
    kiln_tune_result r;
    int rc = kiln_tune(p, &to, &r, e);
    if (tty)
        fprintf(stderr, "\n");
    if (rc)
        return report(e);
    if (o->json) {
        printf("{\"name\": ");
        json_string(kiln_program_name(p));
        printf(", \"trials\": %d, \"new_trials\": %d, \"failures\": %d, \"best_ms\": %.6f, "
               "\"best_gflops\": %.3f, \"seconds\": %.2f, \"search_seconds\": %.2f, "
               "\"measure_seconds\": %.2f, \"model_seconds\": %.2f, \"score_rate\": %.0f}\n",
               r.trials, r.new_trials, r.failures, r.best_ms, r.best_gflops, r.seconds,
               r.search_seconds, r.measure_seconds, r.model_seconds, r.score_rate);
    } else {
        printf("%s: %d trials (%d new, %d failed) in %.1f s (search %.1f s, compile and measure "
               "%.1f s, cost model %.1f s)\n",
               kiln_program_name(p), r.trials, r.new_trials, r.failures, r.seconds,
               r.search_seconds, r.measure_seconds, r.model_seconds);
        if (r.best_schedule)
            printf("best: %.4f ms, %.2f GFLOP/s, verified; schedule:\n%s", r.best_ms, r.best_gflops,
                   r.best_schedule);
        else
            printf("no candidate ran successfully\n");
    }
    int ok = r.best_trace != NULL;
    kiln_tune_result_fini(&r);
    return ok ? 0 : 1;
}

static int cmd_db(const Opts *o, kiln_error *e)
{
    kiln_program *p = NULL;
    int rc = 0;
    if (o->file &&
        kiln_program_parse_file_params(o->file, o->nparams, o->param_names, o->param_values, &p, e))
        return report(e);
    if (!strcmp(o->dbcmd, "list"))
        rc = kiln_db_list(o->db, stdout, e);
    else if (!strcmp(o->dbcmd, "best"))
        rc = kiln_db_print_best(o->db, p, stdout, e);
    else
        rc = kiln_db_export(o->db, stdout, e);
    kiln_program_free(p);
    return rc ? report(e) : 0;
}

int main(int argc, char **argv)
{
    Opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    kiln_error e;
    kiln_error_clear(&e);
    if (o.dbcmd)
        return cmd_db(&o, &e);
    kiln_program *p = NULL;
    kiln_schedule *s = NULL;
    if (load(&o, &p, &s, &e))
        rc = e.code ? report(&e) : 1;
    else if (!strcmp(o.cmd, "tune"))
        rc = cmd_tune(&o, p, &e);
    else if (!strcmp(o.cmd, "run"))
        rc = cmd_run(&o, p, s, &e);
    else if (!strcmp(o.cmd, "compile"))
        rc = cmd_compile(&o, s, &e);
    else
        rc = cmd_show(&o, s, &e);
    kiln_schedule_free(s);
    kiln_program_free(p);
    return rc;
}
