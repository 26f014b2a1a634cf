import { validateEvent } from '@spywatcher/events';
import { describe, expect, it } from 'vitest';
import { generateEvents } from './generate.ts';

describe('generateEvents', () => {
  it('is deterministic, valid, unique, message-heavy and chat-like', () => {
    const a = generateEvents(7, 3000);
    expect(generateEvents(7, 3000)).toEqual(a);
    expect(generateEvents(8, 10)).not.toEqual(a.slice(0, 10));
    for (const e of a)
      expect(validateEvent(e, Date.parse('2026-02-01T00:00:00Z')), JSON.stringify(e)).toMatchObject({
        ok: true,
      });
    expect(new Set(a.map((e) => e.id)).size).toBe(a.length);
    const messages = a.filter((e) => e.type === 'message');
    expect(messages.length / a.length).toBeGreaterThan(0.45);
    expect(new Set(a.map((e) => e.type)).size).toBe(7);
    const text = messages.map((e) => (e.data as { content: string }).content).join('\n');
    expect(text).toMatch(/<@\d+>/);
    expect(text).toMatch(/<:\w+:\d+>/);
    expect(text).toMatch(/https:\/\//);
    expect(text).toMatch(/```/);
    expect(text).toMatch(/[ぁ-んァ-ン]/);
    const times = a.map((e) => Date.parse(e.occurred_at));
    expect(times.every((t, i) => i === 0 || t >= times[i - 1]!)).toBe(true);
  });
});
