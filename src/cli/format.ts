/**
 * Text renderings of `ps`, `pstree` and `stats` answers.
 * @module
 */
import type { LoopSnapshot, TaskInfo } from '../loop/introspect.ts';

function age(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${Math.floor((ms % 60_000) / 1000)}s`;
  return `${Math.floor(ms / 3_600_000)}h${Math.floor((ms % 3_600_000) / 60_000)}m`;
}

function pad(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

/** The `ps` table. */
export function formatPs(pid: number, tasks: TaskInfo[]): string {
  const debug = tasks.some((t) => t.createdAt !== null);
  const head = ['ID', 'NAME', 'STATE', 'AGE', 'AWAITING', 'PARENT'];
  if (debug) head.push('CREATED AT');
  const rows = [head];
  for (const t of tasks) {
    const state = t.cancelling > 0 ? `${t.state}, cancelling` : t.state;
    const row = [String(t.id), t.name, state, age(t.ageMs), t.awaiting ?? '-', t.parent !== null ? `${t.parentName} (${t.parent})` : '-'];
    if (debug) row.push(t.createdAt ?? '-');
    rows.push(row);
  }
  return `${tasks.length} task(s) pending in process ${pid}\n${pad(rows)}`;
}

/**
 * The `pstree` tree: a task's children are the tasks it awaits, then the tasks it
 * created that no one awaits. Roots are the tasks no pending task awaits or created.
 */
export function formatPstree(pid: number, tasks: TaskInfo[]): string {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const awaitedBy = new Map<number, number>();
  for (const t of tasks) if (t.awaitingTask !== null && byId.has(t.awaitingTask)) awaitedBy.set(t.awaitingTask, t.id);
  const children = new Map<number, number[]>();
  const roots: number[] = [];
  for (const t of tasks) {
    const up = awaitedBy.get(t.id) ?? (t.parent !== null && byId.has(t.parent) ? t.parent : null);
    if (up === null || up === t.id) roots.push(t.id);
    else {
      let list = children.get(up);
      if (list === undefined) children.set(up, (list = []));
      list.push(t.id);
    }
  }
  const lines = [`process ${pid}`];
  const seen = new Set<number>();
  const walk = (id: number, prefix: string, last: boolean): void => {
    const t = byId.get(id)!;
    if (seen.has(id)) return;
    seen.add(id);
    const what = t.awaiting !== null ? ` awaiting ${t.awaiting}` : '';
    lines.push(`${prefix}${last ? '└── ' : '├── '}${t.name} (${t.id})${what}${t.cancelling > 0 ? ' [cancelling]' : ''}`);
    const kids = children.get(id) ?? [];
    kids.forEach((k, i) => walk(k, prefix + (last ? '    ' : '│   '), i === kids.length - 1));
  };
  roots.forEach((r, i) => walk(r, '', i === roots.length - 1));
  return lines.join('\n');
}

/** The `stats` summary. */
export function formatStats(s: LoopSnapshot): string {
  const res = Object.entries(s.openResources).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none';
  const lines = [
    `process ${s.pid}: loop ${s.running ? 'running' : 'not running'}, debug ${s.debug ? 'on' : 'off'}, up ${age(s.uptimeMs)}`,
    `loop lag            ${s.lagMs.last.toFixed(1)} ms (max ${s.lagMs.max.toFixed(1)} ms)`,
    `callbacks           ${s.rates.callbacksPerSec.toFixed(0)}/s (${s.totals.callbacks} total)`,
    `task steps          ${s.rates.taskStepsPerSec.toFixed(0)}/s (${s.totals.taskSteps} total)`,
    `iterations          ${s.rates.iterationsPerSec.toFixed(0)}/s`,
    `tasks               ${s.tasksPending} pending, ${s.totals.tasksCreated} created`,
    `slow callbacks      ${s.totals.slowCallbacks}`,
    `open resources      ${res}`,
  ];
  for (const [k, v] of Object.entries(s.extra)) {
    const text = v !== null && typeof v === 'object' ? Object.entries(v).map(([key, val]) => `${key} ${String(val)}`).join(', ') : String(v);
    lines.push(`${k.padEnd(19)} ${text}`);
  }
  return lines.join('\n');
}

/** One frame of `protoloop top`: the stats, the tasks by state, the oldest pending tasks. */
export function formatTop(s: LoopSnapshot, tasks: TaskInfo[], rows = 10): string {
  const waiting = tasks.filter((t) => t.state === 'waiting').length;
  const cancelling = tasks.filter((t) => t.cancelling > 0).length;
  const res = Object.entries(s.openResources).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  const connections = Object.entries(s.openResources).filter(([k]) => /transport/.test(k)).reduce((n, [, v]) => n + v, 0);
  const lines = [
    `protoloop top - process ${s.pid}, loop ${s.running ? 'running' : 'not running'}, debug ${s.debug ? 'on' : 'off'}, up ${age(s.uptimeMs)}`,
    `lag ${s.lagMs.last.toFixed(1)} ms (max ${s.lagMs.max.toFixed(1)} ms)   callbacks ${s.rates.callbacksPerSec.toFixed(0)}/s   task steps ${s.rates.taskStepsPerSec.toFixed(0)}/s   iterations ${s.rates.iterationsPerSec.toFixed(0)}/s`,
    `tasks ${s.tasksPending} pending: ${waiting} waiting, ${tasks.length - waiting} ready or in foreign code, ${cancelling} cancelling; ${s.totals.tasksCreated} created`,
    `slow callbacks ${s.totals.slowCallbacks} total (debug mode or a protoloop:callback:slow subscriber times them)`,
    `connections ${connections}   open resources: ${res}`,
  ];
  // Older targets do not send slowRecent.
  for (const r of s.slowRecent ?? []) lines.push(`  slow: ${r.what} took ${r.durationMs.toFixed(0)} ms, ${age(r.agoMs)} ago`);
  for (const [k, v] of Object.entries(s.extra)) {
    if (!k.startsWith('executor')) continue;
    const e = v as { kind?: string; state?: string; workers?: number; running?: number; queued?: number; completed?: number } | string;
    lines.push(typeof e === 'string' ? `${k}: ${e}` : `${k}: ${e.kind} ${e.state}, ${e.running}/${e.workers} busy, ${e.queued} queued, ${e.completed} done`);
  }
  if (tasks.length > 0) {
    const shown = [...tasks].sort((a, b) => b.ageMs - a.ageMs).slice(0, rows);
    const table = [['ID', 'NAME', 'STATE', 'AGE', 'AWAITING'], ...shown.map((t) => [String(t.id), t.name, t.cancelling > 0 ? `${t.state}, cancelling` : t.state, age(t.ageMs), t.awaiting ?? '-'])];
    lines.push('', pad(table));
    if (tasks.length > rows) lines.push(`... ${tasks.length - rows} more (protoloop ps ${s.pid})`);
  }
  return lines.join('\n');
}
