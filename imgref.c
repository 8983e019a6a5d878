/* Image reference parsing and canonical formatting (see imgref.h).
 *
 * The input is hostile: it comes straight from a client's JSON body and
 * ends up as an argument of skopeo and umoci and, through oci.c, in cache
 * paths.  So the parser works only on (s, len) -- the input need not be
 * NUL-terminated and is never read past len -- accepts a strict subset of
 * printable ASCII, and every field it produces starts with a letter, digit,
 * '_' or '[' (so it can never be read as an option) and contains no
 * whitespace, no empty path component and no "." or ".." component.
 *
 * Length rule: both the input and its canonical form (what imgref_format
 * writes) are at most IMGREF_MAX bytes, so a formatted reference always
 * fits in char[IMGREF_MAX + 1] and parses again to the same fields.  Docker
 * limits only the name to 255 bytes; refusing a 255-byte name that also
 * carries a tag costs nothing real.
 */
#include "imgref.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define TAG_MAX 128
#define DNS_LABEL_MAX 63
#define SHA256_HEX 64
#define DEFAULT_REGISTRY "docker.io"
#define LEGACY_REGISTRY "index.docker.io"
#define OFFICIAL_PREFIX "library/"

static int bad(struct bx_err *err, const char *why)
{
    return bx_err_set(err, 400, 0, "invalid image reference: %s", why);
}

static int is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static int is_word(char c)
{
    return is_alnum(c) || c == '_';
}

/* Last occurrence of c in [s, s+n); memrchr without relying on its
 * availability in every libc Boxer may be built against (musl static). */
static const char *last_of(const char *s, size_t n, char c)
{
    while (n > 0) {
        n--;
        if (s[n] == c)
            return s + n;
    }
    return NULL;
}

static int has_char(const char *s, size_t n, char c)
{
    return memchr(s, c, n) != NULL;
}

/* tag := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127} */
static int check_tag(const char *t, size_t n, struct bx_err *err)
{
    if (n == 0)
        return bad(err, "empty tag");
    if (n > TAG_MAX)
        return bad(err, "tag longer than 128 characters");
    if (!is_word(t[0]))
        return bad(err, "tag must start with a letter, digit or '_'");
    for (size_t i = 1; i < n; i++)
        if (!is_word(t[i]) && t[i] != '.' && t[i] != '-')
            return bad(err, "tag may contain only letters, digits, '_', '.' and '-'");
    return 0;
}

/* digest := "sha256:" 64 lower-case hex digits (the only algorithm Boxer
 * verifies; go-digest refuses upper-case hex too). */
