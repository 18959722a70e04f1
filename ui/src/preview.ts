// Live previews: every frame of the current x0 estimate (small RGB8, base64) drawn to a
// canvas and looped, replaced at each step. Also records step→screen latency.
import type { PreviewMsg } from "./ipc";

/** base64 RGB8 → RGBA for ImageData. */
export function rgbToRgba(b64: string, w: number, h: number): Uint8ClampedArray<ArrayBuffer> {
  const bin = atob(b64);
  const out = new Uint8ClampedArray(new ArrayBuffer(w * h * 4));
  for (let i = 0, j = 0; i < w * h; i++, j += 3) {
    out[i * 4] = bin.charCodeAt(j);
    out[i * 4 + 1] = bin.charCodeAt(j + 1);
    out[i * 4 + 2] = bin.charCodeAt(j + 2);
    out[i * 4 + 3] = 255;
  }
  return out;
}

/** Step-to-screen latencies (ms) seen in this window; read by the E2E test. */
export const latencies: number[] = [];

export class PreviewPlayer {
  private frames: ImageData[] = [];
  private timer: ReturnType<typeof setInterval> | null = null;
  private i = 0;
  shown = 0;

  constructor(
    private canvas: HTMLCanvasElement,
    private fps = 8,
  ) {}

  show(p: PreviewMsg, sentMs?: number): void {
    const ctx = this.canvas.getContext("2d");
    this.frames = p.frames.map((f) => new ImageData(rgbToRgba(f, p.width, p.height), p.width, p.height));
    this.canvas.width = p.width;
    this.canvas.height = p.height;
    this.i = 0;
    this.shown++;
    this.canvas.dataset.previews = String(this.shown);
    this.canvas.dataset.frames = String(this.frames.length);
    this.draw(ctx);
    if (sentMs !== undefined) {
      const mark = () => {
        const ms = Date.now() - sentMs;
        latencies.push(ms);
        this.canvas.dataset.latencyMs = String(ms);
      };
      if (typeof requestAnimationFrame === "function") requestAnimationFrame(mark);
      else mark();
    }
    if (!this.timer && this.frames.length > 1) {
      this.timer = setInterval(() => this.draw(this.canvas.getContext("2d")), 1000 / this.fps);
    }
  }

  private draw(ctx: CanvasRenderingContext2D | null): void {
    const f = this.frames[this.i % Math.max(1, this.frames.length)];
    this.i++;
    if (ctx && f) ctx.putImageData(f, 0, 0);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
