/** Unit tests of the loop's timer heap: deadline order, ties in scheduling order, filter, clear. */
import { describe, expect, it } from 'vitest';
import { TimerHeap, type HeapItem } from '../../src/loop/heap.ts';

interface Item extends HeapItem {
  name: string;
}

let seq = 0;
const item = (when: number, name = String(when)): Item => ({ heapWhen: when, heapSeq: ++seq, name });

function drain(h: TimerHeap<Item>): string[] {
  const out: string[] = [];
  for (let x = h.pop(); x !== undefined; x = h.pop()) out.push(x.name);
  return out;
}

describe('TimerHeap', () => {
  it('is empty at first', () => {
    const h = new TimerHeap<Item>();
    expect(h.size).toBe(0);
    expect(h.peek()).toBeUndefined();
    expect(h.pop()).toBeUndefined();
  });

  it('pops in deadline order and peek shows the next one', () => {
    const h = new TimerHeap<Item>();
    for (const w of [5, 1, 4, 2, 3]) h.push(item(w));
    expect(h.size).toBe(5);
    expect(h.peek()!.name).toBe('1');
    expect(drain(h)).toEqual(['1', '2', '3', '4', '5']);
    expect(h.size).toBe(0);
  });

  it('breaks ties in scheduling order', () => {
    const h = new TimerHeap<Item>();
    h.push(item(10, 'a'));
    h.push(item(5, 'x'));
    h.push(item(10, 'b'));
    h.push(item(10, 'c'));
    expect(drain(h)).toEqual(['x', 'a', 'b', 'c']);
  });

  it('matches a sort on many random deadlines, pushes and pops interleaved', () => {
    const h = new TimerHeap<Item>();
    const ref: Item[] = [];
    let rnd = 42;
    const next = (): number => (rnd = (rnd * 1103515245 + 12345) % 2 ** 31) % 50;
    const popped: Item[] = [];
    const expected: Item[] = [];
    for (let i = 0; i < 2000; i++) {
      const x = item(next());
      h.push(x);
      ref.push(x);
      if (i % 3 === 0) {
        ref.sort((a, b) => a.heapWhen - b.heapWhen || a.heapSeq - b.heapSeq);
        expected.push(ref.shift()!);
        popped.push(h.pop()!);
      }
    }
    ref.sort((a, b) => a.heapWhen - b.heapWhen || a.heapSeq - b.heapSeq);
    expect(popped).toEqual(expected);
    expect(drain(h)).toEqual(ref.map((x) => x.name));
  });

  it('filter keeps the order of what it keeps; clear empties it', () => {
    const h = new TimerHeap<Item>();
    for (let w = 1; w <= 10; w++) h.push(item(w));
    h.filter((x) => x.heapWhen % 2 === 0);
    expect(h.size).toBe(5);
    expect(drain(h)).toEqual(['2', '4', '6', '8', '10']);
    h.push(item(1));
    h.clear();
    expect(h.size).toBe(0);
    expect(h.peek()).toBeUndefined();
  });
});
