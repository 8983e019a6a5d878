"""The web console (issue 18) in a real browser: Debian's headless chromium
driven by chromedriver through python3-selenium, against one live Boxer
server (with a token, so the prompt is on the way) and one real box.

The tests run in file order and share the browser and the box.  A
screenshot of each page goes to the module's tmp directory (its path is
printed)."""

import os
import re
import shutil

import httpx
import pytest

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

TOKEN = "ui-test-token"
XSS = "<img src=x onerror=window.__xss=1>"
XSS_OUT = "</script><img src=x onerror=window.__xss=1>"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _browser(profile):
    if shutil.which("chromium") is None or not os.path.exists(CHROMEDRIVER):
        pytest.exit("chromium or chromium-driver missing (run scripts/install-deps.sh)", 3)
    o = webdriver.ChromeOptions()
    o.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1280,1000", "--user-data-dir=" + profile, "--no-first-run",
              "--disable-extensions", "--disable-background-networking"):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)


@pytest.fixture(scope="module")
def ui(registry, tmp_path_factory):
    import boxer_server
    d = tmp_path_factory.mktemp("ui")
    shots = tmp_path_factory.mktemp("ui-screenshots")
    print("\nui screenshots: %s" % shots)
    srv = boxer_server.Server(d, config={"auth_tokens": [TOKEN],
                                         "box_defaults": {"disk_size_gb": 1}},
                              registry=registry).start()
    drv = None
    try:
        drv = _browser(str(d / "chrome"))
        drv.set_page_load_timeout(30)
        yield {"srv": srv, "drv": drv, "shots": shots, "box": None}
    finally:
        if drv is not None:
            drv.quit()
        try:
            srv.stop()
            assert boxer_server.leftover_processes(srv.home) == []
            assert boxer_server.leftover_mounts(srv.home) == []
        finally:
            boxer_server.unmount_under(srv.home)


def wait(drv, cond, timeout=60):
    return WebDriverWait(drv, timeout, poll_frequency=0.1,
                         ignored_exceptions=(NoSuchElementException,
                                             StaleElementReferenceException)).until(cond)


def text_of(drv, css):
    return drv.find_element(By.CSS_SELECTOR, css).text


def shot(ui, name):
    path = os.path.join(str(ui["shots"]), name + ".png")
    assert ui["drv"].save_screenshot(path)
    print("screenshot: %s" % path)


def accept_confirm(drv):
    wait(drv, EC.alert_is_present(), 10).accept()


def no_xss(drv):
    assert drv.execute_script("return window.__xss") is None
    assert drv.execute_script("return document.querySelectorAll('main img').length") == 0


def fill(drv, css, value):
    e = drv.find_element(By.CSS_SELECTOR, css)
    e.clear()
    e.send_keys(value)


def test_headers_and_redirect(ui):
    srv = ui["srv"]
    r = httpx.get(srv.url + "/", timeout=10)
    assert r.status_code == 302 and r.headers["location"] == "/ui"
    for path, ctype in (("/ui", "text/html"), ("/ui/app.js", "text/javascript"),
                        ("/ui/style.css", "text/css")):
        r = httpx.get(srv.url + path, timeout=10)  # no token: the page asks for it
        assert r.status_code == 200 and r.headers["content-type"].startswith(ctype)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp and "unsafe" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
    assert httpx.get(srv.url + "/ui/nope.js", timeout=10).status_code == 404
    assert httpx.get(srv.url + "/v1/node", timeout=10).status_code == 401
    # the console's files still obey the browser rules (DNS rebinding)
    r = httpx.get(srv.url + "/ui", headers={"Host": "evil.example"}, timeout=10)
    assert r.status_code == 421
    # the token as the console's WebSocket subprotocol (wsauth.c)
    for proto, status in (("boxer, boxer.bearer." + TOKEN.encode().hex(), 200),
                          ("boxer, boxer.bearer." + b"wrong".hex(), 401),
                          ("boxer, boxer.bearer." + TOKEN, 401), ("boxer", 401)):
        r = httpx.get(srv.url + "/v1/node", headers={"Sec-WebSocket-Protocol": proto}, timeout=10)
        assert r.status_code == status, proto
    n = httpx.get(srv.url + "/v1/node", headers={"Authorization": "Bearer " + TOKEN},
                  timeout=10).json()
    assert n["version"] and n["runsc"]["platform"] in ("systrap", "ptrace", "kvm")
    assert n["runsc"]["version"] and n["samples"]["points"]
    assert n["warm_pool"] is None  # no warm_pool configured


