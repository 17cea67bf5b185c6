// The EdgeEru console: everything comes from eru-core's JSON API (/console/api) with the operator's token, which is kept
// for this tab only (sessionStorage) and sent as Authorization: Bearer. Workloads and nodes follow the watch streams
// (server-sent events read with fetch, since EventSource cannot send the header). The page shows only the actions the
// token's scopes allow; the API checks them again (the same scope table as the gRPC API).
import { graph, css } from "/console/rule-graph.js";

document.head.append(Object.assign(document.createElement("style"), { textContent: css }));
const $ = id => document.getElementById(id);
const tokenKey = "eru-console-token";
let token = sessionStorage.getItem(tokenKey);
const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) { token = fromHash; sessionStorage.setItem(tokenKey, token); history.replaceState(null, "", location.pathname); }

let scopes = [];
let selected = null; // the app shown in detail
const workloads = new Map(); // id -> workload, as the watch brings them
const nodes = new Map();
let session = new AbortController(); // ends the watches and the log follow on log out
let logs = null; // the follow's AbortController

function el(name, attrs, ...children) {
  const e = document.createElement(name);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}

const can = app => scopes.includes("admin") || scopes.includes("deploy:" + app);
const setStatus = (text, error) => { $("status").textContent = text; $("status").className = error ? "error" : ""; };

class ApiError extends Error {
  constructor(status, body) { super(body?.error || `HTTP ${status}`); this.status = status; this.body = body; }
}

async function api(path, options = {}) {
  const headers = { Authorization: "Bearer " + token, ...(options.body ? { "Content-Type": "application/json" } : {}) };
  const resp = await fetch("/console/api" + path, { ...options, headers, signal: options.signal ?? session.signal });
  const body = await resp.json().catch(() => null);
  if (resp.status === 401) { logout("the token was refused: " + (body?.error ?? "")); throw new ApiError(401, body); }
  if (!resp.ok) throw new ApiError(resp.status, body);
  return body;
}

// Server-sent events over fetch: calls onEvent with each data message (parsed JSON); an "error" event throws.
async function stream(path, signal, onEvent) {
  const resp = await fetch("/console/api" + path, { headers: { Authorization: "Bearer " + token }, signal });
  if (resp.status === 401) { logout("the token was refused"); return; }
  if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => null));
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (!data) continue;
      const message = JSON.parse(data);
      if (kind === "error") throw new ApiError(0, message);
      onEvent(message);
    }
  }
}

// A watch kept open: reset/put/deleted/synced into a map, rendered when synced; again after a break, from the revision.
async function watch(path, map, keyOf, render) {
  let since = 0, changed = false; // rendered only when a batch changed something (every snapshot ends in synced)
  while (!session.signal.aborted) {
    try {
      await stream(path + (since ? (path.includes("?") ? "&" : "?") + "since=" + since : ""), session.signal, e => {
        if (e.reset) { map.clear(); changed = true; }
        else if (e.put) { map.set(keyOf(e.put), e.put); changed = true; }
        else if (e.deleted) { map.delete(e.deleted); changed = true; }
        else if (e.synced) {
          since = Number(e.revision);
          if (changed) { changed = false; render(); }
          setStatus(`registry revision ${e.revision}`);
        }
      });
    } catch (err) {
      if (session.signal.aborted) return;
      setStatus(`${path}: ${err.message}; trying again`, true);
    }
    await new Promise(r => setTimeout(r, 2000));
  }
}

function bar(used, total) {
  const share = total > 0 ? Math.min(1, used / total) : 0;
  const b = el("span", { class: "bar" + (share > 0.85 ? " high" : ""), role: "meter", "aria-valuenow": Math.round(share * 100) });
  b.append(el("span", { style: `width:${(share * 100).toFixed(1)}%` }));
  return b;
}

const mib = bytes => `${Math.round(Number(bytes) / (1 << 20))} MiB`;

