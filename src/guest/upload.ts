// The host->guest half of files.write: chunks arrive as frames on the connection and are
// queued here until the handler writes them to disk. `push` resolves only when the queue has
// room, and the connection reader waits on it, so a fast host cannot fill guest memory.
export type UploadItem = { kind: 'data'; data: Buffer } | { kind: 'end'; sha256: string };

const HIGH_WATER_ITEMS = 4;

export class UploadChannel {
  private readonly queue: UploadItem[] = [];
  private closed = false;
  private wakeConsumer: (() => void) | undefined;
  private readonly roomWaiters: Array<() => void> = [];

  push(item: UploadItem): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.queue.push(item);
    this.wake();
    if (this.queue.length < HIGH_WATER_ITEMS) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Next item, or undefined once closed. Rejects with the signal's reason. */
  async next(signal: AbortSignal): Promise<UploadItem | undefined> {
    for (;;) {
      signal.throwIfAborted();
      const item = this.queue.shift();
      if (item) {
        this.releaseRoom();
        return item;
      }
      if (this.closed) return undefined;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          signal.removeEventListener('abort', done);
          this.wakeConsumer = undefined;
          resolve();
        };
        this.wakeConsumer = done;
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  /** Drops everything queued and unblocks the producer and the consumer. Idempotent. */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.wake();
    this.releaseRoom();
  }

  private wake(): void {
    this.wakeConsumer?.();
  }

  private releaseRoom(): void {
    if (this.queue.length >= HIGH_WATER_ITEMS && !this.closed) return;
    for (const resolve of this.roomWaiters.splice(0)) resolve();
  }
}
