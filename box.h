/* Persistent boxes (issue 13): one long-lived gVisor sandbox per box whose
 * writable root survives stop and start.
 *
 * A box lives in <home>/boxes/<id>/:
 *   disk.img   sparse ext4 image of disk_size_gb (kept across stop/start)
 *   disk/      its mount point (loop device, autoclear): upper/ and work/
 *   rootfs/    host overlayfs: the cached image rootfs below, disk/upper above;
 *              the spec root, writable, so runsc runs with --overlay2=none
 *   init       the embedded PID 1 (boxinit/box_init.c), bound read-only at
 *              /.boxer/init
 *   config.json, state/, runsc*.log, exec-*.json
 * Start: image, mkfs (first time), loop + mounts, cgroup, `runsc create`,
 * `runsc start`, and a `runsc wait` child that tells when the sandbox ended.
 * Exec: `runsc exec --process <json>` as root (or the exec's, else the
 * box's "user") with Docker's default capabilities minus NET_RAW (none for
 * another uid) and noNewPrivileges; it ends when that runsc
 * process exits (a background child may hold the pipes open).
 * Stop: `runsc kill --all TERM` (the init leaves), a grace period, then the
 * box's cgroup is destroyed (kills whatever is left), the overlay and the
 * disk unmounted (the loop device goes with it) and `runsc delete --force`
 * runs in the background (it takes ~1.7 s).  Each start uses a fresh
 * container id (<id>-<generation>) so a late delete never meets a new
 * sandbox.  Boxes need cgroups (the cgroup kill is what makes stop sure).
 *
 * Everything runs on the event loop; callbacks are never called inside the
 * call that registered them. */
#ifndef BOXER_BOX_H
#define BOXER_BOX_H

#include <stdint.h>

#include "err.h"
#include "loop.h"
#include "metrics.h"

struct config;
struct image_cache;
struct cg_ctx;
struct json_writer;
struct box_mgr;
struct box;
struct box_exec;
struct run_mgr;

struct box_mgr_params {
    struct loop *loop;
    const struct config *cfg;
    struct image_cache *images;
    struct cg_ctx *cgroups; /* NULL: boxes are refused (500) */
    const char *runsc;      /* absolute path */
    const char *platform;
    struct net *net; /* NULL: network true is refused */
    /* The budget running boxes share with /run (run_mgr_hold); NULL: boxes
     * count only among themselves. */
    struct run_mgr *runs;
};

int box_mgr_new(struct box_mgr **out, const struct box_mgr_params *p, struct bx_err *err);
/* Shutdown: kills every sandbox, unmounts, keeps the disks. */
void box_mgr_free(struct box_mgr **m);

#define BOX_ENV_MAX 256
#define BOX_ARGV_MAX 4096

#define BOX_VOLUMES_MAX 16

/* A host directory or file bind-mounted into a box; host_path must lie
 * under one of the config's volume_roots (box_create resolves it). */
struct box_volume {
    char *host_path, *guest_path;
    int readonly;
};

struct box_create_req {
    char *image;   /* required */
    char *name;    /* NULL: none */
    char **env;    /* NULL-terminated "K=V" or NULL */
    char *workdir; /* NULL: /root */
    double cpu;    /* 0: default */
    uint64_t memory_mb;
    uint64_t disk_size_gb;
    int has_idle_timeout; /* idle_timeout_secs given (else box_idle_timeout_secs) */
    uint64_t idle_timeout_secs; /* 0: never stopped for idleness */
    struct box_volume *volumes;
    size_t nvolumes;
    int network; /* 1: the sandbox network (as /run's "sandbox"); 0: loopback only */
    int has_network; /* network given; else box_defaults.network */
    int set_user; /* "user": the default uid[:gid] of the box's execs; else root */
    uint32_t uid, gid;
};
void box_create_req_free(struct box_create_req *r);

/* b is NULL when err is set (the box may still exist, status "error"). */
typedef void (*box_done_cb)(void *arg, struct box *b, const struct bx_err *err);

/* Takes the strings of *req on success (leaves req zeroed).  Fails at once
 * (400 bad field, 409 NAME_ALREADY_EXISTS, 500) without calling cb. */
