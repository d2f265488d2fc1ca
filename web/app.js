// dedup status page. Reads the REST API (docs/API.md) with the token kept
// in sessionStorage; nothing is shown without a token the server accepts.
// No external resources: the chart is drawn as SVG here.
"use strict";

const TOKEN_KEY = "dedup-token";
const REFRESH_MS = 15000;
const SVG_NS = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

// ---- formatting ----

function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let i = 0;
  n = Number(n) || 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + u[i];
}

function ratio(x) {
  return (Number(x) || 0).toFixed(2) + "x";
}

function age(seconds) {
  const s = Math.max(0, Number(seconds) || 0);
  if (s < 90) return Math.round(s) + " s ago";
  if (s < 90 * 60) return Math.round(s / 60) + " min ago";
  if (s < 36 * 3600) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}

function duration(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

// One convention for every time on the page: UTC, 24-hour, labelled.
function shortTime(iso) {
  return iso ? String(iso).replace("T", " ").replace("Z", " UTC") : "-";
}

function clockUTC(d) {
  return d.toISOString().slice(11, 19) + " UTC";
}

function clockDate(d) {
  return d.toISOString().slice(0, 19).replace("T", " ") + " UTC";
}

// A path as one shell word: quoted unless plainly safe.
function shellWord(s) {
  return /^[A-Za-z0-9_.,:\/+@%=-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'";
}

// ---- the token ----

// A token may come in the URL fragment (#token=dd_...), which is never sent
// to the server: it is moved to sessionStorage and taken off the address.
function takeTokenFromFragment() {
  const m = /^#token=(dd_[0-9a-f]{64})$/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, m[1]);
    history.replaceState(null, "", location.pathname + location.search);
  }
}

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    const msg = body && body.error ? body.error : "HTTP " + r.status;
    throw new HttpError(r.status, msg);
  }
  return body;
}

// ---- small DOM helpers ----

function cell(row, text, cls, value) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  if (value !== undefined && value !== null) td.dataset.value = String(value);
  row.appendChild(td);
  return td;
}

function emptyRow(body, columns, text) {
  const tr = document.createElement("tr");
  const td = cell(tr, text, "empty");
  td.colSpan = columns;
  body.appendChild(tr);
}

// A figure the server left out shows "-".
function setCard(id, text, value) {
  const el = $(id);
  const known = value !== undefined && value !== null;
  el.textContent = known ? text : "-";
  el.dataset.value = known ? String(value) : "";
}

function svg(parent, name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  parent.appendChild(el);
  return el;
}

// ---- sections ----

// An admin token gets the repository's figures; a client token only its
// own (docs/API.md, "Stats"): the store's cards are hidden for it.
function showStats(st) {
  const own = st.scope === "client";
  document.querySelectorAll("#cards .repo-only:not(.pool-only)").forEach((c) => c.classList.toggle("hidden", own));
  if (own) $("c-pool").classList.add("hidden");
  document.querySelectorAll("#cards .client-only").forEach((c) => c.classList.toggle("hidden", !own));
  $("cards").dataset.scope = own ? "client" : "repository";
  setCard("s-logical", bytes(st.bytes_logical), st.bytes_logical);
  setCard("s-snapshots", String(st.snapshots), st.snapshots);
  if (own) {
    // bytes_only_client is null while the server counts usage after its start
    const counting = st.bytes_only_client === null;
    if (counting) setCard("s-only", "counting", "");
    else setCard("s-only", bytes(st.bytes_only_client), st.bytes_only_client);
    setCard("s-quota", st.quota_bytes === null ? "none" : bytes(st.quota_bytes) + (counting ? "" :
            " (" + Math.round(100 * st.bytes_only_client / st.quota_bytes) + "%)"), st.quota_bytes);
    return;
  }
  setCard("s-unique", bytes(st.bytes_unique), st.bytes_unique);
  setCard("s-stored", bytes(st.bytes_stored), st.bytes_stored);
  setCard("s-dedup", ratio(st.dedup_ratio), st.dedup_ratio);
  setCard("s-comp", ratio(st.compression_ratio), st.compression_ratio);
  setCard("s-chunks", String(st.chunks), st.chunks);
  setCard("s-clients", String(st.clients), st.clients);
  setCard("s-free", bytes(st.disk_free), st.disk_free);
  $("s-disk").textContent = st.disk_total === undefined ? "" : "of " + bytes(st.disk_total);
  showPool(st.pool);
}

