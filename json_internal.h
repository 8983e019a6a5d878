/* Shared by json.c (parser) and json_write.c (writer): the UTF-8 decoder
 * both use. */
#ifndef BOXER_JSON_INTERNAL_H
#define BOXER_JSON_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

enum utf8_err {
    U8_OK,
    U8_CONT,      /* continuation byte where a sequence should start */
    U8_BADBYTE,   /* 0xF8..0xFF: never valid */
    U8_OVERLONG,  /* C0, C1, E0 80..9F, F0 80..8F */
    U8_SURROGATE, /* ED A0..BF: U+D800..U+DFFF encoded directly */
    U8_TOOBIG,    /* F4 90.., F5..F7: above U+10FFFF */
    U8_TRUNC,     /* sequence cut short by a non-continuation byte or the end */
};

/* Decodes one sequence at s[0..n), n >= 1, following the well-formed byte
 * sequences of Unicode table 3-7.  Returns the sequence length when *e is
 * U8_OK; otherwise the length of the maximal subpart (the longest prefix of
 * a well-formed sequence, at least 1) that a replacement character stands
 * for.  Never reads beyond s[n-1]. */
size_t json_utf8_next(const unsigned char *s, size_t n, uint32_t *cp, enum utf8_err *e);

#endif
