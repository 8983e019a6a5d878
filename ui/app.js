/* Boxer's web console (issue 18).  Plain JavaScript, no framework, no build
 * step.  Rules: everything that comes from the server (names, commands,
 * env, file names, output) is inserted as text (textContent / text nodes),
 * never as HTML; requests go to this origin only (the CSP says so too); a
 * 401 asks for a bearer token, kept in sessionStorage for this tab. */
'use strict';

(function () {
  const main = document.getElementById('main');
  const TOKEN_KEY = 'boxer.token';
  let page = { cleanup: [] }; // what the current page must stop when left

  // ---- DOM helpers: text only ----

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'value') e.value = v;
      else if (k === 'checked') e.checked = !!v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function flash(msg, isError) {
    const f = document.getElementById('flash');
    f.textContent = msg || '';
    f.className = isError ? 'error' : '';
  }

  function field(label, input) { return el('label', {}, label, input); }

  function kv(obj) {
    const dl = el('dl', { class: 'kv' });
    for (const [k, v] of Object.entries(obj)) {
      dl.append(el('dt', { text: k }),
        el('dd', { text: v === null || v === undefined ? '-' : (typeof v === 'object' ? JSON.stringify(v) : String(v)) }));
    }
    return dl;
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return '-';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
  }

  function fmtAge(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return '-';
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm' + (s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h' + Math.floor((s % 3600) / 60) + 'm';
    return Math.floor(s / 86400) + 'd' + Math.floor((s % 86400) / 3600) + 'h';
  }

  function fmtDur(ms) { return ms < 10000 ? Math.round(ms) + ' ms' : fmtAge(ms); }

  function since(iso) { return iso ? fmtAge(Date.now() - Date.parse(iso)) : '-'; }

  function statusCell(s) { return el('td', { class: 'status-' + String(s), text: s }); }

  // ---- the API: same origin, bearer token on demand ----

  let tokenPrompt = null;

  function askToken(again) {
    if (tokenPrompt) return tokenPrompt;
    tokenPrompt = new Promise((resolve) => {
      const box = document.getElementById('auth');
      const form = document.getElementById('auth-form');
      const input = document.getElementById('auth-token');
      document.getElementById('auth-msg').textContent = again
        ? 'That token was refused. Enter another one (kept for this tab only).'
        : 'This server needs a bearer token. It is kept for this tab only.';
      input.value = '';
      box.hidden = false;
      input.focus();
      form.addEventListener('submit', function onSubmit(ev) {
        ev.preventDefault();
        form.removeEventListener('submit', onSubmit);
        sessionStorage.setItem(TOKEN_KEY, input.value);
        box.hidden = true;
        tokenPrompt = null;
        resolve();
      });
    });
    return tokenPrompt;
  }

  // fetch() with the token; a 401 prompts and retries.  body: an object
  // (sent as JSON), a FormData, a string, or undefined.
  async function api(method, path, body, opts) {
    opts = opts || {};
    for (let attempt = 0; ; attempt++) {
      const headers = Object.assign({}, opts.headers || {});
      const token = sessionStorage.getItem(TOKEN_KEY);
      if (token) headers['Authorization'] = 'Bearer ' + token;
      let payload = body;
      if (body !== undefined && !(body instanceof FormData) && typeof body !== 'string') {
        headers['Content-Type'] = 'application/json';
        payload = JSON.stringify(body);
      }
      const r = await fetch(path, {
        method, headers, body: payload, signal: opts.signal,
        credentials: 'same-origin', cache: 'no-store', referrerPolicy: 'no-referrer',
      });
      if (r.status === 401) {
        await askToken(attempt > 0 || !!token);
        continue;
      }
      return r;
    }
  }

  async function errorText(r) {
    let t = '';
    try { t = await r.text(); } catch (e) { /* the body is optional */ }
    try {
      const j = JSON.parse(t);
      t = j.message || j.error || t;
    } catch (e) { /* not JSON: the text as is */ }
    return r.status + ': ' + (t || r.statusText);
  }

  async function apiJSON(method, path, body, opts) {
    const r = await api(method, path, body, opts);
    if (!r.ok) throw new Error(await errorText(r));
    const t = await r.text();
    return t ? JSON.parse(t) : null;
  }

  // Reads an NDJSON answer object by object (fetch streaming: EventSource
  // cannot send the Authorization header).
  async function readNDJSON(r, onObj) {
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) onObj(JSON.parse(line));
      }
    }
    buf += dec.decode();
    if (buf.trim()) onObj(JSON.parse(buf));
  }

  // Output pane: stdout/stderr lines appended as text.
  function outPane(id) {
    const pre = el('pre', { class: 'out', id });
    return {
      node: pre,
      add(stream, text) {
        pre.append(el('span', { class: stream === 'stderr' ? 'stderr' : (stream === 'note' ? 'note' : '') , text }));
        pre.scrollTop = pre.scrollHeight;
      },
      clear() { clear(pre); },
    };
  }

  function abortable() {
    const ac = new AbortController();
    page.cleanup.push(() => ac.abort());
    return ac;
  }

  function every(ms, fn) {
    const id = setInterval(fn, ms);
    page.cleanup.push(() => clearInterval(id));
  }

  function parseCmd(line, viaShell) {
    if (viaShell) return ['sh', '-c', line];
    return line.trim().split(/\s+/).filter(Boolean);
  }

  function parseEnv(text) {
    const env = {};
    for (const line of text.split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) env[line.slice(0, i).trim()] = line.slice(i + 1);
    }
    return env;
  }

  function num(v) { return v === '' ? undefined : Number(v); }

  // ---- pages ----

  async function pageBoxes(params) {
    const status = params.get('status') || '';
    const filter = el('select', { id: 'box-filter' },
      ['', 'creating', 'running', 'stopped', 'error'].map((s) =>
        el('option', { value: s, text: s || 'all', selected: s === status })));
    filter.addEventListener('change', () => { location.hash = '#/boxes' + (filter.value ? '?status=' + filter.value : ''); });
    const tbody = el('tbody', { id: 'boxes-body' });
    const msg = el('p', { id: 'boxes-msg', class: 'muted' });

    const f = {
      image: el('input', { id: 'create-image', value: 'busybox', required: true }),
      name: el('input', { id: 'create-name', placeholder: '(optional)' }),
      cpu: el('input', { id: 'create-cpu', type: 'number', step: '0.1', min: '0', placeholder: 'default' }),
      mem: el('input', { id: 'create-memory', type: 'number', min: '0', placeholder: 'default' }),
      disk: el('input', { id: 'create-disk', type: 'number', min: '0', placeholder: 'default' }),
      net: el('input', { id: 'create-network', type: 'checkbox' }),
      env: el('textarea', { id: 'create-env', placeholder: 'KEY=value, one a line' }),
    };
    const createMsg = el('span', { id: 'create-msg' });
    const create = el('form', { class: 'inline card', id: 'create-form' },
      field('image', f.image), field('name', f.name), field('cpu', f.cpu), field('memory MB', f.mem),
      field('disk GB', f.disk), field('network', f.net), field('env', f.env),
      el('button', { type: 'submit', id: 'create-submit', text: 'Create box' }), createMsg);
    create.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body = { image: f.image.value };
      if (f.name.value) body.name = f.name.value;
      if (f.cpu.value) body.cpu = num(f.cpu.value);
      if (f.mem.value) body.memory_mb = num(f.mem.value);
      if (f.disk.value) body.disk_size_gb = num(f.disk.value);
      body.network = f.net.checked;
      const env = parseEnv(f.env.value);
      if (Object.keys(env).length) body.env = env;
      createMsg.className = 'muted';
      createMsg.textContent = 'creating...';
      try {
        const b = await apiJSON('POST', '/v1/boxes', body);
        createMsg.textContent = 'created ' + b.id;
        load();
      } catch (e) {
        createMsg.className = 'error';
        createMsg.textContent = e.message;
      }
    });

    const gcAge = el('input', { id: 'gc-age', type: 'number', min: '0', value: '3600' });
    const gcMsg = el('span', { id: 'gc-msg', class: 'muted' });
    const gc = el('form', { class: 'inline', id: 'gc-form' },
      field('remove stopped boxes older than (s)', gcAge),
      el('button', { type: 'submit', class: 'secondary', text: 'GC' }), gcMsg);
    gc.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (!confirm('Remove every box stopped more than ' + gcAge.value + ' s ago?')) return;
      try {
        const r = await apiJSON('POST', '/v1/gc', { older_than: Number(gcAge.value) });
        gcMsg.textContent = 'removed ' + r.removed;
        load();
      } catch (e) { gcMsg.textContent = e.message; }
    });

    async function act(box, what) {
      const label = box.name || box.id;
      if (!confirm(what + ' box ' + label + '?')) return;
      try {
        if (what === 'remove') await apiJSON('DELETE', '/v1/boxes/' + encodeURIComponent(box.id) + '?force=true');
        else await apiJSON('POST', '/v1/boxes/' + encodeURIComponent(box.id) + ':' + what);
        flash(what + ' ' + label + ': done');
      } catch (e) { flash(what + ' ' + label + ': ' + e.message, true); }
      load();
    }

    async function load() {
      try {
        // extra=1: disk_used_bytes and last_active_at (our fields)
        const boxes = await apiJSON('GET', '/v1/boxes?extra=1' + (status ? '&status=' + encodeURIComponent(status) : ''));
        clear(tbody);
        msg.textContent = boxes.length ? '' : 'No boxes.';
        for (const b of boxes) {
          const running = b.status === 'running';
          tbody.append(el('tr', { 'data-id': b.id },
            el('td', {}, el('a', { href: '#/box/' + encodeURIComponent(b.id), class: 'box-link', text: b.name || b.id })),
            el('td', { class: 'mono', text: b.id }),
            statusCell(b.status),
            el('td', { class: 'mono', text: b.image }),
            el('td', { text: b.cpu + ' cpu, ' + b.memory_mb + ' MB' + (b.network ? ', net' : '') }),
            el('td', { class: 'box-disk', text: fmtBytes(b.disk_used_bytes) + ' of ' + b.disk_size_gb + ' GB' }),
            el('td', { text: since(b.created_at) }),
            el('td', { class: 'box-idle', text: since(b.last_active_at) }),
            el('td', { text: running ? since(b.started_at) : (b.stopped_at ? 'stopped ' + since(b.stopped_at) : '-') }),
            el('td', {},
              running
                ? el('button', { class: 'secondary act-stop', text: 'stop', onclick: () => act(b, 'stop') })
                : el('button', { class: 'secondary act-start', text: 'start', onclick: () => act(b, 'start') }),
              ' ',
              el('button', { class: 'danger act-remove', text: 'remove', onclick: () => act(b, 'remove') }))));
        }
      } catch (e) { msg.textContent = e.message; }
    }

    main.append(el('h1', { text: 'Boxes' }),
      el('div', { class: 'row' }, field('status', filter), gc),
      el('table', { id: 'boxes' },
        el('thead', {}, el('tr', {}, ['name', 'id', 'status', 'image', 'limits', 'disk used', 'age', 'idle', 'up / stopped', ''].map((h) => el('th', { text: h })))),
        tbody),
      msg,
      el('h2', { text: 'Create a box' }), create);
    await load();
    every(5000, load);
  }

  async function pageBox(id) {
    const base = '/v1/boxes/' + encodeURIComponent(id);
    const info = el('div', { id: 'box-info', class: 'card' });
    const execBody = el('tbody', { id: 'execs-body' });
    const out = outPane('exec-out');

    async function loadInfo() {
      try {
        const b = await apiJSON('GET', base);
        clear(info);
        info.append(kv({
          id: b.id, name: b.name, status: b.status, image: b.image, cpu: b.cpu, memory_mb: b.memory_mb,
          disk_size_gb: b.disk_size_gb, network: b.network, workdir: b.workdir, env: b.env,
          created: b.created_at, started: b.started_at, stopped: b.stopped_at,
          error: b.error_message,
        }));
      } catch (e) { clear(info); info.append(el('p', { class: 'error', text: e.message })); }
    }

    let lastActivity = null;
    const idle = el('span', { id: 'box-idle', class: 'muted' });
    async function loadExecs() {
      try {
        const execs = await apiJSON('GET', base + '/execs');
        clear(execBody);
        lastActivity = null;
        for (const x of execs.slice().reverse()) {
          const t0 = Date.parse(x.created_at), t1 = x.finished_at ? Date.parse(x.finished_at) : null;
          const act = x.finished_at ? t1 : Date.now();
          if (lastActivity === null || act > lastActivity) lastActivity = act;
          execBody.append(el('tr', { 'data-id': x.id },
            el('td', { class: 'mono', text: x.id }),
            el('td', { class: 'mono exec-cmd', text: (x.cmd || []).join(' ') }),
            statusCell(x.status),
            el('td', { text: x.exit_code === null ? '-' : x.exit_code }),
            el('td', { text: t1 ? fmtDur(t1 - t0) : (x.status === 'running' ? 'running ' + fmtAge(Date.now() - t0) : '-') }),
            el('td', {}, el('button', { class: 'secondary', text: 'output', onclick: () => watch(x.id) }))));
        }
        idle.textContent = lastActivity === null ? 'no execs yet' : 'idle ' + fmtAge(Date.now() - lastActivity);
      } catch (e) { idle.textContent = e.message; }
    }

    let current = null; // the stream shown in the pane
    function startStream() {
      if (current) current.abort();
      current = abortable();
      out.clear();
      return current;
    }

    function onEvent(o) {
      if (o.type === 'start') out.add('note', '[exec ' + o.exec_id + ']\n');
      else if (o.type === 'log') out.add(o.stream, o.data);
      else if (o.type === 'truncated') out.add('note', '[' + o.dropped + ' events dropped]\n');
      else if (o.type === 'exit') {
        out.add('note', '[exit ' + o.exit_code + ', ' + o.status + (o.wall_ms !== undefined ? ', ' + o.wall_ms + ' ms' : '') + ']\n');
        loadExecs();
      }
    }

    // Replays and follows an exec's events (GET .../events as NDJSON).
    async function watch(eid) {
      const ac = startStream();
      try {
        const r = await api('GET', base + '/exec/' + encodeURIComponent(eid) + '/events', undefined,
          { signal: ac.signal, headers: { Accept: 'application/x-ndjson' } });
        if (!r.ok) throw new Error(await errorText(r));
        out.add('note', '[exec ' + eid + ']\n');
        await readNDJSON(r, onEvent);
      } catch (e) { if (e.name !== 'AbortError') out.add('stderr', e.message + '\n'); }
    }

    const cmd = el('input', { id: 'exec-cmd', size: 50, value: 'echo hello', required: true });
    const viaSh = el('input', { id: 'exec-sh', type: 'checkbox', checked: true });
    const stdin = el('textarea', { id: 'exec-stdin', placeholder: '(optional)' });
    const runForm = el('form', { class: 'inline', id: 'exec-form' },
      field('command', cmd), field('via sh -c', viaSh), field('stdin', stdin),
      el('button', { type: 'submit', id: 'exec-run', text: 'Run' }));
    runForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const ac = startStream();
      const body = { cmd: parseCmd(cmd.value, viaSh.checked), stream: true };
      if (stdin.value) body.stdin = stdin.value;
      try {
        const r = await api('POST', base + '/exec', body, { signal: ac.signal });
        if (!r.ok) throw new Error(await errorText(r));
        await readNDJSON(r, onEvent);
      } catch (e) { if (e.name !== 'AbortError') out.add('stderr', e.message + '\n'); }
      loadExecs();
    });

    const upFile = el('input', { id: 'upload-file', type: 'file', required: true });
    const upDest = el('input', { id: 'upload-dest', value: '/root/', size: 30, required: true });
    const upMsg = el('span', { id: 'upload-msg', class: 'muted' });
    const upForm = el('form', { class: 'inline', id: 'upload-form' },
      field('file', upFile), field('destination (a directory ending in / or a path)', upDest),
      el('button', { type: 'submit', text: 'Upload' }), upMsg);
    upForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const file = upFile.files[0];
      if (!file) return;
      let dest = upDest.value;
      if (dest.endsWith('/')) dest += file.name;
      const fd = new FormData();
      fd.append('dest', dest);
      fd.append('file', file, file.name);
      upMsg.textContent = 'uploading...';
      try {
        const r = await apiJSON('POST', base + '/files/upload', fd);
        upMsg.textContent = 'uploaded to ' + r.dest;
      } catch (e) { upMsg.textContent = e.message; }
    });

    const dlPath = el('input', { id: 'download-path', value: '/etc/hostname', size: 30, required: true });
    const dlMsg = el('span', { id: 'download-msg', class: 'muted' });
    const dlPreview = el('pre', { id: 'download-preview', class: 'out' });
    const dlForm = el('form', { class: 'inline', id: 'download-form' },
      field('path in the box', dlPath), el('button', { type: 'submit', text: 'Download' }), dlMsg);
    dlForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      dlMsg.textContent = 'downloading...';
      try {
        const r = await api('POST', base + '/files/download', { path: dlPath.value });
        if (!r.ok) throw new Error(await errorText(r));
        const blob = await r.blob();
        const name = dlPath.value.split('/').pop() || 'download';
        const url = URL.createObjectURL(blob);
        const a = el('a', { href: url, download: name, id: 'download-link', text: 'save ' + name + ' (' + fmtBytes(blob.size) + ')' });
        clear(dlMsg);
        dlMsg.append(a);
        page.cleanup.push(() => URL.revokeObjectURL(url));
        // a preview of the start, as text
        dlPreview.textContent = await blob.slice(0, 4096).text();
      } catch (e) { dlMsg.textContent = e.message; }
    });

    main.append(el('p', {}, el('a', { href: '#/boxes', text: '< boxes' })),
      el('h1', { id: 'box-title', text: 'Box ' + id }),
      info,
      el('p', {}, el('a', { href: '#/term/' + encodeURIComponent(id), id: 'term-link', text: 'Open a terminal' })),
      el('h2', { text: 'Run a command' }), runForm, out.node,
      el('h2', {}, 'Execs ', idle),
      el('table', { id: 'execs' },
        el('thead', {}, el('tr', {}, ['id', 'command', 'status', 'exit', 'duration', ''].map((h) => el('th', { text: h })))),
        execBody),
      el('h2', { text: 'Files' }), upForm, dlForm, dlPreview);
    await Promise.all([loadInfo(), loadExecs()]);
    every(5000, () => { loadInfo(); loadExecs(); });
  }

  async function pageRun() {
    const f = {
      image: el('input', { id: 'run-image', value: 'busybox', required: true }),
      cmd: el('input', { id: 'run-cmd', size: 50, value: 'echo hello from a run', required: true }),
      sh: el('input', { id: 'run-sh', type: 'checkbox', checked: true }),
      cpu: el('input', { id: 'run-cpu', type: 'number', step: '0.1', min: '0', placeholder: 'default' }),
      mem: el('input', { id: 'run-memory', type: 'number', min: '0', placeholder: 'default' }),
      wall: el('input', { id: 'run-wall', type: 'number', min: '0', placeholder: 'default' }),
      net: el('input', { id: 'run-network', type: 'checkbox' }),
      stdin: el('textarea', { id: 'run-stdin', placeholder: '(optional)' }),
    };
    const out = outPane('run-out');
    const result = el('div', { id: 'run-result', class: 'card' }, el('span', { class: 'muted', text: 'No run yet.' }));
    const form = el('form', { class: 'inline card', id: 'run-form' },
      field('image', f.image), field('command', f.cmd), field('via sh -c', f.sh), field('cpu', f.cpu),
      field('memory MB', f.mem), field('wall clock s', f.wall), field('network', f.net), field('stdin', f.stdin),
      el('button', { type: 'submit', id: 'run-submit', text: 'Run' }));
    let ac = null;
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (ac) ac.abort();
      ac = abortable();
      out.clear();
      clear(result);
      result.append(el('span', { class: 'muted', text: 'running...' }));
      const body = { image: f.image.value, cmd: parseCmd(f.cmd.value, f.sh.checked), stream: true };
      const limits = {};
      if (f.cpu.value) limits.cpu_cores = num(f.cpu.value);
      if (f.mem.value) limits.memory_mb = num(f.mem.value);
      if (f.wall.value) limits.wall_clock_secs = num(f.wall.value);
      if (Object.keys(limits).length) body.limits = limits;
      if (f.net.checked) body.network = 'sandbox';
      if (f.stdin.value) body.stdin = f.stdin.value;
      try {
        const r = await api('POST', '/run', body, { signal: ac.signal });
        if (!r.ok) throw new Error(await errorText(r));
        await readNDJSON(r, (o) => {
          if (o.type === 'start') out.add('note', '[run ' + o.exec_id + ']\n');
          else if (o.type === 'log') out.add(o.stream, o.data);
          else if (o.type === 'truncated') out.add('note', '[' + o.dropped + ' events dropped]\n');
          else if (o.type === 'result') {
            const shown = Object.assign({}, o);
            delete shown.type; delete shown.stdout; delete shown.stderr;
            clear(result);
            result.append(kv(shown));
          }
        });
      } catch (e) {
        if (e.name !== 'AbortError') { clear(result); result.append(el('p', { class: 'error', text: e.message })); }
      }
    });
    main.append(el('h1', { text: 'One-shot run' }), form, el('h2', { text: 'Output' }), out.node,
      el('h2', { text: 'Result' }), result);
  }

  async function pageImages() {
    const tbody = el('tbody', { id: 'images-body' });
    const msg = el('p', { id: 'images-msg', class: 'muted' });
    async function load() {
      try {
        const imgs = await apiJSON('GET', '/images');
        clear(tbody);
        msg.textContent = imgs.length ? '' : 'The cache is empty.';
        for (const i of imgs) {
          tbody.append(el('tr', {},
            el('td', { class: 'mono', text: i.ref }),
            el('td', { class: 'mono', text: String(i.digest).slice(0, 19) }),
            el('td', { text: fmtBytes(i.size_bytes) }),
            el('td', { text: i.last_used ? fmtAge(Date.now() - i.last_used * 1000) + ' ago' : '-' }),
            el('td', { text: i.pulled_at ? fmtAge(Date.now() - i.pulled_at * 1000) + ' ago' : '-' }),
            el('td', { text: i.in_use ? 'in use' : '' }),
            el('td', {}, el('button', {
              class: 'danger', text: 'delete', onclick: async () => {
                if (!confirm('Delete image ' + i.ref + '?')) return;
                try {
                  await apiJSON('DELETE', '/images?ref=' + encodeURIComponent(i.ref));
                  flash('deleted ' + i.ref);
                } catch (e) { flash(e.message, true); }
                load();
              },
            }))));
        }
      } catch (e) { msg.textContent = e.message; }
    }
    main.append(el('h1', { text: 'Images' }),
      el('table', { id: 'images' },
        el('thead', {}, el('tr', {}, ['ref', 'digest', 'size', 'last used', 'pulled', 'state', ''].map((h) => el('th', { text: h })))),
        tbody), msg);
    await load();
    every(10000, load);
  }

  const SERIES = [
    ['runs_running', '#2457c5'],
    ['runs_queued', '#d92d20'],
    ['boxes_running', '#067647'],
    ['execs_running', '#b54708'],
  ];

  function drawChart(canvas, points) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    const g = canvas.getContext('2d');
    g.scale(dpr, dpr);
    g.clearRect(0, 0, w, h);
    const pad = { l: 36, r: 10, t: 10, b: 22 };
    const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;
    let max = 1;
    for (const p of points) for (const [k] of SERIES) max = Math.max(max, p[k]);
    max = Math.ceil(max * 1.15);
    const t1 = points.length ? points[points.length - 1].t : Date.now();
    const t0 = Math.min(points.length ? points[0].t : t1, t1 - 60000);
    const x = (t) => pad.l + (t1 === t0 ? pw : (t - t0) / (t1 - t0) * pw);
    const y = (v) => pad.t + ph - v / max * ph;
    g.strokeStyle = '#d9dee8';
    g.fillStyle = '#667085';
    g.font = '11px system-ui, sans-serif';
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const v = max * i / 4;
      g.beginPath(); g.moveTo(pad.l, y(v)); g.lineTo(w - pad.r, y(v)); g.stroke();
      g.fillText(String(Math.round(v * 10) / 10), 4, y(v) + 4);
    }
    g.fillText('-' + fmtAge(t1 - t0), pad.l, h - 6);
    g.fillText('now', w - pad.r - 22, h - 6);
    for (const [k, color] of SERIES) {
      g.strokeStyle = color;
      g.lineWidth = 2;
      g.beginPath();
      points.forEach((p, i) => { if (i) g.lineTo(x(p.t), y(p[k])); else g.moveTo(x(p.t), y(p[k])); });
      g.stroke();
    }
  }

  async function pageNode() {
    const top = el('div', { class: 'grid2', id: 'node-info' });
    const canvas = el('canvas', { id: 'chart' });
    const legend = el('div', { class: 'legend' }, SERIES.map(([k, color]) => {
      const i = el('i');
      i.style.background = color; // CSSOM, allowed by the CSP (no inline style attribute)
      return el('span', {}, i, k);
    }));
    const msg = el('p', { id: 'node-msg', class: 'muted' });
    let points = [];
    async function load() {
      try {
        const n = await apiJSON('GET', '/v1/node');
        clear(top);
        top.append(
          el('div', { class: 'card' }, el('h2', { text: 'Server' }), kv({
            version: n.version, runsc: n.runsc.version || 'unknown', platform: n.runsc.platform, runsc_path: n.runsc.path,
            warm_pool: n.warm_pool === null ? 'none (sandboxes start on demand)'
              : n.warm_pool.ready + ' ready of ' + n.warm_pool.entries + ' entries',
          })),
          el('div', { class: 'card', id: 'warm-pool' }, el('h2', { text: 'Warm pool' }),
            n.warm_pool === null ? el('p', { class: 'muted', text: 'none configured' }) : kv(n.warm_pool)),
          el('div', { class: 'card' }, el('h2', { text: 'Now' }), kv({
            runs_running: n.runs.running, runs_queued: n.runs.queued,
            boxes_running: n.boxes.running, boxes_stopped: n.boxes.stopped, execs_running: n.boxes.execs_running,
            images_cached: n.images.cached,
          })),
          el('div', { class: 'card' }, el('h2', { text: 'Limits' }), kv(n.limits)),
          el('div', { class: 'card' }, el('h2', { text: 'Budget held' }), kv(n.budget)),
          el('div', { class: 'card' }, el('h2', { text: 'Runs by outcome' }), kv(n.runs)));
        points = n.samples.points;
        msg.textContent = points.length + ' samples every ' + n.samples.interval_ms / 1000 + ' s';
        drawChart(canvas, points);
      } catch (e) { msg.textContent = e.message; }
    }
    const onResize = () => drawChart(canvas, points);
    window.addEventListener('resize', onResize);
    page.cleanup.push(() => window.removeEventListener('resize', onResize));
    main.append(el('h1', { text: 'Node' }), el('h2', { text: 'Runs and queue' }), legend, canvas, msg, top);
    await load();
    every(2000, load);
  }

  // ---- the terminal (xterm.js, vendored in ui/vendor, loaded on demand) ----

  const loaded = {};
  function loadScript(src) {
    if (!loaded[src]) {
      loaded[src] = new Promise((resolve, reject) => {
        const s = document.createElement('script');
        s.src = src;
        s.onload = resolve;
        s.onerror = () => reject(new Error('cannot load ' + src));
        document.head.append(s);
      });
    }
    return loaded[src];
  }

  function hex(text) {
    return Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, '0')).join('');
  }

  async function pageTerm(id) {
    const status = el('span', { id: 'term-status', class: 'muted', text: 'connecting...' });
    const host = el('div', { id: 'term' });
    main.append(el('p', {}, el('a', { href: '#/box/' + encodeURIComponent(id), text: '< box' })),
      el('h1', {}, 'Terminal ', el('span', { class: 'mono', text: id }), ' ', status), host);
    // the box exists and the token works (a 401 prompts here: a WebSocket
    // handshake that fails tells the page nothing)
    await apiJSON('GET', '/v1/boxes/' + encodeURIComponent(id));
    if (!document.querySelector('link[href="/ui/vendor/xterm.css"]')) {
      document.head.append(el('link', { rel: 'stylesheet', href: '/ui/vendor/xterm.css' }));
    }
    await loadScript('/ui/vendor/xterm.js');
    await loadScript('/ui/vendor/addon-canvas.js');
    await loadScript('/ui/vendor/addon-fit.js');
    const term = new window.Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000,
      fontFamily: 'ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace' });
    const fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    // Before open(): the canvas renderer replaces the DOM renderer, which
    // would inject <style> elements that the CSP (no inline style) refuses.
    term.loadAddon(new window.CanvasAddon.CanvasAddon());
    term.open(host);
    fit.fit();
    const protocols = ['boxer'];
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) protocols.push('boxer.bearer.' + hex(token));
    const url = (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host +
      '/v1/boxes/' + encodeURIComponent(id) + '/attach?cols=' + term.cols + '&rows=' + term.rows;
    const ws = new WebSocket(url, protocols);
    ws.binaryType = 'arraybuffer';
    const enc = new TextEncoder();
    ws.onopen = () => { status.textContent = 'connected'; term.focus(); };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') {
        let m = {};
        try { m = JSON.parse(ev.data); } catch (e) { return; }
        if (m.type === 'exit') status.textContent = 'shell exited with ' + m.code;
      } else {
        term.write(new Uint8Array(ev.data));
      }
    };
    ws.onclose = (ev) => {
      if (!/exited/.test(status.textContent)) status.textContent = 'closed (' + ev.code + ')';
    };
    term.onData((d) => { if (ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d)); });
    term.onResize(({ cols, rows }) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols, rows }));
    });
    const onResize = () => fit.fit();
    window.addEventListener('resize', onResize);
    // what the screen shows, for the browser test
    window.boxerTerminal = {
      screen() {
        const b = term.buffer.active, lines = [];
        for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));
        return lines.join('\n');
      },
      size() { return [term.rows, term.cols]; },
    };
    page.cleanup.push(() => {
      window.removeEventListener('resize', onResize);
      ws.close();
      term.dispose();
      delete window.boxerTerminal;
    });
  }

  // ---- hash routing ----

  async function route() {
    for (const f of page.cleanup) f();
    page = { cleanup: [] };
    clear(main);
    flash('');
    const hash = location.hash.replace(/^#/, '') || '/boxes';
    const q = hash.indexOf('?');
    const path = q >= 0 ? hash.slice(0, q) : hash;
    const params = new URLSearchParams(q >= 0 ? hash.slice(q + 1) : '');
    const name = path.split('/')[1] || 'boxes';
    for (const a of document.querySelectorAll('header nav a')) {
      a.classList.toggle('active', a.id === 'nav-' + (name === 'box' || name === 'term' ? 'boxes' : name));
    }
    try {
      if (name === 'box') await pageBox(decodeURIComponent(path.slice(5)));
      else if (name === 'term') await pageTerm(decodeURIComponent(path.slice(6)));
      else if (name === 'run') await pageRun();
      else if (name === 'images') await pageImages();
      else if (name === 'node') await pageNode();
      else await pageBoxes(params);
    } catch (e) { flash(e.message, true); }
  }

  window.addEventListener('hashchange', route);
  route();
})();
