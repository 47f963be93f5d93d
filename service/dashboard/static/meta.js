// The names the API accepts (GET /meta), fetched once: forms offer exactly these, with no
// copy of their own. Until the answer arrives a select holds its default value alone.
import { api } from "./api.js";
import { h } from "./dom.js";

let pending = null;

/** {statuses, generators: [{name, task}], hidden_activations, optimizers, init_schemes, …} */
export function meta() {
  if (!pending) {
    pending = api.get("/meta").catch((error) => {
      pending = null; // try again next time
      throw error;
    });
  }
  return pending;
}

/** Fill `node` (a <select>) with the options `pick(names)` returns, keeping its value. */
export function fillFromMeta(node, pick) {
  meta()
    .then((names) => {
      const current = node.value;
      node.replaceChildren(...pick(names).map((option) => {
        const [value, label] = Array.isArray(option) ? option : [option, option];
        return h("option", { value, selected: String(value) === String(current) }, label);
      }));
      node.value = current;
    })
    .catch(() => {}); // the default stays usable; a bad value would be a 422 naming it
}
