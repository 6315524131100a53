"""The labeling page: plain HTML, a style sheet and a small vanilla script (no CDN, works offline).

The HTML is static (no template): the script fetches ``api/state`` and writes every name and
path with ``textContent``, so nothing from a file name or class name is ever parsed as HTML.
"""

from __future__ import annotations

__all__ = ["PAGE_HTML", "PAGE_JS", "PAGE_CSS"]

PAGE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lbench annotate</title>
<link rel="stylesheet" href="static/annotate.css">
<script src="static/annotate.js" defer></script>
</head>
<body>
<header>
  <h1>lbench annotate <span id="project"></span></h1>
  <div id="progress-box"><progress id="bar" max="1" value="0"></progress> <span id="progress">loading ...</span></div>
  <div id="who"></div>
</header>
<main>
  <section id="viewer">
    <div id="frame"><img id="image" alt=""></div>
    <div id="done" hidden></div>
    <p id="caption"><span id="item"></span> <span id="guess"></span> <span id="answer"></span></p>
    <div id="buttons"></div>
    <p id="message" role="alert"></p>
    <p id="help">Keys: the number or letter on a button answers it; <kbd>s</kbd> skip, <kbd>u</kbd> unsure,
      <kbd>z</kbd> or <kbd>Backspace</kbd> undo your last answer, <kbd>&larr;</kbd> <kbd>&rarr;</kbd> move.
      Every answer is saved to the pool file at once.</p>
  </section>
  <aside><div id="grid"></div></aside>
</main>
</body>
</html>
"""

PAGE_CSS = """* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.4 system-ui, sans-serif; color: #1d232b; background: #f4f5f7; }
header { display: flex; align-items: center; gap: 24px; padding: 8px 16px; background: #1f2d3d; color: #fff; }
header h1 { font-size: 17px; margin: 0; font-weight: 600; }
header #project { font-weight: 400; color: #aab8c8; }
#progress-box { display: flex; align-items: center; gap: 8px; }
#bar { width: 180px; height: 12px; }
#who { margin-left: auto; color: #aab8c8; }
main { display: flex; gap: 16px; padding: 12px 16px; }
#viewer { flex: 1 1 auto; min-width: 0; }
#frame { height: 400px; padding: 8px; background: #fff; border: 1px solid #d5d9e0; border-radius: 6px; }
#frame[hidden] { display: none; }
#image { display: block; width: 100%; height: 100%; object-fit: contain; }
#image.pixels { image-rendering: pixelated; }
#done { height: 400px; display: flex; align-items: center; justify-content: center; text-align: center;
  background: #fff; border: 1px solid #d5d9e0; border-radius: 6px; font-size: 18px; padding: 24px; }
#done[hidden] { display: none; }
#caption { margin: 8px 0; color: #4a5563; }
#item { font-family: ui-monospace, monospace; }
#guess { margin-left: 12px; }
#answer { margin-left: 12px; font-weight: 600; color: #1a7f37; }
#buttons { display: flex; flex-wrap: wrap; gap: 8px; }
#buttons button { font: inherit; padding: 8px 14px; border: 1px solid #b8c0cc; border-radius: 6px; background: #fff;
  cursor: pointer; }