// A RADOS pool (docs/STORAGE.md, "Stats on a shared pool"): the live
// front-ends and how fresh the pool-wide figures are; absent otherwise.
function showPool(pool) {
  $("c-pool").classList.toggle("hidden", !pool);
  if (!pool) return;
  const at = (t) => (t === null || t === undefined ? "not yet" : clockUTC(new Date(t * 1000)));
  setCard("s-pool", String(pool.frontends), pool.frontends);
  $("s-pool-asof").textContent = "as of " + at(pool.as_of) + ", index " + at(pool.index_as_of);
  $("s-pool-asof").dataset.asOf = pool.as_of === null ? "" : String(pool.as_of);
  $("s-pool-asof").dataset.indexAsOf = pool.index_as_of === null ? "" : String(pool.index_as_of);
}

// Cumulative bytes ingested (logical) and stored, one point a day.
function showChart(hist) {
  const days = hist.days || [];
  const box = $("chart");
  box.replaceChildren();
  const W = 1100, H = 260, L = 78, R = 18, T = 34, B = 30;
  const root = svg(box, "svg", { viewBox: `0 0 ${W} ${H}`, role: "img", id: "chart-svg" });
  svg(root, "title", {}, "Bytes ingested and stored, cumulative, per day");
  const maxV = Math.max(1, ...days.map((d) => Math.max(d.total_ingested, d.total_stored)));
  const n = Math.max(days.length, 2);
  const x = (i) => L + (W - L - R) * (i / (n - 1));
  const y = (v) => T + (H - T - B) * (1 - v / maxV);
  for (let k = 0; k <= 4; k++) {
    const v = (maxV * k) / 4;
    svg(root, "line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) });
    svg(root, "text", { x: L - 8, y: y(v) + 4, "text-anchor": "end" }, bytes(Math.round(v)));
  }
  svg(root, "line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B });
  svg(root, "line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B });
  // Dates: the last day and every 7th before it, plus the first if there
  // is room for it.
  days.forEach((d, i) => {
    const fromEnd = days.length - 1 - i;
    if (fromEnd % 7 === 0 || (i === 0 && fromEnd % 7 >= 3)) {
      svg(root, "text", { x: x(i), y: H - B + 16, "text-anchor": "middle" }, d.date.slice(5));
    }
  });
  const series = [
    ["total_ingested", "ingested"],
    ["total_stored", "stored"],
  ];
  for (const [key, cls] of series) {
    const pts = days.map((d, i) => `${x(i).toFixed(1)},${y(d[key]).toFixed(1)}`);
    if (pts.length) {
      const area = `${x(0).toFixed(1)},${y(0)} ${pts.join(" ")} ${x(days.length - 1).toFixed(1)},${y(0)}`;
      svg(root, "polygon", { class: cls + "-area", points: area });
      svg(root, "polyline", { class: cls, points: pts.join(" "), "data-series": cls });
    }
  }
  const last = days.length ? days[days.length - 1] : { total_ingested: 0, total_stored: 0 };
  svg(root, "rect", { class: "legend-ingested", x: L + 8, y: 10, width: 14, height: 10 });
  svg(root, "text", { class: "legend", x: L + 28, y: 19, id: "legend-ingested" },
      "ingested (logical): " + bytes(last.total_ingested));
  svg(root, "rect", { class: "legend-stored", x: L + 300, y: 10, width: 14, height: 10 });
  svg(root, "text", { class: "legend", x: L + 320, y: 19, id: "legend-stored" },
      "stored: " + bytes(last.total_stored));
}

function showProgress(list) {
  const body = $("progress");
  body.replaceChildren();
  $("n-progress").textContent = "(" + list.length + ")";
  if (!list.length) { emptyRow(body, 8, "no backup is running"); return; }
  for (const s of list) {
    const tr = document.createElement("tr");
    tr.dataset.session = s.id;
    cell(tr, s.client);
    cell(tr, s.host);
    cell(tr, (s.paths || []).join(", "));
    const started = cell(tr, duration(s.elapsed_seconds) + " ago", null, s.unix_started);
    if (s.unix_started) started.title = clockDate(new Date(s.unix_started * 1000));
    cell(tr, String(s.files), "num", s.files);
    cell(tr, bytes(s.bytes_done), "num", s.bytes_done);
    cell(tr, bytes(s.uploaded_bytes), "num", s.uploaded_bytes);
    const td = cell(tr, "");
    if (s.progress !== null && s.progress !== undefined) {
      const p = document.createElement("progress");
      p.max = 100;
      p.value = Math.round(s.progress * 100);
      td.appendChild(p);
      td.appendChild(document.createTextNode(" " + Math.round(s.progress * 100) + "%"));
    } else {
      td.textContent = s.phase + " (first backup of these paths)";
    }
    body.appendChild(tr);
  }
}

// "1.0 GiB (12%)", or "-" without a quota; the share is left out while the
// server counts usage after its start (quota_used_percent null).
function quotaText(c) {
  if (c.quota_bytes === null || c.quota_bytes === undefined) return "-";
  if (c.quota_used_percent === null || c.quota_used_percent === undefined)
    return bytes(c.quota_bytes);
  return bytes(c.quota_bytes) + " (" + Math.round(c.quota_used_percent) + "%)";
}

function showClients(data) {
  const body = $("clients");
  body.replaceChildren();
  const list = data.clients || [];
  // What needs attention first: the states notifications are sent for.
  const stale = list.filter(c => c.stale && !c.revoked).length;
  const failed = list.filter(c => c.last_result === "failed" && !c.revoked).length;
  $("n-clients").textContent = "(" + list.length +
    (stale ? ", " + stale + " stale" : "") + (failed ? ", " + failed + " failed" : "") +
    ", stale after " + duration(data.stale_after_seconds) + ")";
  $("clients-note").textContent = "";
  $("clients-table").classList.remove("hidden");
  if (!list.length) { emptyRow(body, 8, "no clients yet"); return; }
  for (const c of list) {
    const tr = document.createElement("tr");
    tr.dataset.client = c.name;
    if (c.stale && !c.revoked) tr.className = "stale";
    cell(tr, c.name);
    cell(tr, c.revoked ? "revoked" : c.role);
    const last = cell(tr, c.last_backup_time ? age(c.last_backup_age_seconds) : "never", "age",
                      c.last_backup_age_seconds);
    if (c.last_backup_time) last.title = shortTime(c.last_backup_time);
    const res = cell(tr, c.last_result || "-", c.last_result ? "result-" + c.last_result : null);
    if (c.last_error) res.title = c.last_error;
    cell(tr, String(c.snapshots), "num", c.snapshots);
    cell(tr, c.last_backup_bytes_new === null ? "-" : bytes(c.last_backup_bytes_new), "num",
         c.last_backup_bytes_new);
    // null while the server counts usage after its start
    const only = cell(tr, c.bytes_unique === null ? "counting" : bytes(c.bytes_unique), "num",
                      c.bytes_unique);
    if (c.bytes_unique === null) only.title = "the server is counting each client's usage; reload shortly";
    const q = cell(tr, quotaText(c), "num quota" + (c.over_quota ? " over-quota" : ""),
                   c.quota_bytes);
    if (c.over_quota) q.title = "over its quota: uploads and new snapshots are refused";
    body.appendChild(tr);
  }
}

function hideClients(why) {
  $("clients").replaceChildren();
  $("clients-table").classList.add("hidden");
  $("n-clients").textContent = "";
  $("clients-note").textContent = why;
}

// snaps: the newest page of GET /api/v1/snapshots, newest first.
function showSnapshots(snaps) {
  const body = $("snapshots");
  body.replaceChildren();
  $("n-snapshots").textContent = snaps.length >= SNAPSHOTS_SHOWN ?
    "(newest " + SNAPSHOTS_SHOWN + " shown)" : "(" + snaps.length + ")";
  if (!snaps.length) { emptyRow(body, 8, "no snapshots yet"); return; }
  for (const s of snaps) {
    const tr = document.createElement("tr");
    tr.dataset.id = s.id;
    const id = document.createElement("td");
    const code = document.createElement("code");
    code.textContent = s.id.slice(0, 16);
    code.title = s.id;
    id.appendChild(code);
    tr.appendChild(id);
    cell(tr, s.client);
    cell(tr, s.host);
    cell(tr, shortTime(s.time_end || s.time));
    cell(tr, String(s.files), "num", s.files);
    cell(tr, bytes(s.bytes_total), "num", s.bytes_total);
    cell(tr, bytes(s.bytes_new), "num", s.bytes_new);
    const open = document.createElement("button");
    open.type = "button";
    open.className = "small open-snapshot";
    open.textContent = "Browse";
    open.addEventListener("click", () => browseOpen(s.id, "/"));
    cell(tr, "").appendChild(open);
    body.appendChild(tr);
  }
}

// ---- browsing a snapshot (GET /tree, POST /tickets, GET /download) ----

const BROWSE_PAGE = 500;
const browse = { id: null, path: "/", next: null, shown: 0 };

function joinPath(dir, name) {
  return dir === "/" ? "/" + name : dir + "/" + name;
}

function showCrumbs(path) {
  const nav = $("crumbs");
  nav.replaceChildren();
  const parts = path.split("/").filter((p) => p);
  const link = (text, target) => {
    const a = document.createElement("a");
    a.textContent = text;
    a.dataset.path = target;
    a.addEventListener("click", () => browseOpen(browse.id, target));
    nav.appendChild(a);
  };
  link("/", "/");
  let at = "";
  for (const p of parts) {
    at += "/" + p;
    if (at.length > 1 && nav.childNodes.length > 1) {
      const sep = document.createElement("span");
      sep.className = "sep";
      sep.textContent = "/";
      nav.appendChild(sep);
    }
    link(p, at);
  }
}

function entryRow(e) {
  const tr = document.createElement("tr");
  const name = e.name !== undefined ? e.name : "(bytes " + e.name_hex + ")";
  tr.dataset.name = name;
  tr.dataset.type = e.type;
  const td = cell(tr, "");
  if (e.type === "dir" && e.name !== undefined) {
    const a = document.createElement("a");
    a.className = "dir";
    a.textContent = name + "/";
    a.addEventListener("click", () => browseOpen(browse.id, joinPath(browse.path, e.name)));
    td.appendChild(a);
  } else {
    td.textContent = e.link !== undefined ? name + " \u2192 " + e.link : name;
  }
  cell(tr, e.type);
  cell(tr, e.type === "file" ? bytes(e.size) : "", "num", e.size);
  cell(tr, e.mtime !== undefined ? clockDate(new Date(e.mtime * 1000)) : "");
  const act = cell(tr, "");
  if ((e.type === "file" || e.type === "hardlink") && e.name !== undefined) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "small download";
    b.textContent = "Download";
    b.addEventListener("click", () => download(joinPath(browse.path, e.name), "file"));
    act.appendChild(b);
  }
  return tr;
}

async function browsePage() {
  let q = "/api/v1/tree/" + browse.id + "?limit=" + BROWSE_PAGE +
    "&path=" + encodeURIComponent(browse.path);
  if (browse.next) q += "&after=" + browse.next;
  const page = await api(q);
  const body = $("entries");
  for (const e of page.entries) body.appendChild(entryRow(e));
  browse.shown += page.entries.length;
  browse.next = page.next;
  $("browse-more").classList.toggle("hidden", !page.next);
  $("browse-count").textContent = "(" + browse.shown + (page.next ? "+" : "") + " entries)";
  if (!browse.shown) emptyRow(body, 5, "empty folder");
}

async function browseOpen(id, path) {
  browse.id = id;
  browse.path = path;
  browse.next = null;
  browse.shown = 0;
  $("browse").classList.remove("hidden");
  $("browse-id").textContent = id.slice(0, 16);
  $("browse-error").textContent = "";
  $("entries").replaceChildren();
  showCrumbs(path);
  document.body.dataset.browse = "loading";
  try {
    await browsePage();
    document.body.dataset.browse = "ready";
    $("browse").scrollIntoView();
  } catch (e) {
    $("browse-error").textContent = "error: " + e.message;
    document.body.dataset.browse = "error";
  }
}

// A link cannot carry the token: a ticket for this one download, minted
// with the token, goes in the URL instead (docs/SECURITY.md).
async function download(path, kind) {
  $("browse-error").textContent = "";
  try {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const r = await fetch("/api/v1/tickets/" + browse.id, {
      method: "POST", cache: "no-store",
      headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
      body: JSON.stringify({ path: path, kind: kind }),
    });
    const body = await r.json();
    if (!r.ok) throw new Error(body && body.error ? body.error : "HTTP " + r.status);
    const a = document.createElement("a");
    a.href = body.url;
    a.download = "";
    document.body.appendChild(a);
    a.click();
    a.remove();
  } catch (e) {
    $("browse-error").textContent = "error: " + e.message;
  }
}

$("browse-more").addEventListener("click", () => {
  browsePage().catch((e) => { $("browse-error").textContent = "error: " + e.message; });
});
$("browse-tar").addEventListener("click", () => download(browse.path, "tar"));
$("browse-close").addEventListener("click", () => {
  $("browse").classList.add("hidden");
  browse.id = null;
});

// Replication (GET /api/v1/sync, docs/REPLICATION.md): shown once a sync
// is configured or has run; null for a client token.
function showSync(s) {
  const show = !!s && (s.configured || !!s.last);
  $("sync-section").classList.toggle("hidden", !show);
  if (!show) return;
  const body = $("sync");
  body.replaceChildren();
  const tr = document.createElement("tr");
  const last = s.last;
  cell(tr, (last && last.from) || s.from || "-");
  const ago = last ? Date.now() / 1000 - last.finished_unix : null;
  const when = cell(tr, last ? age(ago) : "not yet", "age", ago);
  if (last) when.title = shortTime(last.finished);
  const res = cell(tr, last ? last.result : "-", last ? "result-" + (last.result === "ok" ? "ok" : "failed") : null);
  if (last && last.error) res.title = last.error;
  cell(tr, last ? String(last.snapshots_copied) : "-", "num", last ? last.snapshots_copied : null);
  cell(tr, last ? bytes(last.bytes_copied) : "-", "num", last ? last.bytes_copied : null);
  cell(tr, s.lag_seconds === null ? "-" : duration(s.lag_seconds), "num lag", s.lag_seconds);
  body.appendChild(tr);
}

// ---- loading ----

let timer = null;
const SNAPSHOTS_SHOWN = 50;

async function load() {
  document.body.dataset.state = "loading";
  $("error").textContent = "";
  try {
    const [stats, hist, sessions, snaps] = await Promise.all([
      api("/api/v1/stats"), api("/api/v1/history?days=30"),
      api("/api/v1/sessions"),
      api("/api/v1/snapshots?order=newest&limit=" + SNAPSHOTS_SHOWN),
    ]);
    // The clients table is an admin's: a client token does not ask (the
    // 403 would only litter the console).
    let clients = null, sync = null;
    const clientsWhy = "The clients table needs an admin token; this one belongs to a client.";
    if (stats.scope !== "client") {
      try {
        [clients, sync] = await Promise.all([api("/api/v1/clients"), api("/api/v1/sync")]);
      } catch (e) {
        if (!(e instanceof HttpError) || e.status !== 403) throw e;
      }
    }
    showStats(stats);
    showChart(hist);
    showProgress(sessions);
    if (clients) showClients(clients); else hideClients(clientsWhy);
    showSync(sync);
    showSnapshots(snaps);
    $("login").classList.add("hidden");
    $("app").classList.remove("hidden");
    $("signout").classList.remove("hidden");
    $("updated").textContent = "updated " + clockUTC(new Date());
    document.body.dataset.state = "ready";
  } catch (e) {
    if (e instanceof HttpError && e.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin("The token was not accepted: " + e.message + ".");
      return;
    }
    $("error").textContent = "error: " + e.message;
    document.body.dataset.state = "error";
  }
}

function showLogin(message) {
  if (timer) { clearInterval(timer); timer = null; }
  $("app").classList.add("hidden");
  $("signout").classList.add("hidden");
  $("login").classList.remove("hidden");
  $("error").textContent = message || "";
  document.body.dataset.state = "login";
  $("token").focus();
}

function start() {
  load();
  if (!timer) {
    timer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
  }
}

function health() {
  fetch("/api/v1/health", { cache: "no-store" }).then((r) => r.json()).then((h) => {
    $("version").textContent = "version " + h.version;
    if (h.repository) {
      $("token-cmd").textContent = "dedup-server token add --repo " + shellWord(h.repository) + " --admin NAME";
    }
    const pill = $("health");
    pill.textContent = h.writable ? "repository writable" : "repository NOT writable";
    pill.className = "pill " + (h.writable ? "ok" : "bad");
  }).catch(() => {});
}

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const t = $("token").value.trim();
  $("token").value = "";
  if (!t) return;
  sessionStorage.setItem(TOKEN_KEY, t);
  start();
});

$("signout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin("Signed out.");
});

takeTokenFromFragment();
health();
if (sessionStorage.getItem(TOKEN_KEY)) start(); else showLogin();
