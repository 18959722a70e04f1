// The Models view's conversion flow against mocked IPC: what it sends to Rust, how it
// shows progress, cancel, success (switching the checkpoint) and errors, and when it
// refuses to offer a conversion.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { clearMocks, mockIPC, mockWindows } from "@tauri-apps/api/mocks";
import type { Channel } from "@tauri-apps/api/core";
import type { CheckpointInfo, JobEvent } from "../src/ipc";
import { ModelsView, defaultDestination } from "../src/views/models";

const dit = { dim: 256, num_layers: 2, num_heads: 2, model_type: "ti2v", bytes: 1000 };
const official: CheckpointInfo = {
  path: "/ckpt/Wan2.2-TI2V-5B", layout: "Official", task: "ti2v-5B", name: "ti2v-5B (dim 256, 2 layers)",
  dits: [dit], total_bytes: 4000, problems: [],
};
const converted: CheckpointInfo = { ...official, path: "/ckpt/Wan2.2-TI2V-5B-mlx", layout: "Converted", total_bytes: 2000 };
const broken: CheckpointInfo = { ...official, path: "/ckpt/broken", problems: ["VAE weights missing (Wan2.2_VAE.pth)"] };
const folders: Record<string, CheckpointInfo> = {
  [official.path]: official, [converted.path]: converted, [broken.path]: broken,
};

let calls: { cmd: string; args: Record<string, unknown> }[] = [];
let channel: Channel<JobEvent> | null = null;
let convertError: unknown = null;
let selected: string | null = null;
let changed = 0;

beforeEach(() => {
  calls = [];
  channel = null;
  convertError = null;
  selected = official.path;
  changed = 0;
  mockWindows("main");
  mockIPC((cmd, args) => {
    const a = (args ?? {}) as Record<string, unknown>;
    calls.push({ cmd, args: a });
    switch (cmd) {
      case "get_settings": return { checkpoint_dir: selected, last_params: null };
      case "app_info": return { data_dir: "/d", gallery_dir: "/d/gallery", machine_bytes: 16 * 2 ** 30, engine: "fake" };
      case "inspect_checkpoint": {
        const info = folders[a.path as string];
        if (!info) throw { code: "input", message: `${a.path}: No such file or directory` };
        return info;
      }
      case "convert_checkpoint":
        if (convertError) throw convertError;
        channel = a.onEvent as Channel<JobEvent>;
        return 11;
      case "cancel_job": return null;
      case "convert_estimate": {
        const per = a.dtype === "f32" ? 4 : 2;
        return [
          { quantize: null, bytes: 1000 * 2 ** 20 * per, drift: null },
          { quantize: "q8", bytes: 530 * 2 ** 20 * 2, drift: "DiT RMS 0.1 %" },
          { quantize: "q4", bytes: 300 * 2 ** 20 * 2, drift: "DiT RMS 1.5 %" },
        ];
      }
    }
    return null;
  });
  document.body.innerHTML = `<section id="v"></section>`;
});

afterEach(() => clearMocks());

async function view(): Promise<ModelsView> {
  const v = new ModelsView(document.getElementById("v")!, () => changed++);
  await v.init();
  return v;
}
const $ = <T extends HTMLElement = HTMLInputElement>(id: string) => document.getElementById(id) as T;
const send = (e: JobEvent) => channel!.onmessage(e);
const button = (id: string) => $<HTMLButtonElement>(id);

