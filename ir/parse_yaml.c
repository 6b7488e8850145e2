/* ir/parse_yaml.c: loads a compute definition (YAML, via libyaml's
 * document API) and builds the Program through the builder in program.c.
 *
 * Invariant: every error carries file:line:col of the offending node (libyaml
 * marks are 0-based; we add 1), and statement errors point inside the
 * statement text: its start is the scalar's start mark, one further for a
 * quoted scalar.  The walk only descends the fixed shape of the format, so
 * aliases (even cyclic ones) cannot make it loop. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "ir/ir.h"

typedef struct {
    yaml_document_t *doc;
    const char *file;
    kiln_error *e;
    Program *p;
    /* Param overrides (ir_parse_yaml_file_params): names[i] takes vals[i]. */
    int nover;
    const char *const *onames;
    const int64_t *ovals;
} Y;

static Loc mloc(yaml_mark_t m)
{
    return (Loc){(int)m.line + 1, (int)m.column + 1};
}

static Loc nloc(const yaml_node_t *n)
{
    return mloc(n->start_mark);
}

static yaml_node_t *node(Y *y, int id)
{
    return yaml_document_get_node(y->doc, id);
}

static int __attribute__((format(printf, 4, 5))) err(Y *y, int code, Loc loc, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ir_error(y->e, code, y->file, loc, "%s", msg);
}

static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* The scalar's text, rejecting embedded NULs (which would silently cut it). */
static int scalar(Y *y, const yaml_node_t *n, const char *what, const char **out)
{
    if (n->type != YAML_SCALAR_NODE)
        return err(y, KILN_ESYNTAX, nloc(n), "%s must be a single value, not a %s", what,
                   n->type == YAML_MAPPING_NODE ? "mapping" : "list");
    const char *s = (const char *)n->data.scalar.value;
    if (strlen(s) != n->data.scalar.length)
        return err(y, KILN_ESYNTAX, nloc(n), "%s contains a NUL character", what);
    *out = s;
    return KILN_OK;
}

static int int_scalar(Y *y, const yaml_node_t *n, const char *what, int64_t *out)
{
    const char *s = NULL;
    int rc = scalar(y, n, what, &s);
    if (rc)
        return rc;
    const char *c = s;
    bool neg = *c == '-';
    if (*c == '-' || *c == '+')
        c++;
    if (!*c)
        goto bad;
    uint64_t v = 0;
    for (; *c; c++) {
        if (*c < '0' || *c > '9')
            goto bad;
        if (v > (UINT64_MAX - 9) / 10)
            return err(y, KILN_ESEMANTIC, nloc(n), "%s is too large: %s", what, s);
        v = v * 10 + (uint64_t)(*c - '0');
    }
    if (v > (uint64_t)INT64_MAX + neg)
        return err(y, KILN_ESEMANTIC, nloc(n), "%s is too large: %s", what, s);
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return KILN_OK;
bad:
    return err(y, KILN_ESEMANTIC, nloc(n), "%s must be an integer, not '%s'", what, s);
}

/* Checks that n is a mapping with scalar keys and no key twice. */
static int mapping(Y *y, const yaml_node_t *n, const char *what)
{
    if (n->type != YAML_MAPPING_NODE)
        return err(y, KILN_ESYNTAX, nloc(n), "%s must be a mapping (name: value, ...)", what);
    for (yaml_node_pair_t *a = n->data.mapping.pairs.start; a < n->data.mapping.pairs.top; a++) {
        yaml_node_t *k = node(y, a->key);
        const char *ks = NULL;
        int rc = scalar(y, k, "a key", &ks);
        if (rc)
            return rc;
        for (yaml_node_pair_t *b = n->data.mapping.pairs.start; b < a; b++) {
            yaml_node_t *kb = node(y, b->key);
            if (kb->type == YAML_SCALAR_NODE && !strcmp((const char *)kb->data.scalar.value, ks))
                return err(y, KILN_ESEMANTIC, nloc(k), "duplicate key '%s' in %s", ks, what);
        }
    }
    return KILN_OK;
}

static const char *key_of(Y *y, const yaml_node_pair_t *pr)
{
    return (const char *)node(y, pr->key)->data.scalar.value;
}

