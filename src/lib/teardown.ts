// A stack of async cleanups. Building a resource pushes its dispose(); on failure the stack
// unwinds in reverse order. Every cleanup runs even if an earlier one throws (STYLE rule 5).

export type Cleanup = () => Promise<void> | void;

export class TeardownStack {
  #items: { label: string; fn: Cleanup }[] = [];

  push(label: string, fn: Cleanup): void {
    this.#items.push({ label, fn });
  }

  /** Forget everything pushed so far (ownership moved elsewhere). */
  release(): void {
    this.#items = [];
  }

  /** Run cleanups last-in first-out; returns the errors instead of throwing. */
  async unwind(): Promise<{ label: string; error: unknown }[]> {
    const errors: { label: string; error: unknown }[] = [];
    while (this.#items.length > 0) {
      const item = this.#items.pop()!;
      try {
        await item.fn();
      } catch (error) {
        errors.push({ label: item.label, error });
      }
    }
    return errors;
  }
}
