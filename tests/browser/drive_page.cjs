// Drives the verification page in a real Chromium (playwright-core) for tests/test_page.py.
// Usage: node drive_page.cjs SPEC.json   (SPEC: modules, chromium, profile, url, exportUrl,
// artifacts, files{name: path}, emails{match, other}). Prints one JSON object of observations;
// the Python test asserts on them. One browser for the whole run.
"use strict";

const fs = require("fs");
const path = require("path");

const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const { chromium } = require(path.join(spec.modules, "playwright-core"));
const AXE = fs.readFileSync(path.join(spec.modules, "axe-core", "axe.min.js"), "utf8");
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const TIMEOUT_MS = 20000;

async function axe(page) {
  await page.evaluate(AXE); // evaluated by the debugger protocol: not subject to the page's CSP
  return page.evaluate(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"] },
    });
    return result.violations.map((v) => ({
      id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5),
    }));
  });
}

async function settled(page) {
  await page.waitForFunction(
    () => !document.getElementById("result").hidden || !document.getElementById("message").hidden,
    null, { timeout: TIMEOUT_MS });
}

async function observe(page) {
  return page.evaluate(() => {
    const $ = (id) => document.getElementById(id);
    const link = document.querySelector("#anchor a");
    return {
      message: $("message").hidden ? null : $("message").textContent,
      shown: !$("result").hidden,
      verdict: $("verdict").className.replace("verdict", "").trim(),
      title: $("verdict-title").textContent,
      checks: Object.fromEntries(Array.from(document.querySelectorAll("#checks li"),
        (li) => [li.dataset.check, li.dataset.result])),
      reasons: Array.from(document.querySelectorAll("#checks .why"), (n) => n.textContent),
      what: $("what").innerText,
      skills: Array.from(document.querySelectorAll("#what table a"),
        (a) => ({ text: a.textContent, href: a.href, rel: a.rel })),
      anchor: $("anchor").innerText,
      explorer: link ? { href: link.href, rel: link.rel, text: link.textContent } : null,
      status: Array.from(document.querySelectorAll("#status tr[data-purpose]"),
        (tr) => [tr.dataset.purpose, tr.dataset.outcome]),
      focused: document.activeElement ? document.activeElement.id : null,
    };
  });
}

async function compare(page, address) {
  await page.fill("#email", address);
  await page.click("#email-button");
  await page.waitForFunction(() => document.getElementById("email-result").dataset.match, null,
    { timeout: TIMEOUT_MS });
  return page.$eval("#email-result", (n) => ({ match: n.dataset.match, text: n.textContent }));
}

async function checkFile(page, file) {
  await page.goto(spec.url, { waitUntil: "load" });
  await page.setInputFiles("#file", file);
  await settled(page);
  return observe(page);
}

async function tabTo(page, id, limit = 60) {
  for (let i = 0; i < limit; i += 1) {
    await page.keyboard.press("Tab");
    if (await page.evaluate((want) => document.activeElement && document.activeElement.id === want, id)) {
      return true;
    }
  }
  return false;
}

async function main() {
  const out = { cases: {}, console: [], started: Date.now() };
  const context = await chromium.launchPersistentContext(spec.profile, {
    executablePath: spec.chromium, headless: true, args: FLAGS, viewport: { width: 1100, height: 900 },
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    page.on("console", (msg) => { if (msg.type() === "error") out.console.push(msg.text()); });
    page.on("pageerror", (err) => out.console.push(String(err)));

    // The empty page: headers and accessibility.
    const response = await page.goto(spec.url, { waitUntil: "load" });
    out.headers = response.headers();
    out.axeEmpty = await axe(page);

    // A valid credential, then who it belongs to; screenshots of the result.
    const valid = await checkFile(page, spec.files.valid);
    valid.axe = await axe(page);
    valid.emailMatch = await compare(page, spec.emails.match);
    valid.emailCapitals = await compare(page, spec.emails.match.toUpperCase());
    valid.emailOther = await compare(page, spec.emails.other);
    await page.screenshot({ path: path.join(spec.artifacts, "valid.png"), fullPage: true });
    // The README's picture: the top of the page with the verdict, what it is and the checks.
    await page.setViewportSize({ width: 1000, height: 1700 });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(spec.artifacts, "page.png") });
    await page.setViewportSize({ width: 1100, height: 900 });
    out.cases.valid = valid;

    for (const name of ["revoked", "suspended", "tampered", "notJson", "notCredential"]) {
      out.cases[name] = await checkFile(page, spec.files[name]);
      out.cases[name].axe = await axe(page);
      await page.screenshot({ path: path.join(spec.artifacts, `${name}.png`), fullPage: true });
    }

    // Dropped onto the box rather than picked.
    await page.goto(spec.url, { waitUntil: "load" });
    const dropped = await page.evaluateHandle((content) => {
      const transfer = new DataTransfer();
      transfer.items.add(new File([content], "dropped.json", { type: "application/json" }));
      return transfer;
    }, fs.readFileSync(spec.files.suspended, "utf8"));
    await page.dispatchEvent("#drop", "drop", { dataTransfer: dropped });
    await settled(page);
    out.cases.dropped = await observe(page);

    // The keyboard alone: paste, check, compare, then the auditor's view.
    await page.goto(spec.url, { waitUntil: "load" });
    const keyboard = {};
    keyboard.reachedPaste = await tabTo(page, "paste");
    await page.keyboard.insertText(fs.readFileSync(spec.files.valid, "utf8"));
    keyboard.reachedButton = await tabTo(page, "check-button");
    await page.keyboard.press("Enter");
    await settled(page);
    keyboard.result = await observe(page);
    keyboard.reachedEmail = await tabTo(page, "email");
    await page.keyboard.type(spec.emails.match);
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.getElementById("email-result").dataset.match, null,
      { timeout: TIMEOUT_MS });
    keyboard.email = await page.$eval("#email-result", (n) => n.dataset.match);
    keyboard.reachedAudit = await tabTo(page, "audit-button");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#audit-result table", { timeout: TIMEOUT_MS });
    keyboard.audit = await page.$eval("#audit-result", (n) => n.innerText);
    keyboard.axe = await axe(page);
    await page.screenshot({ path: path.join(spec.artifacts, "audit.png"), fullPage: true });
    out.keyboard = keyboard;

    // The exported copy on another origin, calling the service across origins.
    if (spec.exportUrl) {
      await page.goto(spec.exportUrl, { waitUntil: "load" });
      await page.setInputFiles("#file", spec.files.valid);
      await settled(page);
      out.exported = await observe(page);
    }
  } finally {
    await context.close();
  }
  out.seconds = (Date.now() - out.started) / 1000;
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
