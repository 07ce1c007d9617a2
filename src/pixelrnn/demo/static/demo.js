// The pixelrnn demo page: talks to the JSON API of pixelrnn/demo/app.py.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  model: null,      // the chosen model's description (GET /api/model/NAME)
  file: null,       // the uploaded File, or null
  testIndex: null,  // the picked test image, or null
  picture: null,    // the image as the model sees it (an Image element)
  erase: null,      // Uint8Array(H * W): 1 where the brush erased
  scale: 1,         // canvas pixels per image pixel
};

function status(id, text, isError = false) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle("error", isError);
}

async function json(response) {
  const body = await response.json().catch(() => ({ error: `server error ${response.status}` }));
  if (!response.ok || body.error) throw new Error(body.error || `server error ${response.status}`);
  return body;
}

async function loadModels() {
  const { models, default: chosen } = await json(await fetch("/api/models"));
  const select = $("model");
  for (const m of models) {
    const option = new Option(m.name, m.name, false, m.name === chosen);
    option.title = m.description;
    select.add(option);
  }
  await chooseModel(select.value);
}

async function chooseModel(name) {
  status("sample-status", `loading ${name} …`);
  try {
    state.model = await json(await fetch(`/api/model/${encodeURIComponent(name)}`));
  } catch (e) {
    status("sample-status", e.message, true);
    return;
  }
  const m = state.model;
  $("model-info").textContent =
    `${m.channels === 1 ? "grey" : "RGB"} ${m.width}×${m.height}, ${m.num_levels} levels — ${m.description}`;
  $("label-control").hidden = m.num_classes === null;
  if (m.num_classes !== null) $("label").max = m.num_classes - 1;
  state.scale = Math.max(1, Math.floor(280 / Math.max(m.width, m.height)));
  $("canvas").width = m.width * state.scale;
  $("canvas").height = m.height * state.scale;
  state.erase = new Uint8Array(m.width * m.height);
  state.picture = null;
  state.file = null;
  state.testIndex = null;
  drawCanvas();
  status("sample-status", "");
}

function label() {
  return state.model && state.model.num_classes !== null ? $("label").value : "";
}

// --- sample: a server-sent event stream, one event per finished row -------------------------
async function sample() {
  const button = $("sample-button");
  button.disabled = true;
  status("sample-status", "waiting for the model …");
  $("sample-progress").value = 0;
  try {
    const response = await fetch("/api/sample", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        model: state.model.name,
        n: Number($("sample-n").value),
        temperature: Number($("sample-temperature").value),
        seed: Number($("sample-seed").value),
        label: label(),
      }),
    });
    if (!response.ok) await json(response);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (line.startsWith("data: ")) handleSampleEvent(JSON.parse(line.slice(6)));
      }
    }
  } catch (e) {
    status("sample-status", e.message, true);
  } finally {
    button.disabled = false;
  }
}

function handleSampleEvent(event) {
  if (event.type === "started") status("sample-status", "sampling …");
  if (event.type === "row") {
    $("sample-grid").src = event.grid;
    $("sample-progress").value = event.row / event.rows;
    status("sample-status", `row ${event.row} of ${event.rows}`);
  }
  if (event.type === "done") {
    $("sample-grid").src = event.grid;
    $("sample-grid").dataset.done = "1";
    $("sample-progress").value = 1;
    status("sample-status", `done in ${event.seconds} s`);
  }
  if (event.type === "error") status("sample-status", event.message, true);
}

// --- the image to complete and score ----------------------------------------------------------
function showPicture(dataUrl) {
  const img = new Image();
  img.onload = () => {
    state.picture = img;
    state.erase.fill(0);
    drawCanvas();
  };
  img.src = dataUrl;
}

