// Browser tests of the web UI in headless Chromium, against a running `tarsier run` that
// tests/ui_browser.rs started and fed (generated log lines, a scraped target, a firing alert).
// Inputs (environment): TARSIER_URL, NEEDLE (a word in exactly NEEDLE_LINES tailed lines),
// SERIES_METRIC / SERIES_COUNT (a scraped metric and its series count), LOG_FILE (a tailed file
// the live-tail case appends to), CONFIG_FILE (the server's config, which the reload case breaks
// and restores), SCREENSHOTS (a folder); AUTH_URL / AUTH_TOKEN (a second server with server.auth
// on and a read token for it).
// Each case saves a screenshot; a failure names what it expected on the page and shows what
// the page said instead. Exits 1 if any case failed.

import { chromium } from "playwright-core";
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const base = process.env.TARSIER_URL ?? "http://127.0.0.1:9470";
const needle = process.env.NEEDLE ?? "needle";
const needleLines = Number(process.env.NEEDLE_LINES ?? "0");
const metric = process.env.SERIES_METRIC ?? "up";
const seriesCount = Number(process.env.SERIES_COUNT ?? "1");
const logFile = process.env.LOG_FILE;
const configFile = process.env.CONFIG_FILE;
const shots = process.env.SCREENSHOTS ?? "target/ui-screenshots";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TIMEOUT = 20_000;
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu"],
});
const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: "light" });
const page = await context.newPage();
const consoleErrors = [];
page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
page.on("pageerror", (e) => consoleErrors.push(String(e)));

/** Waits for `selector` (optionally a predicate on the page); on timeout says what was expected. */
async function expectOn(what, fn) {
  try {
    return await fn();
  } catch (e) {
    const text = (await page.locator("body").innerText().catch(() => "")).replace(/\s+/g, " ").slice(0, 600);
    throw new Error(`expected ${what} on ${page.url()}\n  page shows: ${text}\n  cause: ${String(e).split("\n")[0]}`);
  }
}

async function open(hash) {
  await page.goto(`${base}/${hash}`);
  await page.waitForSelector(".topbar", { timeout: TIMEOUT });
}

/** Opens `hash`, reloading until `selector` shows (data pushed a moment ago is being indexed). */
async function openUntil(hash, selector) {
  await open(hash);
  for (let deadline = Date.now() + TIMEOUT; ; ) {
    try {
      return await page.waitForSelector(selector, { state: "attached", timeout: 1000 });
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await page.reload(); // the same URL again: goto would not re-render
    }
  }
}

async function shot(name) {
  await page.screenshot({ path: join(shots, `${name}.png`) });
}

