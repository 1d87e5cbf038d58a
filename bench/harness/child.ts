/**
 * The child side of the harness's process protocol: IPC messages are `{ type, ... }` objects. Every
 * bench child calls `bindToParent` first, so an orphan (the harness crashed or was killed with
 * SIGKILL and could not reap it) exits instead of holding a port and a core.
 */
export interface ChildMessage {
  type: string;
  [key: string]: unknown;
}

export function bindToParent(): void {
  // The IPC channel closes when the parent dies, whatever killed it.
  process.on('disconnect', () => process.exit(0));
}

/** Resolves once the message is handed over, so a child may exit right after awaiting it. */
export function sendToParent(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (process.send) process.send(message, undefined, undefined, () => resolve());
    else process.stdout.write(JSON.stringify(message) + '\n', () => resolve());
  });
}

/** The first message from the parent of the given type: how a child receives its job. */
export function receiveFromParent<T extends ChildMessage>(type: string): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (message: ChildMessage): void => {
      if (message?.type !== type) return;
      process.off('message', onMessage);
      resolve(message as T);
    };
    process.on('message', onMessage);
  });
}
