#!/usr/bin/env python3
"""Writes seeds just below, at and just above each size limit the fuzz
harnesses can reach (STORE_PATH_MAX, CHUNK_MAX_TRAILER, MP_MAX_PART_HEADER,
the cmd/env/files counts, the JSON byte, value and depth caps, ...), so that
`make fuzz-run` and `make fuzz-long` start from inputs on both sides of every
limit instead of waiting for the mutator to grow an input past it.  Some are
megabytes long, so they are generated into the build tree instead of being
committed: usage `gen_limit_seeds.py OUTDIR` writes OUTDIR/<harness>/<name>.

Keep the numbers in step with the C constants named next to each group
(fuzz/limits.txt lists the over-limit lines these seeds must reach; `make
fuzz-limits` checks them with source coverage)."""

import os
import struct
import sys

STORE_PATH_MAX = 4096          # store.h
STORE_COMPONENT_MAX = 255      # store.h
IMGREF_MAX = 255               # imgref.h
MAX_REQUEST_LINE = 8192        # httpparse.c DEFAULT_MAX_REQUEST_LINE
MAX_HEADER_BYTES = 32768       # httpparse.c DEFAULT_MAX_HEADER_BYTES
HTTP_MAX_HEADERS = 64          # httpparse.h
CHUNK_MAX_EXT = 1024           # httpparse.c
CHUNK_MAX_TRAILER = 8192       # httpparse.c
MP_MAX_PART_HEADER = 8192      # multipart.h
MP_MAX_PARTS = 64              # multipart.h
MP_MAX_NAME = 255              # multipart.h
RUNMP_REQUEST_MAX = 4096       # fuzz_runmp.c cfg.max_request_body_bytes
RUNMP_UPLOAD_LIMIT = 256       # fuzz_runmp.c cfg.upload_limit_bytes
CG_OUT_CAP = 4096              # fuzz_cgproc.c: byte 1 with the top bit set
CONFIG_MAX_BYTES = 1 << 20     # config.c
CONFIG_MAX_VALUES = 100000     # config.c
CONFIG_LIST_MAX = 1024         # config.c get_str_list
CONFIG_MIRRORS_MAX = 256       # config.c parse_mirrors
CONFIG_EGRESS_MAX = 256        # config.c validate_network
JSON_FUZZ_MAX_BYTES = 64 << 10  # fuzz_json.c lim
JSON_FUZZ_MAX_VALUES = 4096     # fuzz_json.c lim
JSON_MAX_DEPTH = 32            # fuzz_json.c lim (JSON_WRITER_MAX_DEPTH)
RUN_MAX_BODY = (4 << 20) + 2 * 1024  # run_max_body with fuzz_runreq's stdin_limit_bytes 1024
RUN_STDIN_LIMIT = 1024         # fuzz_runreq.c cfg.stdin_limit_bytes
RUN_MAX_ARGS = 4096            # run.h
RUN_MAX_ENV = 1024             # run.h
RUN_MAX_FILES = 1024           # run.h
RUN_MAX_STRING = 256 << 10     # run.h
RUN_MAX_VALUES = 3 * RUN_MAX_ARGS + 1024  # run.c run_request_parse
RUN_MAX_DEPTH = 16             # run.c run_request_parse
RUN_MAX_CWD = 4096             # run.c
CLI_HEAD_MAX = 64 << 10        # cli_http.h
CLI_TRAILER_MAX = 8192         # cli_http.h
CLI_CHUNK_LINE_MAX = 1024      # cli_http.h (the line buffer, its NUL included)


def around(n):
    return (n - 1, n, n + 1)


def pad_json(prefix, suffix, total):
    """prefix + spaces + suffix, exactly total bytes (whitespace is legal
    anywhere between tokens)."""
    fill = total - len(prefix) - len(suffix)
    assert fill >= 0, (total, len(prefix))
    return prefix + b" " * fill + suffix