def test_token_prompt(ui):
    drv, srv = ui["drv"], ui["srv"]
    drv.get(srv.url + "/")
    assert drv.current_url.endswith("/ui#/boxes") or drv.current_url.endswith("/ui")
    wait(drv, EC.visibility_of_element_located((By.ID, "auth-token")), 20)
    shot(ui, "token-prompt")
    fill(drv, "#auth-token", "wrong")
    drv.find_element(By.ID, "auth-ok").click()
    wait(drv, lambda d: "refused" in text_of(d, "#auth-msg")
         and d.find_element(By.ID, "auth-token").is_displayed(), 20)
    fill(drv, "#auth-token", TOKEN)
    drv.find_element(By.ID, "auth-ok").click()
    wait(drv, lambda d: not d.find_element(By.ID, "auth").is_displayed(), 20)
    wait(drv, lambda d: "No boxes" in text_of(d, "#boxes-msg"), 20)
    assert drv.execute_script("return sessionStorage.getItem('boxer.token')") == TOKEN
    assert drv.execute_script("return localStorage.length") == 0


def test_create_box(ui):
    drv = ui["drv"]
    drv.get(ui["srv"].url + "/ui#/boxes")
    # a name the server refuses: its message is shown, nothing runs
    fill(drv, "#create-name", XSS)
    drv.find_element(By.ID, "create-submit").click()
    wait(drv, lambda d: "name must match" in text_of(d, "#create-msg"))
    no_xss(drv)
    fill(drv, "#create-name", "uibox")
    fill(drv, "#create-env", "XSS=" + XSS)
    drv.find_element(By.ID, "create-submit").click()
    wait(drv, lambda d: "created box_" in text_of(d, "#create-msg"))
    ui["box"] = text_of(drv, "#create-msg").split()[-1]
    row = '#boxes-body tr[data-id="%s"]' % ui["box"]
    wait(drv, lambda d: "running" in text_of(d, row))
    assert "busybox" in text_of(drv, row)
    # disk use and idle time come from ?extra=1 (disk_used_bytes, last_active_at)
    disk = text_of(drv, row + " td.box-disk")
    assert re.fullmatch(r"[0-9.]+ (B|KiB|MiB|GiB) of 1 GB", disk) and not disk.startswith("0 B"), disk
    assert re.fullmatch(r"[0-9]+s|[0-9]+m[0-9]+s", text_of(drv, row + " td.box-idle"))
    shot(ui, "boxes")


def test_exec_streams_output(ui):
    drv = ui["drv"]
    assert ui["box"]
    drv.get(ui["srv"].url + "/ui#/box/" + ui["box"])
    wait(drv, lambda d: "uibox" in text_of(d, "#box-info"))
    assert XSS in text_of(drv, "#box-info")  # the env, as text
    fill(drv, "#exec-cmd", "echo hello-from-ui")
    drv.find_element(By.ID, "exec-run").click()
    wait(drv, lambda d: "hello-from-ui" in text_of(d, "#exec-out")
         and "[exit 0" in text_of(d, "#exec-out"))
    wait(drv, lambda d: "succeeded" in text_of(d, "#execs-body"))
    no_xss(drv)


def test_xss_output_shown_as_text(ui):
    drv = ui["drv"]
    fill(drv, "#exec-cmd", "printf '%s\\n' '" + XSS_OUT + "'")
    drv.find_element(By.ID, "exec-run").click()
    wait(drv, lambda d: XSS_OUT in text_of(d, "#exec-out"))
    wait(drv, lambda d: XSS_OUT in text_of(d, "#execs-body"))  # the command, as text
    no_xss(drv)
    # the replay of an earlier exec's events (GET .../events, NDJSON)
    drv.find_elements(By.CSS_SELECTOR, "#execs-body button")[0].click()
    wait(drv, lambda d: XSS_OUT in text_of(d, "#exec-out") and "[exit 0" in text_of(d, "#exec-out"))
    no_xss(drv)
    shot(ui, "box")


def test_upload_and_download(ui, tmp_path):
    drv = ui["drv"]
    src = tmp_path / "note.txt"
    src.write_text("uploaded by the browser test\n" + XSS + "\n")
    drv.find_element(By.ID, "upload-file").send_keys(str(src))
    fill(drv, "#upload-dest", "/root/")
    drv.find_element(By.CSS_SELECTOR, "#upload-form button").click()
    wait(drv, lambda d: "uploaded to /root/note.txt" in text_of(d, "#upload-msg"))
    fill(drv, "#download-path", "/root/note.txt")
    drv.find_element(By.CSS_SELECTOR, "#download-form button").click()
    wait(drv, lambda d: "uploaded by the browser test" in text_of(d, "#download-preview"))
    assert XSS in text_of(drv, "#download-preview")
    link = drv.find_element(By.ID, "download-link")
    assert link.get_attribute("href").startswith("blob:")
    assert link.get_attribute("download") == "note.txt"
    no_xss(drv)
    # a missing file: the server's message
    fill(drv, "#download-path", "/root/absent")
    drv.find_element(By.CSS_SELECTOR, "#download-form button").click()
    wait(drv, lambda d: "404" in text_of(d, "#download-msg"))


def test_run_page(ui):
    drv = ui["drv"]
    drv.get(ui["srv"].url + "/ui#/run")
    fill(drv, "#run-cmd", "cat; echo to-stderr >&2")
    fill(drv, "#run-stdin", "from-stdin")
    fill(drv, "#run-wall", "30")
    drv.find_element(By.ID, "run-submit").click()
    wait(drv, lambda d: "exit_code" in text_of(d, "#run-result"))
    out = text_of(drv, "#run-out")
    assert "from-stdin" in out and "to-stderr" in out
    res = text_of(drv, "#run-result")
    assert "status\n200" in res and "exit_code\n0" in res
    shot(ui, "run")