#buttons button:hover { background: #eef3fb; }
#buttons button.class { border-color: #2f6fca; }
#buttons button.chosen { background: #2f6fca; color: #fff; }
#buttons button.guessed { box-shadow: 0 0 0 2px #f0b429; }
#buttons button:disabled { opacity: 0.5; cursor: default; }
kbd { display: inline-block; min-width: 1.4em; padding: 0 4px; border: 1px solid #b8c0cc; border-radius: 4px;
  background: #f4f5f7; color: #1d232b; font: 12px ui-monospace, monospace; text-align: center; }
#message { min-height: 1.4em; margin: 8px 0; }
#message.error { color: #b42318; font-weight: 600; }
#message.ok { color: #4a5563; }
#help { color: #6b7482; font-size: 13px; }
aside { flex: 0 0 288px; }
#grid { display: grid; grid-template-columns: repeat(4, 66px); gap: 6px; }
#grid .tile { position: relative; width: 66px; height: 66px; border: 2px solid transparent; border-radius: 4px;
  background: #fff; cursor: pointer; padding: 0; }
#grid .tile img { width: 100%; height: 100%; object-fit: cover; border-radius: 2px; }
#grid .tile.current { border-color: #2f6fca; }
#grid .tile.done img { opacity: 0.45; }
#grid .tile span { position: absolute; left: 2px; bottom: 2px; max-width: 58px; overflow: hidden; white-space: nowrap;
  font-size: 11px; padding: 0 3px; border-radius: 3px; background: #1a7f37; color: #fff; }
"""

PAGE_JS = """"use strict";
(() => {
  let state = null;
  let current = null;
  let busy = false;
  const given = [];  // journal entries of the answers given on this page since it was loaded (for undo)
  const $ = (id) => document.getElementById(id);

  async function call(method, url, body) {
    const options = { method, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(url, options);
    let data;
    try { data = await response.json(); } catch (e) { data = { error: `HTTP ${response.status}` }; }
    if (!response.ok) {
      const error = new Error(data.error || `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function say(text, kind) { const m = $("message"); m.textContent = text || ""; m.className = kind || ""; }
  const position = (index) => state.items.findIndex((it) => it.index === index);
  const item = (index) => state.items[position(index)];

  function nextOpen(after) {
    const n = state.items.length;
    const start = after === null ? 0 : position(after) + 1;
    for (let k = 0; k < n; k++) {
      const it = state.items[(start + k) % n];
      if (it.answer === null) return it.index;
    }
    return null;
  }

  function buildButtons() {
    const box = $("buttons");
    box.textContent = "";
    const add = (label, text, key, kind) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = kind;
      b.dataset.label = label;
      if (key) { const k = document.createElement("kbd"); k.textContent = key; b.append(k, " "); }
      b.append(text);
      b.addEventListener("click", () => (label === "undo" ? undo() : answer(label)));
      box.append(b);
    };
    for (const c of state.classes) add(c.name, c.name, c.key, "class");
    add("skip", "skip", "s", "other");
    add("unsure", "unsure", "u", "other");
    add("undo", "undo", "z", "other");
  }

  function render() {
    const total = state.items.length;
    const done = state.items.filter((it) => it.answer !== null).length;
    $("project").textContent = state.project;
    $("project").title = state.pool_file;
    $("who").textContent = `annotator: ${state.annotator}`;
    $("progress").textContent = `${done} of ${total} answered`;
    $("bar").max = Math.max(total, 1);
    $("bar").value = done;
    const it = current === null ? null : item(current);
    $("frame").hidden = it === undefined || it === null;
    $("done").hidden = !(it === undefined || it === null);
    if (it) {
      const img = $("image");
      if (img.dataset.index !== String(it.index)) {
        img.classList.remove("pixels");
        img.dataset.index = String(it.index);
        img.src = `image/${it.index}`;
      }
      img.alt = it.path;
      $("item").textContent = `#${position(it.index) + 1} · item ${it.index} · ${it.path}`;
      $("guess").textContent = it.guess
        ? `model's guess: ${it.guess.predicted}` +
          (it.guess.probability === null ? "" : ` (${Math.round(100 * it.guess.probability)}%)`)
        : "";
      $("answer").textContent = it.answer === null ? "" : `answered: ${it.answer}`;
    } else {
      $("done").textContent = `All ${total} items of the open batch are answered. ` +
        "Run lbench select for the next batch (or undo to change the last answer).";
      $("item").textContent = $("guess").textContent = $("answer").textContent = "";
    }
    for (const b of $("buttons").children) {
      const label = b.dataset.label;
      b.classList.toggle("chosen", Boolean(it) && it.answer === label);
      b.classList.toggle("guessed", Boolean(it && it.guess) && it.guess.predicted === label && it.answer === null);
      b.disabled = label === "undo" ? given.length === 0 : !it;
    }
    const grid = $("grid");
    grid.textContent = "";
    for (const g of state.items) {
      const tile = document.createElement("button");
      tile.type = "button";
      tile.className = "tile" + (g.answer !== null ? " done" : "") + (it && g.index === it.index ? " current" : "");
      tile.title = `item ${g.index}: ${g.path}` + (g.answer !== null ? ` (${g.answer})` : "");
      const img = document.createElement("img");
      img.src = `image/${g.index}`;
      img.alt = g.path;
      tile.append(img);
      if (g.answer !== null) { const s = document.createElement("span"); s.textContent = g.answer; tile.append(s); }
      tile.addEventListener("click", () => { current = g.index; render(); });
      grid.append(tile);
    }
  }

  async function refresh() {
    state = await call("GET", "api/state");
    if (current !== null && position(current) < 0) current = nextOpen(null);
  }

  async function answer(label) {
    if (busy || current === null || !item(current)) return;
    const it = item(current);
    busy = true;
    try {
      const r = await call("POST", "api/answer", { index: it.index, label });
      state = r.state;
      if (r.seq !== null) given.push(r.seq);
      say(`item ${it.index} (${it.path}): ${label}`, "ok");
      current = nextOpen(it.index);
    } catch (e) {
      say(e.message, "error");
      try { await refresh(); } catch (e2) { /* keep the message */ }
    } finally {
      busy = false;
      render();
    }
  }

  async function undo() {
    if (busy) return;
    if (given.length === 0) {
      say("nothing to undo: no answer was given on this page since it was loaded", "error");
      return;
    }
    busy = true;
    const seq = given[given.length - 1];
    try {
      const r = await call("POST", "api/undo", { seq });
      given.pop();
      state = r.state;
      current = r.index;
      say(`undone: item ${r.index} is pending again (it was ${r.was})`, "ok");
    } catch (e) {
      if (e.status === 400) given.pop();  // refused (changed elsewhere since): not undoable from here
      say(e.message, "error");
      try { await refresh(); } catch (e2) { /* keep the message */ }
    } finally {
      busy = false;
      render();
    }
  }

  function move(step) {
    if (!state.items.length) return;
    const p = current === null ? 0 : position(current);
    current = state.items[(p + step + state.items.length) % state.items.length].index;
    render();
  }

  document.addEventListener("keydown", (e) => {
    if (!state || e.ctrlKey || e.metaKey || e.altKey) return;
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    const cls = state.classes.find((c) => c.key === key);
    if (cls) answer(cls.name);
    else if (key === "s") answer("skip");
    else if (key === "u") answer("unsure");
    else if (key === "z" || key === "Backspace") undo();
    else if (key === "ArrowRight") move(1);
    else if (key === "ArrowLeft") move(-1);
    else return;
    e.preventDefault();
  });

  $("image").addEventListener("load", (e) => {
    if (e.target.naturalWidth < 256) e.target.classList.add("pixels");
  });

  (async () => {
    try {
      await refresh();
      current = nextOpen(null);
      buildButtons();
      render();
    } catch (e) {
      say(e.message, "error");
    }
  })();
})();
"""
