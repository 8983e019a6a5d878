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

/* nobody: the user every sandbox runs as. */
#define OCI_SANDBOX_UID 65534

#define OCI_DEFAULT_PATH BX_DEFAULT_PATH

struct oci_mount {
    const char *destination; /* absolute, inside the sandbox */
    const char *source;      /* absolute host path */
    int readonly;
    /* NULL: rbind, ro or rw, nosuid, nodev; else exactly these */
    const char *const *options;
};

/* Docker's default capability set minus CAP_NET_RAW (NULL-terminated): a
 * box's root (see README, boxes). */
extern const char *const oci_box_caps[];

/* The process object: the spec's, and runsc exec --process's. */
struct oci_process {
    char *const *args; /* NULL-terminated, non-empty */
    char *const *env;
    const char *cwd;
    uint32_t uid, gid;
    /* bounding, effective and permitted sets (NULL-terminated); NULL:
     * every set empty, nothing privileged even inside gVisor */
    const char *const *caps;
    /* No capabilities key at all: runsc's default for the user (for a
     * box's non-root user: nothing effective, the bounding set kept, as
     * under Docker); caps is then ignored. */
    int caps_absent;
    int terminal;
    uint64_t nofile;
    uint64_t nproc; /* 0: no RLIMIT_NPROC */
};

struct json_writer;
/* Writes the process object (noNewPrivileges always) as the next value. */
void oci_w_process(struct json_writer *w, const struct oci_process *p);

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
    /* What a box's sandbox differs in (box_bundle.c).  root_writable: the
     * root is the box's own overlay.  caps: see struct oci_process.
     * tmp_size_mb 0: no /tmp tmpfs (a box's /tmp is on its disk).
     * plain_proc: /proc without nosuid, noexec, nodev, and no maskedPaths
     * (as boxes always had; kept so the merge changed nothing). */
    int root_writable;
    const char *const *caps;
    int plain_proc;
};

/* Writes the spec as JSON into out. */
int oci_build_spec(const struct oci_params *p, struct sbuf *out, struct bx_err *err);

/* Final environment: the image's Env, overridden key by key by the request's
 * env, with PATH (OCI_DEFAULT_PATH) and HOME=/tmp added when absent.
 * Returns a NULL-terminated array of malloc'd strings (free with
 * bx_strv_free).  Entries without '=' are ignored (the request's were
 * already validated). */
int oci_merge_env(char *const *image_env, char *const *req_env, char ***out,
                  struct bx_err *err);

/* ---- bundles ----
 *
 * A bundle is the directory runsc runs: <parent_dir>/<name> holding
 *   config.json  the spec (oci_bundle_write_spec);
 *   state/       runsc --root;
 *   rootfs/      an overlay: the image rootfs as the read-only lower
 *                layer, the upper layer on a bounded tmpfs of its own in
 *                ovl/ (runsc creates mount points there, never in the
 *                image's shared rootfs);
 *   inputs/      a hard link per input file, bound read-only at /<path>;
 *   output/      a bounded tmpfs, bound read-write at /output.
 * Everything that differs between users (sizes, files, the image) comes in
 * oci_bundle_params / oci_bundle_spec; the bundle knows nothing of runs. */
struct store;

struct oci_bundle {
    char *dir; /* <parent_dir>/<name> */
    int dirfd; /* -1 until created */
    int output_mounted;
    int rootfs_mounted;       /* rootfs/: the overlay of the image */
    int ovl_mounted;          /* ovl/: the tmpfs holding its upper layer */
    struct oci_mount *mounts; /* binds for the spec: inputs, /output, added ones */
    size_t nmounts, mounts_cap;
};

/* A /run "inputs" entry (issue 17): content from the request, written
 * into the bundle and bound read-only at /<path> like a store file. */
struct store_upload;
struct oci_input {
    char *path; /* normalized, as a store path */
    char *data;
    size_t len;
    unsigned mode; /* permission bits; the file belongs to the sandbox user */
    /* A multipart /run's file part (issue 17): the file spooled on disk,
     * linked into the run instead of data (owned by the run_request). */
    struct store_upload *spool;
    int part; /* "part": true: the content comes as a multipart file part */
};

struct oci_bundle_params {
    int parent_dirfd;
    const char *parent_dir; /* absolute, the path of parent_dirfd */
    const char *name;       /* the bundle directory's name in it (new) */
    const char *image_rootfs;
    uint64_t upper_bytes, upper_inodes;   /* the overlay's upper-layer tmpfs */
    uint64_t output_bytes, output_inodes; /* the /output tmpfs */
    struct store *store;
    char *const *files; /* store paths bound read-only at /<path> */
    size_t nfiles;
    const struct oci_input *inputs; /* issue 17 */
    size_t ninputs;
};

/* What the spec says beyond the bundle (see struct oci_params). */
struct oci_bundle_spec {
    char *const *args;
    char *const *env; /* the request's: override image_env (oci_merge_env) */
    char *const *image_env;
    const char *cwd;           /* NULL: image_workdir if absolute, else "/" */
    const char *image_workdir; /* may be NULL */
    const char *hostname;
    uint64_t nofile, nproc, tmp_size_mb;
    const char *netns_path;
    int host_network;
    const char *cgroups_path;
    /* /v1/run (BoxRun's ephemeral run): set_user runs the command as
     * uid/gid (else OCI_SANDBOX_UID) with caps (NULL: none at all), and
     * root_writable makes the bundle's rootfs overlay the writable root
     * (runsc then needs --overlay2=none). */
    int set_user;
    uint32_t uid, gid;
    const char *const *caps;
    int root_writable;
};

void oci_bundle_init(struct oci_bundle *b);
/* Creates the directory, its mounts and input links.  On failure whatever
 * was made stays recorded in *b for oci_bundle_remove.  A missing input
 * file is a 400. */
int oci_bundle_prepare(struct oci_bundle *b, const struct oci_bundle_params *p, struct bx_err *err);
/* One more bind (e.g. resolv.conf) for the spec; both strings are copied. */
int oci_bundle_add_mount(struct oci_bundle *b, const char *destination, const char *source,
                         int readonly, struct bx_err *err);
/* Writes <dir>/config.json: uid/gid OCI_SANDBOX_UID, rootfs/ read-only
 * (unless s says otherwise), the bundle's mounts. */
int oci_bundle_write_spec(const struct oci_bundle *b, const struct oci_bundle_spec *s,
                          struct bx_err *err);
/* Writes <dir>/<name>: only the process object of the spec s describes
 * (args, env, cwd, uid, rlimits, no capabilities), for `runsc exec
 * --process` into a sandbox made in advance (pool.c). */
int oci_bundle_write_process(const struct oci_bundle *b, const struct oci_bundle_spec *s,
                             const char *name, struct bx_err *err);
/* Unmounts what oci_bundle_prepare mounted and deletes the directory
 * <parent_dirfd>/<name> (best effort; failures are logged under name). */
void oci_bundle_remove(struct oci_bundle *b, int parent_dirfd, const char *name);
/* Frees the memory (not the directory); *b is re-initialized. */
void oci_bundle_free(struct oci_bundle *b);

#endif
