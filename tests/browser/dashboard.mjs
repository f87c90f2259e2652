// Drives AsyncMQ's dashboard in headless Chromium (playwright-core, the system browser)
// for tests/test_dashboard.py. Usage: node dashboard.mjs SPEC.json
//
// SPEC: {base, label, queue, jobs: {waiting, completed, failed, delayed}, retry, remove,
//        cron, repeatableTask, newRepeatableTask, worker, screenshots, chromium, timeoutMs}
// Every page the spec names is visited; each check prints one JSON line
// ({step, ok, detail, screenshot}); the last line is {done: true, failures: [...]}.
// Exit code 0 only when every check passed. Every wait is bounded by timeoutMs.
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
const timeout = spec.timeoutMs ?? 15000;
const failures = [];
const serverErrors = [];
const pageErrors = [];
mkdirSync(spec.screenshots, { recursive: true });

function report(step, ok, detail, screenshot) {
  const line = { step, ok, detail };
  if (screenshot) line.screenshot = screenshot;
  if (!ok) failures.push(`${step}: ${JSON.stringify(detail)}`);
  process.stdout.write(JSON.stringify(line) + "\n");
}

async function shot(page, name) {
  const path = join(spec.screenshots, `${spec.label}-${name}.png`);
  await page.screenshot({ path, fullPage: true, timeout });
  return path;
}

// Visits base+url; checks the HTTP status, texts that must (expect) and must not (absent) be on
// the page, and exact texts of elements (values: {selector: text}); takes a full-page screenshot.
async function visit(page, step, url, { expect = [], absent = [], values = {}, shotName = step } = {}) {
  try {
    const response = await page.goto(spec.base + url, { waitUntil: "domcontentloaded", timeout });
    const status = response ? response.status() : 0;
    const text = await page.locator("body").innerText({ timeout });
    const missing = expect.filter((s) => !text.includes(s));
    const present = absent.filter((s) => text.includes(s));
    const wrong = {};
    for (const [selector, want] of Object.entries(values)) {
      const got = (await page.locator(selector).first().innerText({ timeout })).trim();
      if (got !== String(want)) wrong[selector] = { want: String(want), got };
    }
    const path = await shot(page, shotName);
    const ok = status === 200 && !missing.length && !present.length && !Object.keys(wrong).length;
    report(step, ok, { url, status, missing, unexpected: present, wrong }, path);
    return ok;
  } catch (error) {
    report(step, false, { url, error: String(error) });
    return false;
  }
}

// Opens a <details class="amq-confirm"> by its summary text and clicks its confirm button;
// the form posts and the browser follows the redirect.
async function confirm(page, summaryText, buttonText) {
  const details = page.locator("details.amq-confirm", { has: page.locator("summary", { hasText: summaryText }) });
  await details.locator("summary").click({ timeout });
  await Promise.all([
    page.waitForNavigation({ waitUntil: "domcontentloaded", timeout }),
    details.getByRole("button", { name: buttonText }).click({ timeout }),
  ]);
}

