// The Generate and Gallery views against mocked IPC: what they send to Rust, how they
// show events, errors and the queue.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { clearMocks, mockConvertFileSrc, mockIPC, mockWindows } from "@tauri-apps/api/mocks";
import type { Channel } from "@tauri-apps/api/core";
import type { ClipEntry, GenerateParams, JobEvent, TaskPreset } from "../src/ipc";
import { GenerateView } from "../src/views/generate";
import { GalleryView } from "../src/views/gallery";
import { latencies, rgbToRgba } from "../src/preview";

const presets: TaskPreset[] = [
  {
    task: "ti2v-5B", sizes: [[1280, 704], [704, 1280]], size_multiple: [32, 32], frame_num: 121,
    fps: 24, sample_steps: 50, sample_shift: 5, guide_scale: [5, 5], needs_image: false, accepts_image: true,
  },
  {
    task: "t2v-A14B", sizes: [[1280, 720], [832, 480]], size_multiple: [16, 16], frame_num: 81,
    fps: 16, sample_steps: 40, sample_shift: 12, guide_scale: [3, 4], needs_image: false, accepts_image: false,
  },
];

// jsdom has no ImageData (and no 2D canvas): a minimal stand-in.
globalThis.ImageData ??= class {
  constructor(public data: Uint8ClampedArray, public width: number, public height: number) {}
} as unknown as typeof ImageData;

let calls: { cmd: string; args: Record<string, unknown> }[] = [];
const fitting = {
  fits: true, predicted_peak_bytes: 11.8 * 2 ** 30, phases: { text: 11 * 2 ** 30, denoise: 11.8 * 2 ** 30 },
  budget_bytes: 12.8 * 2 ** 30, machine_bytes: 16 * 2 ** 30, backend: "metal",
  plan: { dtype: "bf16", quantization: { bits: 8, group_size: 64 }, one_expert_at_a_time: false, batch_cfg: false, text_from_cache: false, vae_tile: { tile: 16, overlap: 4 } },
  reason: null, summary: "≈ 11.8 GB of 16.0 GB · q8 · tiled decode",
};
let planReply: unknown = fitting;
let channel: Channel<JobEvent> | null = null;
let enqueueError: unknown = null;
let history: string[] = [];

beforeEach(() => {
  calls = [];
  channel = null;
  enqueueError = null;
  planReply = fitting;
  history = [];
  mockWindows("main");
  mockConvertFileSrc("linux");
  mockIPC(
    (cmd, args) => {
      calls.push({ cmd, args: (args ?? {}) as Record<string, unknown> });
      switch (cmd) {
        case "task_presets": return presets;
        case "default_negative_prompt": return "DEFAULT NEG";
        case "get_settings": return { checkpoint_dir: "/ckpt", last_params: null, prompt_history: history };
        case "queue_snapshot": return { running: null, pending: [] };
        case "memory_estimate":
          return planReply;
        case "read_image": return { path: (args as { path: string }).path, width: 1920, height: 1080, data_url: "data:image/png;base64," };
        case "enqueue":
          if (enqueueError) throw enqueueError;
          channel = (args as { onEvent: Channel<JobEvent> }).onEvent;
          return 7 + calls.filter((c) => c.cmd === "enqueue").length - 1;
        case "clip_last_frame":
          return { path: `/g/${(args as { id: string }).id}/last.png`, width: 96, height: 64, data_url: "data:image/png;base64," };
        case "cancel_job": return null;
      }
      return null;
    },
    { shouldMockEvents: true },
  );
  document.body.innerHTML = `<span id="queue-badge"></span><section id="v"></section>`;
});

afterEach(() => clearMocks());

async function view(): Promise<GenerateView> {
  const v = new GenerateView(document.getElementById("v")!, () => undefined);
  await v.init();
  return v;
}
const $ = <T extends HTMLElement = HTMLInputElement>(id: string) => document.getElementById(id) as T;

