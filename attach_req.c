/* The attach route's command parameters; see attach_req.h. */
#include "attach_req.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "httpparse.h"
#include "util.h"

static void strv_free(char ***v)
{
    if (!*v)
        return;
    for (char **p = *v; *p; p++)
        free(*p);
    free(*v);
    *v = NULL;
}

/* Collects every value of `name` into a new NULL-terminated list (NULL
 * when there is none); *bytes counts what was kept. */
static int collect(const char *q, size_t qlen, const char *name, size_t max_n, char ***out,
                   size_t *bytes, struct bx_err *err)
{
    char val[ATTACH_VALUE_MAX + 1];
    size_t pos = 0, len, n = 0;
    char **v = NULL;
    int r;

    while ((r = http_query_next(q, qlen, &pos, name, val, sizeof(val), &len, err)) == 1) {
        char **nv;
        if (n == max_n) {
            bx_err_set(err, BX_E_BAD_REQUEST, E2BIG, "more than %zu %s values", max_n, name);
            goto fail;
        }
        *bytes += len + 1;
        if (*bytes > ATTACH_BYTES_MAX) {
            bx_err_set(err, BX_E_BAD_REQUEST, E2BIG, "cmd, env and workdir over %d bytes",
                       ATTACH_BYTES_MAX);
            goto fail;
        }
        nv = realloc(v, (n + 2) * sizeof(*v));
        if (!nv) {
            bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
            goto fail;
        }
        v = nv;
        v[n] = malloc(len + 1);
        if (!v[n]) {
            v[n] = NULL;
            bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
            goto fail;
        }
        memcpy(v[n], val, len + 1);
        v[++n] = NULL;
    }
    if (r < 0) {
        /* http_query_next's "too long" carries no bound: say ours */
        if (err->status == BX_E_BAD_REQUEST && strstr(err->msg, "long"))
            bx_err_set(err, BX_E_BAD_REQUEST, E2BIG, "a %s value is over %d bytes", name,
                       ATTACH_VALUE_MAX);
        goto fail;
    }
    *out = v;
    return 0;
fail:
    strv_free(&v);
    return -1;
}

static int printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

static int parse_user(const char *s, struct attach_req *r, struct bx_err *err)
{
    const char *colon = strchr(s, ':');
    size_t ulen = colon ? (size_t)(colon - s) : strlen(s);
    uint64_t uid, gid;
    if (bx_parse_u64(s, ulen, UINT32_MAX - 1, &uid) < 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "user must be \"uid[:gid]\" with numeric ids");
    gid = uid;
    if (colon && bx_parse_u64(colon + 1, strlen(colon + 1), UINT32_MAX - 1, &gid) < 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "user must be \"uid[:gid]\" with numeric ids");
    r->set_user = 1;
    r->uid = (uint32_t)uid;
    r->gid = (uint32_t)gid;
    return 0;
}

int attach_req_parse(const char *query, size_t query_len, struct attach_req *r,
                     struct bx_err *err)
{
    char v[ATTACH_VALUE_MAX + 1];
    size_t bytes = 0, len;
    int f;

    memset(r, 0, sizeof(*r));
    if (collect(query, query_len, "cmd", ATTACH_ARGS_MAX, &r->cmd, &bytes, err) < 0 ||
        collect(query, query_len, "env", ATTACH_ENV_MAX, &r->env, &bytes, err) < 0)
        return -1;
    if (r->cmd && !r->cmd[0][0])
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "cmd: the program must not be empty");
    for (char **e = r->env; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || eq == *e || eq - *e > 255)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "env must be K=V with a non-empty K");
    }
    f = http_query_param(query, query ? query_len : 0, "workdir", v, sizeof(v), &len, err);
    if (f < 0)
        return -1;
    if (f == 1) {
        bytes += len + 1;
        if (v[0] != '/' || !printable(v) || bytes > ATTACH_BYTES_MAX)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "workdir must be an absolute path (cmd, env and workdir at most "
                              "%d bytes)", ATTACH_BYTES_MAX);
        r->workdir = strdup(v);
        if (!r->workdir)
            return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    f = http_query_param(query, query ? query_len : 0, "user", v, 64, &len, err);
    if (f < 0)
        return bx_err_wrap(err, "user (at most 63 bytes)");
    if (f == 1 && parse_user(v, r, err) < 0)
        return -1;
    return 0;
}

void attach_req_free(struct attach_req *r)
{
    strv_free(&r->cmd);
    strv_free(&r->env);
    free(r->workdir);
    r->workdir = NULL;
}
