import { describe, expect, it } from "vitest";
import * as form from "../src/form";
import type { GenerateParams, TaskPreset } from "../src/ipc";

const ti2v: TaskPreset = {
  task: "ti2v-5B",
  sizes: [[1280, 704], [704, 1280]],
  size_multiple: [32, 32],
  frame_num: 121,
  fps: 24,
  sample_steps: 50,
  sample_shift: 5,
  guide_scale: [5, 5],
  needs_image: false,
  accepts_image: true,
};

const good: GenerateParams = { ...form.defaults(ti2v, "a fox"), seed: 1 };

describe("validate", () => {
  it("accepts the task defaults", () => {
    expect(form.validate(good, ti2v)).toEqual([]);
  });
  it.each([
    [{ prompt: " " }, "prompt is empty"],
    [{ size: [100, 64] as [number, number] }, "multiple of 32×32"],
    [{ size: [4096, 4096] as [number, number] }, "larger than"],
    [{ frame_num: 6 }, "4n+1"],
    [{ sample_steps: 0 }, "Steps"],
    [{ sample_shift: 0 }, "Shift"],
    [{ guide_scale: [5, 31] as [number, number] }, "Guidance"],
    [{ seed: -1 }, "seed"],
  ])("refuses %o", (patch, msg) => {
    const errs = form.validate({ ...good, ...patch }, ti2v);
    expect(errs.join(" ")).toContain(msg);
  });
  it("knows which tasks need or refuse an image", () => {
    const i2v = { ...ti2v, task: "i2v-A14B" as const, needs_image: true };
    expect(form.validate({ ...good, task: "i2v-A14B" }, i2v).join()).toContain("needs an image");
    const t2v = { ...ti2v, task: "t2v-A14B" as const, accepts_image: false };
    expect(form.validate({ ...good, image: "/a.png" }, t2v).join()).toContain("text-only");
  });
});

describe("sizes and durations", () => {
  it("matches the official best_output_size examples (ti2v, area 1280×704)", () => {
    // Reference spec §5.6 [computed] examples.
    expect(form.imageOutputSize("ti2v-5B", [1920, 1080], [1280, 704])).toEqual([1248, 704]);
    expect(form.imageOutputSize("ti2v-5B", [1080, 1920], [1280, 704])).toEqual([704, 1248]);
    expect(form.imageOutputSize("ti2v-5B", [1024, 1024], [1280, 704])).toEqual([960, 928]);
    expect(form.imageOutputSize("ti2v-5B", [4032, 3024], [1280, 704])).toEqual([1088, 800]);
    expect(form.imageOutputSize("ti2v-5B", [1280, 704], [1280, 704])).toEqual([1280, 704]);
    // The e2e_ti2v_i2v fixture: 64×96 image, area 96×64 → 64×96.
    expect(form.imageOutputSize("ti2v-5B", [64, 96], [96, 64])).toEqual([64, 96]);
  });
  it("matches the official i2v-A14B examples", () => {
    expect(form.imageOutputSize("i2v-A14B", [1920, 1080], [1280, 720])).toEqual([1280, 720]);
    expect(form.imageOutputSize("i2v-A14B", [1920, 1080], [832, 480])).toEqual([832, 464]);
    expect(form.imageOutputSize("i2v-A14B", [1024, 1024], [1280, 720])).toEqual([960, 960]);
    // The e2e_i2v_a14b fixture: a 72×40 image and the area 80×48 → 80×32.
    expect(form.imageOutputSize("i2v-A14B", [72, 40], [80, 48])).toEqual([80, 32]);
  });
  it("has no size where the official rules divide by zero (resize_ti2v size table)", () => {
    expect(form.imageOutputSize("ti2v-5B", [3000, 100], [96, 64])).toBeNull();
    expect(form.imageOutputSize("ti2v-5B", [100, 3000], [160, 96])).toBeNull();
    expect(form.imageOutputSize("ti2v-5B", [3000, 100], [1280, 704])).not.toBeNull();
    expect(form.imageOutputSize("i2v-A14B", [4000, 10], [80, 48])).toBeNull();
  });
  it("computes durations and snaps frame counts to 4n+1", () => {
    expect(form.duration(121, 24)).toBeCloseTo(5.0417, 3);
    expect(form.duration(81, 16)).toBeCloseTo(5.0625, 4);
    expect([0, 1, 6, 7, 80, 121].map(form.snapFrames)).toEqual([1, 1, 5, 9, 81, 121]);
  });
  it("random seeds are whole and in range", () => {
    for (let i = 0; i < 100; i++) {
      const s = form.randomSeed();
      expect(Number.isInteger(s) && s >= 0 && s < 2 ** 32).toBe(true);
    }
  });
});