/* --------------------------------------------------------------- parts */
static int load_params(Y *y, yaml_node_t *n)
{
    if (is_null(n))
        return KILN_OK;
    int rc = mapping(y, n, "params");
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; !rc && pr < n->data.mapping.pairs.top;
         pr++) {
        const char *name = key_of(y, pr);
        char what[300];
        snprintf(what, sizeof what, "param '%s'", name);
        int64_t v;
        rc = int_scalar(y, node(y, pr->value), what, &v);
        for (int i = 0; !rc && i < y->nover; i++)
            if (!strcmp(y->onames[i], name))
                v = y->ovals[i];
        if (!rc)
            rc = ir_program_add_param(y->p, name, v, nloc(node(y, pr->key)), y->e);
    }
    return rc;
}

static int load_tensors(Y *y, yaml_node_t *n, TensorKind kind, const char *section)
{
    if (is_null(n))
        return KILN_OK;
    int rc = mapping(y, n, section);
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; !rc && pr < n->data.mapping.pairs.top;
         pr++) {
        const char *name = key_of(y, pr);
        yaml_node_t *v = node(y, pr->value);
        Loc kl = nloc(node(y, pr->key));
        if (v->type != YAML_SEQUENCE_NODE ||
            v->data.sequence.items.top == v->data.sequence.items.start)
            return err(y, KILN_ESYNTAX, nloc(v),
                       "tensor '%s' must be a list [dtype, dim, ...], e.g. [f32, 64, 64]", name);
        yaml_node_item_t *it = v->data.sequence.items.start;
        int ndim = (int)(v->data.sequence.items.top - it) - 1;
        const char *dtn = NULL;
        yaml_node_t *dn = node(y, it[0]);
        if ((rc = scalar(y, dn, "a dtype", &dtn)))
            return rc;
        DType dt;
        if (!dtype_from_name(dtn, &dt))
            return err(y, KILN_ESEMANTIC, nloc(dn),
                       "unknown dtype '%s' for tensor '%s': expected f32, f64, i32 or i64", dtn,
                       name);
        if (ndim > IR_MAX_DIMS)
            return err(y, KILN_ESEMANTIC, nloc(node(y, it[IR_MAX_DIMS + 1])),
                       "tensor '%s' has %d dims; at most %d", name, ndim, IR_MAX_DIMS);
        const char *dims[IR_MAX_DIMS];
        Loc locs[IR_MAX_DIMS];
        for (int d = 0; d < ndim; d++) {
            yaml_node_t *x = node(y, it[d + 1]);
            if ((rc = scalar(y, x, "a dim", &dims[d])))
                return rc;
            locs[d] = nloc(x);
        }
        rc = ir_program_add_tensor(y->p, kind, name, dt, ndim, dims, locs, kl, y->e);
    }
    return rc;
}

/* Where the statement text of scalar n starts. */
static Loc text_loc(const yaml_node_t *n)
{
    Loc l = nloc(n);
    yaml_scalar_style_t st = n->data.scalar.style;
    if (st == YAML_SINGLE_QUOTED_SCALAR_STYLE || st == YAML_DOUBLE_QUOTED_SCALAR_STYLE)
        l.col++;
    return l;
}

#define MAX_RANGES 64

