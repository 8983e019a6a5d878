/* Subprotocol credentials of the web console's WebSockets (wsauth.h). */
#include "wsauth.h"

#include <string.h>

static int wsauth_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int decode(const char *s, size_t n, struct wsauth *out)
{
    if (n == 0 || n % 2 || n / 2 > WSAUTH_TOKEN_MAX)
        return -1;
    for (size_t i = 0; i < n; i += 2) {
        int hi = wsauth_hexval(s[i]), lo = wsauth_hexval(s[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out->token[i / 2] = (char)(hi << 4 | lo);
    }
    out->token_len = n / 2;
    return 0;
}

void wsauth_parse(const char *v, size_t len, struct wsauth *out)
{
    static const char bearer[] = "boxer.bearer.";
    const size_t bl = sizeof(bearer) - 1;
    size_t i = 0;

    memset(out, 0, sizeof(*out));
    while (i <= len) {
        size_t s = i, e;
        while (i < len && v[i] != ',')
            i++;
        e = i++; /* past the comma (or the end) */
        while (s < e && (v[s] == ' ' || v[s] == '\t'))
            s++;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == 5 && memcmp(v + s, "boxer", 5) == 0)
            out->offers_boxer = 1;
        else if (!out->has_token && e - s > bl && memcmp(v + s, bearer, bl) == 0)
            out->has_token = decode(v + s + bl, e - s - bl, out) == 0;
    }
    if (!out->has_token)
        out->token_len = 0;
}