function renderNodes() {
  const body = $("nodes").tBodies[0];
  body.replaceChildren(...[...nodes.values()].sort((a, b) => a.name.localeCompare(b.name)).map(n => {
    const cap = n.capacity || {}, pieces = (cap.cpuCores || 0) * (cap.piecesPerCore || 100);
    return el("tr", { "data-node": n.name, "data-alive": String(n.alive) },
      el("td", {}, n.name), el("td", {}, n.pod),
      el("td", { class: "alive " + (n.alive ? "yes" : "no") }, n.alive ? "alive" : "down"),
      el("td", { class: "schedulable " + (n.unschedulable ? "no" : "yes") }, n.unschedulable ? "no" : "yes"),
      el("td", { class: "count" }, n.workloads),
      el("td", { class: "memory" }, bar(Number(n.memoryUsedBytes), Number(cap.memoryBytes)),
        el("small", {}, `${mib(n.memoryUsedBytes)} of ${mib(cap.memoryBytes)}`)),
      el("td", { class: "cpu" }, bar(n.piecesUsed, pieces), el("small", {}, `${(n.piecesUsed / 100).toFixed(2)} of ${cap.cpuCores} cores`)),
      el("td", {}, [n.address, n.address6].filter(Boolean).join(" ")));
  }));
}

function renderWorkloads() {
  const byApp = new Map();
  for (const w of workloads.values()) (byApp.get(w.app) ?? byApp.set(w.app, []).get(w.app)).push(w);
  const groups = [...byApp.keys()].sort().map(app => {
    const rows = byApp.get(app).sort((a, b) => a.entrypoint.localeCompare(b.entrypoint) || a.name.localeCompare(b.name));
    const head = el("tr", {}, ...["workload", "entrypoint", "node", "address", "tags", "state", ""].map(h => el("th", {}, h)));
    const table = el("table", { "data-app": app }, head, ...rows.map(w => workloadRow(w)));
    const live = rows.filter(w => w.live).length;
    const open = el("a", { class: "open", "data-app": app }, app);
    open.addEventListener("click", () => select(app));
    return el("div", { class: "app-group", "data-app": app }, el("h3", {}, open, ` ${live}/${rows.length} live`), table);
  });
  $("workloads").replaceChildren(...(groups.length ? groups : [el("p", {}, "no workloads")]));
  if (selected) { renderScale(); refreshApp(); }
}

// The app's panel follows the workloads too (DNS names and LB backends count live instances), at most every 2 s.
let refreshing = null;
function refreshApp() {
  if (refreshing) return;
  refreshing = setTimeout(() => { refreshing = null; if (selected) loadApp(selected); }, 2000);
}

function workloadRow(w) {
  const address = Object.values(w.networks || {}).concat(Object.values(w.networks6 || {})).join(" ");
  const state = w.live ? "live" : (w.reason || "not live");
  const actions = el("td", { class: "actions" });
  if (can(w.app)) {
    for (const [label, action] of [["Stop", "stop"], ["Start", "start"], ["Restart", "restart"]])
      actions.append(button(label, "action-" + action,
        () => act(`${action} ${w.name}`, "/workloads/control", { action, workloads: [w.id] })));
    actions.append(button("Remove", "action-remove danger", () => act(`remove ${w.name}`, "/workloads/remove", { workloads: [w.id] })));
  }
  return el("tr", { "data-workload": w.id, "data-name": w.name, "data-live": String(w.live) },
    el("td", { class: "name" }, w.name), el("td", {}, w.entrypoint), el("td", { class: "node" }, w.node),
    el("td", { class: "address" }, address), el("td", {}, (w.tags || []).join(", ")),
    el("td", { class: "state", title: w.reason || "" }, state), actions);
}

function button(label, cls, onClick) {
  const b = el("button", { type: "button", class: cls }, label);
  b.addEventListener("click", onClick);
  return b;
}

