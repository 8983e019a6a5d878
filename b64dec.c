#include "b64dec.h"

static int sym(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

size_t b64_decoded_max(size_t len)
{
    return len / 4 * 3 + 3;
}

long b64_decode(const char *in, size_t len, unsigned char *out)
{
    unsigned long acc = 0;
    size_t n = 0, bits = 0, i = 0, syms;

    /* padding: at most two '=' and only to complete a group of four */
    while (len > 0 && in[len - 1] == '=' && i < 2) {
        len--;
        i++;
    }
    if (i > 0 && (len + i) % 4 != 0)
        return -1;
    syms = len % 4;
    if (syms == 1)
        return -1;
    for (i = 0; i < len; i++) {
        int v = sym((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned long)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1ul << bits) - 1;
        }
    }
    if (acc != 0) /* non-zero leftover bits: not the canonical encoding */
        return -1;
    return (long)n;
}
