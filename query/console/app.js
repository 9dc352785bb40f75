// Sediment console: a dependency-free page over the query service's own APIs.
// Queries run through the Athena API (StartQueryExecution, GetQueryExecution,
// GetQueryResults, StopQueryExecution) exactly as a program would; the catalog
// comes from ListDatabases/ListTableMetadata and the lake's days from GET /v1/lake.
"use strict";

const PAGE_ROWS = 100;
const MAX_RESULT_ROWS = 100000;
const KEYWORDS = ("SELECT FROM WHERE GROUP BY ORDER HAVING LIMIT OFFSET AS AND OR NOT IN IS NULL LIKE BETWEEN " +
  "CASE WHEN THEN ELSE END JOIN LEFT RIGHT FULL INNER OUTER CROSS ON USING UNION ALL DISTINCT WITH " +
  "ASC DESC NULLS FIRST LAST OVER PARTITION ROWS RANGE PRECEDING FOLLOWING CURRENT ROW UNBOUNDED " +
  "CAST TRY_CAST TRUE FALSE DATE TIMESTAMP INTERVAL EXISTS VALUES SHOW TABLES COLUMNS DESCRIBE EXPLAIN " +
  "INTERSECT EXCEPT UNNEST LATERAL FETCH NEXT ONLY TABLESAMPLE AT TIME ZONE").split(" ");
const FUNCTIONS = ("count sum avg min max approx_distinct approx_percentile count_if arbitrary array_agg " +
  "json_extract json_extract_scalar json_format json_parse date_trunc date_add date_diff date_format date_parse " +
  "from_iso8601_timestamp to_iso8601 from_unixtime to_unixtime current_date current_timestamp now year month day hour " +
  "coalesce nullif if greatest least round floor ceil abs lower upper length substr concat split regexp_like " +
  "regexp_extract regexp_replace cardinality element_at contains row_number rank dense_rank lag lead").split(" ");
const KW = new Set(KEYWORDS);

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") n.className = v;
    else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) n.setAttribute(k, v);
  }
  for (const k of kids.flat()) n.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return n;
};
const store = {
  get: (k, d) => { try { return JSON.parse(localStorage.getItem("sediment." + k)) ?? d; } catch { return d; } },
  set: (k, v) => localStorage.setItem("sediment." + k, JSON.stringify(v)),
};

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, type, message) { super(message); this.status = status; this.type = type; }
}

function authHeaders() {
  const key = sessionStorage.getItem("sediment.apiKey") || store.get("apiKey", "");
  return key ? { Authorization: "Bearer " + key } : {};
}

async function athena(operation, body = {}) {
  const resp = await fetch("/", {
    method: "POST",
    headers: { "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AmazonAthena." + operation, ...authHeaders() },
    body: JSON.stringify(body),
  });
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const type = data.__type || (data.error && data.error.type) || String(resp.status);
    const message = data.Message || data.message || (data.error && data.error.message) || resp.statusText;
    if (resp.status === 401 || resp.status === 403) askForKey(message);
    throw new ApiError(resp.status, type, message);
  }
  return data;
}

async function rest(path) {
  const resp = await fetch(path, { headers: authHeaders() });
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    if (resp.status === 401) askForKey(data.error && data.error.message);
    throw new ApiError(resp.status, "Http" + resp.status, (data.error && data.error.message) || resp.statusText);
  }
  return data;
}

function askForKey(reason) {
  const dlg = $("#key-dialog") || document.body.appendChild(el("dialog", { id: "key-dialog" },
    el("form", { method: "dialog" },
      el("p", { id: "key-reason" }),
      el("label", {}, "API key ", el("input", { id: "key-input", type: "password", autocomplete: "off" })),
      el("p", {}, el("label", {}, el("input", { id: "key-remember", type: "checkbox" }), " remember on this browser")),
      el("menu", {}, el("button", { value: "ok", class: "primary" }, "Use key"), " ", el("button", { value: "cancel" }, "Cancel")))));
  $("#key-reason").textContent = reason || "Enter the API key of this query service.";
  dlg.onclose = () => {
    if (dlg.returnValue !== "ok") return;
    const key = $("#key-input").value.trim();
    sessionStorage.setItem("sediment.apiKey", key);
    store.set("apiKey", $("#key-remember").checked ? key : "");
    loadCatalog();
  };
  if (!dlg.open) dlg.showModal();
}

