/** protocol/ids.ts: the ids vmstream makes up, their shape, that they pass the protocol's id check, and that every character is drawn alike. */
import t from 'tap';
import { newId, newSessionId } from '../protocol/ids.js';
import { ID_PATTERN } from '../protocol/schemas.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const COUNT = 20_000;

t.test('execution ids: 15 characters of A-Z a-z 0-9, ids the protocol takes, none repeated', async (t) => {
  const ids = Array.from({ length: COUNT }, newId);
  t.ok(ids.every((id) => /^[A-Za-z0-9]{15}$/.test(id)), `every one of ${COUNT}`);
  t.ok(ids.every((id) => new RegExp(ID_PATTERN).test(id)), 'each passes ID_PATTERN');
  t.equal(new Set(ids).size, COUNT, 'all distinct');
});

t.test('session ids: 15 such characters in five groups of three, the shape Jupyter servers take kernel ids in', async (t) => {
  const ids = Array.from({ length: COUNT }, newSessionId);
  t.ok(ids.every((id) => /^[A-Za-z0-9]{3}(-[A-Za-z0-9]{3}){4}$/.test(id)), `every one of ${COUNT}`);
  t.ok(ids.every((id) => /^\w+-\w+-\w+-\w+-\w+$/.test(id)), "Jupyter's kernel id route (notebook, jupyter_server) matches each");
  t.ok(ids.every((id) => new RegExp(ID_PATTERN).test(id)), 'each passes ID_PATTERN');
  t.equal(new Set(ids).size, COUNT, 'all distinct');
});

t.test('every character of the alphabet is drawn alike, at every position', async (t) => {
  // 300 000 characters: ~4 839 of each. `byte % 62` without redrawing bytes ≥ 248 would give the
  // first 8 characters 5/4 of the others' share (+21 % against the mean); chance alone stays
  // within ±10 % (7 standard deviations) here.
  const counts = new Map<string, number>();
  const byPosition = Array.from({ length: 15 }, () => new Set<string>());
  for (let index = 0; index < COUNT; index++) {
    const id = newId();
    for (let at = 0; at < id.length; at++) {
      counts.set(id[at]!, (counts.get(id[at]!) ?? 0) + 1);
      byPosition[at]!.add(id[at]!);
    }
  }
  const mean = (COUNT * 15) / ALPHABET.length;
  t.same([...counts.keys()].sort(), [...ALPHABET].sort(), 'all 62 characters, and no other');
  const off = [...counts].filter(([, count]) => Math.abs(count - mean) > mean * 0.1);
  t.same(off, [], 'each within 10 % of the mean');
  t.ok(byPosition.every((seen) => seen.size === ALPHABET.length), 'every character at every position, the first included');
});
