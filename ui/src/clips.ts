// Pure logic over gallery clips and prompts (no DOM, no IPC): search, sort, the chains of
// continued clips, durations.
import type { ClipEntry } from "./ipc";

export type SortKey = "newest" | "oldest" | "longest" | "shortest" | "model";

export const SORTS: [SortKey, string][] = [
  ["newest", "Newest first"],
  ["oldest", "Oldest first"],
  ["longest", "Longest first"],
  ["shortest", "Shortest first"],
  ["model", "By model"],
];

/** True when every word of `query` occurs in `text` (case-insensitive, any order). */
export function matchesQuery(text: string, query: string): boolean {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return true;
  const t = text.toLowerCase();
  return words.every((w) => t.includes(w));
}

/** Prompts of the history that match `query`, in history order (newest first). */
export function filterHistory(history: string[], query: string): string[] {
  return history.filter((p) => matchesQuery(p, query));
}

/** Seconds of video in a clip. */
export function clipSeconds(c: ClipEntry): number {
  return c.record.fps > 0 ? c.record.frames / c.record.fps : 0;
}

/** Clips whose prompt (or negative prompt, task, model, seed) matches `query`. */
export function filterClips(clips: ClipEntry[], query: string): ClipEntry[] {
  if (!query.trim()) return clips;
  return clips.filter((c) => {
    const r = c.record;
    return matchesQuery(`${r.params.prompt}\n${r.params.task}\n${r.model.name}\n${r.params.seed}`, query);
  });
}

/** A sorted copy of `clips` (ties: newest first). */
export function sortClips(clips: ClipEntry[], key: SortKey): ClipEntry[] {
  const newest = (a: ClipEntry, b: ClipEntry) =>
    b.record.created_unix_ms - a.record.created_unix_ms || (a.record.id < b.record.id ? 1 : -1);
  const cmp: Record<SortKey, (a: ClipEntry, b: ClipEntry) => number> = {
    newest,
    oldest: (a, b) => -newest(a, b),
    longest: (a, b) => clipSeconds(b) - clipSeconds(a) || newest(a, b),
    shortest: (a, b) => clipSeconds(a) - clipSeconds(b) || newest(a, b),
    model: (a, b) => a.record.model.name.localeCompare(b.record.model.name) || newest(a, b),
  };
  return [...clips].sort(cmp[key]);
}

export interface ChainInfo {
  /** The chain through this clip, oldest first (ancestors, the clip, then the line of its newest continuations). */
  chain: ClipEntry[];
  /** 1-based position of the clip in `chain`. */
  position: number;
  parent: ClipEntry | null;
  children: ClipEntry[];
}

/**
 * Where `id` sits among continued clips: its ancestors (a deleted ancestor ends the line;
 * cycles are cut), its direct continuations, and one line of descendants (newest
 * continuation at each step). Null for an unknown id.
 */
export function chainOf(clips: ClipEntry[], id: string): ChainInfo | null {
  const byId = new Map(clips.map((c) => [c.record.id, c]));
  const kids = new Map<string, ClipEntry[]>();
  for (const c of clips) {
    const p = c.record.parent;
    if (p && byId.has(p)) kids.set(p, [...(kids.get(p) ?? []), c]);
  }
  for (const list of kids.values()) list.sort((a, b) => b.record.created_unix_ms - a.record.created_unix_ms);
  const self = byId.get(id);
  if (!self) return null;
  const seen = new Set([id]);
  const up: ClipEntry[] = [];
  for (let p = self.record.parent; p && byId.has(p) && !seen.has(p); p = byId.get(p)!.record.parent) {
    seen.add(p);
    up.unshift(byId.get(p)!);
  }
  const down: ClipEntry[] = [];
  for (let c = kids.get(id)?.[0]; c && !seen.has(c.record.id); c = kids.get(c.record.id)?.[0]) {
    seen.add(c.record.id);
    down.push(c);
  }
  return {
    chain: [...up, self, ...down],
    position: up.length + 1,
    parent: up[up.length - 1] ?? null,
    children: kids.get(id) ?? [],
  };
}