// ---------------------------------------------------------------- catalog

const catalog = { database: "default", tables: [], columns: new Set() };

async function loadCatalog() {
  try {
    const dbs = await athena("ListDatabases", { CatalogName: "AwsDataCatalog" });
    const sel = $("#database");
    const current = store.get("database", "default");
    sel.replaceChildren(...dbs.DatabaseList.map((d) => el("option", { value: d.Name }, d.Name)));
    sel.value = dbs.DatabaseList.some((d) => d.Name === current) ? current : dbs.DatabaseList[0].Name;
    catalog.database = sel.value;
    const meta = await athena("ListTableMetadata", { CatalogName: "AwsDataCatalog", DatabaseName: catalog.database, MaxResults: 50 });
    catalog.tables = meta.TableMetadataList;
    catalog.columns = new Set(catalog.tables.flatMap((t) => [...t.Columns, ...t.PartitionKeys].map((c) => c.Name)));
    renderTables();
    highlight();
  } catch (e) {
    $("#tables").replaceChildren(el("li", { class: "muted" }, "Could not load the catalog: " + e.message));
  }
  loadLake();
}

function renderTables() {
  const ul = $("#tables");
  ul.replaceChildren(...catalog.tables.map((t) => {
    const kind = t.TableType === "VIRTUAL_VIEW" ? "view" : "table";
    const cols = [...t.PartitionKeys.map((c) => ({ ...c, part: true })), ...t.Columns];
    const details = el("div", { class: "details" },
      el("div", { class: "actions" },
        el("button", { type: "button", onclick: () => setSql(`SELECT *\nFROM ${t.Name}\nLIMIT 100`, true) }, "Preview"),
        el("button", { type: "button", onclick: () => insertAtCursor(t.Name) }, "Insert name")),
      ...cols.map((c) => el("div", { class: "col" + (c.part ? " partition-key" : ""), title: "Click to insert", onclick: () => insertAtCursor(c.Name) },
        el("span", { class: "name" }, c.Name), el("span", { class: "type" }, c.Type))),
      el("div", { class: "partitions", "data-table": t.Name }));
    const li = el("li", { "data-table": t.Name },
      el("div", { class: "table", onclick: () => { li.classList.toggle("open"); if (li.classList.contains("open")) loadPartitions(t); } },
        el("span", { class: "caret" }, "▸"), el("span", { class: "tname" }, t.Name), el("span", { class: "kind" }, kind)),
      details);
    return li;
  }));
}

let lakeStatus = null;

async function loadLake() {
  try {
    lakeStatus = await rest("/v1/lake");
    const f = $("#freshness");
    if (lakeStatus.newest_raw) {
      const lag = (Date.parse(lakeStatus.now) - Date.parse(lakeStatus.newest_raw)) / 1000;
      f.textContent = `newest data landed ${fmtAgo(lag)} · ${lakeStatus.days.length} days · ${lakeStatus.uncovered_files} hot files`;
      // Per-source lag: the newest record visible to SQL per stream shard or queue.
      const sources = lakeStatus.sources || [];
      if (sources.length) {
        const worst = sources.reduce((a, b) => (a.age_ms >= b.age_ms ? a : b));
        f.textContent += ` · ${sources.length} source(s), most behind: ${worst.source}${worst.shard ? "/" + worst.shard : ""} ${fmtAgo(worst.age_ms / 1000)}`;
        f.title = sources.map((s) => `${s.source}${s.shard ? "/" + s.shard : ""}: newest ${s.newest_position}, arrived ${fmtAgo(s.age_ms / 1000)}`).join("\n");
      }
    } else {
      f.textContent = "the lake is empty";
    }
    // The other doors: Postgres wire and Arrow Flight SQL, when served.
    const ep = lakeStatus.endpoints || {};
    const host = (a) => a.replace(/^(0\.0\.0\.0|\[::\])(?=:)/, location.hostname);
    const doors = [`Athena API ${location.origin}/`];
    if (ep.postgres) doors.push(`Postgres ${host(ep.postgres)}`);
    if (ep.flight_sql) doors.push(`Flight SQL grpc://${host(ep.flight_sql)}`);
    $("#endpoints").textContent = doors.join(" · ");
  } catch (e) {
    $("#freshness").textContent = "lake status unavailable: " + e.message;
  }
}

