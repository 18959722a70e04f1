// Pure logic of the app shell: shortcuts (per platform, tooltips, the menu echo), gallery
// search / sort / chains of continued clips, prompt-history search, variation seeds.
import { describe, expect, it } from "vitest";
import type { ClipEntry, GenerateParams } from "../src/ipc";
import { ActionRunner, actionFor, shortcutLabel, withShortcut, type Action } from "../src/shortcuts";
import { chainOf, filterClips, filterHistory, matchesQuery, sortClips } from "../src/clips";
import { validateVariations, variationSeeds } from "../src/form";
import { applyAppearance } from "../src/theme";

const key = (k: string, mods: Partial<KeyboardEvent> = {}) =>
  ({ key: k, metaKey: false, ctrlKey: false, altKey: false, shiftKey: false, ...mods }) as KeyboardEvent;

describe("shortcuts", () => {
  it("use ⌘ on macOS and Ctrl elsewhere, never both", () => {
    expect(actionFor(key("Enter", { metaKey: true }), true)).toBe("generate");
    expect(actionFor(key("Enter", { ctrlKey: true }), true)).toBeNull();
    expect(actionFor(key("Enter", { ctrlKey: true }), false)).toBe("generate");
    expect(actionFor(key("Enter", { metaKey: true }), false)).toBeNull();
    expect(actionFor(key(".", { ctrlKey: true }), false)).toBe("cancel");
    expect(actionFor(key("2", { ctrlKey: true }), false)).toBe("view-gallery");
    expect(actionFor(key("O", { ctrlKey: true }), false)).toBe("open-image");
    // Plain keys, Shift/Alt variants and unbound keys are left to the page.
    expect(actionFor(key("Enter"), false)).toBeNull();
    expect(actionFor(key("Enter", { ctrlKey: true, shiftKey: true }), false)).toBeNull();
    expect(actionFor(key("x", { ctrlKey: true }), false)).toBeNull();
  });

  it("are written the platform's way in tooltips", () => {
    expect(shortcutLabel("generate", true)).toBe("⌘↵");
    expect(shortcutLabel("generate", false)).toBe("Ctrl+Enter");
    expect(shortcutLabel("cancel", true)).toBe("⌘.");
    expect(shortcutLabel("view-models", false)).toBe("Ctrl+3");
    expect(withShortcut("Generate", "generate", true)).toBe("Generate (⌘↵)");
  });

  it("run once when the page and the native menu both see the key", () => {
    let t = 0;
    const ran: Action[] = [];
    const r = new ActionRunner((a) => ran.push(a), 300, () => t);
    expect(r.dispatch("generate")).toBe(true);
    t = 100;
    expect(r.dispatch("generate")).toBe(false); // the menu's echo
    expect(r.dispatch("cancel")).toBe(true); // another action is not an echo
    t = 1000;
    expect(r.dispatch("generate")).toBe(true); // a second press later
    expect(ran).toEqual(["generate", "cancel", "generate"]);
  });
});

const params = (prompt: string, seed = 1): GenerateParams => ({
  task: "ti2v-5B", prompt, negative_prompt: null, size: [96, 64], frame_num: 5, sample_steps: 2,
  sample_shift: 5, guide_scale: [5, 5], solver: "unipc", seed, image: null,
});

function clip(id: string, prompt: string, o: { at?: number; frames?: number; fps?: number; model?: string; parent?: string | null } = {}): ClipEntry {
  return {
    record: {
      id, created_unix_ms: o.at ?? 0, params: params(prompt), negative_prompt_used: "", width: 96, height: 64,
      frames: o.frames ?? 5, fps: o.fps ?? 24, model: { path: "/c", name: o.model ?? "ti2v-5B (tiny)", engine: "wan" },
      timings: { load_s: 0, text_s: 0, denoise_s: 0, decode_s: 0 }, wall_s: 1, parent: o.parent ?? null,
    },
    dir: `/g/${id}`, clip: `/g/${id}/clip.mp4`, poster: `/g/${id}/poster.png`,
  };
}