async function useUpload() {
  const file = $("image-file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("model", state.model.name);
  form.append("image", file);
  try {
    const body = await json(await fetch("/api/upload", { method: "POST", body: form }));
    state.file = file;
    state.testIndex = null;
    showPicture(body.image);
    status("complete-status", `${file.name}: paint over the part to erase`);
  } catch (e) {
    status("complete-status", e.message, true);
  }
}

async function useTestImage() {
  const index = $("test-index").value;
  try {
    const url = `/api/test-image?model=${encodeURIComponent(state.model.name)}&index=${index}`;
    const body = await json(await fetch(url));
    state.file = null;
    state.testIndex = index;
    if (body.label !== null && state.model.num_classes !== null) $("label").value = body.label;
    showPicture(body.image);
    status("complete-status", `test image ${index}: paint over the part to erase`);
  } catch (e) {
    status("complete-status", e.message, true);
  }
}

function drawCanvas() {
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.fillStyle = "#eee";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (state.picture) ctx.drawImage(state.picture, 0, 0, canvas.width, canvas.height);
  if (!state.model) return;
  ctx.fillStyle = "rgba(128, 128, 128, 0.85)";
  const w = state.model.width;
  state.erase.forEach((erased, k) => {
    if (erased) ctx.fillRect((k % w) * state.scale, Math.floor(k / w) * state.scale, state.scale, state.scale);
  });
}

function paint(event) {
  const canvas = $("canvas");
  const rect = canvas.getBoundingClientRect();
  const px = Math.floor((event.clientX - rect.left) / state.scale);
  const py = Math.floor((event.clientY - rect.top) / state.scale);
  const r = Number($("brush").value);
  const { width: w, height: h } = state.model;
  for (let y = py - r; y <= py + r; y++) {
    for (let x = px - r; x <= px + r; x++) {
      if (x >= 0 && x < w && y >= 0 && y < h && (x - px) ** 2 + (y - py) ** 2 <= r * r) {
        state.erase[y * w + x] = 1;
      }
    }
  }
  $("occlusion").value = "brush";
  drawCanvas();
}

function imageForm() {
  const form = new FormData();
  form.append("model", state.model.name);
  if (state.file) form.append("image", state.file);
  else if (state.testIndex !== null) form.append("test_index", state.testIndex);
  form.append("label", label());
  return form;
}

async function complete() {
  if (!state.picture) return status("complete-status", "upload an image or load a test image first", true);
  const form = imageForm();
  if ($("occlusion").value === "brush") form.append("erase", Array.from(state.erase).join(""));
  else form.append("occlusion", $("occlusion").value);
  form.append("n", $("complete-n").value);
  form.append("seed", $("complete-seed").value);
  $("complete-button").disabled = true;
  status("complete-status", "completing …");
  try {
    const body = await json(await fetch("/api/complete", { method: "POST", body: form }));
    $("complete-input").src = body.input;
    const holder = $("completions");
    holder.replaceChildren(
      ...body.completions.map((src) => Object.assign(new Image(), { src, className: "completion" }))
    );
    status("complete-status", `${body.completions.length} completions`);
  } catch (e) {
    status("complete-status", e.message, true);
  } finally {
    $("complete-button").disabled = false;
  }
}

async function score() {
  if (!state.picture) return status("score-status", "upload an image or load a test image first", true);
  status("score-status", "scoring …");
  try {
    const body = await json(await fetch("/api/score", { method: "POST", body: imageForm() }));
    $("score-nats").textContent = `${body.nats.toFixed(2)} nats`;
    $("score-bpd").textContent = `(${body.bits_per_dim.toFixed(4)} bits/dim)`;
    $("heatmap").src = body.heatmap;
    status("score-status", "bright: pixels the model did not expect");
  } catch (e) {
    status("score-status", e.message, true);
  }
}

window.addEventListener("DOMContentLoaded", () => {
  $("model").addEventListener("change", (e) => chooseModel(e.target.value));
  $("sample-button").addEventListener("click", sample);
  $("image-file").addEventListener("change", useUpload);
  $("test-load").addEventListener("click", useTestImage);
  $("clear-mask").addEventListener("click", () => { state.erase.fill(0); drawCanvas(); });
  $("complete-button").addEventListener("click", complete);
  $("score-button").addEventListener("click", score);
  const canvas = $("canvas");
  let painting = false;
  canvas.addEventListener("mousedown", (e) => { if (state.picture) { painting = true; paint(e); } });
  canvas.addEventListener("mousemove", (e) => { if (painting) paint(e); });
  window.addEventListener("mouseup", () => { painting = false; });
  loadModels().catch((e) => status("sample-status", e.message, true));
});