function fmtAgo(s) {
  if (s < 90) return Math.max(0, Math.round(s)) + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  if (s < 172800) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " days ago";
}

// Days of a table: for `events`, the lake's per-day state plus exact row counts
// (one GROUP BY through the Athena API); for projections and views, the
// partitions present with their row counts.
async function loadPartitions(t) {
  const box = document.querySelector(`.partitions[data-table="${t.Name}"]`);
  if (!box || box.dataset.loaded) return;
  const key = t.PartitionKeys[0];
  if (!key) return;
  box.dataset.loaded = "1";
  box.textContent = "loading partitions…";
  try {
    const res = await runToCompletion(`SELECT ${key.Name}, count(*) AS row_count FROM ${t.Name} GROUP BY ${key.Name} ORDER BY ${key.Name} DESC`);
    const counts = new Map(res.rows.map((r) => [r[0], r[1]]));
    const days = t.Name === "events" && lakeStatus ? new Map(lakeStatus.days.map((d) => [d.dt, d])) : new Map();
    const keys = [...new Set([...counts.keys(), ...days.keys()])].sort().reverse();
    const header = t.Name === "events" ? ["dt", "rows", "state", "raw files"] : [key.Name, "rows"];
    box.replaceChildren(el("table", { class: "partitions" },
      el("thead", {}, el("tr", {}, header.map((h) => el("th", {}, h)))),
      el("tbody", {}, keys.map((k) => {
        const d = days.get(k);
        const cells = [el("td", {}, k), el("td", { class: "num" }, counts.get(k) ?? "0")];
        if (t.Name === "events") {
          cells.push(el("td", {}, d ? el("span", { class: "badge " + d.state, title: d.last_compaction ? "compacted " + d.last_compaction : "not compacted yet" }, d.state) : ""));
          cells.push(el("td", { class: "num" }, d ? d.uncovered_files + "/" + d.raw_files : ""));
        }
        return el("tr", { "data-partition": k }, cells);
      }))));
  } catch (e) {
    box.textContent = "partitions unavailable: " + e.message;
    delete box.dataset.loaded;
  }
}

// ---------------------------------------------------------------- editor

const sqlBox = () => $("#sql");

function tokenize(text) {
  const re = /(--[^\n]*|\/\*[\s\S]*?(?:\*\/|$))|('(?:[^']|'')*'?)|("(?:[^"]|"")*"?)|(\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\b)|([A-Za-z_][A-Za-z0-9_$]*)|(\s+|.)/g;
  const out = [];
  let m;
  while ((m = re.exec(text))) {
    const [tok, cmt, str, quoted, num, word] = m;
    let cls = null;
    if (cmt) cls = "cmt";
    else if (str) cls = "str";
    else if (num) cls = "num";
    else if (quoted) cls = "id";
    else if (word) cls = KW.has(word.toUpperCase()) ? "kw" : catalog.tables.some((t) => t.Name === word.toLowerCase()) || catalog.columns.has(word) ? "id" : null;
    out.push([tok, cls, m.index]);
  }
  return out;
}

let errorSpan = null; // [start, end) of the text an error points at

function highlight() {
  const text = sqlBox().value;
  const pre = $("#highlight");
  pre.replaceChildren(...tokenize(text).map(([tok, cls, at]) => {
    const inErr = errorSpan && at < errorSpan[1] && at + tok.length > errorSpan[0];
    if (!cls && !inErr) return document.createTextNode(tok);
    return el("span", { class: [cls && "tok-" + cls, inErr && "tok-err"].filter(Boolean).join(" ") }, tok);
  }), document.createTextNode("\n"));
  pre.scrollTop = sqlBox().scrollTop;
}

function setSql(text, run = false) {
  sqlBox().value = text;
  errorSpan = null;
  highlight();
  sqlBox().focus();
  if (run) runQuery();
}

function insertAtCursor(text) {
  const t = sqlBox();
  const { selectionStart: s, selectionEnd: e } = t;
  t.setRangeText(text, s, e, "end");
  t.focus();
  highlight();
}

// Completion: keywords, functions, tables, and columns (of the tables named in
// the query first).
const completion = { items: [], index: 0, start: 0 };

