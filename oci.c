#define _GNU_SOURCE
#include "oci.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static void w_strv(struct json_writer *w, char *const *v)
{
    json_w_arr_begin(w);
    for (size_t i = 0; v && v[i]; i++)
        json_w_cstr(w, v[i]);
    json_w_arr_end(w);
}

static void w_rlimit(struct json_writer *w, const char *type, uint64_t v)
{
    json_w_obj_begin(w);
    json_w_key(w, "type");
    json_w_cstr(w, type);
    json_w_key(w, "hard");
    json_w_uint(w, v);
    json_w_key(w, "soft");
    json_w_uint(w, v);
    json_w_obj_end(w);
}

static void w_mount(struct json_writer *w, const char *dest, const char *type, const char *source,
                    const char *const *options)
{
    json_w_obj_begin(w);
    json_w_key(w, "destination");
    json_w_cstr(w, dest);
    json_w_key(w, "type");
    json_w_cstr(w, type);
    json_w_key(w, "source");
    json_w_cstr(w, source);
    json_w_key(w, "options");
    json_w_arr_begin(w);
    for (size_t i = 0; options[i]; i++)
        json_w_cstr(w, options[i]);
    json_w_arr_end(w);
    json_w_obj_end(w);
}

int oci_build_spec(const struct oci_params *p, struct sbuf *out, struct bx_err *err)
{
    static const char *const proc_opts[] = {"nosuid", "noexec", "nodev", NULL};
    static const char *const dev_opts[] = {"nosuid", "strictatime", "mode=755", "size=65536k",
                                           NULL};
    static const char *const sys_opts[] = {"nosuid", "noexec", "nodev", "ro", NULL};
    static const char *const ro_bind[] = {"rbind", "ro", "nosuid", "nodev", NULL};
    static const char *const rw_bind[] = {"rbind", "rw", "nosuid", "nodev", NULL};
    static const char *const ns_types[] = {"pid", "ipc", "uts", "mount", NULL};
    char tmp_size[64];
    const char *tmp_opts[] = {"nosuid", "nodev", "mode=1777", tmp_size, NULL};
    struct json_writer w;

    if (!p->args || !p->args[0])
        return bx_err_set(err, 400, EINVAL, "cmd must not be empty");
    snprintf(tmp_size, sizeof(tmp_size), "size=%llum", (unsigned long long)p->tmp_size_mb);
    json_w_init(&w, out);
    json_w_obj_begin(&w);
    json_w_key(&w, "ociVersion");
    json_w_cstr(&w, "1.0.2");

    json_w_key(&w, "process");
    json_w_obj_begin(&w);
    json_w_key(&w, "terminal");
    json_w_bool(&w, 0);
    json_w_key(&w, "user");
    json_w_obj_begin(&w);
    json_w_key(&w, "uid");
    json_w_uint(&w, p->uid);
    json_w_key(&w, "gid");
    json_w_uint(&w, p->gid);
    json_w_obj_end(&w);
    json_w_key(&w, "args");
    w_strv(&w, p->args);
    json_w_key(&w, "env");
    w_strv(&w, p->env);
    json_w_key(&w, "cwd");
    json_w_cstr(&w, p->cwd);
    /* Empty capability sets: nothing privileged even inside gVisor. */
    json_w_key(&w, "capabilities");
    json_w_obj_begin(&w);
    {
        static const char *const sets[] = {"bounding", "effective", "inheritable", "permitted",
                                           "ambient", NULL};
        for (size_t i = 0; sets[i]; i++) {
            json_w_key(&w, sets[i]);
            json_w_arr_begin(&w);
            json_w_arr_end(&w);
        }
    }
    json_w_obj_end(&w);
    json_w_key(&w, "noNewPrivileges");
    json_w_bool(&w, 1);
    json_w_key(&w, "rlimits");
    json_w_arr_begin(&w);
    w_rlimit(&w, "RLIMIT_NOFILE", p->nofile);
    /* gVisor counts tasks of the sandbox user against RLIMIT_NPROC (runsc
     * ignores linux.resources.pids), so this is what bounds processes and
     * threads inside; the host pids cgroup bounds the sandbox's own tasks. */
    if (p->nproc)
        w_rlimit(&w, "RLIMIT_NPROC", p->nproc);
    json_w_arr_end(&w);
    json_w_obj_end(&w); /* process */

    json_w_key(&w, "root");
    json_w_obj_begin(&w);
    json_w_key(&w, "path");
    json_w_cstr(&w, p->rootfs);
    json_w_key(&w, "readonly");
    json_w_bool(&w, 1);
    json_w_obj_end(&w);

    json_w_key(&w, "hostname");
    json_w_cstr(&w, p->hostname);

    json_w_key(&w, "mounts");
    json_w_arr_begin(&w);
    w_mount(&w, "/proc", "proc", "proc", proc_opts);
    w_mount(&w, "/dev", "tmpfs", "tmpfs", dev_opts);
    w_mount(&w, "/sys", "sysfs", "sysfs", sys_opts);
    w_mount(&w, "/tmp", "tmpfs", "tmpfs", tmp_opts);
    for (size_t i = 0; i < p->nmounts; i++)
        w_mount(&w, p->mounts[i].destination, "bind", p->mounts[i].source,
                p->mounts[i].readonly ? ro_bind : rw_bind);
    json_w_arr_end(&w);

    json_w_key(&w, "linux");
    json_w_obj_begin(&w);
    if (p->cgroups_path) {
        json_w_key(&w, "cgroupsPath");
        json_w_cstr(&w, p->cgroups_path);
    }
    json_w_key(&w, "namespaces");
    json_w_arr_begin(&w);
    for (size_t i = 0; ns_types[i]; i++) {
        json_w_obj_begin(&w);
        json_w_key(&w, "type");
        json_w_cstr(&w, ns_types[i]);
        json_w_obj_end(&w);
    }
    if (!p->host_network) {
        json_w_obj_begin(&w);
        json_w_key(&w, "type");
        json_w_cstr(&w, "network");
        if (p->netns_path) {
            json_w_key(&w, "path");
            json_w_cstr(&w, p->netns_path);
        }
        json_w_obj_end(&w);
    }
    json_w_arr_end(&w);
    /* Hide host paths that gVisor would otherwise expose through /proc. */
    json_w_key(&w, "maskedPaths");
    json_w_arr_begin(&w);
    json_w_cstr(&w, "/proc/kcore");
    json_w_cstr(&w, "/proc/keys");
    json_w_cstr(&w, "/proc/timer_list");
    json_w_arr_end(&w);
    json_w_obj_end(&w); /* linux */
    json_w_obj_end(&w);
    if (w.failed)
        return bx_err_set(err, 500, ENOMEM, "OCI spec too large");
    return 0;
}

