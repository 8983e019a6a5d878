"""Bearer-token auth and GET /metrics."""

import re
import time

import httpx

TOKEN = "s3cret-token-value"


def test_auth_required_except_healthz(make_server):
    srv = make_server(config={"auth_tokens": [TOKEN, "second-token"]})
    assert httpx.get(srv.url + "/healthz").status_code == 200
    for method, path in (("GET", "/files?path=x"), ("POST", "/run"), ("GET", "/metrics"),
                         ("GET", "/images"), ("GET", "/nope")):
        r = httpx.request(method, srv.url + path)
        assert r.status_code == 401, (method, path)
        assert "error" in r.json()
        assert r.headers["www-authenticate"] == "Bearer"
    for bad in ("Bearer wrong", "Bearer " + TOKEN + "x", "Bearer " + TOKEN[:-1], TOKEN,
                "Basic " + TOKEN, "Bearer x"):
        r = httpx.get(srv.url + "/files", params={"path": "x"}, headers={"Authorization": bad})
        assert r.status_code == 401, bad
    for good in (TOKEN, "second-token"):
        r = httpx.get(srv.url + "/files", params={"path": "x"},
                      headers={"Authorization": "Bearer " + good})
        assert r.status_code == 404
    r = httpx.post(srv.url + "/run", headers={"Authorization": "Bearer " + TOKEN},
                   json={"image": "busybox", "cmd": ["echo", "authed"]}, timeout=120)
    assert r.status_code == 200 and r.json()["stdout"] == "authed\n"
    srv.stop()
    assert TOKEN not in srv.log_text() and "second-token" not in srv.log_text()


def test_auth_from_env(make_server):
    srv = make_server(env={"BOXER_TOKEN": "env-token"})
    assert httpx.get(srv.url + "/images").status_code == 401
    assert httpx.get(srv.url + "/images",
                     headers={"Authorization": "Bearer env-token"}).status_code == 200


def test_warns_without_token_on_public_address(make_server):
    srv = make_server(config={"listen_addr": "0.0.0.0:0", "allow_unauthenticated": True},
                      start=False)
    srv.config["listen_addr"] = "0.0.0.0:%d" % srv.port
    srv.start()
    srv.stop()
    assert "WARNING: listening on 0.0.0.0" in srv.log_text()


def sample(text, name, labels=""):
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


def test_metrics_route_labels_in_table_order(make_server):
    """Every route's label, and their order on /metrics, as before the route
    table (issue 12): /healthz, /files, /run, /images, /metrics, /swagger,
    then other; a 405 counts under its path's label."""
    srv = make_server(with_registry=False)
    httpx.get(srv.url + "/nope")
    httpx.get(srv.url + "/swagger/")
    httpx.put(srv.url + "/metrics")
    httpx.delete(srv.url + "/images")
    httpx.get(srv.url + "/run")
    httpx.get(srv.url + "/files")
    httpx.post(srv.url + "/healthz")
    time.sleep(0.2)
    t = httpx.get(srv.url + "/metrics").text
    # (the test harness polls GET /healthz until the server is up)
    lines = [l for l in t.splitlines() if l.startswith("boxer_http_requests_total{")
             and 'route="/healthz",status="200"' not in l]
    assert lines == ['boxer_http_requests_total{route="/healthz",status="405"} 1',
                     'boxer_http_requests_total{route="/files",status="400"} 1',
                     'boxer_http_requests_total{route="/run",status="405"} 1',
                     'boxer_http_requests_total{route="/images",status="400"} 1',
                     'boxer_http_requests_total{route="/metrics",status="405"} 1',
                     'boxer_http_requests_total{route="/swagger",status="200"} 1',
                     'boxer_http_requests_total{route="other",status="404"} 1'], t


def test_metrics_route_labels_are_exact(make_server):
    """A path that only starts like a route ("/swaggerx") is counted as
    "other", not as that route."""
    srv = make_server(with_registry=False)
    assert httpx.get(srv.url + "/swaggerx").status_code == 404
    assert httpx.get(srv.url + "/swagger/openapi.jsonx").status_code == 404
    assert httpx.get(srv.url + "/swagger/openapi.json").status_code == 200
    time.sleep(0.2)
    t = httpx.get(srv.url + "/metrics").text
    assert sample(t, "boxer_http_requests_total", '{route="other",status="404"}') == 2, t
    assert sample(t, "boxer_http_requests_total", '{route="/swagger",status="404"}') is None, t
    assert sample(t, "boxer_http_requests_total", '{route="/swagger",status="200"}') == 1, t


def test_metrics(make_server):
    srv = make_server()
    httpx.get(srv.url + "/healthz")
    httpx.get(srv.url + "/nope")
    httpx.post(srv.url + "/run", json={"image": "busybox", "cmd": ["true"]}, timeout=120)
    httpx.post(srv.url + "/run", json={"image": "busybox", "cmd": ["false"]}, timeout=120)
    httpx.post(srv.url + "/run", json={"image": "busybox", "cmd": ["sleep", "5"],
                                       "limits": {"wall_clock_secs": 1}}, timeout=120)
    httpx.post(srv.url + "/files", data={"path": "m/a.txt"}, files={"file": ("f", b"12345")})
    time.sleep(0.2)
    r = httpx.get(srv.url + "/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    t = r.text
    for line in t.splitlines():
        assert line.startswith("#") or re.fullmatch(r'[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? \S+', line), line
    assert sample(t, "boxer_http_requests_total", '{route="/healthz",status="200"}') >= 2
    assert sample(t, "boxer_http_requests_total", '{route="other",status="404"}') == 1
    assert sample(t, "boxer_runs_total", '{outcome="ok"}') == 1
    assert sample(t, "boxer_runs_total", '{outcome="nonzero"}') == 1
    assert sample(t, "boxer_runs_total", '{outcome="timeout"}') == 1
    assert sample(t, "boxer_run_duration_seconds_count") == 3
    assert sample(t, "boxer_runs_in_flight") == 0
    assert sample(t, "boxer_runs_queued") == 0
    assert sample(t, "boxer_image_pulls_total", '{result="ok"}') == 1
    assert sample(t, "boxer_store_files") >= 1 and sample(t, "boxer_store_bytes") >= 5
    assert sample(t, "process_open_fds") > 3
    assert sample(t, "process_resident_memory_bytes") > 1e6
