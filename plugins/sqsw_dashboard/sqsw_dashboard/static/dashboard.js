// sqsw dashboard: the live parts (plain JavaScript, no library).
"use strict";

function every(seconds, fn) {
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try { await fn(); } catch (e) { /* the next tick tries again */ } finally { busy = false; }
  };
  return setInterval(tick, seconds * 1000);
}

// Overview: filter rows as you type; refresh the table body every few seconds.
function setUpOverview() {
  const table = document.getElementById("queues");
  if (!table) return;
  const search = document.getElementById("search");
  const body = document.getElementById("queue-rows");
  const applySearch = () => {
    const text = (search.value || "").trim().toLowerCase();
    for (const row of body.querySelectorAll("tr[data-queue]")) {
      row.hidden = text !== "" && !row.dataset.queue.toLowerCase().includes(text);
    }
  };
  search.addEventListener("input", applySearch);
  const refresh = parseFloat(table.dataset.refresh || "5");
  every(refresh, async () => {
    const params = new URLSearchParams(window.location.search);
    params.set("rows", "1");
    const response = await fetch("/?" + params.toString(), { credentials: "same-origin" });
    if (!response.ok) return;
    body.innerHTML = await response.text();
    applySearch();
  });
}

// A redrive's page: follow its progress until it is finished.
function setUpRedriveRun() {
  const run = document.getElementById("run");
  if (!run) return;
  const bar = document.getElementById("run-progress");
  const status = document.getElementById("run-status");
  const timer = every(0.5, async () => {
    const response = await fetch(run.dataset.url, { credentials: "same-origin" });
    if (!response.ok) return;
    const r = await response.json();
    bar.value = r.percent;
    bar.textContent = r.percent + "%";
    let text = `${r.state}: ${r.moved} moved, ${r.failed} failed`;
    if (r.total) text += ` of about ${r.total}`;
    if (r.error) text += ` - ${r.error}`;
    status.textContent = text;
    status.className = "status-" + r.state;
    if (r.state !== "running") clearInterval(timer);
  });
}

// A queue's move tasks: watch the running one.
function setUpMoveTasks() {
  const table = document.getElementById("move-tasks");
  if (!table || !table.dataset.watch) return;
  const timer = every(2, async () => {
    const response = await fetch(table.dataset.url, { credentials: "same-origin" });
    if (!response.ok) return;
    const tasks = await response.json();
    const body = table.tBodies[0];
    body.replaceChildren(...tasks.map((t) => {
      const row = document.createElement("tr");
      for (const [value, numeric] of [[t.status, false], [t.moved, true], [t.to_move ?? "-", true], [t.failure || "", false]]) {
        const cell = document.createElement("td");
        cell.textContent = String(value);
        if (numeric) cell.className = "num";
        row.append(cell);
      }
      return row;
    }));
    if (!tasks.length || tasks[0].status !== "RUNNING") clearInterval(timer);
  });
}

// The message browser's "select all" box.
function setUpSelectAll() {
  const all = document.getElementById("select-all");
  if (!all) return;
  all.addEventListener("change", () => {
    for (const box of document.querySelectorAll('input[name="id"]')) box.checked = all.checked;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setUpOverview();
  setUpRedriveRun();
  setUpMoveTasks();
  setUpSelectAll();
});
