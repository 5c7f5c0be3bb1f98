// The common shape of a page: built once on first visit, shown and hidden by
// the router. While shown, a page listens to the events it needs (through
// `listen`, dropped again when it is hidden) and reloads from REST when
// shown and after a reconnection. Owns nothing but that lifecycle.

import * as events from './events.js';
import { h, newId } from './dom.js';

export class Page {
  /** `id` is the route (#/id), `title` the page's heading. */
  constructor(id, title) {
    this.id = id;
    this.title = title;
    this.visible = false;
    this.unsubscribers = [];
    this.heading = h('h1', { tabindex: '-1', id: `${id}-heading` }, title);
    this.el = h('section', { class: `page page-${id}`, 'aria-labelledby': this.heading.id, hidden: true }, this.heading);
    this.built = false;
  }

  /** Builds the page's static parts (override). */
  build() {}

  /** Subscribes to events from now until the page is hidden (override `subscribe` to call it). */
  subscribe() {}

  /** Loads the page's data from REST (override). */
  async load() {}

  /** Called with the route's rest (e.g. a chat's name) when the route changes within the page. */
  route(rest) { void rest; }

  listen(types, fn) {
    this.unsubscribers.push(events.on(types, fn));
  }

  show(rest) {
    if (!this.built) {
      this.build();
      this.built = true;
    }
    this.el.hidden = false;
    if (!this.visible) {
      // Route first while not yet visible: the reload below loads what the route picked.
      this.route(rest);
      this.visible = true;
      this.subscribe();
      this.unsubscribers.push(events.onResync(() => this.reload()));
      this.reload();
    } else {
      this.route(rest);
    }
  }

  hide() {
    this.visible = false;
    this.el.hidden = true;
    for (const unsubscribe of this.unsubscribers.splice(0)) unsubscribe();
    this.hidden();
  }

  /** Called after the page was hidden (override to stop timers). */
  hidden() {}

  /** Reloads the page's data; errors are shown by `load` itself. */
  reload() {
    Promise.resolve(this.load()).catch((error) => {
      if (!error?.sessionEnded) console.warn(`${this.id}: ${error?.message || error}`);
    });
  }
}

/** A titled block inside a page. */
export function section(title, ...children) {
  const heading = h('h2', {}, title);
  heading.id = newId('section');
  return h('section', { class: 'card', 'aria-labelledby': heading.id }, heading, ...children);
}