def storepath():
    out = {}
    for n in around(STORE_PATH_MAX):
        out["path_%d" % n] = (b"d/" * n)[: n - 1] + b"a"
    out["dots_%d" % (STORE_PATH_MAX + 1)] = (b"./" * STORE_PATH_MAX)[:STORE_PATH_MAX] + b"a"
    for n in around(STORE_COMPONENT_MAX):
        out["component_%d" % n] = b"c" * n
        out["deep_component_%d" % n] = b"x/" + b"c" * n + b"/y"
    return out


def imgref():
    out = {}
    for n in around(IMGREF_MAX):
        out["ref_%d" % n] = b"a" * n
        out["tagged_%d" % n] = b"busybox:" + b"t" * (n - 8)
    return out


def httpparse():
    out = {}
    # Request line: "GET /aaa HTTP/1.1" of n bytes (CRLF not counted, and
    # counted: both sides of the limit either way).
    for n in (MAX_REQUEST_LINE - 2, MAX_REQUEST_LINE - 1, MAX_REQUEST_LINE,
              MAX_REQUEST_LINE + 1, MAX_REQUEST_LINE + 2):
        path = b"/" + b"a" * (n - len(b"GET / HTTP/1.1"))
        out["request_line_%d" % n] = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    # Whole head of n bytes.
    for n in (MAX_HEADER_BYTES - 1, MAX_HEADER_BYTES, MAX_HEADER_BYTES + 1,
              MAX_HEADER_BYTES + 2):
        head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: "
        tail = b"\r\n\r\n"
        out["head_%d" % n] = head + b"p" * (n - len(head) - len(tail)) + tail
    # Number of header fields.
    for n in around(HTTP_MAX_HEADERS):
        out["headers_%d" % n] = (b"GET / HTTP/1.1\r\nHost: x\r\n" +
                                 b"".join(b"X-%d: v\r\n" % i for i in range(n - 1)) + b"\r\n")
    # Chunked bodies (the harness takes 2 split bytes first).
    for n in around(CHUNK_MAX_EXT):
        ext = b";" + b"e" * n  # line_len counts the bytes after ";"
        out["chunk_ext_%d" % n] = b"\x00\x10" + b"1" + ext + b"\r\na\r\n0\r\n\r\n"
    for n in around(CHUNK_MAX_TRAILER):
        # trailer_len counts the trailer section's bytes: "X-T: ttt\r\n"
        field = b"X-T: " + b"t" * (n - 7) + b"\r\n"
        out["trailer_%d" % n] = b"\x00\x10" + b"1\r\na\r\n0\r\n" + field + b"\r\n"
    return out


def multipart():
    out = {}
    boundary = b"XyZ"
    # byte 0: boundary length - 1; boundary; 2 split bytes; chunk byte; body.
    def frame(body):
        return bytes([len(boundary) - 1]) + boundary + b"\x01\x00" + b"\x05" + body

    cd = b'Content-Disposition: form-data; name="a"\r\n'
    for n in (MP_MAX_PART_HEADER - 2, MP_MAX_PART_HEADER - 1, MP_MAX_PART_HEADER,
              MP_MAX_PART_HEADER + 1, MP_MAX_PART_HEADER + 2):
        pad = b"X-Pad: " + b"p" * (n - len(cd) - 2 - len(b"X-Pad: \r\n")) + b"\r\n"
        body = b"--XyZ\r\n" + cd + pad + b"\r\ndata\r\n--XyZ--\r\n"
        out["part_header_%d" % n] = frame(body)
    for n in around(MP_MAX_PARTS):
        body = b"".join(b'--XyZ\r\nContent-Disposition: form-data; name="p%d"\r\n\r\nv\r\n' % i
                        for i in range(n)) + b"--XyZ--\r\n"
        out["parts_%d" % n] = frame(body)
    for n in around(MP_MAX_NAME):
        body = (b'--XyZ\r\nContent-Disposition: form-data; name="' + b"n" * n +
                b'"\r\n\r\nv\r\n--XyZ--\r\n')
        out["name_%d" % n] = frame(body)
    return out


