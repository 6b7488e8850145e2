/* lower/lower.c: Schedule -> LoopIR, as a flat list of passes.
 *
 * Each pass reads the previous LFunc and returns a new one (inputs are
 * never changed, so the IR after any pass can be kept and printed).  The
 * verifier runs after every pass when KILN_VERIFY is defined (debug and
 * test builds) or the environment says KILN_VERIFY=1; KILN_PRINT_AFTER=PASS
 * (or "all") prints the IR after that pass to stderr.  lower_schedule_ex
 * lets a hot caller (the tuner's scoring) choose. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lower/lower.h"

typedef int (*LowerPassFn)(const LowerCtx *cx, const LFunc *in, LFunc **out);

const char *const lower_pass_names[] = {"build",    "inline",  "init", "guards",
                                        "simplify", "flatten", NULL};

static const LowerPassFn passes[] = {
    /* one nest per non-inlined statement over its leaf loops, in program
     * order; stores T[idx] = T[idx] op rhs; split guards innermost;
     * inlined temps substituted; computed-at statements nested (with their
     * alloc) at the start of their consumer's loop, over their region */
    lower_build,
    /* no load of an inlined temp is left (build already substitutes them;
     * kept as a separate step for IR built by other means) */
    lower_inline,
    /* each reduction stores its identity right before its own outermost
     * reduction loop (or right before the update when there is none) */
    lower_init,
    /* guards sit at the outermost loop binding all their vars */
    lower_guards,
    /* folded constants, linear index arithmetic, no provably-true guards,
     * no loops of extent 1 */
    lower_simplify,
    /* one flat i64 index per access, temps allocated around the body */
    lower_flatten,
};

static bool verify_enabled(void)
{
#ifdef KILN_VERIFY
    return true;
#else
    const char *v = getenv("KILN_VERIFY");
    return v && !strcmp(v, "1");
#endif
}

int lower_schedule(const Schedule *s, Arena *a, const char *stop_after, LFunc **out, kiln_error *e)
{
    return lower_schedule_ex(s, a, stop_after, verify_enabled(), out, e);
}

int lower_schedule_ex(const Schedule *s, Arena *a, const char *stop_after, bool verify, LFunc **out,
                      kiln_error *e)
{
    enum { NPASS = sizeof passes / sizeof *passes };
    _Static_assert(sizeof lower_pass_names / sizeof *lower_pass_names == NPASS + 1,
                   "one name per pass");
    if (out)
        *out = NULL;
    if (!s || !a || !out)
        return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "lower_schedule: missing argument");
    int last = NPASS - 1;
    if (stop_after) {
        last = -1;
        for (int i = 0; i < NPASS; i++)
            if (!strcmp(stop_after, lower_pass_names[i]))
                last = i;
        if (last < 0) {
            char list[256] = "";
            for (int i = 0; i < NPASS; i++) {
                if (i)
                    strcat(list, ", ");
                strcat(list, lower_pass_names[i]);
            }
            return ir_error(e, KILN_EINVAL, NULL, (Loc){0, 0}, "unknown pass '%s' (passes: %s)",
                            stop_after, list);
        }
    }
    const char *print = getenv("KILN_PRINT_AFTER");
    const char *venv = getenv("KILN_VERIFY");
    verify = verify || (venv && !strcmp(venv, "1"));
    LowerCtx cx = {s, sched_prog(s), a, e};
    LFunc *f = NULL;
    for (int i = 0; i <= last; i++) {
        LFunc *g = NULL;
        int rc = passes[i](&cx, f, &g);
        if (rc)
            return rc;
        if (verify) {
            kiln_error ve;
            kiln_error_clear(&ve);
            if ((rc = lower_verify(g, &ve))) {
                char *text = lfunc_to_text(g);
                fprintf(stderr, "kiln: IR after pass '%s' fails verification:\n%s",
                        lower_pass_names[i], text ? text : "");
                free(text);
                return ir_error(e, rc, NULL, (Loc){0, 0}, "after pass '%s': %s",
                                lower_pass_names[i], ve.msg);
            }
        }
        if (print && (!strcmp(print, lower_pass_names[i]) || !strcmp(print, "all"))) {
            char *text = lfunc_to_text(g);
            fprintf(stderr, "-- after %s --\n%s", lower_pass_names[i], text ? text : "");
            free(text);
        }
        f = g;
    }
    *out = f;
    return KILN_OK;
}
