// End-to-end test of the real Wan Studio binary: tauri-driver (WebDriver, port 4444)
// drives the app's WebKitGTK window. No npm dependencies: raw WebDriver over fetch.
//
// Env: APP (binary), CKPT (checkpoint folder), ARTIFACTS (screenshot folder).
// Flow: launch → Models: choose CKPT → Generate: prompt, 96×64, 5 frames, 2 steps →
// ≥1 live preview → the clip plays → finished clip in the Gallery → restart → the clip is
// still there → Models: convert CKPT to MLX (CONVERT_DST) → generate on it → 2 clips →
// [i15 block] Ctrl+Enter queues 2 variations → continue the second from its last frame (a
// linked clip) → gallery search → the minimum window size → dark appearance → restart
// with 500 clips in the gallery (render/search timings, lazy posters).
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const DRIVER = process.env.DRIVER_URL ?? "http://127.0.0.1:4444";
const APP = process.env.APP;
const CKPT = process.env.CKPT;
const OUT = process.env.ARTIFACTS ?? "test-artifacts";
const PROMPT = "A red fox runs through fresh snow at dawn.";
const PROMPT2 = "Paper lanterns drift over a river at night.";
const CONVERT_DST = process.env.CONVERT_DST;
const DATA = process.env.WAN_STUDIO_DATA_DIR;
if (!APP || !CKPT || !CONVERT_DST || !DATA) throw new Error("set APP, CKPT, CONVERT_DST and WAN_STUDIO_DATA_DIR");
mkdirSync(OUT, { recursive: true });

const t0 = Date.now();
const log = (...a) => console.log(`[e2e ${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);

async function wd(method, path, body) {
  const r = await fetch(DRIVER + path, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(j).slice(0, 500)}`);
  return j.value;
}

