#define _GNU_SOURCE
#include "route.h"

#include <stdio.h>
#include <string.h>

int route_match(const char *pattern, const char *path, struct route_params *params)
{
    const char *p = pattern, *s = path;
    struct route_params local;

    if (!params)
        params = &local;
    params->n = 0;
    while (*p) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            size_t len = strcspn(s, "/:");
            if (!close || len == 0 || params->n == ROUTE_MAX_PARAMS)
                return 0;
            params->p[params->n].s = s;
            params->p[params->n].len = len;
            params->n++;
            s += len;
            p = close + 1;
            continue;
        }
        if (*p != *s)
            return 0;
        p++;
        s++;
    }
    return *s == '\0';
}

static int method_matches(enum http_method want, enum http_method got)
{
    return got == want || (want == HTTP_GET && got == HTTP_HEAD);
}

const struct route *route_find(const struct route *table, size_t n, enum http_method method,
                               const char *path, struct route_params *params,
                               const struct route **same_path)
{
    *same_path = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!route_match(table[i].pattern, path, params))
            continue;
        if (!*same_path)
            *same_path = &table[i];
        if (method_matches(table[i].method, method))
            return &table[i];
    }
    return NULL;
}

static const char *method_name(enum http_method m)
{
    switch (m) {
    case HTTP_GET: return "GET, HEAD";
    case HTTP_HEAD: return "HEAD";
    case HTTP_POST: return "POST";
    case HTTP_PUT: return "PUT";
    case HTTP_DELETE: return "DELETE";
    case HTTP_OPTIONS: return "OPTIONS";
    case HTTP_PATCH: return "PATCH";
    case HTTP_OTHER: break;
    }
    return NULL;
}

void route_allow(const struct route *table, size_t n, const char *path, char *out, size_t cap)
{
    size_t used = 0;

    if (cap == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *name = method_name(table[i].method);
        int w;
        if (!name || !route_match(table[i].pattern, path, NULL))
            continue;
        w = snprintf(out + used, cap - used, "%s%s", used ? ", " : "", name);
        if (w < 0 || (size_t)w >= cap - used) {
            out[used] = '\0'; /* whole names only */
            return;
        }
        used += (size_t)w;
    }
}

const char *route_label(const struct route *table, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (route_match(table[i].pattern, path, NULL))
            return table[i].label;
    return "other";
}

size_t route_labels(const struct route *table, size_t n, const char **out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < cap; i++) {
        size_t j = 0;
        while (j < k && strcmp(out[j], table[i].label) != 0)
            j++;
        if (j == k)
            out[k++] = table[i].label;
    }
    return k;
}