describe("gallery logic", () => {
  const clips = [
    clip("1-0", "A red fox runs through fresh snow", { at: 1, frames: 121, fps: 24, model: "ti2v-5B" }),
    clip("2-0", "Paper lanterns drift over a river", { at: 2, frames: 81, fps: 16, model: "t2v-A14B" }),
    clip("3-0", "The fox sleeps under a pine", { at: 3, frames: 5, fps: 24, model: "ti2v-5B" }),
  ];
  const ids = (cs: ClipEntry[]) => cs.map((c) => c.record.id);

  it("searches prompts by every word, in any order and case", () => {
    expect(matchesQuery("A red fox", "FOX red")).toBe(true);
    expect(matchesQuery("A red fox", "fox blue")).toBe(false);
    expect(ids(filterClips(clips, "fox"))).toEqual(["1-0", "3-0"]);
    expect(ids(filterClips(clips, "  lanterns "))).toEqual(["2-0"]);
    expect(ids(filterClips(clips, "A14B"))).toEqual(["2-0"]); // the model/task counts too
    expect(filterClips(clips, "")).toBe(clips);
  });

  it("sorts by date, duration and model", () => {
    expect(ids(sortClips(clips, "newest"))).toEqual(["3-0", "2-0", "1-0"]);
    expect(ids(sortClips(clips, "oldest"))).toEqual(["1-0", "2-0", "3-0"]);
    // 121/24 = 5.04 s, 81/16 = 5.06 s, 5/24 = 0.21 s
    expect(ids(sortClips(clips, "longest"))).toEqual(["2-0", "1-0", "3-0"]);
    expect(ids(sortClips(clips, "shortest"))).toEqual(["3-0", "1-0", "2-0"]);
    expect(ids(sortClips(clips, "model"))).toEqual(["2-0", "3-0", "1-0"]);
    expect(ids(clips)).toEqual(["1-0", "2-0", "3-0"]); // a copy: the input is untouched
  });

  it("follows chains of continued clips both ways", () => {
    const cs = [
      clip("1-0", "root", { at: 1 }),
      clip("2-0", "part 2", { at: 2, parent: "1-0" }),
      clip("3-0", "part 3", { at: 3, parent: "2-0" }),
      clip("4-0", "other branch of 1", { at: 4, parent: "1-0" }),
      clip("5-0", "parent deleted", { at: 5, parent: "gone" }),
      clip("6-0", "cycle a", { parent: "7-0" }),
      clip("7-0", "cycle b", { parent: "6-0" }),
    ];
    const two = chainOf(cs, "2-0")!;
    expect(ids(two.chain)).toEqual(["1-0", "2-0", "3-0"]);
    expect(two.position).toBe(2);
    expect(two.parent?.record.id).toBe("1-0");
    expect(ids(two.children)).toEqual(["3-0"]);
    // The root's line follows its newest continuation; both are its children.
    const root = chainOf(cs, "1-0")!;
    expect(ids(root.children)).toEqual(["4-0", "2-0"]);
    expect(ids(root.chain)).toEqual(["1-0", "4-0"]);
    expect(ids(chainOf(cs, "5-0")!.chain)).toEqual(["5-0"]);
    expect(chainOf(cs, "6-0")!.chain.length).toBe(2);
    expect(chainOf(cs, "nope")).toBeNull();
  });

  it("filters the prompt history", () => {
    const h = ["a red fox", "paper lanterns", "a fox at night"];
    expect(filterHistory(h, "fox")).toEqual(["a red fox", "a fox at night"]);
    expect(filterHistory(h, "")).toEqual(h);
    expect(filterHistory(h, "boat")).toEqual([]);
  });

  it("gives variations consecutive seeds within limits", () => {
    expect(variationSeeds(42, 3)).toEqual([42, 43, 44]);
    expect(variationSeeds(7, 1)).toEqual([7]);
    expect(validateVariations(2, 1)).toEqual([]);
    expect(validateVariations(0, 1)[0]).toContain("between 1 and 16");
    expect(validateVariations(17, 1)[0]).toContain("between 1 and 16");
    expect(validateVariations(1.5, 1)[0]).toContain("between 1 and 16");
    expect(validateVariations(3, Number.MAX_SAFE_INTEGER - 1)[0]).toContain("too large");
  });

  it("applies the appearance to <html>", () => {
    const root = document.createElement("html");
    applyAppearance("dark", root);
    expect(root.dataset.theme).toBe("dark");
    applyAppearance("system", root);
    expect(root.dataset.theme).toBeUndefined();
  });
});
