// The console, end to end: `sediment demo` builds a lake, `sediment serve`
// serves it with an API key, headless Chromium (Playwright) uses the page the
// way an analyst would, and every answer on screen is checked against the REST
// API's answer to the same SQL. Screenshots of each step go to artifacts/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, appendFileSync, existsSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const targetDir = process.env.CARGO_TARGET_DIR || join(root, "target");
const bin = process.env.SEDIMENT_BIN || join(targetDir, "debug", "sediment");
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
const artifacts = process.env.SEDIMENT_ARTIFACTS || join(here, "artifacts");
const KEY = "console-test-key";

let dir, server, base, browser, page, pgPort, serverLog = "";

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function waitFor(fn, what, ms = 60000) {
  const until = Date.now() + ms;
  for (;;) {
    try { const v = await fn(); if (v) return v; } catch { /* not yet */ }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}\n${serverLog.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function restQuery(sql) {
  const resp = await fetch(base + "/v1/query", { method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer " + KEY }, body: JSON.stringify({ sql }) });
  const body = await resp.json();
  assert.equal(resp.status, 200, JSON.stringify(body));
  return body;
}

// The REST API's JSON values as the grid shows them (Athena's text form).
const asText = (v) => (v === null ? null : typeof v === "object" ? JSON.stringify(v) : String(v));

async function shot(name) {
  await page.screenshot({ path: join(artifacts, name + ".png"), fullPage: true });
}

async function gridRows() {
  return page.$$eval("#grid tbody tr", (trs) => trs.map((tr) => [...tr.querySelectorAll("td")].slice(1).map((td) => (td.querySelector(".null") ? null : td.textContent))));
}

async function runInEditor(sql) {
  await page.fill("#sql", sql);
  await page.focus("#sql");
  await page.keyboard.press("Control+Enter");
  await page.waitForFunction(() => !document.querySelector("#run").disabled && ["SUCCEEDED", "FAILED", "CANCELLED"].includes(document.querySelector("#status").dataset.state), null, { timeout: 60000 });
  return page.$eval("#status", (s) => s.dataset.state);
}

before(async () => {
  assert.ok(existsSync(bin), `the sediment binary is built first (cargo build): ${bin}`);
  assert.ok(existsSync(browserPath), `Chromium is installed (apt-get install chromium): ${browserPath}`);
  rmSync(artifacts, { recursive: true, force: true });
  mkdirSync(artifacts, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), "sediment-console-"));
  const demo = spawnSync(bin, ["demo", "--dir", dir, "--events", "20000", "--days", "4", "--no-serve"], { encoding: "utf8" });
  assert.equal(demo.status, 0, demo.stderr + demo.stdout);
  appendFileSync(join(dir, "sediment.toml"), `\n[query]\napi_keys = ["${KEY}"]\n`);
  const port = await freePort();
  pgPort = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(bin, ["serve", "--config", join(dir, "sediment.toml"), "--listen", `127.0.0.1:${port}`, "--pg-listen", `127.0.0.1:${pgPort}`], { stdio: ["ignore", "pipe", "pipe"] });
  server.stdout.on("data", (d) => { serverLog += d; });
  server.stderr.on("data", (d) => { serverLog += d; });
  await waitFor(async () => (await fetch(base + "/health")).ok, "sediment serve");
  browser = await chromium.launch({
    executablePath: browserPath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  page = await context.newPage();
  page.on("pageerror", (e) => { serverLog += "\n[page error] " + e.message; });
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.kill("SIGTERM");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the page asks for the API key, then lists the catalog", async () => {
  const unauth = await fetch(base + "/v1/lake");
  assert.equal(unauth.status, 401, "the lake status needs the key too");
  await page.goto(base + "/");
  await page.waitForSelector("#key-dialog[open]");
  await shot("01-api-key");
  await page.fill("#key-input", KEY);
  await page.click("#key-dialog button[value=ok]");
  await page.waitForSelector('#tables li[data-table="events"]');
  const tables = await page.$$eval("#tables .tname", (ns) => ns.map((n) => n.textContent));
  const rest = await restQuery("SHOW TABLES");
  assert.deepEqual([...tables].sort(), rest.rows.map((r) => r[0]).sort());
  for (const t of ["events", "orders", "orders_current", "daily_revenue"]) assert.ok(tables.includes(t), `${t} in ${tables}`);
  await page.waitForFunction(() => /newest data landed/.test(document.querySelector("#freshness").textContent));
  // The header lists the doors clients connect to.
  const doors = await page.$eval("#endpoints", (n) => n.textContent);
  assert.ok(doors.includes("Athena API http://127.0.0.1:") && doors.includes(`Postgres 127.0.0.1:${pgPort}`), doors);
  await shot("02-catalog");
});

test("opening events shows its columns and days, compacted and hot, with row counts", async () => {
  await page.click('#tables li[data-table="events"] .table');
  await page.waitForSelector('.partitions[data-table="events"] table');
  const cols = await page.$$eval('#tables li[data-table="events"] .col .name', (ns) => ns.map((n) => n.textContent));
  for (const c of ["dt", "event_id", "aggregate_id", "event_type", "occurred_at", "payload"]) assert.ok(cols.includes(c), `${c} in ${cols}`);
  const days = await page.$$eval('.partitions[data-table="events"] tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  const rest = await restQuery("SELECT CAST(dt AS varchar), count(*) FROM events GROUP BY dt ORDER BY dt DESC");
  assert.deepEqual(days.map((d) => [d[0], d[1]]), rest.rows.map((r) => [r[0], String(r[1])]));
  assert.equal(days[0][2], "hot", "today is not compacted yet");
  assert.ok(days.slice(1).every((d) => d[2] === "compacted"), JSON.stringify(days));
  await shot("03-events-table");
});

test("a query typed in the editor runs with Ctrl+Enter and the grid matches the REST API", async () => {
  const sql = "SELECT event_type, count(*) AS events, count(DISTINCT aggregate_id) AS aggregates, max(occurred_at) AS newest, NULL AS nothing\nFROM events\nGROUP BY event_type\nORDER BY events DESC, event_type";
  assert.equal(await runInEditor(sql), "SUCCEEDED");
  const status = await page.textContent("#status");
  assert.match(status, /SUCCEEDED · \d+ rows · [\d.]+ s · [\d.]+ (B|KB|MB) scanned/);
  const rest = await restQuery(sql);
  const headers = await page.$$eval("#grid th[data-col]", (ths) => ths.map((th) => th.dataset.col));
  assert.deepEqual(headers, rest.columns.map((c) => c.name));
  const rows = await gridRows();
  assert.equal(rows.length, rest.rows.length);
  assert.deepEqual(rows.map((r) => [r[0], r[1], r[2], r[4]]), rest.rows.map((r) => [asText(r[0]), asText(r[1]), asText(r[2]), null]));
  assert.equal(await page.locator("#grid tbody tr:first-child .null").count(), 1, "NULL is shown distinctly");
  await shot("04-query-result");

  // Sorting by a column header, then back.
  await page.click('#grid th[data-col="event_type"]');
  const sorted = (await gridRows()).map((r) => r[0]);
  assert.deepEqual(sorted, [...sorted].sort());
  await page.click('#grid th[data-col="event_type"]');
  const desc = (await gridRows()).map((r) => r[0]);
  assert.deepEqual(desc, [...sorted].reverse());

  // CSV download has every row.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#csv")]);
  const csv = readFileSync(await download.path(), "utf8").trim().split("\n");
  assert.equal(csv[0], "event_type,events,aggregates,newest,nothing");
  assert.equal(csv.length, rest.rows.length + 1);
});

test("large results are paged", async () => {
  assert.equal(await runInEditor("SELECT event_id, sequence FROM events ORDER BY event_id LIMIT 250"), "SUCCEEDED");
  assert.equal((await gridRows()).length, 100);
  assert.match(await page.textContent("#page-info"), /rows 1–100 of 250 · page 1 of 3/);
  await page.click("#next");
  await page.click("#next");
  assert.equal((await gridRows()).length, 50);
  const rest = await restQuery("SELECT event_id, sequence FROM events ORDER BY event_id LIMIT 250");
  assert.equal((await gridRows())[49][0], rest.rows[249][0]);
});

test("daily counts chart as bars and as a line", async () => {
  assert.equal(await runInEditor("SELECT dt, count(*) AS events FROM events GROUP BY dt ORDER BY dt"), "SUCCEEDED");
  await page.click('#results button[data-view="chart"]');
  await page.waitForSelector("#chart svg");
  assert.equal(await page.$eval("#chart-x", (s) => s.value), "dt");
  assert.equal(await page.$eval("#chart-y", (s) => s.value), "events");
  const rest = await restQuery("SELECT dt, count(*) AS events FROM events GROUP BY dt ORDER BY dt");
  await page.selectOption("#chart-type", "bar");
  const heights = await page.$$eval("#chart rect.bar", (rs) => rs.map((r) => Number(r.getAttribute("height"))));
  assert.equal(heights.length, rest.rows.length);
  const counts = rest.rows.map((r) => Number(r[1]));
  const tallest = counts.indexOf(Math.max(...counts));
  assert.equal(heights.indexOf(Math.max(...heights)), tallest, "the tallest bar is the busiest day");
  await shot("05-chart-bar");
  await page.selectOption("#chart-type", "line");
  assert.equal(await page.locator("#chart polyline.line").count(), 1);
  assert.equal(await page.locator("#chart circle.dot").count(), rest.rows.length);
  await shot("06-chart-line");
  await page.click('#results button[data-view="grid"]');
});

test("a slow query can be cancelled", async () => {
  // A plain three-way cross join: slow on any lake. (With a join filter the
  // plan becomes nested-loop joins over the hot days' repartitioned scans,
  // which currently fail with an internal error, "partition not used yet".)
  await page.fill("#sql", "SELECT count(*) FROM events a CROSS JOIN events b CROSS JOIN events c");
  await page.click("#run");
  await page.waitForFunction(() => document.querySelector("#status").dataset.state === "RUNNING", null, { timeout: 30000 });
  await page.waitForTimeout(500);
  await shot("07-running");
  await page.click("#cancel");
  await page.waitForFunction(() => document.querySelector("#status").dataset.state === "CANCELLED", null, { timeout: 30000 });
  assert.equal(await page.isEnabled("#run"), true);
  await shot("08-cancelled");
  // The server is free again: a small query answers at once.
  assert.equal(await runInEditor("SELECT 1 AS one"), "SUCCEEDED");
});

test("bad SQL shows the message and where it is", async () => {
  assert.equal(await runInEditor("SELECT dt,\n  count(*)\nFROM events\nGROUP BY dt ORDER BY dt LIMITT 3"), "FAILED");
  const error = await page.textContent("#error");
  assert.match(error, /SYNTAX_ERROR/);
  assert.match(error, /at line 4, column \d+/);
  assert.equal(await page.textContent("#highlight .tok-err"), "LIMITT");
  await shot("09-syntax-error");
  assert.equal(await runInEditor("SELECT no_such_column FROM events"), "FAILED");
  assert.match(await page.textContent("#error"), /no_such_column/);
  await shot("10-unknown-column");
});

test("completion offers tables and columns, and history and saved queries are kept", async () => {
  await page.fill("#sql", "");
  await page.focus("#sql");
  await page.keyboard.type("SELECT aggregate_t");
  await page.waitForSelector("#completions:not([hidden]) li");
  const offered = await page.$$eval("#completions li span:first-child", (s) => s.map((n) => n.textContent));
  assert.ok(offered.includes("aggregate_type"), offered.join(","));
  await page.keyboard.press("Tab");
  await page.keyboard.type(" FROM orders_c");
  await page.waitForSelector("#completions:not([hidden]) li");
  await page.keyboard.press("Enter");
  assert.equal(await page.inputValue("#sql"), "SELECT aggregate_type FROM orders_current");
  assert.equal(await page.locator("#highlight .tok-kw").count(), 2);
  await shot("11-completion");

  await page.click('#sidebar button[data-pane="history"]');
  const history = await page.$$eval("#history li code", (cs) => cs.map((c) => c.textContent));
  assert.ok(history.length >= 6, history.join("\n"));
  assert.match(history[0], /no_such_column/);

  page.once("dialog", (d) => d.accept("statuses now"));
  await page.click("#save");
  await page.waitForSelector("#saved li .title");
  assert.equal(await page.textContent("#saved li .title"), "statuses now");
  await page.fill("#sql", "");
  await page.click("#saved li");
  assert.equal(await page.inputValue("#sql"), "SELECT aggregate_type FROM orders_current");

  await page.click('#sidebar button[data-pane="examples"]');
  const examples = await page.$$eval("#examples li .title", (ts) => ts.map((t) => t.textContent));
  assert.ok(examples.length >= 5, examples.join(","));
  for (const title of examples) {
    await page.click(`#examples li:has-text("${title}")`);
    await page.keyboard.press("Control+Enter");
    await page.waitForFunction(() => ["SUCCEEDED", "FAILED"].includes(document.querySelector("#status").dataset.state) && !document.querySelector("#run").disabled);
    assert.equal(await page.$eval("#status", (s) => s.dataset.state), "SUCCEEDED", `example ${title}: ${await page.textContent("#error")}`);
  }
  await shot("12-examples");
});