function wordBeforeCursor() {
  const t = sqlBox();
  const before = t.value.slice(0, t.selectionStart);
  const m = /[A-Za-z_][A-Za-z0-9_]*$/.exec(before);
  return m ? { word: m[0], start: t.selectionStart - m[0].length } : { word: "", start: t.selectionStart };
}

function candidates(prefix) {
  const p = prefix.toLowerCase();
  const text = sqlBox().value.toLowerCase();
  const used = catalog.tables.filter((t) => new RegExp("\\b" + t.Name + "\\b").test(text));
  const cols = new Map();
  for (const t of [...used, ...catalog.tables]) for (const c of [...t.PartitionKeys, ...t.Columns]) if (!cols.has(c.Name)) cols.set(c.Name, used.includes(t) ? t.Name : "column");
  const all = [
    ...[...cols].map(([n, k]) => [n, k === "column" ? "column" : "column · " + k]),
    ...catalog.tables.map((t) => [t.Name, t.TableType === "VIRTUAL_VIEW" ? "view" : "table"]),
    ...FUNCTIONS.map((f) => [f, "function"]),
    ...KEYWORDS.map((k) => [k, "keyword"]),
  ];
  const seen = new Set();
  return all.filter(([n]) => n.toLowerCase().startsWith(p) && n.toLowerCase() !== p && !seen.has(n.toLowerCase()) && seen.add(n.toLowerCase())).slice(0, 40);
}

function showCompletions(force = false) {
  const { word, start } = wordBeforeCursor();
  const box = $("#completions");
  if (!force && word.length < 2) return hideCompletions();
  completion.items = candidates(word);
  completion.index = 0;
  completion.start = start;
  if (!completion.items.length) return hideCompletions();
  box.replaceChildren(...completion.items.map(([n, k], i) => el("li", { class: i === 0 ? "active" : "", onmousedown: (e) => { e.preventDefault(); completion.index = i; acceptCompletion(); } },
    el("span", {}, n), el("span", { class: "k" }, k))));
  const pos = caretCoordinates();
  box.style.left = pos.left + "px";
  box.style.top = pos.top + "px";
  box.hidden = false;
}

function hideCompletions() { $("#completions").hidden = true; completion.items = []; }

function acceptCompletion() {
  const [name] = completion.items[completion.index];
  const t = sqlBox();
  const upper = KW.has(name) && /[a-z]/.test(t.value.slice(completion.start, t.selectionStart)) ? name.toLowerCase() : name;
  t.setRangeText(upper, completion.start, t.selectionStart, "end");
  hideCompletions();
  highlight();
}

// Pixel position of the caret, measured with a mirror of the textarea.
function caretCoordinates() {
  const t = sqlBox();
  const style = getComputedStyle(t);
  const mirror = el("div");
  for (const p of ["fontFamily", "fontSize", "lineHeight", "paddingTop", "paddingLeft", "paddingRight", "whiteSpace", "overflowWrap", "tabSize"]) mirror.style[p] = style[p];
  Object.assign(mirror.style, { position: "absolute", visibility: "hidden", width: t.clientWidth + "px", top: "0", left: "0" });
  mirror.textContent = t.value.slice(0, t.selectionStart);
  const mark = el("span", {}, "\u200b");
  mirror.append(mark);
  t.parentNode.append(mirror);
  const pos = { left: mark.offsetLeft, top: mark.offsetTop + parseFloat(style.lineHeight) - t.scrollTop };
  mirror.remove();
  return pos;
}

// ---------------------------------------------------------------- running

let current = null; // { id, cancelled }

