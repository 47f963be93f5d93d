// Cheap polling: back off while nothing changes, pause while the tab is hidden.
import { api } from "./api.js";
import { errorMessage } from "./format.js";

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

/** An `onError` for a Poller: the error in `box` (after `prefix`), hidden once polls work again. */
export function errorsInto(box, prefix = "") {
  return (error) => {
    box.hidden = !error;
    box.textContent = error ? `${prefix}${errorMessage(error)}` : "";
  };
}

/** Wire `button` to POST `${path}/cancel`, then poll at once; a failure shows in `errorLine`. */
export function cancelOnClick(button, path, poller, errorLine) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    errorLine.hidden = true;
    try {
      await api.post(`${path}/cancel`);
      if (poller.running) poller.poke();
      else poller.start();
    } catch (error) {
      errorLine.textContent = `Cancel failed: ${errorMessage(error)}`;
      errorLine.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
}