const cases = {
  async "log query shows matched lines and the histogram"() {
    const q = `{job="varlogs"} |= "${needle}"`;
    await open(`#/logs?lq=${encodeURIComponent(q)}&from=now-1h&to=now`);
    await expectOn(`${needleLines} log lines containing ${needle}`, () =>
      page.waitForFunction(
        (n) => document.querySelector(".logs-summary")?.getAttribute("data-lines") === String(n),
        needleLines,
        { timeout: TIMEOUT },
      ),
    );
    const first = await page.locator(".log-row").first().innerText();
    if (!first.includes(needle)) throw new Error(`expected the first line to contain ${needle}, got ${first}`);
    await expectOn("the needle highlighted in the lines", () => page.waitForSelector(".log-row mark", { timeout: TIMEOUT }));
    await expectOn("a histogram chart above the lines", () =>
      page.waitForSelector("[data-testid=histogram] canvas", { state: "visible", timeout: TIMEOUT }),
    );
    await shot("logs");
  },

  async "a line's context shows the lines around it"() {
    await page.locator(".log-row").first().click();
    await expectOn("the line detail drawer", () => page.waitForSelector("[data-testid=log-detail]", { state: "visible", timeout: TIMEOUT }));
    await page.click("[data-testid=show-context]");
    await expectOn("context lines with the selected line marked", () =>
      page.waitForSelector("[data-testid=context] .ctx-line.at", { timeout: TIMEOUT }),
    );
    const around = await page.locator("[data-testid=context] .ctx-line").count();
    if (around < 2) throw new Error(`expected lines before/after the selected one in the context, got ${around} line(s)`);
    await shot("logs-context");
    // The tailed file's lines share one timestamp (read in one pass): push a stream whose lines
    // are 1 ms apart to widen the window around its middle line.
    const t0 = BigInt(Date.now() - 60_000) * 1000000n;
    const values = Array.from({ length: 60 }, (_, i) => [`${t0 + BigInt(i) * 1000000n}`, i === 40 ? `ctx line ${i} ctxneedle` : `ctx line ${i}`]);
    const push = await page.request.post(`${base}/loki/api/v1/push`, { headers: { "content-type": "application/json" }, data: { streams: [{ stream: { job: "ctxcase" }, values }] } });
    if (push.status() !== 204) throw new Error(`expected the context stream's push to be accepted (204), got ${push.status()}`);
    await expectOn("the pushed line with ctxneedle", () =>
      openUntil(`#/logs?lq=${encodeURIComponent('{job="ctxcase"} |= "ctxneedle"')}&from=now-1h&to=now`, ".log-row"),
    );
    await page.locator(".log-row").first().click();
    await page.click("[data-testid=show-context]");
    const sides = (b, a) => `[data-testid=context][data-before='${b}'][data-after='${a}']`;
    await expectOn("10 lines before and 10 after the selected one", () => page.waitForSelector(sides(10, 10), { timeout: TIMEOUT }));
    await page.click("[data-testid=context-more-before]");
    await expectOn("20 lines before after “more before”", () => page.waitForSelector(sides(20, 10), { timeout: TIMEOUT }));
    await page.click("[data-testid=context-more-after]");
    await expectOn("the 19 lines after (all the stream has) after “more after”", () => page.waitForSelector(sides(20, 19), { timeout: TIMEOUT }));
    const end = await page.locator("[data-testid=context-more-after]").innerText();
    if (!(await page.locator("[data-testid=context-more-after]").isDisabled()) || !end.includes("End of stream")) {
      throw new Error(`expected a disabled “End of stream” once the stream has no more lines, got “${end}”`);
    }
    await shot("logs-context-wider");
  },

  async "dragging across the histogram zooms the time range"() {
    const over = page.locator("[data-testid=histogram] .u-over");
    const box = await expectOn("the histogram's plot area", async () => {
      await over.waitFor({ timeout: TIMEOUT });
      return over.boundingBox();
    });
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.9, box.y + box.height / 2, { steps: 8 });
    await page.mouse.up();
    await expectOn("an absolute range (epoch ms) in the URL after the drag", () =>
      page.waitForFunction(() => /from=\d{13}&to=\d{13}/.test(location.hash), null, { timeout: TIMEOUT }),
    );
    await expectOn("the picker showing the absolute range", () =>
      page.waitForFunction(() => document.querySelector(".picker-btn")?.textContent?.includes("→"), null, { timeout: TIMEOUT }),
    );
  },

  async "a LogQL error is shown at its position"() {
    await open(`#/logs?lq=${encodeURIComponent('{job="varlogs" |= "x"')}&from=now-1h&to=now`);
    await expectOn("an inline parse error with a caret", () => page.waitForSelector(".query-error .error-pos", { timeout: TIMEOUT }));
    await shot("logs-error");
    // Keyboard: `/` focuses the query box, Ctrl+Enter runs the fixed query.
    await page.locator(".page-title").click();
    await page.keyboard.press("/");
    const focused = await page.evaluate(() => document.activeElement?.classList.contains("query-input"));
    if (!focused) throw new Error("expected `/` to focus the query box");
    await page.fill("textarea.query-input", `{job="varlogs"} |= "${needle}"`);
    await page.keyboard.press("Control+Enter");
    await expectOn("the error gone and lines shown after Ctrl+Enter", async () => {
      await page.waitForSelector(".query-error", { state: "hidden", timeout: TIMEOUT });
      await page.waitForSelector(".log-row", { timeout: TIMEOUT });
    });
  },

  async "plain words build the LogQL and find the same lines"() {
    await open(`#/logs?lmode=words&words=${encodeURIComponent(needle)}&from=now-1h&to=now`);
    await expectOn(`the generated LogQL with |= "${needle}"`, () =>
      page.waitForFunction((w) => document.querySelector(".generated code")?.textContent?.includes(`|= "${w}"`), needle, {
        timeout: TIMEOUT,
      }),
    );
    await expectOn(`${needleLines} lines found from the words`, () =>
      page.waitForFunction(
        (n) => document.querySelector(".logs-summary")?.getAttribute("data-lines") === String(n),
        needleLines,
        { timeout: TIMEOUT },
      ),
    );
    await shot("logs-words");
  },

  async "live tail shows a line appended while watching"() {
    if (!logFile) return;
    const word = `tailcase${Date.now()}`;
    await open(`#/logs?lq=${encodeURIComponent(`{job="varlogs"} |= "${word}"`)}&from=now-1h&to=now&live=1`);
    await expectOn("the Pause button of a running live tail", () => page.waitForSelector(".live-btn.on", { timeout: TIMEOUT }));
    await expectOn("the live status saying the socket is open", () =>
      page.waitForSelector("[data-testid=live-status][data-state=live]", { timeout: TIMEOUT }),
    );
    for (let deadline = Date.now() + 5000; ; ) {
      const gauge = await (await page.request.get(`${base}/metrics`)).text();
      if (/^tarsier_http_live_tails 1$/m.test(gauge)) break;
      if (Date.now() > deadline) {
        throw new Error(`expected one websocket tail open on the server (tarsier_http_live_tails 1), got: ${gauge.match(/^tarsier_http_live_tails.*$/m)}`);
      }
      await page.waitForTimeout(100);
    }
    appendFileSync(logFile, `level=warn msg="live line" id=${word}\n`);
    await expectOn(`the appended line ${word} in the list without re-running`, () =>
      page.waitForSelector(`.log-row:has-text("${word}")`, { timeout: TIMEOUT }),
    );
    // Paused: the socket stays and new lines wait in the buffer, counted on the button.
    await page.click(".live-btn");
    await expectOn("the Resume button with nothing buffered yet", () =>
      page.waitForFunction(() => /Resume · 0 buffered/.test(document.querySelector(".live-btn")?.textContent ?? ""), null, { timeout: TIMEOUT }),
    );
    const later = `${word}-paused`;
    appendFileSync(logFile, `level=error msg="while paused" id=${later}\n`);
    await expectOn("one line buffered while paused", () =>
      page.waitForFunction(() => /Resume · 1 buffered/.test(document.querySelector(".live-btn")?.textContent ?? ""), null, { timeout: TIMEOUT }),
    );
    if (await page.locator(`.log-row:has-text("${later}")`).count()) throw new Error(`expected ${later} held back while paused`);
    await shot("logs-live-paused");
    await page.click(".live-btn");
    await expectOn(`the buffered line ${later} shown after resuming`, () =>
      page.waitForSelector(`.log-row:has-text("${later}")`, { timeout: TIMEOUT }),
    );
    await page.click(".live-stop");
    await expectOn("the Live button back after stopping", () =>
      page.waitForFunction(() => document.querySelector(".live-btn")?.textContent === "Live", null, { timeout: TIMEOUT }),
    );
    await shot("logs-live");
  },

  async "PromQL draws a chart with one line per series"() {
    await open(`#/metrics?mq=${encodeURIComponent(metric)}&from=now-5m&to=now`);
    await expectOn(`a chart with ${seriesCount} series`, () =>
      page.waitForFunction(
        (n) => document.querySelector("[data-testid=metrics-chart]")?.getAttribute("data-series-count") === String(n),
        seriesCount,
        { timeout: TIMEOUT },
      ),
    );
    const legend = await page.locator("[data-testid=metrics-chart] .u-legend .u-series").count();
    if (legend !== seriesCount + 1) throw new Error(`expected ${seriesCount} legend entries plus the time, got ${legend - 1}`);
    await shot("metrics");
  },

  async "split view shows the chart and the logs on one range"() {
    const q = `{job="varlogs"} |= "${needle}"`;
    await open(`#/split?lq=${encodeURIComponent(q)}&mq=${encodeURIComponent(metric)}&from=now-1h&to=now`);
    await expectOn("a chart and log lines side by side", async () => {
      await page.waitForSelector("[data-testid=metrics-chart] canvas", { timeout: TIMEOUT });
      await page.waitForSelector(".log-row", { timeout: TIMEOUT });
    });
    await shot("split");
  },

  async "create a silence from a firing alert, then expire it"() {
    await open("#/alerts");
    await expectOn("a firing alert with a Silence button", () => page.waitForSelector("[data-testid=silence-alert]", { timeout: TIMEOUT }));
    await page.locator("[data-testid=silence-alert]").first().click();
    const form = page.locator("[data-testid=silence-form]");
    const matchers = await form.locator("input[name=matchers]").inputValue();
    if (!matchers.includes("alertname=")) throw new Error(`expected the alert's labels prefilled as matchers, got ${matchers}`);
    await form.locator("input[name=comment]").fill("browser test");
    await form.locator("button[type=submit]").click();
    await expectOn("an active silence in the list", () =>
      page.waitForSelector("[data-testid=silences] tr[data-state=active]", { timeout: TIMEOUT }),
    );
    await shot("alerts-silenced");
    await page.locator("[data-testid=silences] tr[data-state=active] [data-testid=expire-silence]").first().click();
    await expectOn("the silence expired", () =>
      page.waitForSelector("[data-testid=silences] tr[data-state=expired]", { timeout: TIMEOUT }),
    );
    await shot("alerts-expired");
  },

  async "a built-in dashboard loads its panels"() {
    await open("#/dashboards");
    await expectOn("the built-in dashboards listed", () => page.waitForSelector("[data-id=builtin-tarsier]", { timeout: TIMEOUT }));
    await page.click("[data-id=builtin-tarsier]");
    await expectOn("the Tarsier health dashboard with charts", async () => {
      await page.waitForSelector("[data-testid=dashboard] .panel", { timeout: TIMEOUT });
      await page.waitForSelector("[data-testid=dashboard] .panel canvas", { timeout: TIMEOUT });
    });
    await page.waitForTimeout(500); // let the remaining panels draw for the screenshot
    await shot("dashboard");
  },

  async "import a dashboard as JSON, open it, delete it"() {
    await open("#/dashboards");
    await page.click("text=Import / new");
    const area = page.locator("textarea.json-edit");
    await expectOn("the JSON editor", () => area.waitFor({ timeout: TIMEOUT }));
    const doc = { title: "Browser test", panels: [{ title: "Orders", type: "stat", datasource: "metrics", query: `sum(${metric})` }] };
    await area.fill(JSON.stringify(doc));
    await page.click(".modal button.primary");
    await expectOn("the imported dashboard with its stat panel", () =>
      page.waitForFunction(() => /id=browser-test/.test(location.hash) && document.querySelector(".stat-big")?.textContent?.match(/\d/), null, {
        timeout: TIMEOUT,
      }),
    );
    await shot("dashboard-imported");
    page.once("dialog", (d) => d.accept());
    await page.click("text=Delete");
    await expectOn("the dashboard list without the deleted one", async () => {
      await page.waitForSelector("[data-id=builtin-tarsier]", { timeout: TIMEOUT });
      if (await page.locator("[data-id=browser-test]").count()) throw new Error("browser-test is still listed");
    });
  },

  async "the visual editor adds, reorders and saves panels that survive a reload"() {
    await open("#/dashboards");
    await page.click("[data-testid=new-dashboard]");
    const modal = page.locator(".modal");
    await expectOn("the visual editor", () => modal.locator("input[name=dashboard-title]").waitFor({ timeout: TIMEOUT }));
    await modal.locator("input[name=dashboard-title]").fill("Visual test");
    const addPanel = async (title, type, source, query) => {
      await modal.locator("[data-testid=add-panel]").click();
      const row = modal.locator("[data-testid=panel-row]").last();
      await row.locator("select[name=datasource]").selectOption(source);
      await row.locator("input[name=panel-title]").fill(title);
      await row.locator("select[name=type]").selectOption(type);
      await row.locator("textarea[name=query]").fill(query);
    };
    await addPanel("Orders", "stat", "metrics", `sum(${metric})`);
    await addPanel("Needle lines", "logs", "logs", `{job="varlogs"} |= "${needle}"`);
    await addPanel("Scratch", "table", "metrics", metric);
    await modal.locator("[data-testid=panel-row]").nth(1).locator("button[title='Move up']").click();
    await modal.locator("[data-testid=panel-row]").nth(2).locator("button[title='Remove panel']").click();
    await shot("dashboard-editor");
    await page.click("[data-testid=save-dashboard]");
    const titles = () => page.locator("[data-testid=dashboard] .panel h2").allInnerTexts();
    const want = ["Needle lines", "Orders"];
    for (const pass of ["after saving", "after reloading the page"]) {
      await expectOn(`the saved dashboard (${pass}) with panels ${want.join(", ")} and the stat's number`, async () => {
        await page.waitForFunction(() => /id=visual-test/.test(location.hash) && document.querySelector(".stat-big")?.textContent?.match(/\d/), null, {
          timeout: TIMEOUT,
        });
        const got = await titles();
        if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`panels in order ${JSON.stringify(got)}`);
      });
      if (pass.startsWith("after saving")) await page.reload();
    }
    await page.waitForSelector("[data-testid=dashboard] .panel .ctx-line", { timeout: TIMEOUT }).catch(() => {});
    await shot("dashboard-visual");
    page.once("dialog", (d) => d.accept());
    await page.click("text=Delete");
    await page.waitForSelector("[data-id=builtin-tarsier]", { timeout: TIMEOUT });
  },

  async "a refused config reload shows a banner on the status page"() {
    if (!configFile) return;
    const good = readFileSync(configFile, "utf8");
    writeFileSync(configFile, `${good}indexer_typo: 1\n`);
    try {
      const r = await page.request.post(`${base}/-/reload`);
      if (r.status() !== 500) throw new Error(`expected POST /-/reload to refuse the bad file with 500, got ${r.status()}`);
      await open("#/status?tab=build");
      await expectOn("a reload error banner naming the bad key", () =>
        page.waitForFunction(() => document.querySelector("[data-testid=reload-error]")?.textContent?.includes("indexer_typo"), null, { timeout: TIMEOUT }),
      );
      await shot("status-reload-failed");
    } finally {
      writeFileSync(configFile, good);
    }
    const r = await page.request.post(`${base}/-/reload`);
    if (r.status() !== 200) throw new Error(`expected the restored file to reload with 200, got ${r.status()}: ${await r.text()}`);
    await page.reload(); // the same URL: open() would not re-render
    await expectOn("the banner gone and the last reload marked succeeded", () =>
      page.waitForFunction(
        () => !document.querySelector("[data-testid=reload-error]") && document.querySelector("[data-testid=reload-line]")?.textContent?.includes("succeeded"),
        null,
        { timeout: TIMEOUT },
      ),
    );
  },

  async "the tenant picker switches every query to another tenant"() {
    const word = `teamb${Date.now()}`;
    const push = await page.request.post(`${base}/loki/api/v1/push`, {
      headers: { "X-Scope-OrgID": "team-b", "content-type": "application/json" },
      data: { streams: [{ stream: { job: "varlogs" }, values: [[`${Date.now()}000000`, `level=info msg="only team b" id=${word}`]] }] },
    });
    if (push.status() !== 204) throw new Error(`expected the push for team-b to be accepted (204), got ${push.status()}`);
    const q = encodeURIComponent(`{job="varlogs"} |= "${word}"`);
    // The indexer knows the tenant once its first batch is indexed: reopen until the picker lists it.
    await expectOn("the tenant picker listing team-b", () =>
      openUntil(`#/logs?lq=${q}&from=now-1h&to=now`, "[data-testid=tenant] option[value=team-b]"),
    );
    await expectOn("no team-b line while the default tenant is picked", () => page.waitForSelector(".empty", { timeout: TIMEOUT }));
    await page.selectOption("[data-testid=tenant]", "team-b");
    await expectOn("tenant=team-b in the URL", () => page.waitForFunction(() => /[?&]tenant=team-b/.test(location.hash), null, { timeout: TIMEOUT }));
    // The picker lists a tenant once its partition exists, which can be just before the commit
    // that makes the line searchable.
    await expectOn("team-b's line listed with the tenant picked", () => openUntil(new URL(page.url()).hash, `.log-row:has-text("${word}")`));
    await shot("tenant-picker");
    await page.click("[data-page=metrics]");
    await expectOn("the tenant kept when moving to another page", () =>
      page.waitForFunction(() => location.hash.startsWith("#/metrics") && /tenant=team-b/.test(location.hash), null, { timeout: TIMEOUT }),
    );
  },

  async "status pages and the dark theme render"() {
    await open("#/status?tab=targets");
    await expectOn("the scrape targets with their health", () => page.waitForSelector(".badge.health-ok", { timeout: TIMEOUT }));
    await shot("status-targets");
    await open("#/status?tab=tsdb");
    await expectOn("head statistics and the top metrics by series", () =>
      page.waitForSelector(".stat-v >> nth=0", { timeout: TIMEOUT }).then(() => page.waitForSelector("table.data td", { timeout: TIMEOUT })),
    );
    await shot("status-tsdb");
    await open("#/status?tab=config");
    await expectOn("the effective configuration", () =>
      page.waitForFunction(() => document.querySelector("pre.config")?.textContent?.includes("data_dir"), null, { timeout: TIMEOUT }),
    );
    await page.click(".theme-btn");
    await expectOn("the dark theme", () => page.waitForSelector("html[data-theme=dark]", { timeout: TIMEOUT }));
    await open(`#/logs?lq=${encodeURIComponent(`{job="varlogs"} |= "${needle}"`)}&from=now-1h&to=now`);
    await page.waitForSelector(".log-row", { timeout: TIMEOUT });
    await shot("logs-dark");
  },

  async "the new views in the dark theme"() {
    await open(`#/logs?lq=${encodeURIComponent('{job="ctxcase"} |= "ctxneedle"')}&from=now-1h&to=now`);
    await expectOn("the dark theme kept from the previous case", () => page.waitForSelector("html[data-theme=dark]", { timeout: TIMEOUT }));
    await page.locator(".log-row").first().click({ timeout: TIMEOUT });
    await page.click("[data-testid=show-context]");
    await page.click("[data-testid=context-more-before]");
    await expectOn("20 context lines before in the dark theme", () =>
      page.waitForSelector("[data-testid=context][data-before='20']", { timeout: TIMEOUT }),
    );
    await page.click(".live-btn");
    await page.click(".live-btn");
    await expectOn("a paused live tail", () => page.waitForSelector("[data-testid=live-status][data-state=paused]", { timeout: TIMEOUT }));
    await shot("logs-context-live-dark");
    await page.click(".live-stop");
    await open("#/dashboards?id=builtin-tarsier");
    await page.click("[data-testid=edit-dashboard]");
    await expectOn("the visual editor on the built-in's panels", () => page.waitForSelector(".modal [data-testid=panel-row]", { timeout: TIMEOUT }));
    await shot("dashboard-editor-dark");
    await page.keyboard.press("Escape");
  },

  // Last: the server allows one live tail (max_tail_connections: 1), and a closed tail frees its
  // slot only at the server's next poll.
  async "a refused live tail says why and connects once the slot frees"() {
    const q = encodeURIComponent(`{job="varlogs"} |= "${needle}"`);
    const other = await context.newPage();
    await other.goto(`${base}/#/logs?lq=${q}&from=now-1h&to=now&live=1`);
    await expectOn("a first live tail holding the only slot", () =>
      other.waitForSelector("[data-testid=live-status][data-state=live]", { timeout: TIMEOUT }),
    );
    await open(`#/logs?lq=${q}&from=now-1h&to=now&live=1`);
    await expectOn("the second tail refused with the server's reason", () =>
      page.waitForFunction(() => /refused by the server: too many live tails/.test(document.querySelector("[data-testid=live-status]")?.textContent ?? ""), null, {
        timeout: TIMEOUT,
      }),
    );
    await shot("logs-live-refused");
    await other.close();
    await expectOn("the second tail connected (with backoff) once the first closed", () =>
      page.waitForSelector("[data-testid=live-status][data-state=live]", { timeout: TIMEOUT }),
    );
    await page.click(".live-stop");
  },

  async "a server with tokens asks for one, keeps it in the tab and signs out"() {
    const authBase = process.env.AUTH_URL;
    const token = process.env.AUTH_TOKEN;
    if (!authBase || !token) throw new Error("AUTH_URL and AUTH_TOKEN are not set");
    await page.goto(`${authBase}/#/status`);
    const form = "[data-testid=login]";
    await expectOn("the sign-in form after a 401", () => page.waitForSelector(form, { timeout: TIMEOUT }));
    await shot("login-form");
    await page.fill("[data-testid=login-token]", "not-the-token-0000000");
    await page.press("[data-testid=login-token]", "Enter");
    await expectOn("the form again, saying the token was refused", () =>
      page.waitForFunction((sel) => /refused/.test(document.querySelector(sel)?.textContent ?? ""), form, { timeout: TIMEOUT }),
    );
    await page.fill("[data-testid=login-token]", token);
    await page.press("[data-testid=login-token]", "Enter");
    await expectOn("the status page's data and a sign-out link", () =>
      page.waitForSelector("[data-testid=reload-line]", { timeout: TIMEOUT }),
    );
    await page.reload();
    await expectOn("still signed in after a reload (sessionStorage)", () =>
      page.waitForSelector("[data-testid=reload-line]", { timeout: TIMEOUT }),
    );
    if (await page.locator(form).count()) throw new Error("the sign-in form shows while signed in");
    await shot("login-signed-in");
    await page.click("[data-testid=sign-out]");
    await expectOn("the sign-in form after signing out", () => page.waitForSelector(form, { timeout: TIMEOUT }));
    await page.keyboard.press("Escape");
  },
};

const only = process.env.ONLY;
let failed = 0;
for (const [name, run] of Object.entries(cases)) {
  if (only && !name.includes(only)) continue;
  const started = Date.now();
  try {
    await run();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message}`);
    await shot(`FAILED-${name.replace(/\W+/g, "-")}`).catch(() => {});
  }
}
if (consoleErrors.length) console.log(`browser console errors:\n  ${consoleErrors.join("\n  ")}`);
await browser.close();
process.exit(failed ? 1 : 0);