def runmp():
    out = {}
    # 2 split bytes, then the body (boundary XyZ)
    def part(name, data):
        return (b'--XyZ\r\nContent-Disposition: form-data; name="' + name +
                b'"\r\n\r\n' + data + b"\r\n")
    run = b'{"image": "busybox", "cmd": ["sh"]}'
    for n in around(RUNMP_REQUEST_MAX):
        req = run[:-1] + b', "cwd": "/' + b"c" * (n - len(run) - 12) + b'"}'
        assert len(req) == n
        out["request_%d" % n] = b"\x00\x10" + part(b"request", req) + b"--XyZ--\r\n"
    for n in around(RUNMP_UPLOAD_LIMIT):
        out["file_%d" % n] = (b"\x00\x40" + part(b"request", run) + part(b"f", b"d" * n) +
                              b"--XyZ--\r\n")
    return out


def cgproc():
    out = {}
    # byte 0 = 0: the v2 "0::" line; byte 1 = 0x80: a 4096-byte output.
    for n in around(CG_OUT_CAP):
        out["v2_path_%d" % n] = b"\x00\x80" + b"0::/" + b"a" * (n - 1) + b"\n"
        out["v2_deep_%d" % n] = b"\x00\x80" + b"0::" + (b"/a" * n)[:n] + b"\n"
        # byte 0 = 3: "memory" on a v1 line.
        out["v1_memory_%d" % n] = b"\x03\x80" + b"4:memory:/" + b"m" * (n - 1) + b"\n"
    return out


def netlink():
    out = {}
    # An RTM_NEWLINK with attributes of 16-bit lengths up to the maximum.
    def link(alias_len):
        attrs = b""
        name = b"eth0\x00"
        attrs += struct.pack("=HH", 4 + len(name), 3) + name + b"\x00" * (-len(name) % 4)
        alias = b"a" * alias_len
        rta_len = 4 + alias_len
        attrs += struct.pack("=HH", rta_len & 0xFFFF, 20) + alias + b"\x00" * (-rta_len % 4)
        ifi = struct.pack("=BBHiII", 0, 0, 1, 1, 0, 0)
        body = ifi + attrs
        return struct.pack("=IHHII", 16 + len(body), 16, 0, 1, 0) + body

    for n in (4096, 65531, 65532):
        out["link_alias_%d" % n] = link(n)
    # An NLMSG_ERROR with a long extack message attribute.
    msg = b"m" * 65000 + b"\x00"
    attr = struct.pack("=HH", 4 + len(msg), 1) + msg + b"\x00" * (-(4 + len(msg)) % 4)
    err = struct.pack("=i", -22) + struct.pack("=IHHII", 16, 16, 0, 1, 0) + attr
    out["error_extack_65000"] = struct.pack("=IHHII", 16 + len(err), 2, 0x200, 1, 0) + err
    return out


def json_list(n, item=b"0"):
    return b"[" + b",".join([item] * n) + b"]"


