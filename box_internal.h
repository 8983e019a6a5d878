/* What box.c and its pieces (box_bundle.c, box_exec.c) share; not for
 * other modules. */
#ifndef BOXER_BOX_INTERNAL_H
#define BOXER_BOX_INTERNAL_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "box.h"
#include "cgroup.h"
#include "config.h"
#include "exec_log.h"
#include "image.h"
#include "infeed.h"
#include "net.h"
#include "json.h"
#include "oci.h"
#include "proc.h"
#include "util.h"

#define BOX_CG_RETRY_MS 100
#define BOX_CG_RETRIES 50
#define BOX_EXEC_SAFETY_MS 5000
/* an exec id with its NUL: exec_<node id, NODE_ID_MAX>_<16 hex> fits */
#define EXEC_ID_MAX 64
#define BOX_NOFILE 1024

enum box_status { BOX_CREATING, BOX_RUNNING, BOX_STOPPING, BOX_STOPPED, BOX_ERROR };

struct box_exec {
    struct box *box;
    struct box_exec *next; /* box->execs, newest first */
    char id[EXEC_ID_MAX]; /* exec_<node>_<random> (issue 17) */
    char **cmd, **env;
    char *workdir;
    uint64_t timeout_ms;
    int running, exit_code, failed;
    char error[256];
    /* Output (issue 14): stdout and stderr reads as one bounded event log;
     * the streams of GET .../events and "stream": true are its watchers.
     * While a watcher is far behind, the pipes are not read (paused): the
     * command blocks on its writes instead of Boxer buffering without
     * bound. */
    struct exec_log log;
    struct box_exec_watch *watchers;
    int paused;
    int base64; /* "encoding": "base64": the streams' data is base64 */
    struct loop_task notify; /* tells the watchers (deferred) */
    int out_fd, err_fd;
    struct proc *proc;
    time_t created, finished;
    uint64_t started_ms, wall_ms;
    uint64_t safety_timer;
    int timed_out;
    int hidden; /* a file transfer (box_transfer): not an exec of the API */
    int tty;    /* on a pty (box_term.c): out_fd is its master */
    uint64_t order_ns; /* its record's sort key (box_store.c), realtime at start */
    box_exec_cb cb;
    void *cb_arg;
    /* issue 14, input and control (box_exec.c) */
    struct infeed in;     /* the command's stdin (in.fd < 0: none or closed) */
    int stdin_open;       /* box_exec_stdin may append */
    int canceled;
    int sigs[16];         /* signals waiting for delivery, in order */
    unsigned nsigs;
    struct proc *killer;  /* the in-box helper delivering them */
    uint64_t sig_timer;   /* polls for runsc's pid file */
    unsigned sig_polls;
};

struct bgproc {
    struct box_mgr *m;
    struct bgproc *next;
    struct proc *p;
    char box_id[64];
    /* A removed box's directory: deleted once this runsc has exited (it
     * writes its log and state there). */
    char *rm_dir;
};


