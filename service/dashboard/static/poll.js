// Cheap polling: back off while nothing changes, pause while the tab is hidden.

export const CHANGED = "changed";
export const UNCHANGED = "unchanged";
export const DONE = "done";

/**
 * Calls `tick()` repeatedly. `tick` resolves CHANGED (poll again soon), UNCHANGED (wait
 * longer, up to maxDelay) or DONE (stop). Errors count as UNCHANGED and go to `onError`.
 */
export class Poller {
  constructor(tick, { minDelay = 1000, maxDelay = 15000, factor = 1.6, onError } = {}) {
    this.tick = tick;
    this.minDelay = minDelay;
    this.maxDelay = maxDelay;
    this.factor = factor;
    this.onError = onError || (() => {});
    this.delay = minDelay;
    this.timer = null;
    this.running = false;
    this.busy = false;
    this.onVisibility = () => this.visibilityChanged();
  }

  start() {
    this.running = true;
    document.addEventListener("visibilitychange", this.onVisibility);
    this.runNow();
    return this;
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    document.removeEventListener("visibilitychange", this.onVisibility);
  }

  /** Poll at once and reset the back-off (after a user action, say). */
  poke() {
    this.delay = this.minDelay;
    this.runNow();
  }

  visibilityChanged() {
    if (document.visibilityState === "hidden") clearTimeout(this.timer);
    else this.poke();
  }

  async runNow() {
    clearTimeout(this.timer);
    if (!this.running || this.busy || document.visibilityState === "hidden") return;
    this.busy = true;
    let outcome = UNCHANGED;
    try {
      outcome = await this.tick();
      this.onError(null);
    } catch (error) {
      this.onError(error);
    } finally {
      this.busy = false;
    }
    if (!this.running) return;
    if (outcome === DONE) {
      this.stop();
      return;
    }
    this.delay =
      outcome === CHANGED ? this.minDelay : Math.min(this.maxDelay, this.delay * this.factor);
    this.timer = setTimeout(() => this.runNow(), this.delay);
  }
}