def config():
    out = {}
    for n in around(CONFIG_MAX_BYTES):
        out["bytes_%d" % n] = pad_json(b'{"home": "/x"', b"}", n)
    for n in around(CONFIG_MAX_VALUES):
        # root object + the array + n - 2 numbers = n values
        out["values_%d" % n] = b'{"auth_tokens": ' + json_list(n - 2) + b"}"
    for n in around(CONFIG_LIST_MAX):
        out["auth_tokens_%d" % n] = b'{"auth_tokens": ' + json_list(n, b'"t"') + b"}"
    for n in around(CONFIG_MIRRORS_MAX):
        m = b",".join(b'"r%d.example": "http://127.0.0.1:5000"' % i for i in range(n))
        out["mirrors_%d" % n] = b'{"registry_mirrors": {' + m + b"}}"
    for n in around(CONFIG_EGRESS_MAX):
        e = b",".join(b'"10.%d.%d.0/24"' % (i // 256, i % 256) for i in range(n))
        out["blocked_egress_%d" % n] = b'{"blocked_egress": [' + e + b"]}"
    return out


def json_():
    out = {}
    for n in around(JSON_FUZZ_MAX_BYTES):
        out["string_bytes_%d" % n] = b'"' + b"a" * (n - 2) + b'"'
    for n in around(JSON_FUZZ_MAX_VALUES):
        out["values_%d" % n] = json_list(n - 1)  # the array + n - 1 numbers
    for n in around(JSON_MAX_DEPTH):
        out["depth_%d" % n] = b"[" * n + b"]" * n
    return out


def runreq():
    out = {}
    head = b'{"image": "busybox", "cmd": ["echo", "'
    for n in around(RUN_MAX_BODY):
        out["body_%d" % n] = pad_json(head + b'hi"]', b"}", n)
    for n in around(RUN_STDIN_LIMIT):
        out["stdin_%d" % n] = b'{"image": "busybox", "cmd": ["cat"], "stdin": "' + b"s" * n + b'"}'
    for n in around(RUN_MAX_ARGS):
        out["cmd_%d" % n] = b'{"image": "busybox", "cmd": ' + json_list(n, b'"a"') + b"}"
    for n in around(RUN_MAX_ENV):
        out["env_%d" % n] = (b'{"image": "busybox", "cmd": ["true"], "env": ' +
                             json_list(n, b'"A=1"') + b"}")
    for n in around(RUN_MAX_FILES):
        out["files_%d" % n] = (b'{"image": "busybox", "cmd": ["true"], "files": ' +
                               json_list(n, b'"f"') + b"}")
    for n in around(RUN_MAX_STRING):
        out["arg_bytes_%d" % n] = head + b"a" * n + b'"]}'
    for n in around(RUN_MAX_VALUES):
        # root object + image + cmd array + n - 3 numbers = n values
        out["values_%d" % n] = b'{"image": "busybox", "cmd": ' + json_list(n - 3) + b"}"
    for n in around(RUN_MAX_DEPTH):
        # root object + cmd array + n - 2 nested arrays = depth n
        out["depth_%d" % n] = (b'{"image": "busybox", "cmd": [' + b"[" * (n - 2) +
                               b"]" * (n - 2) + b"]}")
    for n in around(RUN_MAX_CWD):
        out["cwd_%d" % n] = (b'{"image": "busybox", "cmd": ["true"], "cwd": "/' +
                             b"c" * (n - 1) + b'"}')
    for n in around(STORE_PATH_MAX):
        out["file_path_%d" % n] = (b'{"image": "busybox", "cmd": ["true"], "files": ["' +
                                   (b"d/" * n)[: n - 1] + b'a"]}')
    return out


def v1run():
    """POST /v1/run bodies at the /run limits they map onto."""
    out = {}
    head = b'{"image": "busybox", "cmd": ["echo", "'
    for n in around(RUN_MAX_BODY):
        out["body_%d" % n] = pad_json(head + b'hi"]', b"}", n)
    for n in around(RUN_MAX_ARGS):
        out["cmd_%d" % n] = b'{"image": "busybox", "cmd": ' + json_list(n, b'"a"') + b"}"
    for n in around(RUN_MAX_ENV):
        env = b", ".join(b'"K%d": "v"' % i for i in range(n))
        out["env_%d" % n] = b'{"image": "busybox", "cmd": ["true"], "env": {' + env + b"}}"
    for n in around(RUN_MAX_STRING):
        out["env_bytes_%d" % n] = (b'{"image": "busybox", "cmd": ["true"], "env": {"K": "' +
                                   b"v" * (n - 2) + b'"}}')
    return out


def ws():
    """fuzz_ws: its text cap 1 KiB and message cap 4 KiB (1009 beyond, from
    the header), whole and fragmented; control frames at 125 and 126."""
    key = b"\x11\x22\x33\x44"

    def frame(b0, payload):
        n = len(payload)
        if n < 126:
            h = bytes([b0, 0x80 | n])
        elif n < 65536:
            h = bytes([b0, 0x80 | 126]) + n.to_bytes(2, "big")
        else:
            h = bytes([b0, 0x80 | 127]) + n.to_bytes(8, "big")
        return h + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))

    pre = b"\x07\x00\x05"  # chunk size, split position
    out = {}
    for n in around(1024):
        out["text_%d" % n] = pre + frame(0x81, b"t" * n)
        out["text_frag_%d" % n] = pre + frame(0x01, b"t" * 600) + frame(0x80, b"t" * (n - 600))
    for n in around(4096):
        out["binary_%d" % n] = pre + frame(0x82, b"b" * n)
        out["binary_frag_%d" % n] = pre + frame(0x02, b"b" * 3000) + frame(0x80, b"b" * (n - 3000))
    for n in (125, 126):
        out["ping_%d" % n] = pre + frame(0x89, b"p" * n)
    return out