int box_create(struct box_mgr *m, struct box_create_req *req, box_done_cb cb, void *arg,
               struct box **out, struct bx_err *err);
struct box *box_find(struct box_mgr *m, const char *id_or_name);
int box_start(struct box *b, box_done_cb cb, void *arg, struct bx_err *err);
int box_stop(struct box *b, box_done_cb cb, void *arg, struct bx_err *err);
/* Stops when needed (force) and deletes the box and its directory; cb gets
 * b == NULL and err == NULL on success. */
int box_remove(struct box *b, int force, box_done_cb cb, void *arg, struct bx_err *err);
/* The caller that registered cb is gone: cb is not called any more. */
void box_forget_waiter(struct box *b, void *arg);

/* Marks activity (exec, file transfer): the idle timer counts from here. */
void box_touch(struct box *b);
/* Removes the stopped boxes whose stopped_at is more than older_than
 * seconds ago; returns how many. */
unsigned box_gc(struct box_mgr *m, uint64_t older_than);
/* At start, before cgroups are swept: kills what is left of the sandboxes
 * of a previous Boxer (its processes name <home>/boxes/ in their command
 * line) and unmounts everything below <home>/boxes (the autoclear loop
 * devices go with the disk mounts).  box_mgr_new then loads the records. */
int box_recover(const struct config *cfg, struct bx_err *err);

void box_info_json(const struct box *b, struct json_writer *w, int extra);
/* box_info_json of every box, oldest first. */
void box_each(struct box_mgr *m, struct json_writer *w, int extra);
/* The same, only the boxes whose BoxInfo status is status ("running"...). */
void box_each_status(struct box_mgr *m, struct json_writer *w, int extra, const char *status);
/* For /v1/info and /metrics.  Statuses as BoxInfo shows them (a stopping
 * box is running); execs_finished = execs_started - execs_running. */
struct box_stats {
    uint64_t creating, running, stopped, error;
    uint64_t starts, stops;                /* sandboxes started, stopped */
    uint64_t execs_started, execs_running; /* execs of the API (not file transfers) */
    uint64_t memory_mb, pids;              /* held of the shared budget by running boxes */
    uint64_t execs_by_outcome[METRICS_EXEC_OUTCOMES]; /* ended execs of the API */
    struct metrics_hist exec_hist;
    /* warm_pool entries of kind "box" (box_pool.c): not among the above */
    uint64_t pool_ready, pool_creating, pool_hits, pool_misses, pool_created, pool_failed;
    uint64_t pool_create_ms_last, pool_create_ms_sum, pool_yielded;
};
void box_stats(const struct box_mgr *m, struct box_stats *st);
/* The drain (issue 17): stops every running box that is not busy, as
 * box_stop does (TERM, grace, disks kept); returns how many began. */
size_t box_stop_all(struct box_mgr *m);
const struct config *box_mgr_config(const struct box_mgr *m);
/* Error code names of the /v1 API for a failed box operation. */
const char *box_err_code(const struct bx_err *err);

struct box_exec_req {
    char **cmd;   /* NULL-terminated, non-empty */
    char **env;   /* "K=V" or NULL */
    char *workdir;
    uint64_t timeout_ms;
    int set_user; /* "user": uid[:gid] (numeric); otherwise root */
    uint32_t uid, gid;
    int base64; /* "encoding": "base64" (the event streams' data) */
    /* issue 14: "stdin"/"stdin_b64" (written, then closed unless
     * stdin_open); stdin_open keeps it open for box_exec_stdin. */
    char *stdin_data;
    size_t stdin_len;
    int stdin_open;
    unsigned tty_rows, tty_cols; /* "tty": run on a pty of this size (0: pipes) */
};
void box_exec_req_free(struct box_exec_req *r);

typedef void (*box_exec_cb)(void *arg, struct box_exec *e);
/* 409 BOX_NOT_RUNNING when the box is not running.  cb (may be NULL) runs
 * once the exec has ended. */
int box_exec(struct box *b, struct box_exec_req *req, box_exec_cb cb, void *arg,
             struct box_exec **out, struct bx_err *err);
