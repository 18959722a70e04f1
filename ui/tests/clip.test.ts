// Clip playback fallback: WebKitGTK cannot play media from the asset protocol, so a
// "source not supported" error switches the player to a blob: URL of the fetched bytes.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { clearMocks, mockConvertFileSrc, mockWindows } from "@tauri-apps/api/mocks";
import { playClip, releaseClip } from "../src/clip";

const flush = () => new Promise((r) => setTimeout(r, 0));

function fail(v: HTMLVideoElement, code: number): void {
  Object.defineProperty(v, "error", { value: { code }, configurable: true });
  v.onerror?.(new Event("error"));
}

let fetched: string[] = [];
let created = 0;
let revoked: string[] = [];

beforeEach(() => {
  mockWindows("main");
  mockConvertFileSrc("linux");
  fetched = [];
  created = 0;
  revoked = [];
  vi.stubGlobal("fetch", async (url: string) => {
    fetched.push(url);
    return new Response(new Uint8Array([0, 0, 0, 24, 102, 116, 121, 112]), { status: 200 });
  });
  URL.createObjectURL = () => `blob:clip-${++created}`;
  URL.revokeObjectURL = (u: string) => void revoked.push(u);
});

afterEach(() => {
  vi.unstubAllGlobals();
  clearMocks();
});

describe("playClip", () => {
  it("plays the asset URL, then falls back to a blob of the same file", async () => {
    const v = document.createElement("video");
    const onFail = vi.fn();
    playClip(v, "/data/gallery/1-0/clip.mp4", onFail);
    expect(v.src).toContain("asset");
    expect(v.src).toContain(encodeURIComponent("/data/gallery/1-0/clip.mp4"));
    const assetUrl = v.src;

    fail(v, 4);
    await flush();
    await flush();
    expect(fetched).toEqual([assetUrl]);
    expect(v.src).toBe("blob:clip-1");
    expect(onFail).not.toHaveBeenCalled();

    // The blob does not play either: give up (the caller shows the poster).
    fail(v, 4);
    expect(onFail).toHaveBeenCalledTimes(1);
    expect(fetched).toHaveLength(1);

    releaseClip(v);
    expect(revoked).toEqual(["blob:clip-1"]);
  });

  it("does not fetch on other media errors", () => {
    const v = document.createElement("video");
    const onFail = vi.fn();
    playClip(v, "/data/gallery/1-0/clip.mp4", onFail);
    fail(v, 3); // MEDIA_ERR_DECODE
    expect(onFail).toHaveBeenCalledTimes(1);
    expect(fetched).toHaveLength(0);
  });

  it("reports a failed fetch", async () => {
    vi.stubGlobal("fetch", async () => new Response("nope", { status: 403 }));
    const v = document.createElement("video");
    const onFail = vi.fn();
    playClip(v, "/elsewhere/clip.mp4", onFail);
    fail(v, 4);
    await flush();
    await flush();
    expect(onFail).toHaveBeenCalledTimes(1);
  });
});