class Session {
  static async start() {
    for (let i = 0; ; i++) {
      try {
        const v = await wd("POST", "/session", {
          capabilities: { alwaysMatch: { browserName: "wry", "tauri:options": { application: APP } } },
        });
        return new Session(v.sessionId);
      } catch (e) {
        if (i >= 20) throw e;
        await new Promise((r) => setTimeout(r, 500)); // tauri-driver still starting
      }
    }
  }
  constructor(id) {
    this.p = `/session/${id}`;
  }
  js(script, ...args) {
    return wd("POST", `${this.p}/execute/sync`, { script, args });
  }
  async find(css) {
    const v = await wd("POST", `${this.p}/element`, { using: "css selector", value: css });
    return Object.values(v)[0];
  }
  async click(css) {
    await wd("POST", `${this.p}/element/${await this.find(css)}/click`, {});
  }
  async type(css, text) {
    const e = await this.find(css);
    await wd("POST", `${this.p}/element/${e}/clear`, {});
    await wd("POST", `${this.p}/element/${e}/value`, { text });
  }
  /** Press keys together (e.g. Ctrl+2) on the focused element, then release them. */
  keys(...seq) {
    const down = seq.map((value) => ({ type: "keyDown", value }));
    const up = [...seq].reverse().map((value) => ({ type: "keyUp", value }));
    return wd("POST", `${this.p}/actions`, { actions: [{ type: "key", id: "kbd", actions: [...down, ...up] }] });
  }
  /** Type into an element without clearing it (WebDriver key codes allowed, e.g. Ctrl+Enter). */
  async sendKeys(css, text) {
    await wd("POST", `${this.p}/element/${await this.find(css)}/value`, { text });
  }
  /** Set a form control's value the way a user edit would (input + change events). */
  set(css, value) {
    return this.js(
      `const e = document.querySelector(arguments[0]); e.value = arguments[1];
       e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true}));`,
      css,
      String(value),
    );
  }
  /** Poll `script` (returns truthy when done) every 100 ms up to `ms`. */
  async until(what, script, ms = 120000, ...args) {
    const end = Date.now() + ms;
    for (;;) {
      const v = await this.js(script, ...args);
      if (v) return v;
      if (Date.now() > end) {
        const body = await this.js("return document.body.innerText.slice(0, 2000)");
        throw new Error(`timed out waiting for ${what}; page:\n${body}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  /** Screenshot of the X display (WebKitWebDriver's own screenshot can hang under
   *  Xvfb without compositing), falling back to WebDriver's. */
  async shot(name) {
    const file = join(OUT, `${name}.png`);
    try {
      // Just the window (its rect on the X screen), else the whole screen.
      const r = await wd("GET", `${this.p}/window/rect`).catch(() => null);
      const crop = r && r.width > 0 && r.height > 0 ? ["-video_size", `${r.width}x${r.height}`] : [];
      const input = r && crop.length ? `${process.env.DISPLAY}+${Math.max(0, r.x)},${Math.max(0, r.y)}` : process.env.DISPLAY;
      execFileSync("ffmpeg", ["-loglevel", "error", "-y", "-f", "x11grab", ...crop, "-i", input, "-frames:v", "1", file], {
        timeout: 20000,
      });
    } catch {
      const png = await wd("GET", `${this.p}/screenshot`);
      writeFileSync(file, Buffer.from(png, "base64"));
    }
    log("screenshot", name);
  }
  end() {
    return wd("DELETE", this.p);
  }
}

/** RSS (KiB) of the app process and of its WebKit helper processes. */
function appMemoryKiB() {
  let app = 0;
  let webkit = 0;
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const exe = readlinkSync(`/proc/${pid}/exe`);
      const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
      if (exe === APP) app += rss;
      else if (/WebKit(Web|Network)Process/.test(exe)) webkit += rss;
    } catch {
      /* process gone or not ours */
    }
  }
  return { app, webkit };
}

const results = {};
let s = await Session.start();
try {
  await s.until("the UI to start", "return document.body.dataset.ready === '1' || document.body.dataset.error", 60000);
  const err = await s.js("return document.body.dataset.error || null");
  if (err) throw new Error(`UI failed to start: ${err}`);
  log("app up");
  await s.shot("01-generate-empty");

  await s.click("#tab-models");
  await s.type("#ckpt-path", CKPT);
  await s.click("#ckpt-use");
  await s.until("the checkpoint to be accepted", "return document.querySelector('#ckpt-status').dataset.ok === '1'", 30000);
  log("checkpoint:", await s.js("return document.querySelector('#ckpt-status').textContent"));
  await s.shot("02-models");

  await s.click("#tab-generate");
  await s.type("#prompt", PROMPT);
  await s.set("#size", "custom");
  await s.set("#width", 96);
  await s.set("#height", 64);
  await s.set("#frames", 5);
  await s.set("#steps", 2);
  await s.set("#seed", 42);
  const errors = await s.js("return document.querySelector('#errors').textContent");
  if (errors) throw new Error(`form refused: ${errors}`);
  await s.click("#generate");
  log("generating");
  await s.until(
    "a live preview",
    "return Number(document.querySelector('#preview').dataset.previews || 0) >= 1 || /Failed/.test(document.querySelector('#progress-text').textContent)",
    300000,
  );
  await s.shot("03-generate-preview");
  await s.until(
    "the job to end",
    "const t = document.querySelector('#progress-text').textContent; return /^(Done|Failed|Cancelled)/.test(t) && t",
    600000,
  );
  const status = await s.js("return document.querySelector('#progress-text').textContent");
  log("job:", status);
  if (!status.startsWith("Done")) throw new Error(`generation did not finish: ${status}`);
  // The tiny encoder reads 32 tokens: the default (Chinese) negative prompt is cut, and the
  // window says so.
  const warnings = await s.js("return document.querySelector('#job-warnings').textContent");
  if (!/negative prompt is longer than the 32 tokens/.test(warnings)) throw new Error(`no truncation warning: ${warnings}`);
  const prev = await s.js(
    "const c = document.querySelector('#preview'); return { previews: Number(c.dataset.previews), frames: Number(c.dataset.frames), latency: Number(c.dataset.latencyMs) }",
  );
  results.previews = prev;
  log("previews", prev);
  if (!(prev.previews >= 1 && prev.frames >= 1)) throw new Error("no preview frames seen");
  // The finished clip really plays in the window (H.264 mp4 through the asset protocol).
  await s.until(
    "the finished clip to load in the player",
    "const v = document.querySelector('#result'); return v && ((v.readyState >= 2 && v.videoWidth > 0) || (v.error && v.src.startsWith('blob:'))) && { error: v.error && `${v.error.code} ${v.error.message}`, src: v.src }",
    30000,
  ).then((r) => {
    if (r.error) throw new Error(`the player refused the clip ${r.src}: ${r.error}`);
  });
  results.video = await s.js(
    "const v = document.querySelector('#result'); return { width: v.videoWidth, height: v.videoHeight, duration: v.duration, from: v.src.split(':')[0] }",
  );
  log("player", results.video);
  await s.shot("04-generate-done");

  await s.click("#tab-gallery");
  await s.until("the clip in the gallery", "return document.querySelectorAll('.clip-card').length === 1");
  // The poster thumbnail really loads through the (gallery-scoped) asset protocol.
  await s.until(
    "the poster thumbnail",
    "const i = document.querySelector('.clip-card img'); return i.complete && i.naturalWidth > 0",
    30000,
  );
  await s.click(".clip-card");
  await s.until("the details panel", "return !document.querySelector('#clip-details').hidden");
  const details = await s.js("return document.querySelector('#clip-details').textContent");
  if (!details.includes(PROMPT) || !details.includes("42")) throw new Error(`details lack prompt/seed: ${details}`);
  await s.shot("05-gallery");
} finally {
  await s.end().catch(() => undefined);
}

log("restarting the app");
s = await Session.start();
try {
  await s.until("the UI to start again", "return document.body.dataset.ready === '1'", 60000);
  await s.click("#tab-gallery");
  await s.until("the clip after restart", "return document.querySelectorAll('.clip-card').length === 1", 30000);
  const caption = await s.js("return document.querySelector('.clip-card .c-prompt').textContent");
  if (caption !== PROMPT) throw new Error(`wrong clip after restart: ${caption}`);
  // The checkpoint choice persisted too.
  await s.click("#tab-models");
  const path = await s.js("return document.querySelector('#ckpt-path').value");
  if (!path.endsWith("ti2v_tiny")) throw new Error(`checkpoint not persisted: ${path}`);
  await s.shot("06-models-after-restart");
  await s.click("#tab-gallery");
  await s.shot("07-gallery-after-restart");

  // Idle memory: a few seconds after start with nothing running.
  await new Promise((r) => setTimeout(r, 3000));
  results.idle_rss_kib = appMemoryKiB();
  log("idle RSS KiB", results.idle_rss_kib);

  // Models view: convert the official folder to MLX with progress; the converted folder is
  // then in use and generates too.
  await s.click("#tab-models");
  await s.type("#convert-dst", CONVERT_DST);
  await s.click("#convert");
  const converted = await s.until(
    "the conversion to end",
    "const t = document.querySelector('#convert-text').textContent; return /^(Converted|Conversion failed|Cancelled)/.test(t) && t",
    120000,
  );
  log("convert:", converted);
  if (!converted.startsWith("Converted")) throw new Error(`conversion did not finish: ${converted}`);
  const inUse = await s.js("return document.querySelector('#ckpt-path').value");
  if (inUse !== CONVERT_DST) throw new Error(`converted folder not in use: ${inUse}`);
  const files = readdirSync(CONVERT_DST);
  for (const f of ["wan_model_mlx.safetensors", "vae_mlx.safetensors", "t5_encoder_mlx.safetensors", "preview_mlx.safetensors"])
    if (!files.includes(f)) throw new Error(`converted folder lacks ${f}: ${files}`);
  await s.shot("08-models-converted");
  await s.click("#tab-generate");
  await s.type("#prompt", PROMPT2);
  await s.set("#size", "custom");
  await s.set("#width", 96);
  await s.set("#height", 64);
  await s.set("#frames", 5);
  await s.set("#steps", 2);
  await s.click("#generate");
  const status2 = await s.until(
    "the job on the converted folder to end",
    "const t = document.querySelector('#progress-text').textContent; return /^(Done|Failed|Cancelled)/.test(t) && t",
    300000,
  );
  log("job on the converted folder:", status2);
  if (!status2.startsWith("Done")) throw new Error(`generation on the converted folder failed: ${status2}`);
  await s.click("#tab-gallery");
  await s.until("both clips in the gallery", "return document.querySelectorAll('.clip-card').length === 2", 30000);

  // ---------------------------------------------------------------------------------------
  // i15 block: shortcuts, variations, continue from the last frame, gallery search, the
  // minimum window size, dark appearance. (Ends at "end of the i15 block".)
  // ---------------------------------------------------------------------------------------
  const PROMPT3 = "A paper boat sails across a rainy puddle.";
  const PROMPT4 = "The paper boat drifts under a stone bridge.";
  const records = () =>
    readdirSync(join(DATA, "gallery"))
      .filter((d) => /^[0-9a-z-]+$/.test(d) && existsSync(join(DATA, "gallery", d, "record.json")))
      .map((d) => JSON.parse(readFileSync(join(DATA, "gallery", d, "record.json"), "utf8")));
  const cards = (n) => `return document.querySelectorAll('#gallery-grid .clip-card').length === ${n}`;
  await s.click("#tab-generate");
  await s.type("#prompt", PROMPT3);
  await s.set("#size", "custom");
  await s.set("#width", 96);
  await s.set("#height", 64);
  await s.set("#frames", 5);
  await s.set("#steps", 2);
  await s.set("#seed", 100);
  await s.set("#variations", 2);
  const label = await s.js("return document.querySelector('#generate').textContent + ' | ' + document.querySelector('#generate').title");
  if (!/Generate 2 variations \| Generate \(Ctrl\+Enter\)/.test(label)) throw new Error(`generate button: ${label}`);
  // Ctrl+Enter in the prompt queues both jobs (⌘↵ on macOS); no newline lands in the prompt.
  await s.sendKeys("#prompt", "\uE009\uE007");
  results.variations_queued_seen = await s
    .until("the two variations in the queue", "const b = document.querySelector('#queue-badge').textContent; return (b === '2 jobs' || b === '1 job') && b", 5000)
    .catch(() => null);
  await s.shot("09-generate-variations");
  const prompt3 = await s.js("return document.querySelector('#prompt').value");
  if (prompt3 !== PROMPT3) throw new Error(`Ctrl+Enter changed the prompt: ${JSON.stringify(prompt3)}`);
  await s.until("both variations in the gallery", cards(4), 300000);
  const vars = records().filter((r) => r.params.prompt === PROMPT3).sort((a, b) => a.params.seed - b.params.seed);
  if (vars.map((r) => r.params.seed).join() !== "100,101") throw new Error(`variation seeds: ${vars.map((r) => r.params.seed)}`);
  log("variations", vars.map((r) => `${r.id} seed ${r.params.seed}`).join(", "));

  // Ctrl+2 opens the gallery; continue the second variation from its last frame.
  await s.keys("\uE009", "2");
  await s.until("the gallery (Ctrl+2)", "return !document.querySelector('#view-gallery').hidden", 5000);
  const parent = vars[1];
  await s.click(`.clip-card[data-id="${parent.id}"]`);
  await s.until("the details of the parent", "return !document.querySelector('#clip-details').hidden && document.querySelector('#continue')");
  await s.click("#continue");
  await s.until(
    "the continuation form",
    "return !document.querySelector('#view-generate').hidden && !document.querySelector('#continue-banner').hidden && !document.querySelector('#image-preview').hidden",
    30000,
  );
  const form = await s.js("return { prompt: document.querySelector('#prompt').value, seed: document.querySelector('#seed').value }");
  if (form.prompt !== PROMPT3 || form.seed !== "101") throw new Error(`continuation form not filled from the parent: ${JSON.stringify(form)}`);
  if (!existsSync(join(DATA, "gallery", parent.id, "last.png"))) throw new Error("no last.png beside the parent clip");
  await s.type("#prompt", PROMPT4);
  await s.set("#variations", 1);
  await s.click("#generate");
  await s.until("the continuation in the gallery", cards(5), 300000);
  const child = records().find((r) => r.params.prompt === PROMPT4);
  if (!child || child.parent !== parent.id || !child.params.image?.endsWith(`${parent.id}/last.png`))
    throw new Error(`the continuation is not linked to its parent: ${JSON.stringify(child)}`);
  results.continuation = { parent: parent.id, child: child.id, size: [child.width, child.height], frames: child.frames };
  log("continuation", results.continuation);
  await s.click("#tab-gallery");
  await s.click(`.clip-card[data-id="${child.id}"]`);
  const chain = await s.until("the chain in the details", "const c = document.querySelector('#chain'); return c && c.textContent");
  if (!chain.includes("Part 2 of 2") || !chain.includes(PROMPT3)) throw new Error(`chain: ${chain}`);
  await s.shot("10-gallery-chain");

  // Search by prompt text.
  const search = async (q, n) => {
    await s.set("#gallery-search", q);
    await s.until(`${n} card(s) for "${q}"`, cards(n), 5000);
  };
  await search("lanterns", 1);
  await search("PAPER boat", 3);
  await search("", 5);

  // The minimum window size (900×600): nothing overlaps, nothing scrolls sideways, the
  // Generate button stays on screen.
  await wd("POST", `${s.p}/window/rect`, { width: 900, height: 600 });
  await s.click("#tab-generate");
  const fit = await s.until(
    "the window at its minimum size",
    `if (window.innerWidth > 900) return false;
     const r = (q) => document.querySelector(q).getBoundingClientRect();
     const doc = document.documentElement;
     return { w: innerWidth, h: innerHeight, hscroll: doc.scrollWidth > innerWidth + 1,
       overlap: r('#gen-form').right > r('#jobs').left + 1, generateVisible: r('#generate').bottom <= innerHeight && r('#generate').top >= 0,
       playerVisible: r('.player').width > 200 };`,
    10000,
  );
  results.min_size = fit;
  log("minimum size", fit);
  await s.shot("11-generate-min-size");
  if (fit.hscroll || fit.overlap || !fit.generateVisible || !fit.playerVisible) throw new Error(`layout broken at the minimum size: ${JSON.stringify(fit)}`);
  await s.click("#tab-gallery");
  const gfit = await s.js(
    "const r = (q) => document.querySelector(q).getBoundingClientRect(); return { overlap: r('.gallery-main').right > r('#clip-details').left + 1, hscroll: document.documentElement.scrollWidth > innerWidth + 1 }",
  );
  if (gfit.overlap || gfit.hscroll) throw new Error(`gallery broken at the minimum size: ${JSON.stringify(gfit)}`);
  await wd("POST", `${s.p}/window/rect`, { width: 1200, height: 820 });

  // Dark appearance (the system's by default; forced here through the setting).
  const bg = "const m = getComputedStyle(document.body).backgroundColor.match(/\\d+/g).map(Number); return (m[0] + m[1] + m[2]) / 3";
  const light = await s.js(bg);
  await s.click("#tab-models");
  await s.set("#appearance", "dark");
  const dark = await s.until("the dark colours", `const v = (() => { ${bg} })(); return v < 60 && v`, 5000).catch(() => s.js(bg));
  if (!(light > 200 && dark < 60)) throw new Error(`appearance did not change the colours: light ${light}, dark ${dark}`);
  await s.click("#tab-generate");
  await s.shot("12-generate-dark");
  await s.click("#tab-gallery");
  await s.click(`.clip-card[data-id="${child.id}"]`);
  await s.shot("13-gallery-dark");
  await s.click("#tab-models");
  await s.set("#appearance", "system");
  // The window's own theme is reset asynchronously (GTK): wait for the light colours.
  await s.until("the system (light) colours again", `return (() => { ${bg} })() > 200`, 5000);
  results.appearance = { light_bg: light, dark_bg: dark };
  // end of the i15 block (the 500-clip check follows the restart below)
} finally {
  await s.end().catch(() => undefined);
}

// i15: the gallery at scale. 495 more clips (copies of a real one, distinct prompts, seeds
// and dates) → restart → 500 cards, posters loaded lazily, search and sort stay fast.
{
  const g = join(DATA, "gallery");
  const src = readdirSync(g).find((d) => /^\d+-\d+$/.test(d));
  const base = JSON.parse(readFileSync(join(g, src, "record.json"), "utf8"));
  const words = ["fox", "boat", "lantern", "forest", "city", "river", "snow", "desert", "ocean", "garden"];
  for (let k = 0; k < 495; k++) {
    const id = `${1600000000000 + k * 60000}-${k}`;
    mkdirSync(join(g, id));
    copyFileSync(join(g, src, "clip.mp4"), join(g, id, "clip.mp4"));
    copyFileSync(join(g, src, "poster.png"), join(g, id, "poster.png"));
    const rec = { ...base, id, created_unix_ms: 1600000000000 + k * 60000, parent: null,
      params: { ...base.params, prompt: `Scene ${k}: a ${words[k % 10]} at ${k % 3 ? "dusk" : "dawn"}`, seed: k } };
    writeFileSync(join(g, id, "record.json"), JSON.stringify(rec));
  }
}
s = await Session.start();
try {
  await s.until("the UI with 500 clips", "return document.body.dataset.ready === '1'", 60000);
  await s.click("#tab-gallery");
  await s.until("500 cards", "return document.querySelectorAll('#gallery-grid .clip-card').length === 500", 30000);
  const m = await s.js(`
    const grid = document.querySelector('#gallery-grid');
    const posters = () => document.querySelectorAll('#gallery-grid img[src]').length;
    const search = document.querySelector('#gallery-search');
    const t0 = performance.now();
    search.value = 'fox dawn'; search.dispatchEvent(new Event('input'));
    const searchMs = performance.now() - t0, hits = grid.children.length;
    search.value = ''; search.dispatchEvent(new Event('input'));
    const sort = document.querySelector('#gallery-sort');
    const t1 = performance.now();
    sort.value = 'longest'; sort.dispatchEvent(new Event('change'));
    const sortMs = performance.now() - t1;
    sort.value = 'newest'; sort.dispatchEvent(new Event('change'));
    return { startup_render_ms: Number(grid.dataset.renderMs), refresh_ms: Number(grid.dataset.refreshMs),
      posters_loaded: posters(), search_ms: searchMs, search_hits: hits, sort_ms: sortMs };`);
  // The listing alone (Rust reads 500 records; IPC; JSON in the page), off the main thread.
  m.list_ipc_ms = await wd("POST", `${s.p}/execute/async`, {
    script: "const done = arguments[0]; const t = performance.now(); window.__TAURI_INTERNALS__.invoke('list_clips').then((l) => done(l.length === 500 ? performance.now() - t : -1), () => done(-2));",
    args: [],
  });
  log("gallery with 500 clips", m);
  // 17 synthetic clips plus the first real one ("A red fox … at dawn").
  if (m.search_hits !== 18) throw new Error(`search "fox dawn" found ${m.search_hits} clips, expected 18`);
  if (!(m.posters_loaded > 0 && m.posters_loaded < 200)) throw new Error(`posters are not loaded lazily: ${m.posters_loaded} of 500`);
  // Scrolling to the end loads the last posters.
  await s.js("const g = document.querySelector('#gallery-scroll'); g.scrollTop = g.scrollHeight;");
  await s.until(
    "the last poster after scrolling",
    "const i = [...document.querySelectorAll('#gallery-grid img')].pop(); return i.getAttribute('src') && i.complete && i.naturalWidth > 0",
    15000,
  );
  m.posters_after_scroll = await s.js("return document.querySelectorAll('#gallery-grid img[src]').length");
  results.gallery_500 = m;
  await s.shot("14-gallery-500");
} finally {
  await s.end().catch(() => undefined);
}
results.total_s = (Date.now() - t0) / 1000;
writeFileSync(join(OUT, "e2e-results.json"), JSON.stringify(results, null, 2));
log("PASS", JSON.stringify(results));
