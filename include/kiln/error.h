/* kiln/error.h: the error record every fallible kiln call fills.
 *
 * A call that can fail returns an int status (0 = success, else a KILN_E*
 * code) and takes an optional caller-owned `kiln_error *` (NULL is fine).
 * The first error wins: a record that already holds an error is not
 * overwritten.  Filling it never allocates. */
#ifndef KILN_ERROR_H
#define KILN_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum {
    KILN_OK = 0,
    KILN_ESYNTAX = 1,   /* malformed YAML, statement or schedule text */
    KILN_ESEMANTIC = 2, /* well-formed but invalid: unknown name, dtype clash, bounds */
    KILN_ESCHEDULE = 3, /* invalid schedule primitive or argument */
    KILN_EIO = 4,       /* file cannot be read or written */
    KILN_ENOMEM = 5,    /* allocation failed */
    KILN_ECODEGEN = 6,  /* LLVM failed (an internal error: please report) */
    KILN_EVERIFY = 7,   /* a kernel's result disagrees with the interpreter */
    KILN_EINVAL = 8     /* bad argument to an API call */
};

typedef struct kiln_error {
    int code;        /* KILN_OK when no error has been recorded */
    char file[256];  /* source file name, or "" when unknown */
    int line, col;   /* 1-based; 0 when unknown */
    char msg[512];   /* the message, without the place */
} kiln_error;

/* Clears `e` (no-op for NULL). */
void kiln_error_clear(kiln_error *e);

/* Formats "file:line:col: message" (parts that are unknown are left out)
 * into buf; returns buf. */
const char *kiln_error_format(const kiln_error *e, char *buf, unsigned long size);

#ifdef __cplusplus
}
#endif
#endif