describe("GenerateView", () => {
  it("shows the task defaults, the default negative prompt and the duration", async () => {
    const v = await view();
    expect($<HTMLSelectElement>("task").value).toBe("ti2v-5B");
    expect($<HTMLTextAreaElement>("negative").value).toBe("DEFAULT NEG");
    expect($("frames").value).toBe("121");
    expect($("duration").textContent).toContain("5.04 s at 24 fps");
    // The default negative prompt is sent as null (= official default).
    expect(v.params().negative_prompt).toBeNull();
    // Switching task offers only that task's sizes and its two guidance values.
    $<HTMLSelectElement>("task").value = "t2v-A14B";
    $("task").dispatchEvent(new Event("change"));
    const sizes = [...$<HTMLSelectElement>("size").options].map((o) => o.value);
    expect(sizes).toEqual(["1280*720", "832*480", "custom"]);
    expect(v.params().guide_scale).toEqual([3, 4]);
    expect($("image-zone").hidden).toBe(true);
  });

  it("blocks invalid input before it reaches Rust", async () => {
    const v = await view();
    $("frames").value = "8";
    expect(await v.submit()).toBeNull();
    expect($("errors").textContent).toContain("4n+1");
    expect($<HTMLButtonElement>("generate").disabled).toBe(true);
    expect(calls.some((c) => c.cmd === "enqueue")).toBe(false);
  });

  it("sends exactly the form's settings and shows progress, previews and the result", async () => {
    const v = await view();
    $<HTMLTextAreaElement>("prompt").value = "a red fox";
    $<HTMLSelectElement>("size").value = "custom";
    $("size").dispatchEvent(new Event("change"));
    $("width").value = "96";
    $("height").value = "64";
    $("frames").value = "5";
    $("steps").value = "2";
    $("seed").value = "42";
    expect(await v.submit()).toBe(7);
    const sent = calls.find((c) => c.cmd === "enqueue")!.args.params as GenerateParams;
    expect(sent).toEqual({
      task: "ti2v-5B", prompt: "a red fox", negative_prompt: null, size: [96, 64], frame_num: 5,
      sample_steps: 2, sample_shift: 5, guide_scale: [5, 5], solver: "unipc", seed: 42, image: null,
    });
    const send = (e: JobEvent) => channel!.onmessage(e);
    send({ kind: "started" });
    expect($<HTMLButtonElement>("cancel").disabled).toBe(false);
    send({ kind: "stage", stage: "encode_text" });
    expect($("progress-text").textContent).toBe("Encoding the prompt…");
    send({ kind: "warning", message: "the negative prompt is longer than the 512 tokens the text encoder reads" });
    expect($("job-warnings").textContent).toContain("negative prompt is longer");
    expect($("progress-text").textContent).toBe("Encoding the prompt…");
    const px = btoa(String.fromCharCode(...new Array(2 * 2 * 3).fill(200)));
    send({ kind: "step", step: 1, total: 2, elapsed_s: 1.5, eta_s: 1.5, sent_ms: Date.now(),
      preview: { width: 2, height: 2, frames: [px, px] } });
    expect($("progress-text").textContent).toContain("Step 1/2");
    expect($("progress-text").textContent).toContain("ETA 1.5 s");
    expect($<HTMLProgressElement>("progress").value).toBe(0.5);
    expect($("preview").dataset.previews).toBe("1");
    expect($("preview").dataset.frames).toBe("2");
    $("cancel").click();
    await Promise.resolve();
    expect(calls.find((c) => c.cmd === "cancel_job")?.args).toEqual({ id: 7 });
    send({ kind: "cancelled" });
    expect($("progress-text").textContent).toBe("Cancelled");
    expect($<HTMLButtonElement>("cancel").disabled).toBe(true);
    // The next job starts with no warnings from the last.
    send({ kind: "started" });
    expect($("job-warnings").children.length).toBe(0);
  });

  it("shows the memory plan next to Generate, and why no plan fits", async () => {
    const v = await view();
    vi.useFakeTimers();
    try {
      $<HTMLTextAreaElement>("prompt").value = "a fox";
      $("frames").value = "121";
      v.refresh();
      await vi.advanceTimersByTimeAsync(300);
      // (An earlier test's view may still answer its own pending estimate.)
      const asked = calls.filter((c) => c.cmd === "memory_estimate");
      expect(asked.some((c) => (c.args.params as GenerateParams).frame_num === 121)).toBe(true);
      expect($("plan").textContent).toBe("≈ 11.8 GB of 16.0 GB · q8 · tiled decode");
      expect($("plan").classList.contains("bad")).toBe(false);
      expect($("memory").textContent).toContain("denoise 11.8 GB");
      planReply = {
        ...fitting, fits: false, summary: "does not fit: ≈ 143.0 GB of 16.0 GB",
        reason: "the denoise phase needs ≈ 143.0 GB but 12.8 GB of this 16.0 GB machine may be used; would fit: 49 frames",
      };
      $("frames").value = "241";
      v.refresh();
      await vi.advanceTimersByTimeAsync(300);
      expect($("plan").textContent).toBe("does not fit: ≈ 143.0 GB of 16.0 GB");
      expect($("plan").classList.contains("bad")).toBe(true);
      expect($("memory").textContent).toContain("would fit: 49 frames");
    } finally {
      vi.useRealTimers();
    }
  });

  it("the Fast preset applies a speed LoRA with Euler, 4 steps, shift 5, guidance 1", async () => {
    const v = await view();
    mockIPC((cmd, args) => {
      calls.push({ cmd, args: (args ?? {}) as Record<string, unknown> });
      if (cmd === "plugin:dialog|open") return "/loras/lightning/high_noise_model.safetensors";
      if (cmd === "memory_estimate") return fitting;
      if (cmd === "enqueue") return 9;
      return null;
    });
    $<HTMLTextAreaElement>("prompt").value = "a fox";
    $("fast-preset").click();
    await new Promise((r) => setTimeout(r, 0));
    expect($("lora-name").textContent).toContain("lightning");
    $<HTMLSelectElement>("step-cache").value = "magcache";
    expect(await v.submit()).toBe(9);
    const sent = calls.filter((c) => c.cmd === "enqueue").pop()!.args.params as GenerateParams;
    expect(sent).toMatchObject({
      solver: "euler", sample_steps: 4, sample_shift: 5, guide_scale: [1, 1], step_cache: "magcache",
      lora: { scale: 1, all: "/loras/lightning" },
    });
    // Removing the LoRA drops it from the settings; a single file is used as it is.
    $("lora-clear").click();
    expect(v.params().lora).toBeUndefined();
    v.load({ ...v.params(), lora: { scale: 0.5, all: "/x/style.safetensors" } });
    expect($("lora-name").textContent).toBe("LoRA: style.safetensors ×0.5");
  });

  it("shows Rust's refusal (e.g. memory) with its code", async () => {
    const v = await view();
    $<HTMLTextAreaElement>("prompt").value = "x";
    enqueueError = { code: "memory", message: "needs about 80 GiB; try a smaller size" };
    expect(await v.submit()).toBeNull();
    const li = $("errors").querySelector("li")!;
    expect(li.textContent).toContain("smaller size");
    expect(li.dataset.code).toBe("memory");
  });

  it("an image switches to image→video and shows the output size", async () => {
    const v = await view();
    await v.setImage("/photos/cat.png");
    expect(v.params().image).toBe("/photos/cat.png");
    expect($("image-output-size").textContent).toContain("1248×704");
    $("image-clear").click();
    expect(v.params().image).toBeNull();
  });

  it("lists the queue with reorder and remove", async () => {
    const v = await view();
    const job = (id: number) => ({ id, kind: "generate" as const, prompt: `p${id}`, task: "ti2v-5B" as const, size: [96, 64] as [number, number], frames: 5, steps: 2 });
    v.showQueue({ running: job(1), pending: [job(2), job(3)] });
    expect($("queue-badge").textContent).toBe("3 jobs");
    const items = $("queue").querySelectorAll("li");
    expect([...items].map((li) => li.dataset.job)).toEqual(["2", "3"]);
    (items[1].querySelector("button[title='Move up']") as HTMLButtonElement).click();
    (items[0].querySelector("button[title='Remove']") as HTMLButtonElement).click();
    await Promise.resolve();
    expect(calls.filter((c) => c.cmd === "move_job" || c.cmd === "cancel_job").map((c) => [c.cmd, c.args]))
      .toEqual([["move_job", { id: 3, index: 0 }], ["cancel_job", { id: 2 }]]);
  });
});

