/* return_outputs (issue 17): see run_outputs.h. */
#define _GNU_SOURCE
#include "run_outputs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stream_events.h"
#include "util.h"

/* The capture makes at most output_files_max entries; depth is bounded
 * by the store's path length (4096 bytes). */
#define OUTPUTS_MAX_DEPTH 128
#define REL_MAX 4096

struct walk {
    struct run_outputs *o;
    const char *exec_id;
    uint64_t max;
};

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_left(struct walk *w, const char *rel, struct bx_err *err)
{
    struct run_outputs *o = w->o;
    char *p = NULL;
    if (o->nleft == o->capleft) {
        size_t nc = o->capleft ? o->capleft * 2 : 8;
        char **nl = realloc(o->left, nc * sizeof(*nl));
        if (!nl)
            return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        o->left = nl;
        o->capleft = nc;
    }
    if (asprintf(&p, "output/%s/%s", w->exec_id, rel) < 0)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    o->left[o->nleft++] = p;
    o->json_bound += 6 * strlen(p) + 4;
    return 0;
}

static int read_file(int dirfd, const char *name, size_t len, char **out, size_t *outlen,
                     struct bx_err *err)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    char *buf;
    size_t got = 0;
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "open output %s", name);
    buf = malloc(len ? len : 1);
    if (!buf) {
        close(fd);
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    *out = buf;
    *outlen = got; /* a file that shrank since its stat: what was there */
    return 0;
}

static int walk_dir(struct walk *w, int dirfd, const char *prefix, int depth,
                    struct bx_err *err)
{
    int fd = -1, ret = -1;
    DIR *d = NULL;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;

    if (depth > OUTPUTS_MAX_DEPTH)
        return 0;
    fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "open output directory");
    d = fdopendir(fd);
    if (!d) {
        close(fd);
        return bx_err_sys(err, BX_E_INTERNAL, "open output directory");
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **nn = realloc(names, nc * sizeof(*nn));
            if (!nn) {
                bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
                goto out;
            }
            names = nn;
            cap = nc;
        }
        if (!(names[n] = strdup(de->d_name))) {
            bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
            goto out;
        }
        n++;
    }
    if (n)
        qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        char rel[REL_MAX + 256 + 2];
        snprintf(rel, sizeof(rel), "%s%s%s", prefix, prefix[0] ? "/" : "", names[i]);
        if (fstatat(dirfd, names[i], &sb, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            int sub = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int r;
            if (sub < 0)
                continue;
            r = walk_dir(w, sub, rel, depth + 1, err);
            close(sub);
            if (r < 0)
                goto out;
        } else if (S_ISREG(sb.st_mode)) {
            struct run_outputs *o = w->o;
            uint64_t len = (uint64_t)sb.st_size;
            if (len > w->max || o->bytes + len > w->max) {
                if (add_left(w, rel, err) < 0)
                    goto out;
                continue;
            }
            if (o->n == o->cap) {
                size_t nc = o->cap ? o->cap * 2 : 8;
                struct run_output *nv = realloc(o->v, nc * sizeof(*nv));
                if (!nv) {
                    bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
                    goto out;
                }
                o->v = nv;
                o->cap = nc;
            }
            o->v[o->n] = (struct run_output){NULL, NULL, (size_t)len};
            if (!(o->v[o->n].path = strdup(rel)) ||
                read_file(dirfd, names[i], (size_t)len, &o->v[o->n].data, &o->v[o->n].len,
                          err) < 0) {
                free(o->v[o->n].path);
                if (!err->msg[0])
                    bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
                goto out;
            }
            o->n++;
            o->bytes += len;
            o->json_bound += 6 * strlen(rel) + 4 * (len / 3 + 1) + 8;
        }
    }
    ret = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return ret;
}

int run_outputs_collect(int dirfd, const char *exec_id, uint64_t max_bytes,
                        struct run_outputs **out, struct bx_err *err)
{
    struct run_outputs *o = calloc(1, sizeof(*o));
    struct walk w = {o, exec_id, max_bytes};
    *out = NULL;
    if (!o)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    o->json_bound = 64;
    if (dirfd >= 0 && walk_dir(&w, dirfd, "", 0, err) < 0) {
        run_outputs_free(&o);
        return -1;
    }
    *out = o;
    return 0;
}

void run_outputs_free(struct run_outputs **op)
{
    struct run_outputs *o = *op;
    if (!o)
        return;
    for (size_t i = 0; i < o->n; i++) {
        free(o->v[i].path);
        free(o->v[i].data);
    }
    free(o->v);
    for (size_t i = 0; i < o->nleft; i++)
        free(o->left[i]);
    free(o->left);
    free(o);
    *op = NULL;
}

void run_outputs_json(const struct run_outputs *o, struct json_writer *w)
{
    json_w_key(w, "outputs");
    json_w_obj_begin(w);
    for (size_t i = 0; i < o->n; i++) {
        struct sbuf b;
        sbuf_init(&b, o->v[i].len / 3 * 4 + 8);
        if (sev_base64(&b, o->v[i].data, o->v[i].len) < 0) {
            w->failed = 1;
            sbuf_free(&b);
            return;
        }
        json_w_key(w, o->v[i].path);
        json_w_str(w, b.data ? b.data : "", b.len);
        sbuf_free(&b);
    }
    json_w_obj_end(w);
    if (o->nleft) {
        json_w_key(w, "outputs_left");
        json_w_arr_begin(w);
        for (size_t i = 0; i < o->nleft; i++)
            json_w_cstr(w, o->left[i]);
        json_w_arr_end(w);
    }
}
