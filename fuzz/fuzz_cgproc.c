/* libFuzzer harness for cg_parse_proc_cgroup: arbitrary /proc/self/cgroup
 * text (a container or a hostile mount namespace decides what it says).
 *
 * Input layout:
 *   byte 0   which controller to look for (mod 10): NULL (the v2 "0::"
 *            line), the names cgroup.c asks for, odd ones (a list with a
 *            comma, "0"), or (9) one taken from the input up to the first
 *            '\n' (never empty: no caller asks for "", and what "" would
 *            match is not part of the contract);
 *   byte 1   the output capacity: 1..128, or 4096 when the top bit is set;
 *   rest     the text (NUL-terminated exact-size heap copy; the output is an
 *            exact-size heap buffer: ASan flags any over-read or overflow).
 * The answer is compared with a straightforward model of the documented
 * contract, and an accepted path must be one cg_init can open component by
 * component below a mount point without escaping it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_cgproc: check failed: %s (line %d)\n", #cond, __LINE__);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const char *const controllers[] = {
    NULL, "cpu", "cpuacct", "memory", "pids", "name=systemd", "hugetlb", "cpu,cpuacct", "0",
};
#define NCTRL (sizeof(controllers) / sizeof(controllers[0]))

/* A path that stays below the mount: absolute, no empty, "." or ".."
 * component, no trailing slash except for the root itself. */
static int path_ok(const char *p, size_t n)
{
    const char *c, *end = p + n;
    if (n == 0 || p[0] != '/')
        return 0;
    if (n == 1)
        return 1;
    for (c = p + 1;;) {
        const char *s = memchr(c, '/', (size_t)(end - c));
        size_t l = s ? (size_t)(s - c) : (size_t)(end - c);
        if (l == 0 || (l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        if (!s)
            return 1;
        c = s + 1;
    }
}

/* 1 when the comma-separated list [l, l + n) has `want` as one entry. */
static int list_has(const char *l, size_t n, const char *want)
{
    size_t wl = strlen(want), start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || l[i] == ',') {
            if (i - start == wl && memcmp(l + start, want, wl) == 0)
                return 1;
            start = i + 1;
        }
    }
    return 0;
}

/* The contract, written independently: the first line
 * "<id>:<controllers>:<path>" that names the controller decides; its path
 * must be valid and fit, else the answer is -1. */
static int model(const char *text, const char *ctrl, size_t cap, const char **path, size_t *plen)
{
    const char *line = text;
    while (*line) {
        size_t ll = strcspn(line, "\n");
        const char *c1 = memchr(line, ':', ll);
        const char *c2 = c1 ? memchr(c1 + 1, ':', ll - (size_t)(c1 + 1 - line)) : NULL;
        if (c2) {
            size_t cl = (size_t)(c2 - c1 - 1);
            int match = ctrl ? cl > 0 && list_has(c1 + 1, cl, ctrl)
                             : cl == 0 && c1 - line == 1 && line[0] == '0';
            if (match) {
                *path = c2 + 1;
                *plen = ll - (size_t)(c2 + 1 - line);
                return path_ok(*path, *plen) && *plen < cap ? 0 : -1;
            }
        }
        line += ll;
        if (*line == '\n')
            line++;
    }
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *ctrl;
    char *ctrl_buf = NULL, *text, *out;
    size_t cap, tlen;
    const char *mpath = NULL;
    size_t mlen = 0;
    int rc, mrc;

    if (size < 2)
        return 0;
    cap = data[1] & 0x80 ? 4096 : (size_t)(data[1] & 0x7f) + 1;
    if (data[0] % (NCTRL + 1) < NCTRL) {
        ctrl = controllers[data[0] % (NCTRL + 1)];
        data += 2;
        size -= 2;
    } else {
        /* The controller from the input, up to the first newline. */
        const uint8_t *nl = memchr(data + 2, '\n', size - 2);
        size_t cl = nl ? (size_t)(nl - (data + 2)) : size - 2;
        ctrl_buf = malloc(cl + 1);
        CHECK(ctrl_buf != NULL);
        memcpy(ctrl_buf, data + 2, cl);
        ctrl_buf[cl] = '\0';
        ctrl = ctrl_buf[0] ? ctrl_buf : "cpu";
        data += 2 + cl + (nl ? 1 : 0);
        size -= 2 + cl + (nl ? 1 : 0);
    }
    text = malloc(size + 1);
    out = malloc(cap);
    CHECK(text != NULL && out != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    memset(out, 'Z', cap);

    rc = cg_parse_proc_cgroup(text, ctrl, out, cap);
    tlen = strlen(text);
    mrc = model(text, ctrl, cap, &mpath, &mlen);
    CHECK(rc == 0 || rc == -1);
    if (rc != mrc) {
        fprintf(stderr, "fuzz_cgproc: answer %d, model %d (controller %s)\n", rc, mrc,
                ctrl ? ctrl : "(v2)");
        abort();
    }
    if (rc == 0) {
        size_t n = strnlen(out, cap);
        CHECK(n < cap);
        CHECK(n == mlen && memcmp(out, mpath, n) == 0);
        CHECK(path_ok(out, n));
        CHECK(memchr(out, '\n', n) == NULL);
        /* The path comes from the text itself, not from anywhere else. */
        CHECK(mpath >= text && mpath + mlen <= text + tlen);
    }
    /* The text is only read. */
    CHECK(memcmp(text, data, size) == 0);
    free(out);
    free(text);
    free(ctrl_buf);
    return 0;
}
