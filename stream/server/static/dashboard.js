// The live dashboard: one card per call, fed by server-sent events from /v1/events. Everything from the server
// is shown with textContent (never as HTML): transcripts are what callers said.
"use strict";
const token = new URLSearchParams(location.search).get("token") || "";
const COLOURS = ["#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#00838f", "#ad1457"];
const MAX_LINES = 12;
const calls = new Map();

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function card(id) {
  if (calls.has(id)) return calls.get(id);
  document.getElementById("empty").hidden = true;
  const root = el("section", "call");
  root.dataset.stream = id;
  const h = el("h2");
  const alerts = el("span", "alerts", "");
  alerts.dataset.count = "0";
  const latency = el("span", "latency", "");
  h.append(el("span", "id", id), el("span", "state", "live"), alerts, latency);
  const speakers = el("div", "speakers");
  const alertText = el("div", "alert-text");
  const box = el("div", "chart");
  const canvas = el("canvas");
  box.append(canvas);
  const transcript = el("ol", "transcript");
  root.append(h, speakers, alertText, box, transcript);
  document.getElementById("calls").prepend(root);
  const chart = new Chart(canvas, {
    type: "line",
    data: { datasets: [] },
    options: {
      animation: false, maintainAspectRatio: false, parsing: false,
      scales: { x: { type: "linear", title: { display: true, text: "call time (s)" } },
                y: { min: -1, max: 1, title: { display: true, text: "valence" } } },
      plugins: { legend: { position: "right" } },
    },
  });
  const c = { root, alerts, latency, speakers, alertText, transcript, chart, who: new Map() };
  calls.set(id, c);
  return c;
}

function speaker(c, name) {
  if (!c.who.has(name)) {
    const colour = COLOURS[c.who.size % COLOURS.length];
    const box = el("span", "speaker");
    box.dataset.speaker = name;
    box.style.borderColor = colour;
    const label = el("span", "label", "…");
    box.append(el("span", "who", name), label);
    c.speakers.append(box);
    const data = [];
    c.chart.data.datasets.push({ label: name, data, borderColor: colour, backgroundColor: colour, tension: 0.2 });
    c.who.set(name, { label, data });
  }
  return c.who.get(name);
}

function line(c, e, partial) {
  const key = e.utterance_id;
  let li = c.transcript.querySelector(`li[data-utterance="${CSS.escape(key)}"]`);
  if (!li) {
    li = el("li");
    li.dataset.utterance = key;
    c.transcript.append(li);
    while (c.transcript.children.length > MAX_LINES) c.transcript.firstChild.remove();
  }
  li.className = partial ? "partial" : "final";
  li.replaceChildren(el("span", "who", e.speaker), el("span", "", partial ? e.text :
    `[${e.label} ${Math.round(e.confidence * 100)}%] ${e.transcript}`));
  c.transcript.scrollTop = c.transcript.scrollHeight;
}

function handle(e) {
  if (e.type === "metrics" || (e.type === "summary" && e.utterances === 0 && !calls.has(e.stream_id))) return;
  const c = card(e.stream_id);
  if (e.type === "partial") {
    line(c, e, true);
  } else if (e.type === "emotion") {
    line(c, e, false);
    const s = speaker(c, e.speaker);
    s.label.textContent = `${e.label} ${Math.round(e.confidence * 100)}%`;
    s.data.push({ x: e.end_s, y: e.valence });
    c.chart.update("none");
    c.latency.textContent = `latency ${Math.round(e.latency_ms.end_to_end)} ms`;
  } else if (e.type === "alert") {
    const n = Number(c.alerts.dataset.count) + 1;
    c.alerts.dataset.count = String(n);
    c.alerts.textContent = `${n} alert${n > 1 ? "s" : ""}`;
    c.alertText.textContent = `${e.severity}: ${e.message}`;
  } else if (e.type === "summary" && e.final) {
    if (e.utterances === 0) {  // a connection that never carried speech: nothing to watch
      c.root.remove();
      calls.delete(e.stream_id);
      return;
    }
    c.root.classList.add("ended");
    c.root.querySelector(".state").textContent = "ended";
  }
}

const source = new EventSource("v1/events" + (token ? `?token=${encodeURIComponent(token)}` : ""));
source.onopen = () => { document.getElementById("status").textContent = "connected"; };
source.onerror = () => { document.getElementById("status").textContent = "reconnecting…"; };
source.onmessage = (m) => handle(JSON.parse(m.data));
