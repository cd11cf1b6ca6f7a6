import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A memory limit for a process tree, as a small board has: a cgroup of its own with `memory.max`
 * (cgroup v2) or `memory.limit_in_bytes` (v1, with swap accounting when the kernel has it), made
 * directly below the hierarchy's root (a v2 cgroup that holds processes cannot give its children
 * a memory controller). Needs root. While it runs, the anonymous memory of the group (what cannot
 * be dropped like the page cache) is sampled for its peak.
 */
export interface MemoryCap {
  /** The group's cgroup.procs: a shell joins the group by writing its pid there (`echo $$ > FILE`). */
  procsFile: string;
  version: 1 | 2;
  /** Peak of the group's anonymous memory (processes' own memory) seen so far, in bytes. */
  peakAnonBytes(): number;
  /** Peak usage as the kernel counts it (page cache included; v1 max_usage_in_bytes, v2 memory.peak), in bytes, or null. */
  kernelPeakBytes(): number | null;
  /** Processes the kernel killed for want of memory in the group. */
  oomKills(): number;
  close(): void;
}

const read = (f: string) => readFileSync(f, 'utf8');

function statValue(stat: string, key: string): number {
  const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(stat);
  return m ? Number(m[1]) : 0;
}

export function createMemoryCap(name: string, limitBytes: number): MemoryCap {
  const v2root = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : null;
  const v1root = existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes') ? '/sys/fs/cgroup/memory' : null;
  let dir: string;
  let version: 1 | 2;
  if (v2root && read(join(v2root, 'cgroup.subtree_control')).split(/\s+/).includes('memory')) {
    version = 2;
    dir = join(v2root, name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'memory.max'), String(limitBytes));
    if (existsSync(join(dir, 'memory.swap.max'))) writeFileSync(join(dir, 'memory.swap.max'), '0');
  } else if (v1root) {
    version = 1;
    dir = join(v1root, name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limitBytes));
    if (existsSync(join(dir, 'memory.memsw.limit_in_bytes'))) writeFileSync(join(dir, 'memory.memsw.limit_in_bytes'), String(limitBytes));
  } else {
    throw new Error(
      'no cgroup memory controller here (neither cgroup v2 with memory enabled at the root nor v1 memory): cannot cap the set-up',
    );
  }
  let peak = 0;
  const sample = () => {
    try {
      const stat = read(join(dir, 'memory.stat'));
      const anon = version === 2 ? statValue(stat, 'anon') : statValue(stat, 'total_rss');
      if (anon > peak) peak = anon;
    } catch {
      // removed meanwhile
    }
  };
  const timer = setInterval(sample, 100);
  return {
    procsFile: join(dir, 'cgroup.procs'),
    version,
    peakAnonBytes: () => {
      sample();
      return peak;
    },
    kernelPeakBytes: () => {
      const f = join(dir, version === 2 ? 'memory.peak' : 'memory.max_usage_in_bytes');
      return existsSync(f) ? Number(read(f).trim()) : null;
    },
    oomKills: () =>
      version === 2
        ? statValue(read(join(dir, 'memory.events')), 'oom_kill')
        : statValue(read(join(dir, 'memory.oom_control')), 'oom_kill'),
    close: () => {
      clearInterval(timer);
      try {
        rmdirSync(dir);
      } catch {
        // still has processes: left for the kernel to clean when they end
      }
    },
  };
}
