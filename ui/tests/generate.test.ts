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

beforeEach(() => {
  calls = [];
  channel = null;
  enqueueError = null;
  planReply = fitting;
  mockWindows("main");
  mockConvertFileSrc("linux");
  mockIPC(
    (cmd, args) => {
      calls.push({ cmd, args: (args ?? {}) as Record<string, unknown> });
      switch (cmd) {
        case "task_presets": return presets;
        case "default_negative_prompt": return "DEFAULT NEG";
        case "get_settings": return { checkpoint_dir: "/ckpt", last_params: null };
        case "queue_snapshot": return { running: null, pending: [] };
        case "memory_estimate":
          return planReply;
        case "read_image": return { path: (args as { path: string }).path, width: 1920, height: 1080, data_url: "data:image/png;base64," };
        case "enqueue":
          if (enqueueError) throw enqueueError;
          channel = (args as { onEvent: Channel<JobEvent> }).onEvent;
          return 7;
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