static int check_digest(const char *d, size_t n, struct bx_err *err)
{
    static const char algo[] = "sha256:";
    const size_t alen = sizeof(algo) - 1;
    if (n != alen + SHA256_HEX || memcmp(d, algo, alen) != 0)
        return bad(err, "digest must be sha256:<64 lower-case hex digits>");
    for (size_t i = alen; i < n; i++) {
        char c = d[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return bad(err, "digest must be sha256:<64 lower-case hex digits>");
    }
    return 0;
}

/* label := [A-Za-z0-9] | [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9], at most 63 */
static int check_hostname(const char *h, size_t n, struct bx_err *err)
{
    size_t i = 0;
    if (n == 0)
        return bad(err, "empty registry host");
    while (i <= n) {
        size_t start = i;
        while (i < n && h[i] != '.')
            i++;
        if (i == start)
            return bad(err, "empty label in registry host");
        if (i - start > DNS_LABEL_MAX)
            return bad(err, "registry host label longer than 63 characters");
        if (!is_alnum(h[start]) || !is_alnum(h[i - 1]))
            return bad(err, "registry host labels must start and end with a letter or digit");
        for (size_t j = start; j < i; j++)
            if (!is_alnum(h[j]) && h[j] != '-')
                return bad(err, "invalid character in registry host");
        i++; /* past the '.', or past the end */
    }
    return 0;
}

/* port := 1-65535 in decimal without leading zeros (one spelling per port,
 * so one cache entry per registry). */
static int check_port(const char *p, size_t n, struct bx_err *err)
{
    uint64_t v;
    if (n == 0 || (n > 1 && p[0] == '0') || bx_parse_u64(p, n, 65535, &v) < 0 || v == 0)
        return bad(err, "registry port must be 1-65535");
    return 0;
}

/* domain := (hostname | "[" IPv6 "]") [":" port] */
static int check_domain(const char *d, size_t n, struct bx_err *err)
{
    const char *rest;
    size_t rest_len;
    if (n > 0 && d[0] == '[') {
        /* INET6_ADDRSTRLEN covers the longest textual IPv6 address; a zone
         * ("%eth0") is refused because inet_pton refuses it. */
        char buf[INET6_ADDRSTRLEN];
        struct in6_addr a;
        const char *close = memchr(d, ']', n);
        size_t alen;
        if (!close)
            return bad(err, "unterminated '[' in registry host");
        alen = (size_t)(close - d) - 1;
        if (alen == 0 || alen >= sizeof(buf))
            return bad(err, "invalid IPv6 registry address");
        memcpy(buf, d + 1, alen);
        buf[alen] = '\0';
        if (inet_pton(AF_INET6, buf, &a) != 1)
            return bad(err, "invalid IPv6 registry address");
        rest = close + 1;
        rest_len = n - (size_t)(rest - d);
    } else {
        const char *colon = memchr(d, ':', n);
        size_t hlen = colon ? (size_t)(colon - d) : n;
        if (check_hostname(d, hlen, err) < 0)
            return -1;
        rest = d + hlen;
        rest_len = n - hlen;
    }
    if (rest_len == 0)
        return 0;
    if (rest[0] != ':')
        return bad(err, "invalid registry host");
    return check_port(rest + 1, rest_len - 1, err);
}

/* path := component ("/" component)*
 * component := [a-z0-9]+ (separator [a-z0-9]+)*
 * separator := "." | "_" | "__" | "-"+
 * So no component is empty, ".", "..", or starts or ends with a separator. */
static int check_path(const char *p, size_t n, struct bx_err *err)
{
    size_t i = 0;
    while (i <= n) {
        size_t end = i;
        while (end < n && p[end] != '/')
            end++;
        if (end == i)
            return bad(err, "empty repository path component");
        while (i < end) {
            if (!is_lower_alnum(p[i])) {
                if (p[i] >= 'A' && p[i] <= 'Z')
                    return bad(err, "repository name must be lower case");
                return bad(err, "repository path components must start and end with a "
                                "letter or digit, separated by '.', '_', '__' or '-'");
            }
            while (i < end && is_lower_alnum(p[i]))
                i++;
            if (i == end)
                break;
            if (p[i] == '.') {
                i++;
            } else if (p[i] == '_') {
                i++;
                if (i < end && p[i] == '_')
                    i++;
            } else if (p[i] == '-') {
                while (i < end && p[i] == '-')
                    i++;
            } else if (p[i] >= 'A' && p[i] <= 'Z') {
                return bad(err, "repository name must be lower case");
            } else {
                return bad(err, "invalid character in repository name");
            }
            /* A separator must be followed by an alphanumeric run. */
            if (i == end)
                return bad(err, "repository path components must start and end with a "
                                "letter or digit, separated by '.', '_', '__' or '-'");
        }
        i = end + 1;
    }
    return 0;
}

/* Docker's rule: the part before the first '/' names a registry when it
 * looks like a host (has '.' or ':') or is "localhost"; otherwise the whole
 * name is a Docker Hub repository. */
static int looks_like_domain(const char *s, size_t n)
{
    return has_char(s, n, '.') || has_char(s, n, ':') ||
           (n == sizeof("localhost") - 1 && memcmp(s, "localhost", n) == 0);
}

int imgref_parse(const char *s, size_t len, struct imgref *out, struct bx_err *err)
{
    struct imgref r;
    const char *at, *slash, *colon, *path;
    size_t name_len, path_len, reg_len, repo_len, canon_len;
    int official;

    memset(&r, 0, sizeof(r));
    if (!out || (!s && len > 0))
        return bx_err_set(err, 500, 0, "imgref_parse: bad arguments");
    if (len == 0)
        return bad(err, "empty");
    if (len > IMGREF_MAX)
        return bad(err, "longer than 255 bytes");
    /* Refuse whitespace, control, DEL and non-ASCII bytes (NUL included)
     * before anything else: no later rule has to think about them. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f)
            return bad(err, "contains whitespace, control or non-ASCII characters");
    }

    /* No '@' can occur in a name or a tag, so the first one starts the digest. */
    name_len = len;
    at = memchr(s, '@', len);
    if (at) {
        name_len = (size_t)(at - s);
        if (check_digest(at + 1, len - name_len - 1, err) < 0)
            return -1;
        memcpy(r.digest, at + 1, len - name_len - 1);
    }

    /* A ':' after the last '/' starts the tag; one before it is a port. */
    slash = last_of(s, name_len, '/');
    colon = last_of(s, name_len, ':');
    if (colon && (!slash || colon > slash)) {
        size_t tag_len = name_len - (size_t)(colon - s) - 1;
        if (check_tag(colon + 1, tag_len, err) < 0)
            return -1;
        memcpy(r.tag, colon + 1, tag_len);
        name_len = (size_t)(colon - s);
    }
    if (name_len == 0)
        return bad(err, "missing repository name");

    path = s;
    path_len = name_len;
    slash = memchr(s, '/', name_len);
    if (slash && looks_like_domain(s, (size_t)(slash - s))) {
        reg_len = (size_t)(slash - s);
        if (check_domain(s, reg_len, err) < 0)
            return -1;
        path = slash + 1;
        path_len = name_len - reg_len - 1;
        if (reg_len == sizeof(LEGACY_REGISTRY) - 1 && memcmp(s, LEGACY_REGISTRY, reg_len) == 0) {
            reg_len = sizeof(DEFAULT_REGISTRY) - 1;
            memcpy(r.registry, DEFAULT_REGISTRY, reg_len);
        } else {
            memcpy(r.registry, s, reg_len);
        }
    } else {
        reg_len = sizeof(DEFAULT_REGISTRY) - 1;
        memcpy(r.registry, DEFAULT_REGISTRY, reg_len);
    }
    if (check_path(path, path_len, err) < 0)
        return -1;

    /* Docker Hub's single-component names are official images. */
    official = strcmp(r.registry, DEFAULT_REGISTRY) == 0 && !has_char(path, path_len, '/');
    repo_len = path_len + (official ? sizeof(OFFICIAL_PREFIX) - 1 : 0);
    if (!r.tag[0] && !r.digest[0])
        memcpy(r.tag, "latest", sizeof("latest"));

    /* The canonical form must fit too (see the comment at the top); this
     * also bounds repo_len below the size of r.repository. */
    canon_len = reg_len + 1 + repo_len;
    if (r.tag[0])
        canon_len += 1 + strlen(r.tag);
    if (r.digest[0])
        canon_len += 1 + strlen(r.digest);
    if (canon_len > IMGREF_MAX)
        return bad(err, "canonical form longer than 255 bytes");

    if (official) {
        memcpy(r.repository, OFFICIAL_PREFIX, sizeof(OFFICIAL_PREFIX) - 1);
        memcpy(r.repository + sizeof(OFFICIAL_PREFIX) - 1, path, path_len);
    } else {
        memcpy(r.repository, path, path_len);
    }
    *out = r;
    return 0;
}

static int field_ok(const char *f, size_t size)
{
    return memchr(f, '\0', size) != NULL;
}

int imgref_format(const struct imgref *r, char *out, size_t cap)
{
    struct imgref back;
    int n;

    if (!out || cap == 0)
        return -1;
    out[0] = '\0';
    if (!r || !field_ok(r->registry, sizeof(r->registry)) ||
        !field_ok(r->repository, sizeof(r->repository)) || !field_ok(r->tag, sizeof(r->tag)) ||
        !field_ok(r->digest, sizeof(r->digest)))
        return -1;
    n = snprintf(out, cap, "%s/%s%s%s%s%s", r->registry, r->repository, r->tag[0] ? ":" : "",
                 r->tag, r->digest[0] ? "@" : "", r->digest);
    if (n < 0 || (size_t)n >= cap)
        goto fail;
    /* Only ever hand out a string that parses back to exactly these fields:
     * a struct filled by hand (or damaged) cannot smuggle an option, a path
     * or a second reference into a command line. */
    if (imgref_parse(out, (size_t)n, &back, NULL) < 0 || strcmp(back.registry, r->registry) != 0 ||
        strcmp(back.repository, r->repository) != 0 || strcmp(back.tag, r->tag) != 0 ||
        strcmp(back.digest, r->digest) != 0)
        goto fail;
    return n;
fail:
    out[0] = '\0';
    return -1;
}
