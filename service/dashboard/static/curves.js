// Curve points kept as column arrays, so charts can grow by appending.

export class CurveSeries {
  constructor() {
    this.epoch = [];
    this.train_loss = [];
    this.val_loss = [];
    this.train_accuracy = [];
    this.val_accuracy = [];
    this.gradD = []; // gradD[layer][i]: ‖D‖ of that layer at epoch[i]
    this.updateRatio = [];
    this.gradEpoch = [];
  }

  get length() {
    return this.epoch.length;
  }

  /** Append points (already ordered by epoch); epochs seen before are ignored. */
  append(points) {
    const last = this.epoch.length ? this.epoch[this.epoch.length - 1] : -Infinity;
    let added = 0;
    for (const point of points || []) {
      if (point.epoch <= last && this.epoch.includes(point.epoch)) continue;
      this.epoch.push(point.epoch);
      this.train_loss.push(point.train_loss ?? null);
      this.val_loss.push(point.val_loss ?? null);
      this.train_accuracy.push(point.train_accuracy ?? null);
      this.val_accuracy.push(point.val_accuracy ?? null);
      const norms = point.grad_norms;
      if (norms && Array.isArray(norms.D)) {
        this.gradEpoch.push(point.epoch);
        norms.D.forEach((value, layer) => {
          (this.gradD[layer] ||= []).push(value);
        });
        (norms.update_ratio || []).forEach((value, layer) => {
          (this.updateRatio[layer] ||= []).push(value);
        });
      }
      added += 1;
    }
    return added;
  }

  /**
   * Keep a long curve drawable: past `limit` points, drop every second point of the older
   * three quarters (the recent quarter stays whole). Returns true when it thinned.
   */
  thin(limit) {
    if (this.epoch.length <= limit) return false;
    const keepAll = (length) => Math.floor(length * 0.75);
    const filter = (values, cut) => values.filter((_, i) => i >= cut || i % 2 === 0);
    const cut = keepAll(this.epoch.length);
    for (const key of ["epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy"]) {
      this[key] = filter(this[key], cut);
    }
    const gradCut = keepAll(this.gradEpoch.length);
    this.gradEpoch = filter(this.gradEpoch, gradCut);
    this.gradD = this.gradD.map((values) => filter(values, gradCut));
    this.updateRatio = this.updateRatio.map((values) => filter(values, gradCut));
    return true;
  }

  has(metric) {
    return this[metric].some((value) => value != null);
  }
}
