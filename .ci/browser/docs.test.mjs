// Headless-browser test of the gateway's API explorer at /docs.
//
// Run by .ci/browser/run.sh against a running reference deployment:
//   BASE_URL=http://127.0.0.1:PORT CHROMIUM=/usr/bin/chromium node docs.test.mjs
//
// Checks, in Debian's Chromium driven by puppeteer-core:
// 1. the page renders every operation of /openapi.json;
// 2. "try it" through the page's own UI: POST /auth/login with a demo user
//    shows a response with an access_token, and that token, entered as the
//    bearer token, authenticates GET /api/tenant/usage (200);
// 3. no Content-Security-Policy violation, no console error, no page error;
// 4. no request to any origin other than the gateway (each request is
//    intercepted; one to another origin is refused and counted).
import assert from "node:assert/strict";
import puppeteer from "puppeteer-core";

const BASE_URL = process.env.BASE_URL ?? "http://127.0.0.1:8000";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ORIGIN = new URL(BASE_URL).origin;
const DEMO_USER = { username: "bob", password: "Bob-Demo-Passw0rd!" };
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const TIMEOUT = 30_000;

const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(2)}s`;
const results = [];
async function check(name, fn) {
  const t0 = performance.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${((performance.now() - t0) / 1000).toFixed(2)}s)`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name} (${((performance.now() - t0) / 1000).toFixed(2)}s)\n     ${String(e?.stack ?? e).split("\n").join("\n     ")}`);
  }
}

// The operations the document declares, as "METHOD /path".
const doc = await (await fetch(`${ORIGIN}/openapi.json`)).json();
const expected = new Set();
for (const [path, item] of Object.entries(doc.paths ?? {})) {
  for (const m of METHODS) {
    if (item[m]) expected.add(`${m.toUpperCase()} ${path}`);
  }
}
console.log(`document: "${doc.info?.title}" ${doc.info?.version}, ${expected.size} operations (${elapsed()})`);

const violations = [];
const consoleErrors = [];
const pageErrors = [];
const foreign = [];
const exchanges = [];

const browser = await puppeteer.launch({
  executablePath: CHROMIUM,
  headless: true,
  // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let page;
try {
  page = await browser.newPage();
  page.setDefaultTimeout(TIMEOUT);
  await page.setViewport({ width: 1400, height: 900 });
  await page.setRequestInterception(true);
  page.on("request", (req) => {
    const url = req.url();
    if (url.startsWith("data:") || url.startsWith("blob:") || new URL(url).origin === ORIGIN) {
      req.continue();
    } else {
      foreign.push(`${req.method()} ${url}`);
      req.abort("blockedbyclient");
    }
  });
  page.on("response", async (res) => {
    if (res.url().startsWith(ORIGIN)) {
      exchanges.push({ method: res.request().method(), url: res.url(), status: res.status(), headers: res.request().headers(), res });
    }
  });
  page.on("console", (msg) => {
    if (msg.type() === "error") consoleErrors.push(msg.text());
  });
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  await page.exposeFunction("__reportViolation", (v) => violations.push(v));
  await page.evaluateOnNewDocument(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__reportViolation(`${e.violatedDirective} blocked ${e.blockedURI || "(inline)"} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });

  await check("the page loads and the explorer starts", async () => {
    const res = await page.goto(`${ORIGIN}/docs`, { waitUntil: "networkidle0" });
    assert.equal(res.status(), 200);
    assert.match(res.headers()["content-security-policy"] ?? "", /default-src 'none'/);
    await page.waitForFunction((title) => document.body.innerText.includes(title), {}, doc.info.title);
    await page.waitForSelector('[id*="/tag/"]');
  });

  await check("every operation of /openapi.json is rendered", async () => {
    // Scalar gives each operation's section an id "<doc>/tag/<tag>/<METHOD><path>"
    // and renders a section's content when it scrolls into view: bring each
    // into view and wait for its method and path to show.
    const ids = await page.$$eval("[id]", (els) => els.map((e) => e.id));
    const sections = new Map();
    for (const id of ids) {
      const m = /\/(GET|PUT|POST|DELETE|OPTIONS|HEAD|PATCH|TRACE)(\/.*)$/.exec(id);
      if (m && expected.has(`${m[1]} ${m[2]}`)) sections.set(`${m[1]} ${m[2]}`, id);
    }
    const missing = [...expected].filter((op) => !sections.has(op));
    assert.deepEqual(missing, [], `operations without a section: ${missing.join(", ")}`);
    const empty = [];
    for (const [op, id] of sections) {
      const [method, path] = op.split(" ");
      await page.evaluate((id) => document.getElementById(id).scrollIntoView(), id);
      const shown = await page
        .waitForFunction(
          (id, method, path) => {
            const text = document.getElementById(id)?.innerText ?? "";
            return text.toUpperCase().includes(method) && text.includes(path);
          },
          { timeout: 10_000 },
          id,
          method,
          path,
        )
        .then(() => true, () => false);
      if (!shown) empty.push(op);
    }
    assert.deepEqual(empty, [], `operations whose section shows no method and path: ${empty.join(", ")}`);
    assert.equal(sections.size, expected.size);
    // And the sidebar lists each operation (by its summary, else its path).
    const sidebar = await page.$eval("aside", (n) => n.innerText.replace(/\s+/g, " "));
    const notListed = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const m of METHODS) {
        const op = item[m];
        const label = (op?.summary ?? path).replace(/\s+/g, " ").trim().slice(0, 30);
        if (op && !sidebar.includes(label)) notListed.push(`${m.toUpperCase()} ${path}`);
      }
    }
    assert.deepEqual(notListed, [], `operations missing from the sidebar: ${notListed.join(", ")}`);
    console.log(`     ${sections.size}/${expected.size} operations rendered and listed`);
  });

  let accessToken;
  await check('"try it": POST /auth/login through the page shows an access_token', async () => {
    const section = '[id$="/POST/auth/login"]';
    await page.$eval(section, (e) => e.scrollIntoView());
    await (await page.waitForSelector(`${section} ::-p-text(Test Request)`)).click();
    const editor = await page.waitForSelector(".scalar-app-layout .cm-content");
    await editor.click();
    await page.keyboard.down("Control");
    await page.keyboard.press("KeyA");
    await page.keyboard.up("Control");
    await page.keyboard.press("Backspace");
    // One insertion, so the editor's bracket auto-closing does not apply.
    await page.keyboard.sendCharacter(JSON.stringify(DEMO_USER));
    await page.waitForFunction(() => document.querySelector(".scalar-app-layout .cm-content")?.textContent.includes('"bob"'));
    const before = exchanges.length;
    await (await page.waitForSelector(".scalar-app-layout button ::-p-text(Send)")).click();
    await page.waitForFunction(() => /access_token/.test(document.querySelector(".scalar-app-layout")?.innerText ?? ""));
    const login = exchanges.slice(before).find((x) => x.method === "POST" && x.url === `${ORIGIN}/auth/login`);
    assert.ok(login, "the login request went to the gateway");
    assert.equal(login.status, 200);
    accessToken = (await login.res.json()).access_token;
    assert.match(accessToken, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  });

  await check('"try it" with the bearer token: GET /api/tenant/usage answers 200', async () => {
    assert.ok(accessToken, "a token from the login step");
    // Close the client, open the operation's client, enter the token in
    // its Authentication panel (http bearer scheme "bearer").
    await (await page.waitForSelector(".scalar-app-layout button ::-p-text(Close Client)")).click();
    await page.waitForSelector(".scalar-app-layout", { hidden: true });
    const section = '[id$="/GET/api/tenant/usage"]';
    await page.$eval(section, (e) => e.scrollIntoView());
    await (await page.waitForSelector(`${section} ::-p-text(Test Request)`)).click();
    await page.waitForFunction(() => {
      const client = document.querySelector(".scalar-app-layout");
      return client && client.offsetParent !== null && client.innerText.includes("/api/tenant/usage");
    });
    const tokenInput = await page.waitForSelector('.scalar-app-layout input[placeholder="Token"]');
    await tokenInput.click();
    await page.keyboard.sendCharacter(accessToken);
    await page.waitForFunction((t) => document.querySelector('.scalar-app-layout input[placeholder="Token"]')?.value === t, {}, accessToken);
    const before = exchanges.length;
    await (await page.waitForSelector(".scalar-app-layout button ::-p-text(Send)")).click();
    await page.waitForFunction(() => /200 OK/.test(document.querySelector(".scalar-app-layout")?.innerText ?? ""));
    const usage = exchanges.slice(before).find((x) => x.method === "GET" && x.url === `${ORIGIN}/api/tenant/usage`);
    assert.ok(usage, "the request went to the gateway");
    assert.equal(usage.headers.authorization, `Bearer ${accessToken}`);
    assert.equal(usage.status, 200);
  });

  await check("no Content-Security-Policy violation", async () => {
    assert.deepEqual(violations, []);
  });
  await check("no console error and no page error", async () => {
    assert.deepEqual(consoleErrors, []);
    assert.deepEqual(pageErrors, []);
  });
  await check("no request to another origin", async () => {
    assert.deepEqual(foreign, []);
  });
} finally {
  if (page && results.some((r) => !r.ok)) {
    await page.screenshot({ path: process.env.SCREENSHOT ?? "/tmp/explorer-failure.png" }).catch(() => {});
    console.log(`screenshot: ${process.env.SCREENSHOT ?? "/tmp/explorer-failure.png"}`);
  }
  await browser.close();
}

const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
console.log(`requests to the gateway: ${exchanges.length}; total ${elapsed()}`);
console.log(`explorer: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && results.length > 0 ? 0 : 1);