static int load_stmt(Y *y, yaml_node_t *n)
{
    const char *text = NULL;
    int rc;
    if (n->type == YAML_SCALAR_NODE) {
        if ((rc = scalar(y, n, "a statement", &text)))
            return rc;
        return ir_program_add_stmt(y->p, text, text_loc(n), 0, NULL, NULL, NULL, y->e);
    }
    if (n->type != YAML_MAPPING_NODE)
        return err(y, KILN_ESYNTAX, nloc(n),
                   "a statement must be text, or a mapping {stmt: \"...\", ranges: {r: 3}}");
    if ((rc = mapping(y, n, "a statement")))
        return rc;
    yaml_node_t *sn = NULL, *rn = NULL;
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        const char *k = key_of(y, pr);
        if (!strcmp(k, "stmt"))
            sn = node(y, pr->value);
        else if (!strcmp(k, "ranges"))
            rn = node(y, pr->value);
        else
            return err(y, KILN_ESEMANTIC, nloc(node(y, pr->key)),
                       "unknown key '%s' in a statement: expected stmt or ranges", k);
    }
    if (!sn)
        return err(y, KILN_ESEMANTIC, nloc(n), "statement mapping has no 'stmt' key");
    if ((rc = scalar(y, sn, "a statement", &text)))
        return rc;
    const char *names[MAX_RANGES];
    int64_t ext[MAX_RANGES];
    Loc locs[MAX_RANGES];
    int nr = 0;
    if (rn && !is_null(rn)) {
        if ((rc = mapping(y, rn, "ranges")))
            return rc;
        for (yaml_node_pair_t *pr = rn->data.mapping.pairs.start; pr < rn->data.mapping.pairs.top;
             pr++) {
            if (nr == MAX_RANGES)
                return err(y, KILN_ESEMANTIC, nloc(node(y, pr->key)), "too many ranges");
            names[nr] = key_of(y, pr);
            char what[300];
            snprintf(what, sizeof what, "range of '%s'", names[nr]);
            if ((rc = int_scalar(y, node(y, pr->value), what, &ext[nr])))
                return rc;
            locs[nr] = nloc(node(y, pr->key));
            nr++;
        }
    }
    return ir_program_add_stmt(y->p, text, text_loc(sn), nr, names, ext, locs, y->e);
}

static int load_compute(Y *y, yaml_node_t *n)
{
    if (n->type != YAML_SEQUENCE_NODE || n->data.sequence.items.top == n->data.sequence.items.start)
        return err(y, KILN_ESYNTAX, nloc(n), "compute must be a non-empty list of statements");
    int rc = KILN_OK;
    for (yaml_node_item_t *it = n->data.sequence.items.start;
         !rc && it < n->data.sequence.items.top; it++)
        rc = load_stmt(y, node(y, *it));
    return rc;
}

enum { K_NAME, K_PARAMS, K_INPUTS, K_OUTPUTS, K_TEMPS, K_COMPUTE, NKEYS };
static const char *const keys[NKEYS] = {"name", "params", "inputs", "outputs", "temps", "compute"};

static int load_root(Y *y, yaml_node_t *root, Program **out)
{
    if (root->type != YAML_MAPPING_NODE)
        return err(y, KILN_ESYNTAX, nloc(root),
                   "expected a mapping with keys name, inputs, outputs and compute");
    int rc = mapping(y, root, "the top level");
    if (rc)
        return rc;
    yaml_node_t *v[NKEYS] = {0};
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
         pr++) {
        const char *k = key_of(y, pr);
        int i = 0;
        while (i < NKEYS && strcmp(k, keys[i]))
            i++;
        if (i == NKEYS)
            return err(y, KILN_ESEMANTIC, nloc(node(y, pr->key)),
                       "unknown key '%s': expected name, params, inputs, outputs, temps or compute",
                       k);
        v[i] = node(y, pr->value);
    }
    static const int required[] = {K_NAME, K_OUTPUTS, K_COMPUTE};
    for (int i = 0; i < 3; i++)
        if (!v[required[i]])
            return err(y, KILN_ESEMANTIC, nloc(root), "missing key '%s'", keys[required[i]]);
    const char *name = NULL;
    if ((rc = scalar(y, v[K_NAME], "name", &name)))
        return rc;
    if ((rc = ir_check_name("name", name, y->file, nloc(v[K_NAME]), y->e)))
        return rc;
    if (is_null(v[K_OUTPUTS]))
        return err(y, KILN_ESEMANTIC, nloc(v[K_OUTPUTS]),
                   "outputs must declare at least one tensor");
    y->p = ir_program_new(name, y->file);
    if (!y->p)
        return err(y, KILN_ENOMEM, (Loc){0, 0}, "out of memory");
    if (!rc && v[K_PARAMS])
        rc = load_params(y, v[K_PARAMS]);
    for (int i = 0; !rc && i < y->nover; i++) {
        bool found = false;
        for (int j = 0; j < y->p->nparams; j++)
            found |= !strcmp(y->p->params[j].name, y->onames[i]);
        if (!found)
            rc = err(y, KILN_ESEMANTIC, (Loc){0, 0},
                     "param '%s' is set from outside but the file does not declare it",
                     y->onames[i]);
    }
    if (!rc && v[K_INPUTS])
        rc = load_tensors(y, v[K_INPUTS], T_INPUT, "inputs");
    if (!rc)
        rc = load_tensors(y, v[K_OUTPUTS], T_OUTPUT, "outputs");
    if (!rc && v[K_TEMPS])
        rc = load_tensors(y, v[K_TEMPS], T_TEMP, "temps");
    if (!rc)
        rc = load_compute(y, v[K_COMPUTE]);
    if (!rc)
        rc = ir_program_finish(y->p, y->e);
    if (rc) {
        ir_program_free(y->p);
        y->p = NULL;
        return rc;
    }
    *out = y->p;
    return KILN_OK;
}

