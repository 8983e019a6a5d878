/* Small helpers shared by every module: I/O loops that survive EINTR and
 * short transfers, a bounded growable buffer, strict integer parsing, and
 * directory-fd based tree removal that never follows symlinks. */
#ifndef BOXER_UTIL_H
#define BOXER_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

#define BX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The PATH every child Boxer starts gets when it has none of its own (the
 * sandbox's default PATH in the OCI spec, the pull tools, runsc). */
#define BX_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Hands ownership out of a cleanup-managed local: returns *pp, sets it NULL. */
static inline void *bx_steal_ptr(void *pp)
{
    void **p = (void **)pp;
    void *v = *p;
    *p = NULL;
    return v;
}

static inline int bx_steal_fd(int *fdp)
{
    int fd = *fdp;
    *fdp = -1;
    return fd;
}

/* Closes *fdp if open and sets it to -1.  Preserves errno. */
void bx_close(int *fdp);

/* Writes all of buf to a blocking fd; retries EINTR and short writes; a
 * 0-byte write is an error.  Returns 0 or -1 with errno set. */
int bx_write_all(int fd, const void *buf, size_t len);

/* Reads until len bytes or EOF; returns bytes read or -1 (errno set). */
ssize_t bx_read_full(int fd, void *buf, size_t len);

/* Reads a whole small file (at most max bytes, NUL-terminated) relative to
 * dirfd (AT_FDCWD allowed).  Returns 0 or -1 with err set. */
int bx_read_file_at(int dirfd, const char *path, size_t max, char **out, size_t *out_len,
                    struct bx_err *err);

/* Writes a whole file atomically: tmp file in the same directory, fsync, rename. */
int bx_write_file_atomic_at(int dirfd, const char *name, const void *data, size_t len,
                            mode_t mode, struct bx_err *err);

/* Bounded growable byte buffer.  Appends fail (return -1) once `max` would be
 * exceeded or memory runs out; `data` is always NUL-terminated when non-NULL. */
struct sbuf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
};

void sbuf_init(struct sbuf *sb, size_t max);
int sbuf_append(struct sbuf *sb, const void *data, size_t len);
int sbuf_appendf(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sbuf_putc(struct sbuf *sb, char c);
void sbuf_reset(struct sbuf *sb);
void sbuf_free(struct sbuf *sb);
/* Hands the buffer to the caller (who frees it); leaves sb empty. */
char *sbuf_steal(struct sbuf *sb, size_t *len);

/* A list of owned strings (config lists, argv, env).  Once anything was
 * pushed or reserved, items is NULL-terminated (items[n] == NULL), so it can
 * be handed to execve or walked argv-style.  Zero-initialise; the pushes copy
 * their string. */
struct str_list {
    char **items;
    size_t n;
    size_t cap; /* entries items has room for, the NULL included */
};

/* Room for `more` further entries without reallocating; allocates even for
 * 0, so items is non-NULL afterwards.  Returns 0 or -1 (ENOMEM, l unchanged). */
int str_list_reserve(struct str_list *l, size_t more);
/* Appends a copy of s.  Returns 0 or -1 (ENOMEM, l unchanged). */
int str_list_push(struct str_list *l, const char *s);
/* Frees every string and the array; leaves l empty (reusable). */
void str_list_free(struct str_list *l);
/* Frees a NULL-terminated array of owned strings (one taken out of a
 * str_list, or built elsewhere) and sets *vp to NULL; NULL is fine. */
void bx_strv_free(char ***vp);

/* ASCII character classes for the HTTP parsers (httpparse, multipart),
 * locale independent.  RFC 9110 tchar: the characters of a token (method,
 * header name, media type, parameter name). */
int bx_is_tchar(unsigned char c);
/* 'A'-'Z' to 'a'-'z', every other byte unchanged. */
unsigned char bx_ascii_lower(unsigned char c);

/* Strict decimal parsing: the whole string [s, s+len) must be digits (an
 * optional leading '-' for the signed one), no spaces, within [min, max].
 * Returns 0 or -1. */
int bx_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out);
int bx_parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out);
/* A numeric user "uid" or "uid:gid" in [s, s+len) (gid defaults to uid),
 * each below UINT32_MAX.  Returns 0 or -1. */
int bx_parse_user(const char *s, size_t len, uint32_t *uid, uint32_t *gid);

/* 1 when the counted string [s, s+len) is exactly the literal lit: same
 * length and same bytes.  For enum-like values from a client or a config
 * file (JSON strings carry their length and may hold NULs): neither a prefix
 * of lit ("non"), nor lit followed by more ("none\0junk", "nonex"), nor
 * "" matches. */
int bx_str_eq(const char *s, size_t len, const char *lit);

/* Removes `name` under dirfd recursively without following symlinks and
 * without crossing into other mounts.  Missing is not an error. */
int bx_rm_rf_at(int dirfd, const char *name, struct bx_err *err);

/* mkdir -p of a path under dirfd (an absolute path starts at "/"), refusing
 * symlink components: only for paths Boxer chose, never client paths.
 * Returns an O_PATH|O_DIRECTORY fd of the final dir on success (caller closes)
 * when want_fd, else 0. */
int bx_mkdir_p_at(int dirfd, const char *relpath, mode_t mode, int want_fd, struct bx_err *err);

/* A fresh random UUID v4 string (36 chars + NUL). */
int bx_uuid4(char out[37], struct bx_err *err);

/* Monotonic milliseconds. */
uint64_t bx_now_ms(void);

#endif
