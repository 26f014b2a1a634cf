import { hostname } from 'node:os';

/** A job owner's name: `host:pid:random`, so an instance on the same host can tell it died. */
export function ownerName(): string {
  return `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
}

/** True when `owner` (host:pid:…) names a process on `host` that no longer exists. */
export function ownerProcessGone(owner: string | null, host: string = hostname()): boolean {
  if (!owner) return false;
  const [ownerHost, pid] = owner.split(':');
  if (ownerHost !== host || !pid || !/^\d+$/.test(pid)) return false;
  if (Number(pid) === process.pid) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (error) {
    return (error as { code?: string }).code === 'ESRCH';
  }
}