describe("GenerateView: variations, history, reuse, continue, cancel", () => {
  it("queues N variations with consecutive seeds and otherwise the same settings", async () => {
    const v = await view();
    $<HTMLTextAreaElement>("prompt").value = "a red fox";
    $("seed").value = "10";
    $("variations").value = "3";
    v.refresh();
    expect($("generate").textContent).toBe("Generate 3 variations");
    expect(await v.submit()).toBe(7);
    const sent = calls.filter((c) => c.cmd === "enqueue").map((c) => c.args);
    expect(sent.map((a) => (a.params as GenerateParams).seed)).toEqual([10, 11, 12]);
    const { seed: _s, ...rest } = sent[0].params as GenerateParams;
    for (const a of sent) {
      expect(a.parent).toBeNull();
      const { seed: _x, ...others } = a.params as GenerateParams;
      expect(others).toEqual(rest);
    }
    $("variations").value = "0";
    expect(await v.submit()).toBeNull();
    expect($("errors").textContent).toContain("Variations must be between 1 and 16");
  });

  it("searches the prompt history; a pick fills the prompt; new prompts go on top", async () => {
    history = ["a red fox", "paper lanterns", "a fox at night"];
    const v = await view();
    $("history-toggle").click();
    expect($("history").hidden).toBe(false);
    expect($("history-list").querySelectorAll("button").length).toBe(3);
    $("history-search").value = "FOX";
    $("history-search").dispatchEvent(new Event("input"));
    const hits = [...$("history-list").querySelectorAll("button")].map((b) => b.textContent);
    expect(hits).toEqual(["a red fox", "a fox at night"]);
    ($("history-list").querySelectorAll("button")[1] as HTMLButtonElement).click();
    expect($<HTMLTextAreaElement>("prompt").value).toBe("a fox at night");
    expect($("history").hidden).toBe(true);
    $<HTMLTextAreaElement>("prompt").value = "a paper boat";
    await v.submit();
    $("history-toggle").click();
    expect(v.showHistory()).toEqual(["a paper boat", "a red fox", "paper lanterns", "a fox at night"]);
  });

  it("load() fills the form exactly (reuse settings)", async () => {
    const v = await view();
    const cases: GenerateParams[] = [
      { task: "ti2v-5B", prompt: "a cat", negative_prompt: "blurry", size: [96, 64], frame_num: 9, sample_steps: 3,
        sample_shift: 7.5, guide_scale: [4.5, 4.5], solver: "dpm++", seed: 123456789, image: "/photos/cat.png" },
      { task: "ti2v-5B", prompt: "a dog", negative_prompt: null, size: [704, 1280], frame_num: 121, sample_steps: 50,
        sample_shift: 5, guide_scale: [5, 5], solver: "euler", seed: 0, image: null },
      { task: "t2v-A14B", prompt: "a boat", negative_prompt: null, size: [832, 480], frame_num: 81, sample_steps: 40,
        sample_shift: 12, guide_scale: [3, 4], solver: "unipc", seed: 2 ** 32, image: null },
    ];
    for (const p of cases) {
      await v.load(p);
      expect(v.params()).toEqual(p);
    }
  });

  it("continues a clip from its last frame and links it, until the image changes", async () => {
    const v = await view();
    const params: GenerateParams = {
      task: "ti2v-5B", prompt: "a paper boat", negative_prompt: null, size: [96, 64], frame_num: 5,
      sample_steps: 2, sample_shift: 5, guide_scale: [5, 5], solver: "unipc", seed: 101, image: null,
    };
    const clip = {
      record: { id: "5-0", params } as ClipEntry["record"], dir: "/g/5-0", clip: "/g/5-0/clip.mp4", poster: "/g/5-0/poster.png",
    };
    await v.continueFrom(clip);
    expect(calls.find((c) => c.cmd === "clip_last_frame")?.args).toEqual({ id: "5-0" });
    expect(v.params()).toEqual({ ...params, image: "/g/5-0/last.png" });
    expect($("continue-banner").hidden).toBe(false);
    expect($("continue-text").textContent).toContain("a paper boat");
    $<HTMLTextAreaElement>("prompt").value = "the boat drifts on";
    await v.submit();
    const first = calls.filter((c) => c.cmd === "enqueue")[0].args;
    expect(first.parent).toBe("5-0");
    expect((first.params as GenerateParams).prompt).toBe("the boat drifts on");
    // Another image: no longer a continuation.
    await v.setImage("/photos/cat.png");
    expect(v.parent()).toBeNull();
    expect($("continue-banner").hidden).toBe(true);
    await v.submit();
    expect(calls.filter((c) => c.cmd === "enqueue")[1].args.parent).toBeNull();
  });

  it("cancels the running job (⌘. / Ctrl+.), or says there is none", async () => {
    const v = await view();
    expect(await v.cancelCurrent()).toBe(false);
    // A job queued before this window existed is known from the queue.
    const job = { id: 4, kind: "generate" as const, prompt: "p", task: "ti2v-5B" as const, size: [96, 64] as [number, number], frames: 5, steps: 2 };
    v.showQueue({ running: job, pending: [] });
    expect($("queue-running").textContent).toContain("p");
    expect(await v.cancelCurrent()).toBe(true);
    expect(calls.filter((c) => c.cmd === "cancel_job").map((c) => c.args)).toEqual([{ id: 4 }]);
    v.showQueue({ running: null, pending: [] });
    expect(await v.cancelCurrent()).toBe(false);
    expect($("queue-empty").hidden).toBe(false);
  });
});