def cliresp():
    """fuzz_cliresp: a head around CLI_HEAD_MAX (status line and CRLFs
    counted as the client counts them: each header line plus 2), trailers
    around CLI_TRAILER_MAX, a chunk-size line around its buffer."""
    pre = b"\x40\x20"  # whole reads, raw body in 33-byte reads
    status = b"HTTP/1.1 200 OK\r\n"
    out = {}
    for n in around(CLI_HEAD_MAX):
        # total = len(status line) + sum(header line + 2) + 2 (the empty line)
        room = n - (len(status) - 2) - 2
        hdrs = b""
        while room > 0:
            take = min(room, 4000)
            line = b"X-Pad: " + b"p" * max(0, take - 2 - 7)
            hdrs += line + b"\r\n"
            room -= len(line) + 2
        out["head_%d" % n] = pre + status + hdrs + b"\r\nContent-Length: 0\r\n\r\n"
    for n in around(CLI_TRAILER_MAX):
        # lines under the 1 KiB line buffer, n bytes counted as the client
        # counts them (each line + 2, the empty line that ends them too)
        trailers, room = b"", n - 2
        while room > 0:
            take = min(room, 1000)
            trailers += b"X-T: " + b"t" * max(0, take - 2 - 5) + b"\r\n"
            room -= take
        out["trailer_%d" % n] = (pre + status + b"Transfer-Encoding: chunked\r\n\r\n"
                                 b"1\r\na\r\n0\r\n" + trailers + b"\r\n")
    for n in around(CLI_CHUNK_LINE_MAX - 1):
        ext = b"1;" + b"e" * (n - 2)
        out["chunkline_%d" % n] = (pre + status + b"Transfer-Encoding: chunked\r\n\r\n"
                                   + ext + b"\r\na\r\n0\r\n\r\n")
    return out


HARNESSES = {
    "fuzz_cliresp": cliresp,
    "fuzz_storepath": storepath,
    "fuzz_imgref": imgref,
    "fuzz_httpparse": httpparse,
    "fuzz_multipart": multipart,
    "fuzz_runmp": runmp,
    "fuzz_cgproc": cgproc,
    "fuzz_netlink": netlink,
    "fuzz_config": config,
    "fuzz_json": json_,
    "fuzz_runreq": runreq,
    "fuzz_v1run": v1run,
    "fuzz_ws": ws,
}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_limit_seeds.py OUTDIR")
    top = sys.argv[1]
    for harness, gen in HARNESSES.items():
        d = os.path.join(top, harness)
        os.makedirs(d, exist_ok=True)
        for name, data in gen().items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