function confirmed(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  return new Promise(resolve => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

// A mutating call, after the operator confirms it; the answer (or the refusal, in the API's words) is shown.
async function act(what, path, body) {
  if (!(await confirmed(`Really ${what}?`))) return;
  const result = $("action-result");
  result.className = ""; result.textContent = `${what}…`;
  try {
    const events = await api(path, { method: "POST", body: JSON.stringify(body) });
    result.textContent = `${what}: ${describe(events)}`;
  } catch (err) {
    result.className = "error"; result.textContent = `${what}: refused (${err.status}): ${err.message}`;
  }
  if (selected) loadApp(selected);
}

function describe(events) {
  const summary = events.find(e => e.summary)?.summary;
  if (summary) return `${summary.created} created, ${summary.failed} failed`;
  const failed = events.filter(e => e.error).map(e => `${e.name}: ${e.error}`);
  return failed.length ? failed.join("; ") : `${events.length} done`;
}

function specBody() {
  const list = v => v.split(",").map(s => s.trim()).filter(Boolean);
  const memory = $("memory").value.trim();
  return {
    spec: $("spec").value, entrypoint: $("entrypoint").value.trim() || undefined, pod: $("pod").value.trim(),
    count: Number($("count").value), network: $("network").value.trim() || undefined,
    tags: list($("tags").value), env: list($("env").value), memoryBytes: memory ? Number(memory) * 1048576 : undefined,
  };
}

function renderScale() {
  // Scale per entrypoint: up with the spec above (a deploy of the difference), down by removing the newest instances.
  let box = $("scale");
  if (!box) { box = el("div", { id: "scale" }); $("deploy").after(box); }
  const app = selected, mine = [...workloads.values()].filter(w => w.app === app);
  const eps = [...new Set(mine.map(w => w.entrypoint))].sort();
  box.replaceChildren(...(!can(app) ? [] : eps.map(ep => {
    const count = mine.filter(w => w.entrypoint === ep).length;
    const input = el("input", { type: "number", min: "0", max: "100", value: String(count), "data-entrypoint": ep, class: "scale-to" });
    return el("p", {}, `${ep}: ${count} instance(s); scale to `, input, " ",
      button("Scale", "do-scale", () => scale(ep, Number(input.value))));
  })));
}

async function scale(entrypoint, target) {
  const mine = [...workloads.values()].filter(w => w.app === selected && w.entrypoint === entrypoint)
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  if (target > mine.length) {
    const body = { ...specBody(), entrypoint, count: target - mine.length };
    await act(`deploy ${body.count} more of ${selected}.${entrypoint}`, `/apps/${selected}/deploy`, body);
  } else if (target < mine.length) {
    const gone = mine.slice(0, mine.length - target);
    await act(`remove ${gone.map(w => w.name).join(", ")}`, "/workloads/remove", { workloads: gone.map(w => w.id) });
  }
}

function fill(tableId, rows) {
  $(tableId).tBodies[0].replaceChildren(...rows);
}

function note(tableId, text) {
  fill(tableId, [el("tr", {}, el("td", { colspan: 6, class: "note" }, text))]);
}

async function loadApp(app) {
  const part = async (fn, tableId) => { try { await fn(); } catch (err) { if (tableId) note(tableId, err.message); } };
  await Promise.all([
    part(async () => {
      const h = await api(`/apps/${app}/history`);
      if (h.entries.length === 0) return note("history", h.note ?? "nothing recorded");
      fill("history", h.entries.map(e => el("tr", { "data-method": e.method, "data-outcome": e.outcome },
        el("td", {}, e.time), el("td", {}, e.who), el("td", {}, e.method), el("td", {}, e.target ?? ""),
        el("td", {}, e.outcome + (e.error ? `: ${e.error}` : "")))));
    }, "history"),
    part(async () => {
      const d = await api(`/apps/${app}/dns`);
      fill("dns", d.names.map(n => el("tr", { "data-name": n.name },
        el("td", {}, n.name), el("td", {}, n.type), el("td", {}, n.what), el("td", {}, n.live))));
    }, "dns"),
    part(async () => {
      const s = await api(`/ssh/sessions?app=${app}`);
      if (s.sessions.length === 0) return note("ssh", s.note ?? "no sessions");
      fill("ssh", s.sessions.map(e => el("tr", { "data-event": e.event },
        el("td", {}, e.time), el("td", {}, e.event), el("td", {}, e.user ?? ""), el("td", {}, e.ident ?? e.workload ?? e.target ?? ""),
        el("td", {}, e.command ?? ""), el("td", {}, e.outcome ?? e.reason ?? (e.exit_code ?? "")))));
    }, "ssh"),
    part(async () => {
      const domains = await api(`/lb/domains?app=${app}`);
      $("domains").replaceChildren(...(domains.length ? domains.map(d => el("section", { "data-domain": d.domain },
        el("h4", {}, d.domain), graph(d),
        el("ul", {}, ...d.backends.map(b => el("li", { "data-backend": b.node },
          `${b.node}: ${b.app}.${b.entrypoint}${b.tags.length ? " [" + b.tags.join(",") + "]" : ""}, ${b.live} live`)))))
        : [el("p", {}, "no LB domain routes to this app")]));
    }),
  ]);
}

function select(app) {
  if (logs) { logs.abort(); logs = null; $("follow").hidden = false; $("unfollow").hidden = true; }
  selected = app;
  $("app").hidden = false;
  $("app-name").textContent = app;
  $("logs").replaceChildren();
  for (const e of document.querySelectorAll(".needs-deploy")) e.hidden = !can(app);
  $("follow").hidden = !can(app); // an app's output is its deploy scope's, as with eru logs
  if (!can(app)) $("logs").append(el("div", { class: "note" }, `logs need scope deploy:${app}`));
  $("action-result").textContent = "";
  renderScale();
  loadApp(app);
}

async function follow() {
  const app = selected, pre = $("logs");
  logs = new AbortController();
  $("follow").hidden = true; $("unfollow").hidden = false;
  try {
    await stream(`/apps/${app}/logs?follow=1&tail=50`, logs.signal, e => {
      let line;
      if (e.note) line = el("div", { class: "note" }, e.note);
      else {
        const r = JSON.parse(e.record);
        line = el("div", { class: "line", "data-ident": r.ident ?? "" }, `${r.ident ?? ""} ${r.stream ?? ""} ${r.line ?? ""}`);
      }
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(line);
      while (pre.childElementCount > 2000) pre.firstElementChild.remove();
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    });
  } catch (err) {
    if (!logs?.signal.aborted) pre.append(el("div", { class: "note error" }, `logs: ${err.message}`));
  }
  $("follow").hidden = false; $("unfollow").hidden = true;
}

async function refreshPods() {
  try {
    const reply = await api("/pods");
    fill("pods", (reply.pods || []).map(p => el("tr", { "data-pod": p.name }, el("td", {}, p.name), el("td", {}, p.nodes),
      el("td", {}, p.description))));
  } catch (err) {
    note("pods", err.message);
  }
}

function logout(why) {
  session.abort(); session = new AbortController();
  token = null; sessionStorage.removeItem(tokenKey);
  $("main").hidden = true; $("logout").hidden = true; $("login").hidden = false; $("who").textContent = "";
  $("login-error").textContent = why ?? "";
  setStatus("logged out");
}

async function start() {
  if (!token) { logout(); return; }
  try {
    const me = await api("/whoami");
    scopes = me.scopes;
    $("who").textContent = `${me.name} (${me.scopes.join(", ")})`;
  } catch (err) {
    if (err.status !== 401) { logout(`the token cannot use the console: ${err.message}`); }
    return;
  }
  $("login").hidden = true; $("main").hidden = false; $("logout").hidden = false;
  refreshPods();
  watch("/watch/nodes", nodes, n => n.name, renderNodes);
  watch("/watch/workloads", workloads, w => w.id, renderWorkloads);
}

$("login").addEventListener("submit", ev => {
  ev.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem(tokenKey, token);
  start();
});
$("logout").addEventListener("click", () => logout());
$("follow").addEventListener("click", follow);
$("unfollow").addEventListener("click", () => { logs?.abort(); });
$("do-deploy").addEventListener("click", () => {
  const b = specBody();
  act(`deploy ${b.count} of ${selected}${b.entrypoint ? "." + b.entrypoint : ""}`, `/apps/${selected}/deploy`, b);
});
$("do-replace").addEventListener("click", () => {
  const b = specBody();
  act(`replace ${selected}${b.entrypoint ? "." + b.entrypoint : ""} by this spec`, `/apps/${selected}/replace`, b);
});
start();