static size_t key_len(const char *kv)
{
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : 0;
}

static int strv_push(char ***v, size_t *n, size_t *cap, const char *s)
{
    if (*n + 2 > *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        char **nv = realloc(*v, nc * sizeof(char *));
        if (!nv)
            return -1;
        *v = nv;
        *cap = nc;
    }
    (*v)[*n] = strdup(s);
    if (!(*v)[*n])
        return -1;
    (*n)++;
    (*v)[*n] = NULL;
    return 0;
}

/* Index of the entry with the same key, or -1. */
static long find_key(char **v, size_t n, const char *kv)
{
    size_t kl = key_len(kv);
    for (size_t i = 0; i < n; i++)
        if (key_len(v[i]) == kl && strncmp(v[i], kv, kl) == 0)
            return (long)i;
    return -1;
}

int oci_merge_env(char *const *image_env, char *const *req_env, char ***out, struct bx_err *err)
{
    char **v = NULL;
    size_t n = 0, cap = 0;
    char *const *lists[2] = {image_env, req_env};

    if (strv_push(&v, &n, &cap, "PATH=" OCI_DEFAULT_PATH) < 0)
        goto oom;
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; lists[l] && lists[l][i]; i++) {
            const char *kv = lists[l][i];
            long at;
            if (key_len(kv) == 0)
                continue;
            at = find_key(v, n, kv);
            if (at >= 0) {
                char *dup = strdup(kv);
                if (!dup)
                    goto oom;
                free(v[at]);
                v[at] = dup;
            } else if (strv_push(&v, &n, &cap, kv) < 0) {
                goto oom;
            }
        }
    }
    if (find_key(v, n, "HOME=") < 0 && strv_push(&v, &n, &cap, "HOME=/tmp") < 0)
        goto oom;
    *out = v;
    return 0;
oom:
    oci_free_strv(&v);
    return bx_err_set(err, 500, ENOMEM, "out of memory");
}

void oci_free_strv(char ***vp)
{
    char **v = *vp;
    if (!v)
        return;
    for (size_t i = 0; v[i]; i++)
        free(v[i]);
    free(v);
    *vp = NULL;
}
