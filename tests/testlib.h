/* tests/testlib.h: a tiny assertion helper shared by the C tests. */
#ifndef KILN_TESTLIB_H
#define KILN_TESTLIB_H
#include <stdio.h>

extern int t_failures, t_checks;
#define CHECK(c)                                                                      \
    do {                                                                              \
        t_checks++;                                                                   \
        if (!(c)) {                                                                   \
            t_failures++;                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);     \
        }                                                                             \
    } while (0)
#define CHECKF(c, ...)                                                                \
    do {                                                                              \
        t_checks++;                                                                   \
        if (!(c)) {                                                                   \
            t_failures++;                                                             \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #c);     \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
        }                                                                             \
    } while (0)
/* Prints the summary and returns the process status. */
int t_done(const char *name);
/* Reads a whole file (malloc'd, NUL-terminated) or NULL. */
char *t_read_file(const char *path);
#endif
