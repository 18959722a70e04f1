// Tiny DOM helpers (no framework): element creation with attributes and children.
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false) continue;
    if (k === "text") e.textContent = String(v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  e.append(...children);
  return e;
}

export function byId<T extends HTMLElement>(root: ParentNode, id: string): T {
  const e = root.querySelector(`#${id}`);
  if (!e) throw new Error(`missing #${id}`);
  return e as T;
}
