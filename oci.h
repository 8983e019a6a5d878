/* The hardened OCI runtime spec (config.json) for one run.
 *
 * What every sandbox gets, and why:
 *   - uid/gid 65534 (nobody) with no capabilities at all and
 *     noNewPrivileges: the command has no privilege inside gVisor either;
 *   - the image rootfs read-only (it is shared by every run of the image);
 *   - /proc, /dev (tmpfs), /sys read-only, /tmp a size-bounded tmpfs;
 *   - each input file bound read-only at /<path>, /output bound read-write
 *     from a per-run size-bounded host tmpfs;
 *   - fresh pid, ipc, uts, mount and network namespaces (the network one
 *     given by path for network "sandbox", absent for "host");
 *     hostname = exec id;
 *   - RLIMIT_NOFILE from the request's limits.
 */
#ifndef BOXER_OCI_H
#define BOXER_OCI_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "util.h"

#define OCI_DEFAULT_PATH BX_DEFAULT_PATH

struct oci_mount {
    const char *destination; /* absolute, inside the sandbox */
    const char *source;      /* absolute host path */
    int readonly;
};

struct oci_params {
    const char *rootfs;
    char *const *args; /* NULL-terminated, non-empty */
    char *const *env;  /* NULL-terminated, final (see oci_merge_env) */
    const char *cwd;   /* absolute */
    const char *hostname;
    uint32_t uid, gid;
    uint64_t nofile;
    uint64_t nproc; /* RLIMIT_NPROC inside the sandbox; 0: not set */
    uint64_t tmp_size_mb;
    const struct oci_mount *mounts;
    size_t nmounts;
    const char *netns_path; /* join this network namespace, or NULL for a new one */
    /* No network namespace at all: the sandbox shares Boxer's (runsc
     * --network=host; with a namespace entry runsc would give it an empty
     * new one).  Only for network "host"; netns_path is then ignored. */
    int host_network;
    /* linux.cgroupsPath: where runsc keeps the sandbox.  "." (v1) means
     * "the cgroup runsc was started in", which Boxer has already limited;
     * runsc then reads MemTotal and CPUs from it.  NULL: omitted (runsc
     * must then run with --ignore-cgroups, or it would create an unlimited
     * cgroup at the hierarchy root). */
    const char *cgroups_path;
};

/* Writes the spec as JSON into out. */
int oci_build_spec(const struct oci_params *p, struct sbuf *out, struct bx_err *err);

/* Final environment: the image's Env, overridden key by key by the request's
 * env, with PATH (OCI_DEFAULT_PATH) and HOME=/tmp added when absent.
 * Returns a NULL-terminated array of malloc'd strings (free with
 * oci_free_strv).  Entries without '=' are ignored (the request's were
 * already validated). */
int oci_merge_env(char *const *image_env, char *const *req_env, char ***out,
                  struct bx_err *err);
void oci_free_strv(char ***v);

#endif