struct box {
    struct box_mgr *m;
    struct box *next;
    char id[64]; /* box_<node>_<random> (issue 17); older records box_<random> */
    char *name, *image, *workdir;
    char **env;
    struct box_volume *volumes; /* resolved host paths */
    size_t nvolumes;
    int network;
    /* "user" at create: every exec's (and attach's) uid:gid unless the exec
     * gives its own; set_user 0: root */
    int set_user;
    uint32_t uid, gid;
    struct net_run *net; /* while running with network */
    double cpu;
    uint64_t memory_mb, disk_gb;
    enum box_status status;
    char error_code[32], error_msg[BX_ERR_MSG_MAX];
    time_t created, started, stopped;
    char dir[PATH_MAX];
    char cid[80];
    int drained; /* stopped by the SIGTERM drain: its record still says running */
    unsigned gen;
    struct image *img;
    /* The image's content digest, fixed at the first start: later starts
     * (also after a Boxer restart) use exactly this content, whatever the
     * tag points at by then.  "" until the image arrived once. */
    char digest[80];
    struct image_wait *iwait;
    struct cg_run *cg;
    struct proc *step; /* mkfs, runsc create/start/kill */
    struct proc *waitp; /* runsc wait */
    int disk_mounted, root_mounted;
    uint64_t grace_timer, cg_timer;
    int cg_tries;
    int removing, force;
    box_done_cb cb;
    void *cb_arg;
    struct loop_task task;
    struct box_exec *execs;
    unsigned nexecs;
    /* Idle stop (issue 13): seconds without exec or transfer (0: never),
     * the last activity, and the timer that checks it while running. */
    uint64_t idle_secs;
    time_t last_active;
    uint64_t idle_timer;
    /* last_active_at as box.json has it (box_store_save), and: a restart
     * by Boxer is no activity, it keeps the saved last_active. */
    time_t saved_active;
    int keep_active;
    /* The record said running at a restart: start again without a waiter. */
    int restarting;
    /* What this box holds of total_memory_mb / total_pids (run_mgr_hold)
     * from the start of a start until its sandbox is gone. */
    int held;
    uint64_t held_memory_mb, held_pids;
    /* Made in advance for a warm_pool entry of kind "box" (box_pool.c):
     * no record on disk, not listed, found or counted as a box, never
     * restarted; a matching create adopts it (pooled becomes 0). */
    int pooled;
    size_t pool_entry;
    uint64_t pool_began_ms;
};

/* box_pool.c: one warm_pool entry of kind "box". */
struct box_pool_entry {
    char *image; /* as configured */
    double cpu;
    uint64_t memory_mb, disk_gb, count;
    int network;
    size_t nalive; /* pooled boxes of this entry (creating or ready) */
};

struct box_mgr {
    struct box_mgr_params p;
    struct box *boxes;
    struct bgproc *bg;
    char mkfs[PATH_MAX];
    char home_boxes[PATH_MAX];
    uint64_t starts, stops, execs_started; /* box_stats */
    uint64_t execs_by_outcome[METRICS_EXEC_OUTCOMES];
    struct metrics_hist exec_hist;
    /* box_pool.c */
    struct box_pool_entry *pool;
    size_t npool;
    struct loop_task pool_task;
    struct loop_task pool_yield_task; /* a queued run waits for the budget */
    uint64_t pool_retry_timer;
    int pool_stopping;
    uint64_t pool_hits, pool_misses, pool_created, pool_failed, pool_yielded;
    uint64_t pool_create_ms_last, pool_create_ms_sum;
};

/* Counts an ended exec of the API (not a transfer or an attach) in
 * box_stats: its outcome and duration. */
void box_exec_count_end(const struct box_exec *e);

/* Exec records kept per box and output bytes kept per stream of one exec:
 * config's max_execs_per_box and exec_output_bytes. */
static inline uint64_t box_execs_kept(const struct box_mgr *m)
{
    return m->p.cfg->max_execs_per_box;
}

static inline uint64_t box_exec_output_max(const struct box_mgr *m)
{
    return m->p.cfg->exec_output_bytes;
}

/* box_bundle.c */
int attach_and_mount(struct box *b, struct bx_err *err);
int mount_root(struct box *b, struct bx_err *err);
void unmount_all(struct box *b);
void box_w_strv(struct json_writer *w, const char *key, char *const *v);
/* An exec's process JSON (oci_w_process with the box's caps and limits);
 * terminal: runs on a pty (box_term.c adds the consoleSize). */
void w_process(struct json_writer *w, const struct box *b, char *const *args, char *const *env,
               const char *cwd, uint32_t uid, uint32_t gid, int terminal);
int write_scratch_file(struct box *b, const char *name, struct sbuf *sb, struct bx_err *err);
int box_write_spec(struct box *b, struct bx_err *err);
int write_init(struct box *b, struct bx_err *err);
/* box_store.c: <home>/boxes/<id>/box.json, written atomically on every
 * state change; loaded (and the old sandboxes swept) at start. */
