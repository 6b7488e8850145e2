/* tests/test_fe_fail.c: the must-fail corpus.  Each tests/fail/NAME.yaml
 * starts with `# expect: LINE:COL: substring`; parsing it must fail with an
 * error at exactly that place whose message contains the substring. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "testlib.h"

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_file(const char *dir, const char *name)
{
    char path[2048];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        CHECKF(0, "path too long: %s", name);
        return;
    }
    char *text = t_read_file(path);
    CHECKF(text != NULL, "%s: cannot read", path);
    if (!text)
        return;
    int line = 0, col = 0, n = 0;
    char want[512] = "";
    if (sscanf(text, "# expect: %d:%d: %n", &line, &col, &n) < 2 || n == 0) {
        CHECKF(0, "%s: first line must be '# expect: LINE:COL: message'", path);
        free(text);
        return;
    }
    const char *s = text + n, *eol = strchr(s, '\n');
    size_t len = eol ? (size_t)(eol - s) : strlen(s);
    if (len >= sizeof want)
        len = sizeof want - 1;
    memcpy(want, s, len);
    want[len] = 0;
    free(text);

    Program *p = (Program *)1;
    kiln_error e;
    kiln_error_clear(&e);
    int rc = ir_parse_yaml_file(path, &p, &e);
    CHECKF(rc != KILN_OK, "%s: parsed, but should fail with %d:%d: %s", name, line, col, want);
    if (rc == KILN_OK) {
        ir_program_free(p);
        return;
    }
    CHECKF(p == NULL, "%s: *out not NULL on error", name);
    CHECKF(rc == e.code, "%s: returned %d but recorded %d", name, rc, e.code);
    CHECKF(rc == KILN_ESYNTAX || rc == KILN_ESEMANTIC, "%s: code %d", name, rc);
    CHECKF(!strcmp(e.file, path), "%s: error names file '%s'", name, e.file);
    CHECKF(e.line == line && e.col == col, "%s: error at %d:%d, expected %d:%d (%s)", name, e.line,
           e.col, line, col, e.msg);
    CHECKF(strstr(e.msg, want) != NULL, "%s: message '%s' lacks '%s'", name, e.msg, want);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_fe_fail SOURCE_ROOT\n");
        return 2;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fail", argv[1]);
    DIR *d = opendir(dir);
    CHECKF(d != NULL, "cannot open %s", dir);
    if (!d)
        return t_done("test_fe_fail");
    char *names[1024];
    int n = 0;
    for (struct dirent *de; (de = readdir(d)) && n < 1024;) {
        size_t l = strlen(de->d_name);
        if (l > 5 && !strcmp(de->d_name + l - 5, ".yaml"))
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_names);
    CHECKF(n >= 45, "only %d must-fail inputs", n);
    for (int i = 0; i < n; i++) {
        check_file(dir, names[i]);
        free(names[i]);
    }
    printf("%d must-fail inputs\n", n);
    return t_done("test_fe_fail");
}
