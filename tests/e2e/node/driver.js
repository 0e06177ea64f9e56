#!/usr/bin/env node
// A remote control for one headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core), for tests/e2e/test_browser.py: one JSON request
// per line on stdin, one JSON answer per line on stdout. Errors are answers
// ({"error": ...}), never a crash, so the test can print what the page showed.
//
//   {"op": "page", "id": "a"}                    a new context (own cookies) and page
//   {"op": "goto", "id": "a", "url": U}          -> {"url", "status"} or {"error"}
//   {"op": "wait_text", "id": "a", "text": T, "timeout_ms": N}
//                                                waits (across navigations, such as a
//                                                meta refresh) until the page's text has T
//   {"op": "state", "id": "a"}                   -> {"url", "title", "text", "history"}
//                                                (history: every document URL requested,
//                                                redirect hops included)
//   {"op": "eval", "id": "a", "js": "async () => ..."}  -> {"value"}
//   {"op": "quit"}
//
// Chromium trusts what the NSS database under $HOME/.pki/nssdb trusts; the test
// gives it a HOME of its own with exed's CA in it. Env: CHROMIUM (default
// /usr/bin/chromium).
"use strict";
const readline = require("readline");
const path = require("path");
const { chromium } = require(path.join(__dirname, "node_modules", "playwright-core"));

const pages = new Map();  // id -> {context, page, history}
let browser;

async function pageText(page) {
  try {
    return await page.evaluate(() => (document.body ? document.body.innerText : ""));
  } catch (e) {
    return null;  // between documents (a navigation is under way)
  }
}

async function handle(req) {
  const p = pages.get(req.id);
  if (req.op !== "page" && req.op !== "quit" && !p) return { error: `no page ${req.id}` };
  switch (req.op) {
    case "page": {
      const context = await browser.newContext();
      const page = await context.newPage();
      const entry = { context, page, history: [] };
      // Every document the page asked for, redirects included.
      page.on("request", (r) => { if (r.isNavigationRequest() && r.frame() === page.mainFrame()) entry.history.push(r.url()); });
      pages.set(req.id, entry);
      return { ok: true };
    }
    case "goto": {
      try {
        const res = await p.page.goto(req.url, { timeout: req.timeout_ms || 30000 });
        return { url: p.page.url(), status: res ? res.status() : null };
      } catch (e) {
        return { error: String(e.message || e).split("\n")[0], url: p.page.url() };
      }
    }
    case "wait_text": {
      const until = Date.now() + (req.timeout_ms || 20000);
      let text = null;
      while (Date.now() < until) {
        text = await pageText(p.page);
        if (text !== null && text.includes(req.text)) return { url: p.page.url(), text, history: p.history };
        await new Promise((r) => setTimeout(r, 100));
      }
      return { error: `timed out waiting for ${JSON.stringify(req.text)}`, url: p.page.url(), text,
               history: p.history };
    }
    case "state":
      return { url: p.page.url(), title: await p.page.title().catch(() => null), text: await pageText(p.page),
               history: p.history };
    case "eval": {
      try {
        return { value: await p.page.evaluate(`(${req.js})()`) };
      } catch (e) {
        return { error: String(e.message || e).split("\n")[0] };
      }
    }
    case "quit":
      await browser.close();
      return { ok: true };
    default:
      return { error: `unknown op ${req.op}` };
  }
}

async function main() {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium" });
  process.stdout.write(JSON.stringify({ ready: true, version: browser.version() }) + "\n");
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    let answer;
    try {
      const req = JSON.parse(line);
      answer = await handle(req);
      process.stdout.write(JSON.stringify(answer) + "\n");
      if (req.op === "quit") break;
    } catch (e) {
      process.stdout.write(JSON.stringify({ error: String(e.stack || e) }) + "\n");
    }
  }
  if (browser.isConnected()) await browser.close();
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ error: String(e.stack || e) }) + "\n");
  process.exit(1);
});
