/* tests/test_lower_fail.c: the must-fail schedule corpus.
 *
 * Every tests/fail/sched_*.txt starts with
 *   # yaml: PROGRAM.yaml                       (in tests/fail/programs/)
 *   # expect: LINE:COL: message substring
 * and must be rejected — by sched_apply_text or, failing that, by
 * lowering — with exactly that place (in the schedule file) and message
 * (`-` for LINE:COL: lowering found it, no line is known). */
#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "lower/lower.h"
#include "testlib.h"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void check_file(const char *dir, const char *name)
{
    char path[2048], prog_path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = t_read_file(path);
    CHECKF(text != NULL, "cannot read %s", path);
    if (!text)
        return;
    char prog[256] = "", expect[512] = "";
    const char *l2 = strchr(text, '\n');
    if (sscanf(text, "# yaml: %255s", prog) != 1 || !l2 ||
        sscanf(l2 + 1, "# expect: %511[^\n]", expect) != 1) {
        CHECKF(0, "%s: needs '# yaml: FILE' and '# expect: LINE:COL: msg' lines", path);
        free(text);
        return;
    }
    int line = 0, col = 0, off = 0;
    bool noplace = !strncmp(expect, "-: ", 3); /* found while lowering: no line */
    if (noplace)
        off = 3;
    else if (sscanf(expect, "%d:%d: %n", &line, &col, &off) < 2 || !off) {
        CHECKF(0, "%s: bad expect line '%s'", path, expect);
        free(text);
        return;
    }
    const char *msg = expect + off;
    snprintf(prog_path, sizeof prog_path, "%s/programs/%s", dir, prog);
    Program *p = NULL;
    kiln_error e;
    kiln_error_clear(&e);
    if (ir_parse_yaml_file(prog_path, &p, &e) != KILN_OK) {
        CHECKF(0, "%s: program %s does not load: %s", path, prog_path, e.msg);
        free(text);
        return;
    }
    Schedule *s = sched_new(p);
    kiln_error_clear(&e);
    int rc = sched_apply_text(s, text, path, &e);
    if (rc == KILN_OK) {
        Arena *a = arena_new();
        LFunc *f = NULL;
        rc = lower_schedule(s, a, NULL, &f, &e);
        arena_free(a);
    }
    CHECKF(rc == KILN_ESYNTAX || rc == KILN_ESCHEDULE, "%s: expected a schedule error, got %d (%s)",
           name, rc, e.msg);
    CHECKF(e.line == line && e.col == col && strstr(e.msg, msg) &&
               (noplace || !strcmp(e.file, path)),
           "%s:\n  wanted %d:%d: %s\n  got    %s:%d:%d: %s", name, line, col, msg, e.file, e.line,
           e.col, e.msg);
    sched_free(s);
    ir_program_free(p);
    free(text);
}

int main(int argc, char **argv)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fail", argc > 1 ? argv[1] : ".");
    DIR *d = opendir(dir);
    CHECKF(d != NULL, "cannot open %s", dir);
    if (!d)
        return t_done("test_lower_fail");
    char *names[512];
    int n = 0;
    for (struct dirent *de; (de = readdir(d)) && n < 512;) {
        size_t len = strlen(de->d_name);
        if (!strncmp(de->d_name, "sched_", 6) && len > 4 && !strcmp(de->d_name + len - 4, ".txt"))
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        check_file(dir, names[i]);
        free(names[i]);
    }
    printf("test_lower_fail: %d must-fail schedules\n", n);
    CHECK(n >= 12);
    return t_done("test_lower_fail");
}