async function runToCompletion(sql, onState) {
  const start = await athena("StartQueryExecution", {
    QueryString: sql,
    QueryExecutionContext: { Database: catalog.database, Catalog: "AwsDataCatalog" },
    WorkGroup: "primary",
  });
  const id = start.QueryExecutionId;
  if (onState) onState({ id, state: "QUEUED" });
  let exec;
  for (let delay = 50; ; delay = Math.min(delay * 1.5, 500)) {
    exec = (await athena("GetQueryExecution", { QueryExecutionId: id })).QueryExecution;
    if (onState) onState({ id, state: exec.Status.State, exec });
    if (["SUCCEEDED", "FAILED", "CANCELLED"].includes(exec.Status.State)) break;
    await new Promise((r) => setTimeout(r, delay));
  }
  if (exec.Status.State !== "SUCCEEDED") {
    const err = new ApiError(400, exec.Status.State, exec.Status.StateChangeReason || exec.Status.State);
    err.exec = exec;
    throw err;
  }
  let columns = null;
  const rows = [];
  let token;
  do {
    const page = await athena("GetQueryResults", { QueryExecutionId: id, MaxResults: 1000, ...(token ? { NextToken: token } : {}) });
    if (!columns) columns = page.ResultSet.ResultSetMetadata.ColumnInfo.map((c) => ({ name: c.Name, type: c.Type }));
    const data = page.ResultSet.Rows.map((r) => r.Data.map((d) => ("VarCharValue" in d ? d.VarCharValue : null)));
    rows.push(...(token ? data : data.slice(1)));
    token = page.NextToken;
  } while (token && rows.length < MAX_RESULT_ROWS);
  return { id, exec, columns, rows, truncated: Boolean(token) };
}