describe("ModelsView conversion", () => {
  it("offers an official folder with defaults and sends exactly the choices", async () => {
    const v = await view();
    expect(button("convert").disabled).toBe(false);
    expect($("convert-dst").value).toBe("/ckpt/Wan2.2-TI2V-5B-mlx");
    expect($<HTMLSelectElement>("convert-dtype").value).toBe("bf16");
    expect($("convert-select").checked).toBe(true);
    $("convert-dst").value = "/fast/ti2v-f32";
    $<HTMLSelectElement>("convert-dtype").value = "f32";
    $("convert-select").checked = false;
    expect(await v.convert()).toBe(11);
    const sent = calls.find((c) => c.cmd === "convert_checkpoint")!.args;
    expect({ ...sent, onEvent: undefined }).toEqual({
      src: "/ckpt/Wan2.2-TI2V-5B", dst: "/fast/ti2v-f32", dtype: "f32", select: false, quantize: null, onEvent: undefined,
    });
    expect(defaultDestination("/a/b/")).toBe("/a/b-mlx");
  });

  it("offers 8-bit and 4-bit with their predicted size and drift and sends the level", async () => {
    const v = await view();
    await new Promise((r) => setTimeout(r, 0));
    const sel = $<HTMLSelectElement>("convert-quant");
    expect(Array.from(sel.options).map((o) => o.textContent)).toEqual([
      "bf16 (no quantization) — 2.0 GB",
      "8-bit — 1.0 GB",
      "4-bit — 600.0 MB",
    ]);
    expect($("convert-estimate").textContent).toBe("New folder ≈ 2.0 GB");
    sel.value = "q8";
    sel.dispatchEvent(new Event("change"));
    expect($("convert-estimate").textContent).toBe("New folder ≈ 1.0 GB (53% of bf16) · measured drift: DiT RMS 0.1 %");
    // another dtype asks again
    $<HTMLSelectElement>("convert-dtype").value = "f32";
    $<HTMLSelectElement>("convert-dtype").dispatchEvent(new Event("change"));
    await new Promise((r) => setTimeout(r, 0));
    expect(calls.filter((c) => c.cmd === "convert_estimate").map((c) => c.args.dtype)).toEqual(["bf16", "f32"]);
    expect(sel.options[0].textContent).toBe("f32 (no quantization) — 3.9 GB");
    expect(await v.convert()).toBe(11);
    const sent = calls.find((c) => c.cmd === "convert_checkpoint")!.args;
    expect(sent.quantize).toBe("q8");
    expect(sent.dtype).toBe("f32");
    expect(sel.disabled).toBe(true);
  });

  it("asks no estimate for a converted folder", async () => {
    selected = converted.path;
    await view();
    await new Promise((r) => setTimeout(r, 0));
    expect(calls.some((c) => c.cmd === "convert_estimate")).toBe(false);
    expect($("convert-estimate").textContent).toBe("");
    expect($<HTMLSelectElement>("convert-quant").disabled).toBe(true);
  });

  it("shows progress with ETA, cancels, and can convert again", async () => {
    const v = await view();
    expect(await v.convert()).toBe(11);
    expect($("convert-text").textContent).toContain("Waiting");
    expect(button("convert").disabled).toBe(true);
    expect(button("convert-cancel").disabled).toBe(false);
    send({ kind: "started" });
    send({ kind: "convert", tensor: "blocks.0.ffn.0.weight", done_bytes: 512 * 2 ** 20, total_bytes: 2048 * 2 ** 20, elapsed_s: 2, eta_s: 6 });
    expect($<HTMLProgressElement>("convert-progress").value).toBe(0.25);
    const text = $("convert-text").textContent!;
    expect(text).toContain("512.0 MB / 2.0 GB (25%)");
    expect(text).toContain("ETA 6.0 s");
    expect(text).toContain("blocks.0.ffn.0.weight");
    expect($("convert-dst").disabled).toBe(true);
    button("convert-cancel").click();
    await Promise.resolve();
    expect(calls.find((c) => c.cmd === "cancel_job")?.args).toEqual({ id: 11 });
    expect(button("convert-cancel").disabled).toBe(true);
    send({ kind: "cancelled" });
    expect($("convert-text").textContent).toContain("Cancelled");
    expect($<HTMLProgressElement>("convert-progress").value).toBe(0);
    expect(button("convert").disabled).toBe(false);
  });

  it("on success switches to the converted folder and explains it cannot be converted again", async () => {
    const v = await view();
    await v.convert();
    send({ kind: "started" });
    send({ kind: "convert", tensor: "t", done_bytes: 2000, total_bytes: 2000, elapsed_s: 1, eta_s: 0 });
    send({ kind: "fit_preview" });
    expect($("convert-text").textContent).toContain("previewer");
    send({ kind: "converted", result: { info: converted, selected: true, previewer: true, tensors: 42, bytes: 2000, wall_s: 3 } });
    expect($<HTMLProgressElement>("convert-progress").value).toBe(1);
    expect($("convert-text").textContent).toContain("Converted 42 tensors");
    expect($("convert-text").textContent).toContain("now in use");
    expect($("ckpt-path").value).toBe(converted.path);
    expect($("ckpt-status").textContent).toContain("Using ti2v-5B");
    expect(changed).toBe(1);
    expect(button("convert").disabled).toBe(true);
    expect($("convert-hint").textContent).toContain("already converted");
  });

  it("shows Rust's refusal and a failed conversion with their reasons", async () => {
    const v = await view();
    convertError = { code: "input", message: "/ckpt/Wan2.2-TI2V-5B-mlx already exists; choose a new folder name" };
    expect(await v.convert()).toBeNull();
    expect($("convert-text").textContent).toContain("already exists");
    expect($("convert-text").dataset.code).toBe("input");
    expect(button("convert").disabled).toBe(false);
    convertError = null;
    await v.convert();
    send({ kind: "started" });
    send({ kind: "failed", error: { code: "io", message: "No space left on device" } });
    expect($("convert-text").textContent).toBe("Conversion failed: No space left on device");
    expect($("convert-text").dataset.code).toBe("io");
    expect(button("convert").disabled).toBe(false);
    // An empty destination never reaches Rust.
    $("convert-dst").value = " ";
    calls = [];
    expect(await v.convert()).toBeNull();
    expect(calls.some((c) => c.cmd === "convert_checkpoint")).toBe(false);
  });

  it("is disabled, with the reason, for converted, broken and missing folders", async () => {
    selected = converted.path;
    const v = await view();
    expect(button("convert").disabled).toBe(true);
    expect($("convert-hint").textContent).toContain("already converted");
    expect(await v.convert()).toBeNull();
    await v.inspect(broken.path);
    expect(button("convert").disabled).toBe(true);
    expect($("convert-hint").textContent).toContain("problems");
    await v.inspect("/nope");
    expect(button("convert").disabled).toBe(true);
    expect($("convert-hint").textContent).toContain("Choose an official checkpoint");
    await v.inspect(official.path);
    expect(button("convert").disabled).toBe(false);
    expect(calls.some((c) => c.cmd === "convert_checkpoint")).toBe(false);
  });
});