def test_images_page(ui):
    drv = ui["drv"]
    drv.get(ui["srv"].url + "/ui#/images")
    wait(drv, lambda d: "library/busybox" in text_of(d, "#images-body"))
    assert "in use" in text_of(drv, "#images-body")
    shot(ui, "images")
    # held by the box: the server refuses, the console says why
    for row in drv.find_elements(By.CSS_SELECTOR, "#images-body tr"):
        if "library/busybox" in row.text:
            row.find_element(By.TAG_NAME, "button").click()
            break
    accept_confirm(drv)
    wait(drv, lambda d: "409" in text_of(d, "#flash"))


def test_node_page(ui):
    drv = ui["drv"]
    drv.get(ui["srv"].url + "/ui#/node")
    wait(drv, lambda d: "platform" in text_of(d, "#node-info") and "samples" in text_of(d, "#node-msg"))
    info = text_of(drv, "#node-info")
    assert "max_concurrent_runs" in info and "total_memory_mb" in info
    # this server has no warm_pool (test_pool.py checks /v1/node with one)
    assert "none configured" in text_of(drv, "#warm-pool")
    # the chart has been drawn: some pixels are not blank
    painted = drv.execute_script(
        "const c = document.getElementById('chart');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;")
    assert painted > 100
    shot(ui, "node")


def test_terminal(ui):
    """xterm.js over the attach WebSocket (the token goes as a subprotocol):
    `stty size` in the box says the size the page shows, and follows a
    window resize."""
    import re
    from selenium.webdriver.common.action_chains import ActionChains
    drv = ui["drv"]
    drv.get(ui["srv"].url + "/ui#/box/" + ui["box"])
    drv.find_element(By.ID, "term-link").click()
    wait(drv, lambda d: text_of(d, "#term-status") == "connected")
    screen = "return window.boxerTerminal.screen()"

    def typed(cmd, expect):
        ActionChains(drv).send_keys(cmd + "\n").perform()
        return wait(drv, lambda d: re.search(expect, d.execute_script(screen), re.M), 30)

    drv.find_element(By.CSS_SELECTOR, "#term .xterm-helper-textarea").click()
    rows, cols = drv.execute_script("return window.boxerTerminal.size()")
    m = typed("stty size; echo h''i", r"^(\d+) (\d+)\s*\nhi\s*$")
    assert (int(m.group(1)), int(m.group(2))) == (rows, cols), drv.execute_script(screen)
    shot(ui, "terminal")
    drv.set_window_size(900, 700)
    wait(drv, lambda d: d.execute_script("return window.boxerTerminal.size()") != [rows, cols])
    rows2, cols2 = drv.execute_script("return window.boxerTerminal.size()")
    assert cols2 < cols
    typed("clear; stty size", r"^%d %d\s*$" % (rows2, cols2))
    drv.set_window_size(1280, 1000)
    ActionChains(drv).send_keys("exit\n").perform()
    wait(drv, lambda d: "exited with 0" in text_of(d, "#term-status"))
    no_xss(drv)


def test_stop_start_remove(ui):
    drv = ui["drv"]
    box = ui["box"]
    assert box
    drv.get(ui["srv"].url + "/ui#/boxes")
    row = '#boxes-body tr[data-id="%s"]' % box
    wait(drv, lambda d: "running" in text_of(d, row))
    drv.find_element(By.CSS_SELECTOR, row + " .act-stop").click()
    accept_confirm(drv)
    wait(drv, lambda d: "stopped" in text_of(d, row))
    # the status filter
    drv.get(ui["srv"].url + "/ui#/boxes?status=running")
    wait(drv, lambda d: "No boxes" in text_of(d, "#boxes-msg"))
    drv.get(ui["srv"].url + "/ui#/boxes?status=stopped")
    wait(drv, lambda d: box in text_of(d, "#boxes-body"))
    drv.find_element(By.CSS_SELECTOR, row + " .act-start").click()
    accept_confirm(drv)
    drv.get(ui["srv"].url + "/ui#/boxes")
    wait(drv, lambda d: "running" in text_of(d, row))
    drv.find_element(By.CSS_SELECTOR, row + " .act-remove").click()
    accept_confirm(drv)
    wait(drv, lambda d: not d.find_elements(By.CSS_SELECTOR, row))
    r = httpx.get(ui["srv"].url + "/v1/boxes", headers={"Authorization": "Bearer " + TOKEN},
                  timeout=10)
    assert r.json() == []
    no_xss(drv)


def test_no_csp_violation_logged(ui):
    """Everything the console did ran within its own policy."""
    logs = ui["drv"].get_log("browser")
    bad = [e["message"] for e in logs if "Content Security Policy" in e["message"]
           or "Refused to" in e["message"]]
    assert bad == []