void box_exec_forget(struct box_exec *e);
void box_exec_json(const struct box_exec *e, struct json_writer *w, int extra);
/* The box's kept exec records (the last max_execs_per_box), oldest first. */
void box_each_exec(const struct box *b, struct json_writer *w, int extra);
struct box_exec *box_exec_find(struct box *b, const char *exec_id);
/* The exit code of an ended exec, and in why its error or stderr text. */
int box_exec_exit_code(const struct box_exec *e, char *why, size_t cap);

/* Watching an exec's output as it comes (issue 14).  cb(arg, 0) runs from
 * the loop (never inside a box call) when events were added or the exec
 * ended; cb(arg, 1) when the exec record is about to be freed (the box
 * goes away): the watch is already gone, the exec still readable during
 * the call, not after.  box_exec_watch_at tells how far the watcher has
 * taken the events: while some watcher lags far behind the newest event,
 * the command's pipes are not read (it blocks on its writes). */
struct exec_log;
struct box_exec_watch;
typedef void (*box_watch_cb)(void *arg, int gone);
struct box_exec_watch *box_exec_watch(struct box_exec *e, box_watch_cb cb, void *arg,
                                      struct bx_err *err);
void box_exec_unwatch(struct box_exec_watch **w);
void box_exec_watch_at(struct box_exec_watch *w, uint64_t seq);
const struct exec_log *box_exec_log(const struct box_exec *e);
const char *box_exec_id(const struct box_exec *e);
int box_exec_is_running(const struct box_exec *e);
int box_exec_base64(const struct box_exec *e);
/* An ended exec: its status name ("succeeded", "failed"), timed_out and
 * wall_ms; returns the exit code. */
int box_exec_result(const struct box_exec *e, const char **status, int *timed_out,
                    uint64_t *wall_ms);

/* Files in and out go through the sandbox: an exec of the in-box helper
 * (`/.boxer/init --put|--get <path>`) walks the path inside the box, so a
 * symlink the box made resolves in the box, never on the host.
 * box_scratch_fd: an anonymous file in the box's directory (host side) for
 * the content.  box_transfer: put copies fd (from offset 0) to path, get
 * copies path into fd; cb as for box_exec, exit code 0 ok,
 * BOX_XFER_ABSENT when path is absent or not a regular file (get) or
 * cannot be made (put).  Transfers are not listed as execs. */
#define BOX_XFER_ABSENT 2
int box_scratch_fd(struct box *b, struct bx_err *err);
int box_transfer(struct box *b, int put, const char *path, int fd, box_exec_cb cb, void *arg,
                 struct box_exec **out, struct bx_err *err);
uint64_t box_upload_limit(const struct box_mgr *m);
struct loop *box_mgr_loop(const struct box_mgr *m);
/* config's stream_keepalive_secs, in ms */
uint64_t box_stream_keepalive_ms(const struct box_mgr *m);
/* Input and control of a running exec (issue 14).
 * box_exec_stdin: appends len bytes at stream offset `offset` (has_offset;
 * bytes already received are skipped, a gap is 409 STDIN_OFFSET_GAP), then
 * closes stdin when eof; *total gets the bytes received so far.  409
 * EXEC_ALREADY_FINISHED, 409 STDIN_CLOSED (not stdin_open, or eof given),
 * 413 more than exec_stdin_buffer_bytes at once, 429 STDIN_BUFFER_FULL
 * while the command has not read enough of what is pending.
 * box_exec_signal: queues sig for the exec's process group in the box
 * (delivered by the in-box helper once runsc has said the process's pid).
 * box_exec_cancel: SIGKILL to the group, stdin closed, status canceled.
 * Both 409 EXEC_ALREADY_FINISHED once the exec has ended. */
int box_exec_stdin(struct box_exec *e, const void *data, size_t len, int has_offset,
                   uint64_t offset, int eof, uint64_t *total, struct bx_err *err);
int box_exec_signal(struct box_exec *e, int sig, struct bx_err *err);
int box_exec_cancel(struct box_exec *e, struct bx_err *err);
uint64_t box_stdin_limit(const struct box_mgr *m);
uint64_t box_stdin_buffer(const struct box_mgr *m);
uint64_t box_min_free_disk_percent(const struct box_mgr *m);

#endif
