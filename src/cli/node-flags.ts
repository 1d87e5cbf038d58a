/**
 * Node's flags for the server process, given where it is launched: the `vmstream` bin's shebang
 * (src/cli/main.ts), `npm start` (package.json) and the bench's launcher (bench/harness/vmstream.ts)
 * must carry the same ones, and so do the servers the tests start (test/helpers/server.ts imports
 * this list; scripts/lib/server.sh reads it from dist); test/node-flags.test.ts checks that they do.
 * The shebang gives them to the bin's client commands too (repl, run, tail, mcp): harmless, a small
 * process touches little of its young generation. BusyBox's `env` (Alpine) has no `-S`, so the shebang
 * fails there: run `node --max-semi-space-size=8 --min-semi-space-size=8 …/dist/src/cli/main.js`
 * (README.md says so).
 *
 * `--max-semi-space-size=8`: V8 starts an incremental mark-compact whenever the old generation's
 * room left is no more than the young generation's capacity. The server's old generation is small
 * (~20 MB live, ~23 MB of room after a mark-compact) and a stream grows the young generation to
 * Node 20's default 16 MB per semi-space (32 MB), so V8 ran a full mark-compact every 300–500 ms of a
 * stream (2–9 per 200 000 events) although the stream promotes almost nothing; their concurrent
 * marking on V8's helper threads was 0.6–2.0 µs of CPU per event (bench/README.md, "The stream's CPU
 * by thread"). At 8 MB (16 MB) the stream runs none, with twice the scavenges, which stay cheap (its
 * frames in flight die young); 4 MB did as well for the stream and quadrupled the scavenges of
 * `execute-trivial`, whose in-flight state each one copies. Flags are read when the heap is made:
 * they cannot be set from inside.
 *
 * `--min-semi-space-size=8`: the young generation starts at that size. Left to size itself, it
 * starts at 1 MB and grows only as scavenges find it too small, so a freshly started server (as
 * after a restart) met its first burst, a client catching up with pages of frames queued per turn,
 * with a small one: its first scavenge of the replay found most of it still held and took 9–45 ms
 * (12 replays), the main thread stopped and the client, with nothing to read, waiting (clocks lined
 * up in a probe: bench/README.md, "2026-12-03"). Cold replay after a restart, six interleaved
 * pairs: 0.735–0.960 → 0.831–0.995 × push, higher in every pair, server CPU per event 1.14–1.58 →
 * 0.86–1.19 µs; the stream, execute-trivial-plain and connections unchanged beyond the noise. An
 * idle server's resident set is the same (97 MB both ways): the pages are touched only when used.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8', '--min-semi-space-size=8'];