// playwright adds --headless and a fresh temporary --user-data-dir itself (it refuses one in args).
const browser = await chromium.launch({
  executablePath: spec.chromium,
  headless: true,
  timeout,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
  ],
});
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.on("response", (r) => {
    if (r.status() >= 500) serverErrors.push(`${r.status()} ${r.request().method()} ${r.url()}`);
  });
  page.on("pageerror", (e) => pageErrors.push(String(e)));

  const q = spec.queue;
  const all = Object.values(spec.jobs).flat();
  const jobsUrl = `/queues/${q}/jobs`;

  const counts = Object.fromEntries(Object.entries(spec.jobs).map(([state, ids]) => [state, ids.length]));
  const countsIn = (scope) =>
    Object.fromEntries(["waiting", "delayed", "failed", "completed"].map((s) => [`${scope} strong.${s}`, counts[s]]));
  await visit(page, "home", "/", {
    values: { "#total-queues": 1, "#total-jobs": all.length, "#total-workers": 1 },
  });
  // The pages' event stream (asyncmq-cloud's shared overview): every event of a tick arrives
  // within the tick (4 s < the 5 s tick) with the seeded figures.
  try {
    const seen = await page.evaluate(
      ({ url, wait }) =>
        new Promise((resolve) => {
          const source = new EventSource(url);
          const got = {};
          const names = ["overview", "jobdist", "metrics", "queues", "workers", "latest_jobs", "latest_queues"];
          const timer = setTimeout(() => (source.close(), resolve(got)), wait);
          for (const name of names) {
            source.addEventListener(name, (event) => {
              got[name] = JSON.parse(event.data);
              if (Object.keys(got).length === names.length) (clearTimeout(timer), source.close(), resolve(got));
            });
          }
        }),
      { url: spec.base + "/events", wait: 4000 },
    );
    const latest = (seen.latest_jobs || []).map((job) => job.id);
    const ok =
      Object.keys(seen).length === 7 &&
      seen.overview.total_jobs === all.length &&
      seen.overview.total_workers === 1 &&
      seen.queues.length === 1 &&
      seen.queues[0].name === q &&
      seen.queues[0].failed === counts.failed &&
      seen.latest_queues[0].name === q &&
      latest.length === Math.min(10, all.length) &&
      latest.every((id) => all.includes(id));
    report("events-stream", ok, { events: Object.keys(seen), overview: seen.overview, queues: seen.queues, latest });
  } catch (error) {
    report("events-stream", false, { error: String(error) });
  }
  await visit(page, "queues", "/queues", { expect: [q], values: countsIn(`article[data-queue="${q}"]`) });
  await visit(page, "queue-detail", `/queues/${q}`, { expect: [q], values: countsIn("main") });
  for (const [state, ids] of Object.entries(spec.jobs)) {
    const others = all.filter((id) => !ids.includes(id));
    await visit(page, `jobs-${state}`, `${jobsUrl}?state=${state}`, { expect: ids, absent: others });
  }
  await visit(page, "job-detail-failed", `${jobsUrl}/${spec.retry}`, { expect: [spec.retry, "boom"] });
  await visit(page, "repeatables", `/queues/${q}/repeatables`, { expect: [spec.cron, spec.repeatableTask] });
  await visit(page, "workers", "/workers", { expect: [spec.worker, q] });
  await visit(page, "metrics", "/metrics", {});

  // DLQ: both failed jobs listed; retry one of them through the page's own form.
  if (await visit(page, "dlq", `/queues/${q}/dlq`, { expect: spec.jobs.failed })) {
    try {
      await page.locator(`input.select-dlq[value="${spec.retry}"]`).check({ timeout });
      await confirm(page, "Retry Selected", "Confirm Retry");
      const kept = spec.jobs.failed.filter((id) => id !== spec.retry);
      const text = await page.locator("body").innerText({ timeout });
      const path = await shot(page, "dlq-after-retry");
      const ok = !text.includes(spec.retry) && kept.every((id) => text.includes(id));
      report("dlq-retry", ok, { url: page.url(), retried: spec.retry, kept }, path);
    } catch (error) {
      report("dlq-retry", false, { error: String(error) });
    }
  }

  // Job detail: remove a waiting job through its "Remove Job" action.
  if (await visit(page, "job-detail-remove", `${jobsUrl}/${spec.remove}`, { expect: [spec.remove, "Remove Job"] })) {
    try {
      await confirm(page, "Remove Job", "Confirm Remove Job");
      const text = await page.locator("body").innerText({ timeout });
      const path = await shot(page, "after-remove");
      const ok = text.includes(`Job '${spec.remove}' remove completed.`);
      report("job-remove", ok, { url: page.url(), removed: spec.remove }, path);
    } catch (error) {
      report("job-remove", false, { error: String(error) });
    }
  }
  // Repeatables: pause the seeded cron definition from its row.
  try {
    await page.goto(spec.base + `/queues/${q}/repeatables`, { waitUntil: "domcontentloaded", timeout });
    const row = () => page.locator("tr", { hasText: spec.cron });
    await Promise.all([
      page.waitForNavigation({ waitUntil: "domcontentloaded", timeout }),
      row().getByRole("button", { name: "Pause" }).click({ timeout }),
    ]);
    const text = await row().innerText({ timeout });
    const path = await shot(page, "repeatables-after-pause");
    report("repeatable-pause", text.includes("Paused") && text.includes("Resume"), { row: text }, path);
  } catch (error) {
    report("repeatable-pause", false, { error: String(error) });
  }

  // New repeatable through the dashboard's form: an interval one, listed afterwards.
  try {
    await page.goto(spec.base + `/queues/${q}/repeatables/new`, { waitUntil: "domcontentloaded", timeout });
    await page.fill("#task_id", spec.newRepeatableTask, { timeout });
    await page.fill("#every", "120", { timeout });
    await Promise.all([
      page.waitForNavigation({ waitUntil: "domcontentloaded", timeout }),
      page.getByRole("button", { name: "Create Repeatable" }).click({ timeout }),
    ]);
    const row = await page.locator("tr", { hasText: spec.newRepeatableTask }).innerText({ timeout });
    const path = await shot(page, "repeatables-after-create");
    report("repeatable-create", row.includes("120"), { url: page.url(), row }, path);
  } catch (error) {
    report("repeatable-create", false, { error: String(error) });
  }

  // Queue detail: pause, then resume (the badge follows the backend's answer each time).
  for (const [button, badge] of [
    ["Pause Queue", "Paused"],
    ["Resume Queue", "Running"],
  ]) {
    const step = `queue-${button.split(" ")[0].toLowerCase()}`;
    try {
      await page.goto(spec.base + `/queues/${q}`, { waitUntil: "domcontentloaded", timeout });
      await Promise.all([
        page.waitForNavigation({ waitUntil: "domcontentloaded", timeout }),
        page.getByRole("button", { name: button }).click({ timeout }),
      ]);
      const status = (await page.locator("[data-queue-status]").innerText({ timeout })).trim();
      const path = await shot(page, `queue-detail-after-${step.split("-")[1]}`);
      report(step, status.toLowerCase() === badge.toLowerCase(), { status }, path);
    } catch (error) {
      report(step, false, { error: String(error) });
    }
  }

  // The audit trail records each operator action the browser took.
  await visit(page, "audit", "/audit", {
    expect: ["dlq.retry", "job.remove", "repeatable.pause", "repeatable.create", "queue.pause", "queue.resume", spec.retry, spec.remove],
  });

  // After both job actions: the retried job waits again, the removed one is gone.
  const waitingAfter = spec.jobs.waiting.filter((id) => id !== spec.remove).concat([spec.retry]);
  await visit(page, "jobs-waiting-after", `${jobsUrl}?state=waiting`, {
    expect: waitingAfter,
    absent: [spec.remove],
  });
  await context.close();
} finally {
  await browser.close();
}
if (serverErrors.length) failures.push(`server errors: ${serverErrors.join("; ")}`);
process.stdout.write(JSON.stringify({ done: true, failures, serverErrors, pageErrors }) + "\n");
process.exit(failures.length ? 1 : 0);
