"""Persistent boxes (issue 13), their life over time: exec records across
restarts, many create/remove cycles, a full disk, limits seen inside, a
client that goes away.  Real runsc, images from the local registry."""

import os
import socket
import time

import boxer_server
from test_boxes import (BUSYBOX, EXECINFO_KEYS, api, box_cgroups, box_mounts, exec_wait,
                        loop_devices, processes_naming, wait_gone, wait_status)


def execs_of(srv, box, extra=True):
    r = api(srv, "GET", "/v1/boxes/%s/execs%s" % (box, "?extra=1" if extra else ""))
    assert r.status_code == 200, r.text
    return r.json()


def test_exec_records_survive_restart_and_kill9(make_server):
    srv = make_server(config={"max_execs_per_box": 3})
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 1})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    edir = os.path.join(srv.home, "boxes", box, "execs")
    first = exec_wait(srv, box, ["echo", "dropped"])
    # output that is not UTF-8 and not text, on both streams; a failure; a timeout
    binary = exec_wait(srv, box, ["sh", "-c", "printf 'a\\377\\000b'; echo err >&2; exit 3"])
    assert binary["exit_code"] == 3 and binary["status"] == "failed", binary
    timed = exec_wait(srv, box, ["sleep", "30"], timeout_ms=300)
    assert timed["timed_out"] and timed["exit_code"] == 137, timed
    before = execs_of(srv, box)
    # max_execs_per_box: the oldest went, and its files with it
    assert [e["id"] for e in before] == [first["id"], binary["id"], timed["id"]][-3:]
    last = exec_wait(srv, box, ["sh", "-c", "echo last"])
    before = execs_of(srv, box)
    assert [e["id"] for e in before] == [binary["id"], timed["id"], last["id"]]
    assert sorted(os.listdir(edir)) == sorted(
        e["id"] + s for e in before for s in (".json", ".out"))

    srv.stop()
    srv.start()
    assert wait_status(srv, box, "running")["status"] == "running"
    after = execs_of(srv, box)
    assert after == before
    plain = execs_of(srv, box, extra=False)
    assert all(set(e) == EXECINFO_KEYS for e in plain)
    one = api(srv, "GET", "/v1/boxes/%s/exec/%s?extra=1" % (box, binary["id"])).json()
    assert one == before[0] and one["stderr"] == "err\n" and one["stdout"].startswith("a")

    # an exec running when Boxer dies ends failed, with a message; a new
    # exec is the newest and the history stays bounded
    r = api(srv, "POST", "/v1/boxes/%s/exec" % box, json={"cmd": ["sleep", "300"]})
    assert r.status_code == 201 and r.json()["status"] == "running", r.text
    running = r.json()["id"]
    srv.kill9()
    srv.start()
    assert wait_status(srv, box, "running")["status"] == "running"
    after = execs_of(srv, box)
    assert [e["id"] for e in after] == [timed["id"], last["id"], running]
    assert after[:2] == before[1:]
    cut = after[2]
    assert cut["status"] == "failed" and cut["exit_code"] == 137 and cut["finished_at"], cut
    assert "Boxer restarted" in cut["error_message"], cut
    # the record of the cut exec was rewritten as ended: a second restart
    # answers the same
    srv.stop()
    srv.start()
    assert wait_status(srv, box, "running")["status"] == "running"
    assert execs_of(srv, box) == after
    # the box serves execs as before; a stopped box still lists its history
    assert exec_wait(srv, box, ["echo", "again"])["stdout"] == "again\n"
    assert api(srv, "POST", "/v1/boxes/%s:stop" % box).status_code == 200
    assert [e["id"] for e in execs_of(srv, box)][-1] != running
    assert len(os.listdir(edir)) == 6
    assert api(srv, "DELETE", "/v1/boxes/" + box).status_code == 204
    assert wait_gone(os.path.dirname(edir))
