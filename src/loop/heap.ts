/**
 * A binary min-heap of timers ordered by (when, sequence): deadline order, ties in
 * scheduling order.
 * @module
 */

export interface HeapItem {
  readonly heapWhen: number;
  readonly heapSeq: number;
}

function less(a: HeapItem, b: HeapItem): boolean {
  return a.heapWhen < b.heapWhen || (a.heapWhen === b.heapWhen && a.heapSeq < b.heapSeq);
}

export class TimerHeap<T extends HeapItem> {
  items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(item, a[p]!)) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = item;
  }

  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      let i = 0;
      const n = a.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && less(a[r]!, a[l]!) ? r : l;
        if (!less(a[c]!, last)) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }

  /** Rebuilds the heap keeping only the items `keep` accepts. */
  filter(keep: (item: T) => boolean): void {
    const kept = this.items.filter(keep);
    this.items = [];
    for (const it of kept) this.push(it);
  }

  clear(): void {
    this.items = [];
  }
}