/* libyaml's own errors.  Reader errors (bad encoding) only give an offset. */
static int yaml_fail(Y *y, yaml_parser_t *yp, const char *text, size_t len)
{
    if (yp->error == YAML_MEMORY_ERROR)
        return err(y, KILN_ENOMEM, (Loc){0, 0}, "out of memory");
    Loc loc = mloc(yp->problem_mark);
    if (yp->error == YAML_READER_ERROR) {
        loc = (Loc){1, 1};
        for (size_t i = 0; i < yp->problem_offset && i < len; i++) {
            if (text[i] == '\n')
                loc = (Loc){loc.line + 1, 1};
            else
                loc.col++;
        }
    }
    const char *problem = yp->problem ? yp->problem : "malformed YAML";
    if (yp->context)
        return err(y, KILN_ESYNTAX, loc, "invalid YAML: %s %s", problem, yp->context);
    return err(y, KILN_ESYNTAX, loc, "invalid YAML: %s", problem);
}

static int parse_string(const char *text, size_t len, const char *filename, int nover,
                        const char *const *onames, const int64_t *ovals, Program **out,
                        kiln_error *e)
{
    Y y = {.file = filename ? filename : "<string>", .e = e, .nover = nover, .onames = onames,
           .ovals = ovals};
    *out = NULL;
    yaml_parser_t yp;
    if (!yaml_parser_initialize(&yp))
        return err(&y, KILN_ENOMEM, (Loc){0, 0}, "out of memory");
    yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);
    yaml_document_t doc;
    int rc = KILN_OK;
    if (!yaml_parser_load(&yp, &doc)) {
        rc = yaml_fail(&y, &yp, text, len);
        yaml_parser_delete(&yp);
        return rc;
    }
    y.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        rc = err(&y, KILN_ESYNTAX, (Loc){1, 1},
                 "empty document: expected a mapping with keys name, inputs, outputs and compute");
    } else {
        /* A second document is a mistake worth reporting (not ignoring). */
        yaml_document_t doc2;
        if (!yaml_parser_load(&yp, &doc2)) {
            rc = yaml_fail(&y, &yp, text, len);
        } else {
            yaml_node_t *r2 = yaml_document_get_root_node(&doc2);
            if (r2)
                rc = err(&y, KILN_ESYNTAX, nloc(r2), "expected a single YAML document");
            yaml_document_delete(&doc2);
        }
        if (!rc)
            rc = load_root(&y, root, out);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&yp);
    return rc;
}

int ir_parse_yaml_string(const char *text, size_t len, const char *filename, Program **out,
                         kiln_error *e)
{
    return parse_string(text, len, filename, 0, NULL, NULL, out, e);
}

int ir_parse_yaml_file(const char *path, Program **out, kiln_error *e)
{
    return ir_parse_yaml_file_params(path, 0, NULL, NULL, out, e);
}

int ir_parse_yaml_file_params(const char *path, int n, const char *const *names,
                              const int64_t *values, Program **out, kiln_error *e)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ir_error(e, KILN_EIO, path, (Loc){0, 0}, "cannot open: %s", strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    int rc = KILN_OK;
    for (;;) {
        if (!buf) {
            rc = ir_error(e, KILN_ENOMEM, path, (Loc){0, 0}, "out of memory reading the file");
            break;
        }
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap) {
            if (ferror(f))
                rc = ir_error(e, KILN_EIO, path, (Loc){0, 0}, "read error: %s", strerror(errno));
            break;
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb)
            free(buf);
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    if (!rc)
        rc = parse_string(buf, len, path, n, names, values, out, e);
    free(buf);
    return rc;
}
