/**
 * Node's flags for the server process, given where it is launched: the `vmstream` bin's shebang
 * (src/cli/main.ts), `npm start` (package.json) and the bench's launcher (bench/harness/vmstream.ts)
 * must carry the same ones; test/node-flags.test.ts checks that they do.
 *
 * `--max-semi-space-size=4`: V8 starts an incremental mark-compact whenever the old generation's
 * room left is no more than the young generation's capacity. The server's old generation is small
 * (~20 MB live) and a stream grows the young generation to Node 20's default 16 MB per semi-space,
 * so V8 ran a full mark-compact every 300–500 ms of a stream (5–9 per 200 000 events) although the
 * stream promotes almost nothing; its concurrent marking on V8's four helper threads was 1.25–2.0 µs
 * of CPU per event, a quarter of the server's (bench/README.md, "The stream's CPU by thread").
 * Capped at 4 MB, mark-compacts are 0–1 per 200 000 events and the scavenges, more of them, stay cheap
 * (the frames in flight are short-lived). Flags are read when the heap is made: they cannot be set from inside.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];