describe("previews", () => {
  it("decodes base64 RGB into opaque RGBA", () => {
    const b64 = btoa(String.fromCharCode(1, 2, 3, 4, 5, 6));
    expect([...rgbToRgba(b64, 2, 1)]).toEqual([1, 2, 3, 255, 4, 5, 6, 255]);
    expect(Array.isArray(latencies)).toBe(true);
  });
});

describe("GalleryView", () => {
  it("lists clips from disk and re-runs with the same settings", async () => {
    const params: GenerateParams = {
      task: "ti2v-5B", prompt: "a cat", negative_prompt: null, size: [96, 64], frame_num: 5,
      sample_steps: 2, sample_shift: 5, guide_scale: [5, 5], solver: "unipc", seed: 9, image: null,
    };
    const clip: ClipEntry = {
      record: {
        id: "1-0", created_unix_ms: 1, params, negative_prompt_used: "neg", width: 96, height: 64, frames: 5, fps: 24,
        model: { path: "/ckpt", name: "ti2v-5B (dim 256, 2 layers)", engine: "wan" },
        timings: { load_s: 0, text_s: 0, denoise_s: 1, decode_s: 0 }, wall_s: 1,
      },
      dir: "/g/1-0", clip: "/g/1-0/clip.mp4", poster: "/g/1-0/poster.png",
    };
    mockIPC((cmd) => (cmd === "list_clips" ? [clip] : null));
    let rerun: GenerateParams | null = null;
    const g = new GalleryView(document.getElementById("v")!, (p) => (rerun = p));
    await g.refresh();
    const cards = document.querySelectorAll(".clip-card");
    expect(cards.length).toBe(1);
    (cards[0] as HTMLElement).click();
    expect($("clip-details").textContent).toContain("ti2v-5B (dim 256, 2 layers)");
    expect($("clip-details").textContent).toContain("9");
    $("rerun").click();
    await Promise.resolve();
    expect(rerun).toEqual(params);
  });
});