function fmtBytes(n) {
  if (n == null) return "";
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

function setStatus(state, text) {
  const s = $("#status");
  s.dataset.state = state;
  s.textContent = text;
}

async function runQuery() {
  if (current) return;
  const t = sqlBox();
  const selected = t.value.slice(t.selectionStart, t.selectionEnd).trim();
  const sql = (selected || t.value).trim().replace(/;\s*$/, "");
  if (!sql) return;
  hideCompletions();
  errorSpan = null;
  highlight();
  $("#error").hidden = true;
  const started = performance.now();
  current = { id: null, cancelled: false };
  $("#run").disabled = true;
  $("#cancel").disabled = false;
  const ticker = setInterval(() => {
    if (current) setStatus(current.state || "QUEUED", `${current.state || "QUEUED"} · ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }, 100);
  const entry = { sql, at: new Date().toISOString(), database: catalog.database };
  try {
    const res = await runToCompletion(sql, ({ id, state }) => { current.id = id; current.state = state; });
    const st = res.exec.Statistics || {};
    const elapsed = st.TotalExecutionTimeInMillis ?? Math.round(performance.now() - started);
    setStatus("SUCCEEDED", `SUCCEEDED · ${res.rows.length}${res.truncated ? "+" : ""} rows · ${(elapsed / 1000).toFixed(2)} s · ${fmtBytes(st.DataScannedInBytes || 0)} scanned`);
    Object.assign(entry, { state: "SUCCEEDED", rows: res.rows.length, ms: elapsed, bytes: st.DataScannedInBytes || 0 });
    showResult(res);
  } catch (e) {
    const state = e.type === "CANCELLED" ? "CANCELLED" : "FAILED";
    setStatus(state, `${state} · ${((performance.now() - started) / 1000).toFixed(1)} s`);
    Object.assign(entry, { state, error: e.message });
    if (state === "FAILED") showError(e.message, sql, t.value.indexOf(sql));
  } finally {
    clearInterval(ticker);
    current = null;
    $("#run").disabled = false;
    $("#cancel").disabled = true;
    addHistory(entry);
  }
}

async function cancelQuery() {
  if (!current || !current.id) return;
  current.cancelled = true;
  $("#cancel").disabled = true;
  try { await athena("StopQueryExecution", { QueryExecutionId: current.id }); } catch (e) { showError("could not cancel: " + e.message); }
}

// Where the engine names a position ("Line: 1, Column: 8", or Trino's
// "line 1:8"), point at it in the editor.
function showError(message, sql, offset = 0) {
  const box = $("#error");
  box.replaceChildren(el("strong", {}, "Error: "), message);
  const m = /[Ll]ine:? (\d+)(?:, [Cc]olumn:? |:)(\d+)/.exec(message);
  if (m && sql) {
    const line = +m[1], column = +m[2];
    const lines = sql.split("\n");
    if (line >= 1 && line <= lines.length) {
      let at = offset + lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0) + Math.max(0, column - 1);
      const word = /^[^\s,()]+/.exec(sqlBox().value.slice(at));
      errorSpan = [at, at + (word ? word[0].length : 1)];
      box.append(el("span", { class: "where" }, `at line ${line}, column ${column}: `, el("code", {}, lines[line - 1])));
      highlight();
    }
  }
  box.hidden = false;
}

// ---------------------------------------------------------------- results

const result = { columns: [], rows: [], page: 0, sort: null };
const NUMERIC = /^(tinyint|smallint|integer|bigint|real|double|decimal)/;

function showResult(res) {
  Object.assign(result, { columns: res.columns, rows: res.rows, page: 0, sort: null });
  $("#csv").disabled = false;
  renderGrid();
  fillChartControls();
  renderChart();
}

function compareCells(a, b, numeric) {
  if (a === null) return b === null ? 0 : 1;
  if (b === null) return -1;
  if (numeric) return Number(a) - Number(b);
  return a < b ? -1 : a > b ? 1 : 0;
}

function renderGrid() {
  const grid = $("#grid");
  const { columns, rows } = result;
  if (!columns.length) { grid.replaceChildren(el("div", { class: "empty" }, "No columns.")); return; }
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_ROWS));
  result.page = Math.min(result.page, pages - 1);
  const from = result.page * PAGE_ROWS;
  const slice = rows.slice(from, from + PAGE_ROWS);
  const head = el("tr", {}, el("th", { class: "rownum" }, "#"), columns.map((c, i) => el("th", {
    "data-col": c.name,
    "aria-sort": result.sort && result.sort.col === i ? (result.sort.dir > 0 ? "ascending" : "descending") : null,
    onclick: () => sortBy(i),
  }, c.name, el("span", { class: "type" }, c.type))));
  const body = slice.map((r, k) => el("tr", {}, el("td", { class: "rownum" }, from + k + 1), r.map((v, i) =>
    el("td", { class: NUMERIC.test(columns[i].type) ? "num" : "", title: v ?? "NULL" }, v === null ? el("span", { class: "null" }, "NULL") : v))));
  grid.replaceChildren(rows.length ? el("table", {}, el("thead", {}, head), el("tbody", {}, body)) : el("div", { class: "empty" }, "The query returned no rows."));
  $("#pager").hidden = pages <= 1;
  $("#page-info").textContent = `rows ${rows.length ? from + 1 : 0}–${from + slice.length} of ${rows.length} · page ${result.page + 1} of ${pages}`;
  $("#prev").disabled = result.page === 0;
  $("#next").disabled = result.page >= pages - 1;
}

function sortBy(i) {
  const dir = result.sort && result.sort.col === i ? -result.sort.dir : 1;
  const numeric = NUMERIC.test(result.columns[i].type);
  result.rows = result.rows.map((r, k) => [r, k]).sort((a, b) => dir * compareCells(a[0][i], b[0][i], numeric) || a[1] - b[1]).map(([r]) => r);
  result.sort = { col: i, dir };
  result.page = 0;
  renderGrid();
}

function toCsv() {
  const q = (v) => (v === null ? "" : /[",\n\r]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v);
  return [result.columns.map((c) => q(c.name)).join(","), ...result.rows.map((r) => r.map(q).join(","))].join("\n") + "\n";
}

function downloadCsv() {
  const a = el("a", { href: URL.createObjectURL(new Blob([toCsv()], { type: "text/csv" })), download: "sediment-result.csv" });
  document.body.append(a);
  a.click();
  a.remove();
}

// ---------------------------------------------------------------- chart

function fillChartControls() {
  const names = result.columns.map((c) => c.name);
  const numeric = result.columns.filter((c) => NUMERIC.test(c.type)).map((c) => c.name);
  const firstOther = result.columns.find((c) => !NUMERIC.test(c.type));
  $("#chart-x").replaceChildren(...names.map((n) => el("option", { value: n }, n)));
  $("#chart-y").replaceChildren(...(numeric.length ? numeric : names).map((n) => el("option", { value: n }, n)));
  $("#chart-x").value = firstOther ? firstOther.name : names[0];
  const y = numeric.find((n) => n !== $("#chart-x").value);
  if (y) $("#chart-y").value = y;
  if (firstOther && /^(date|timestamp)/.test(firstOther.type)) $("#chart-type").value = "line";
}

function renderChart() {
  const box = $("#chart");
  const xi = result.columns.findIndex((c) => c.name === $("#chart-x").value);
  const yi = result.columns.findIndex((c) => c.name === $("#chart-y").value);
  if (xi < 0 || yi < 0 || !result.rows.length) { box.replaceChildren(el("div", { class: "muted" }, "Run a query with a numeric column to chart it.")); return; }
  const pts = result.rows.slice(0, 500).map((r) => [r[xi] ?? "NULL", Number(r[yi])]).filter(([, y]) => Number.isFinite(y));
  const ns = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs = {}, text) => { const n = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); if (text !== undefined) n.textContent = text; return n; };
  const W = 900, H = 320, L = 70, R = 20, T = 16, B = 60;
  const maxY = Math.max(0, ...pts.map((p) => p[1])), minY = Math.min(0, ...pts.map((p) => p[1]));
  const span = maxY - minY || 1;
  const yOf = (v) => T + (H - T - B) * (1 - (v - minY) / span);
  const step = (W - L - R) / Math.max(1, pts.length);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${result.columns[yi].name} by ${result.columns[xi].name}`, "data-points": pts.length });
  root.append(svg("line", { class: "axis", x1: L, y1: yOf(0), x2: W - R, y2: yOf(0) }), svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
  for (let k = 0; k <= 4; k++) {
    const v = minY + (span * k) / 4;
    root.append(svg("text", { x: L - 6, y: yOf(v) + 4, "text-anchor": "end" }, Math.abs(v) >= 1e9 ? v.toExponential(2) : v.toLocaleString("en-US", { maximumFractionDigits: 2 })));
  }
  const labelEvery = Math.ceil(pts.length / 20);
  const type = $("#chart-type").value;
  pts.forEach(([x, y], i) => {
    const cx = L + step * (i + 0.5);
    if (type === "bar") root.append(svg("rect", { class: "bar", x: cx - step * 0.4, width: step * 0.8, y: Math.min(yOf(y), yOf(0)), height: Math.abs(yOf(0) - yOf(y)) }, undefined));
    else root.append(svg("circle", { class: "dot", cx, cy: yOf(y), r: 3 }));
    if (i % labelEvery === 0) root.append(svg("text", { x: cx, y: H - B + 14, "text-anchor": "end", transform: `rotate(-35 ${cx} ${H - B + 14})` }, String(x).slice(0, 16)));
  });
  if (type === "line") root.append(svg("polyline", { class: "line", points: pts.map(([, y], i) => `${L + step * (i + 0.5)},${yOf(y)}`).join(" ") }));
  box.replaceChildren(root);
}

// ---------------------------------------------------------------- history, saved, examples

const EXAMPLES = [
  ["Events per day", "SELECT dt, count(*) AS events\nFROM events\nGROUP BY dt\nORDER BY dt"],
  ["Event types", "SELECT event_type, count(*) AS events\nFROM events\nGROUP BY event_type\nORDER BY events DESC"],
  ["Revenue per day", "SELECT dt, sum(CAST(json_extract_scalar(payload, '$.amount') AS double)) AS revenue\nFROM events\nWHERE event_type = 'PaymentReceived'\nGROUP BY dt\nORDER BY dt"],
  ["Orders by status (now)", "SELECT status, count(*) AS orders\nFROM orders_current\nGROUP BY status\nORDER BY orders DESC"],
  ["Last hour", "SELECT date_trunc('minute', occurred_at) AS minute, count(*) AS events\nFROM events\nWHERE occurred_at > current_timestamp - INTERVAL '1' HOUR\nGROUP BY 1\nORDER BY 1"],
  ["One aggregate's history", "SELECT sequence, event_type, occurred_at, payload\nFROM events\nWHERE aggregate_id = (SELECT min(aggregate_id) FROM events)\nORDER BY sequence"],
];

function listItem(title, sql, meta, extra) {
  return el("li", { title: sql, onclick: () => setSql(sql) }, title ? el("div", { class: "title" }, title) : "", el("code", {}, sql.replace(/\s+/g, " ")), meta ? el("div", { class: "meta" }, meta) : "", extra || "");
}

function renderExamples() {
  const known = new Set(catalog.tables.map((t) => t.Name));
  $("#examples").replaceChildren(...EXAMPLES.filter(([, sql]) => [...sql.matchAll(/FROM (\w+)/g)].every((m) => !known.size || known.has(m[1])))
    .map(([title, sql]) => listItem(title, sql)));
}

function addHistory(entry) {
  const h = [entry, ...JSON.parse(sessionStorage.getItem("sediment.history") || "[]")].slice(0, 100);
  sessionStorage.setItem("sediment.history", JSON.stringify(h));
  renderHistory();
}

function renderHistory() {
  const h = JSON.parse(sessionStorage.getItem("sediment.history") || "[]");
  $("#history").replaceChildren(...(h.length ? h.map((e) => listItem("", e.sql,
    `${e.state}${e.rows !== undefined ? ` · ${e.rows} rows · ${(e.ms / 1000).toFixed(2)} s · ${fmtBytes(e.bytes)}` : ""}${e.error ? " · " + e.error.slice(0, 80) : ""} · ${new Date(e.at).toLocaleTimeString()}`)) : [el("li", { class: "muted" }, "Queries you run appear here.")]));
}

function renderSaved() {
  const saved = store.get("saved", []);
  $("#saved").replaceChildren(...(saved.length ? saved.map((s, i) => listItem(s.name, s.sql, "", el("button", { type: "button", onclick: (e) => {
    e.stopPropagation();
    const all = store.get("saved", []);
    all.splice(i, 1);
    store.set("saved", all);
    renderSaved();
  } }, "Delete"))) : [el("li", { class: "muted" }, "Save a query to keep it here.")]));
}

function saveQuery() {
  const name = prompt("Name for this query:");
  if (!name) return;
  const saved = store.get("saved", []).filter((s) => s.name !== name);
  saved.unshift({ name, sql: sqlBox().value, at: new Date().toISOString() });
  store.set("saved", saved);
  renderSaved();
  showPane("saved");
}

function showPane(name) {
  document.querySelectorAll("#sidebar .tabs button").forEach((b) => b.classList.toggle("active", b.dataset.pane === name));
  document.querySelectorAll("#sidebar .pane").forEach((p) => p.classList.toggle("active", p.id === "pane-" + name));
}

function showView(name) {
  document.querySelectorAll("#results .tabs button[data-view]").forEach((b) => b.classList.toggle("active", b.dataset.view === name));
  document.querySelectorAll("#results .view").forEach((v) => v.classList.toggle("active", v.id === "view-" + name));
  if (name === "chart") renderChart();
}

// ---------------------------------------------------------------- wiring

function wire() {
  const t = sqlBox();
  t.addEventListener("input", () => { errorSpan = null; highlight(); showCompletions(); });
  t.addEventListener("scroll", () => { $("#highlight").scrollTop = t.scrollTop; });
  t.addEventListener("blur", () => setTimeout(hideCompletions, 150));
  t.addEventListener("keydown", (e) => {
    const open = !$("#completions").hidden;
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); runQuery(); return; }
    if (e.ctrlKey && e.key === " ") { e.preventDefault(); showCompletions(true); return; }
    if (open && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
      e.preventDefault();
      completion.index = (completion.index + (e.key === "ArrowDown" ? 1 : -1) + completion.items.length) % completion.items.length;
      [...$("#completions").children].forEach((li, i) => li.classList.toggle("active", i === completion.index));
      $("#completions").children[completion.index].scrollIntoView({ block: "nearest" });
      return;
    }
    if (open && (e.key === "Tab" || e.key === "Enter")) { e.preventDefault(); acceptCompletion(); return; }
    if (open && e.key === "Escape") { e.preventDefault(); hideCompletions(); return; }
    if (e.key === "Tab") { e.preventDefault(); insertAtCursor("  "); }
  });
  $("#run").addEventListener("click", runQuery);
  $("#cancel").addEventListener("click", cancelQuery);
  $("#save").addEventListener("click", saveQuery);
  $("#csv").addEventListener("click", downloadCsv);
  $("#prev").addEventListener("click", () => { result.page--; renderGrid(); });
  $("#next").addEventListener("click", () => { result.page++; renderGrid(); });
  $("#key-button").addEventListener("click", () => askForKey());
  $("#database").addEventListener("change", (e) => { store.set("database", e.target.value); loadCatalog(); });
  for (const id of ["#chart-type", "#chart-x", "#chart-y"]) $(id).addEventListener("change", renderChart);
  document.querySelectorAll("#sidebar .tabs button").forEach((b) => b.addEventListener("click", () => showPane(b.dataset.pane)));
  document.querySelectorAll("#results .tabs button[data-view]").forEach((b) => b.addEventListener("click", () => showView(b.dataset.view)));
}

wire();
highlight();
renderHistory();
renderSaved();
loadCatalog().then(renderExamples);