int box_store_save(struct box *b);
int box_store_load_all(struct box_mgr *m, struct bx_err *err);
/* <box dir>/execs/<exec id>.json (+ .out: stdout then stderr): an exec's
 * record, written when it starts and when it ends (not fsynced: it survives
 * a crash of Boxer, the kernel keeps the page cache); loaded with the box.
 * drop removes them (the exec left the kept history). */
void box_store_save_exec(struct box_exec *e);
void box_store_drop_exec(struct box_exec *e);
int box_net_setup(struct box *b, struct bx_err *err);
int box_check_volumes(const struct config *cfg, struct box_volume *v, size_t n, struct bx_err *err);
void box_volumes_free(struct box_volume **v, size_t n);
/* box_pool.c */
int box_pool_init(struct box_mgr *m, struct bx_err *err);
void box_pool_free(struct box_mgr *m);
/* A ready pooled box that req (validated; cpu, memory_mb, disk_size_gb
 * and network already the effective values) can take, made a normal box
 * with req's record fields; NULL: none (a miss when an entry has the
 * image).  cb is called from the loop as for a create. */
struct box *box_pool_adopt(struct box_mgr *m, struct box_create_req *req, box_done_cb cb,
                           void *arg);
/* A pooled box is gone (destroy_box): its entry gets a replacement. */
void box_pool_gone(struct box *b);
/* Makes room in the budget for memory_mb: ready pooled boxes are
 * destroyed until it fits (a pooled box never keeps a box or run out). */
void box_pool_yield(struct box_mgr *m, uint64_t memory_mb, uint64_t pids);
/* box.c */
struct box *box_create_pooled(struct box_mgr *m, struct box_create_req *req, size_t entry,
                              box_done_cb cb, struct bx_err *err);
void box_destroy_now(struct box *b);
void box_finish_op(struct box *b);
uint64_t box_host_pids_of(const struct box_mgr *m);
void box_arm_idle(struct box *b);
int box_begin_start(struct box *b, struct bx_err *err);
const char *box_status_name(enum box_status s);

int random_id(const char *prefix, char *out, size_t cap, struct bx_err *err);
int box_spawn_runsc(struct box *b, const char *const *args, const char *log_name, int out_fd, int err_fd, int join_cg, proc_exit_cb cb, void *arg, struct proc **pp, struct bx_err *err);
/* Same with runsc's stdin (-1: /dev/null). */
int box_spawn_runsc_io(struct box *b, const char *const *args, const char *log_name, int in_fd, int out_fd, int err_fd, int join_cg, proc_exit_cb cb, void *arg, struct proc **pp, struct bx_err *err);
/* The command behind the in-box helper when the exec has a timeout
 * ("/.boxer/init --exec <ms> -- cmd..."); *wrapped stays NULL without one.
 * The array borrows ms and req->cmd's strings: free only the array. */
#define EXEC_MS_MAX 24
int box_exec_wrap_timeout(const struct box_exec_req *req, char ms[EXEC_MS_MAX], char ***wrapped,
                          struct bx_err *err);
/* box_exec.c: the safety timer of an exec with a timeout (a terminal's
 * too): the helper did not end it in time, so the client is killed. */
void exec_safety(struct loop *l, void *arg);
void exec_free(struct box_exec *e);
/* box_exec.c: tells the watchers the record goes (before exec_free). */
void exec_watchers_gone(struct box_exec *e);
/* box_exec.c: ended and answered records beyond max_execs_per_box go
 * (with their files), and hidden ones (transfers, terminals) at once. */
void box_trim_execs(struct box *b);
/* box_exec.c: an ended exec's final fields (timed_out and 137 at the
 * deadline, failed) and its end counted in the metrics. */
void box_exec_settle(struct box_exec *e);
/* box.c: 1 when an exec is still going; else *last is the latest activity
 * (the last touch or the end of the last exec). */
int box_exec_running(const struct box *b, time_t *last);
/* box_exec.c: wakes the event streams of e (deferred to the loop). */
void exec_notify(struct box_exec *e);
/* box_exec.c: what exec_free must release of the input and control state. */
void exec_control_free(struct box_exec *e);

#endif