function clipOf(i: number, over: Partial<ClipEntry["record"]> = {}): ClipEntry {
  const params: GenerateParams = {
    task: "ti2v-5B", prompt: `clip ${i} ${["fox", "boat", "lantern", "forest", "city"][i % 5]}`, negative_prompt: null,
    size: [96, 64], frame_num: 5 + 4 * (i % 7), sample_steps: 2, sample_shift: 5, guide_scale: [5, 5], solver: "unipc",
    seed: i, image: null,
  };
  return {
    record: {
      id: `${1000 + i}-0`, created_unix_ms: 1000 + i, params, negative_prompt_used: "neg", width: 96, height: 64,
      frames: params.frame_num, fps: 24, model: { path: "/ckpt", name: "ti2v-5B (tiny)", engine: "wan" },
      timings: { load_s: 0, text_s: 0, denoise_s: 1, decode_s: 0 }, wall_s: 1, ...over,
    },
    dir: `/g/${1000 + i}-0`, clip: `/g/${1000 + i}-0/clip.mp4`, poster: `/g/${1000 + i}-0/poster.png`,
  };
}

describe("GalleryView at scale and with chains", () => {
  // 60 clips here (jsdom builds DOM ~1000× slower than WebKit); the E2E measures 500 in the real window.
  it("searches and sorts many clips, loads posters only when near, keeps cards across refreshes", async () => {
    const observed = new Set<Element>();
    let fire: ((entries: { target: Element; isIntersecting: boolean }[]) => void) | null = null;
    vi.stubGlobal(
      "IntersectionObserver",
      class {
        constructor(cb: (e: { target: Element; isIntersecting: boolean }[]) => void) {
          fire = cb;
        }
        observe(e: Element) { observed.add(e); }
        unobserve(e: Element) { observed.delete(e); }
        disconnect() {}
      },
    );
    const clips = Array.from({ length: 60 }, (_, i) => clipOf(i));
    mockIPC((cmd) => (cmd === "list_clips" ? clips : null));
    const g = new GalleryView(document.getElementById("v")!, () => undefined);
    await g.refresh();
    const cards = () => [...document.querySelectorAll<HTMLElement>(".clip-card")];
    expect(cards().length).toBe(60);
    expect($("gallery-status").textContent).toBe("60 clips");
    // Newest first; no poster is requested before its card comes near the viewport.
    expect(cards()[0].dataset.id).toBe("1059-0");
    expect(document.querySelectorAll(".clip-card img[src]").length).toBe(0);
    fire!(cards().slice(0, 12).map((target) => ({ target, isIntersecting: true })));
    expect(document.querySelectorAll(".clip-card img[src]").length).toBe(12);
    expect(observed.size).toBe(48);
    // Search: every word, any case.
    $("gallery-search").value = "FOX";
    $("gallery-search").dispatchEvent(new Event("input"));
    expect(cards().length).toBe(12);
    expect($("gallery-status").textContent).toBe("12 of 60 clips");
    $("gallery-search").value = "clip 1 boat";
    $("gallery-search").dispatchEvent(new Event("input"));
    const want = clips.filter((_, i) => i % 5 === 1 && String(i).includes("1")).map((c) => c.record.id).reverse();
    expect(want.length).toBe(7);
    expect(cards().map((c) => c.dataset.id)).toEqual(want);
    $("gallery-search").value = "";
    $("gallery-search").dispatchEvent(new Event("input"));
    // Sort: oldest first, then longest first (frames 5 + 4·(i mod 7), newest first on ties).
    $<HTMLSelectElement>("gallery-sort").value = "oldest";
    $("gallery-sort").dispatchEvent(new Event("change"));
    expect(cards()[0].dataset.id).toBe("1000-0");
    $<HTMLSelectElement>("gallery-sort").value = "longest";
    $("gallery-sort").dispatchEvent(new Event("change"));
    expect(cards()[0].dataset.id).toBe("1055-0");
    // A refresh (e.g. a new clip) reuses the existing cards and their loaded posters.
    const before = cards()[cards().length - 1];
    await g.refresh();
    expect(cards().includes(before)).toBe(true);
    expect(document.querySelectorAll(".clip-card img[src]").length).toBe(12);
    vi.unstubAllGlobals();
  });

  it("shows a continuation's chain, continues from it and reuses it with its link", async () => {
    const root = clipOf(1);
    const child = clipOf(2, { parent: root.record.id });
    child.record.params = { ...child.record.params, image: `${root.dir}/last.png` };
    const t2v = clipOf(3);
    t2v.record.params = { ...t2v.record.params, task: "t2v-A14B" };
    mockIPC((cmd) => (cmd === "list_clips" ? [root, child, t2v] : null));
    let reused: unknown[] = [];
    const continued: string[] = [];
    const g = new GalleryView(
      document.getElementById("v")!,
      (p, c) => (reused = [p, c]),
      async (c) => void continued.push(c.record.id),
    );
    await g.refresh();
    const card = (id: string) => document.querySelector<HTMLElement>(`.clip-card[data-id="${id}"]`)!;
    expect(card(child.record.id).querySelector(".chain-badge")!.textContent).toBe("Part 2 of 2");
    expect(card(root.record.id).querySelector<HTMLElement>(".chain-badge")!.textContent).toBe("Part 1 of 2");
    expect(card(t2v.record.id).querySelector<HTMLElement>(".chain-badge")!.hidden).toBe(true);
    expect(g.select(child.record.id)).toBe(true);
    expect($("chain").textContent).toContain("Part 2 of 2");
    expect([...$("chain").querySelectorAll("li button")].map((b) => b.textContent)).toEqual([
      root.record.params.prompt, child.record.params.prompt,
    ]);
    expect($<HTMLButtonElement>("join").disabled).toBe(false);
    $("continue").click();
    await Promise.resolve();
    expect(continued).toEqual([child.record.id]);
    $("rerun").click();
    await Promise.resolve();
    expect(reused).toEqual([
      child.record.params,
      { id: root.record.id, prompt: root.record.params.prompt, image: `${root.dir}/last.png` },
    ]);
    // A text-only clip cannot be continued; an unknown id selects nothing.
    g.select(t2v.record.id);
    expect($<HTMLButtonElement>("continue").disabled).toBe(true);
    expect(g.select("nope")).toBe(false);
  });
});
