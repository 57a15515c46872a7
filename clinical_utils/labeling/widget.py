"""The labeling grid: one round's picks in JupyterLab 4 / Notebook 7, one click or key per label.

An anywidget (its front end is the JavaScript string below, no build step). The front end only draws and sends
the expert's actions; everything else happens in Python, on the `LabelingProject`, which logs each action to disk
before the grid redraws. Keys, once the grid has been clicked: 1..9 the classes, u unsure, s skip, Backspace undo,
arrows move. The model's guess is shown only on request, so that it does not bias the expert.
"""
from __future__ import annotations

import anywidget
import traitlets

from .project import LabelingProject

_ESM = r"""
function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "cu-label";
  root.tabIndex = 0;
  root.setAttribute("data-lm-suppress-shortcuts", "true");  // JupyterLab: our keys are not notebook commands
  el.appendChild(root);
  const send = (action, extra = {}) => model.send({ action, ...extra });

  function draw() {
    const items = model.get("items"), names = model.get("class_names"), current = model.get("current");
    root.innerHTML = "";
    const head = document.createElement("div");
    head.className = "cu-head";
    const progress = document.createElement("span");
    progress.className = "cu-progress";
    progress.textContent = model.get("progress");
    const guess = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = model.get("show_predictions");
    box.onchange = () => { model.set("show_predictions", box.checked); model.save_changes(); };
    guess.append(box, " show the model's guess");
    head.append(progress, guess);
    root.append(head);

    const body = document.createElement("div");
    body.className = "cu-body";
    const grid = document.createElement("div");
    grid.className = "cu-grid";
    items.forEach((item, i) => {
      const cell = document.createElement("figure");
      cell.className = "cu-cell" + (i === current ? " cu-current" : "") + (item.status ? " cu-done" : "");
      const img = document.createElement("img");
      img.src = item.src;
      img.alt = item.path;
      const caption = document.createElement("figcaption");
      caption.textContent = item.status ? item.status.replace("label:", "") : "";
      cell.append(img, caption);
      cell.onclick = () => { send("select", { index: i }); root.focus(); };
      grid.append(cell);
    });
    const big = document.createElement("div");
    big.className = "cu-big";
    if (items.length) {
      const item = items[current];
      const img = document.createElement("img");
      img.src = item.src;
      const name = document.createElement("div");
      name.className = "cu-path";
      name.textContent = `${current + 1}. ${item.path}` + (item.prediction ? `  (model: ${item.prediction})` : "");
      const buttons = document.createElement("div");
      buttons.className = "cu-buttons";
      names.forEach((c, k) => {
        const b = document.createElement("button");
        b.textContent = k < 9 ? `${k + 1} ${c}` : c;
        b.onclick = () => { send("label", { label: c }); root.focus(); };
        buttons.append(b);
      });
      for (const [text, action] of [["u unsure", "unsure"], ["s skip", "skip"], ["\u232b undo", "undo"]]) {
        const b = document.createElement("button");
        b.textContent = text;
        b.className = "cu-" + action;
        b.onclick = () => { send(action); root.focus(); };
        buttons.append(b);
      }
      big.append(img, name, buttons);
    }
    body.append(grid, big);
    root.append(body);
    const message = document.createElement("div");
    message.className = "cu-message";
    message.textContent = model.get("message");
    root.append(message);
  }

  root.addEventListener("keydown", (e) => {
    const names = model.get("class_names");
    let handled = true;
    if (/^[1-9]$/.test(e.key) && Number(e.key) <= names.length) send("label", { label: names[Number(e.key) - 1] });
    else if (e.key === "u") send("unsure");
    else if (e.key === "s") send("skip");
    else if (e.key === "Backspace") send("undo");
    else if (e.key === "ArrowRight") send("select", { index: model.get("current") + 1 });
    else if (e.key === "ArrowLeft") send("select", { index: model.get("current") - 1 });
    else handled = false;
    if (handled) { e.preventDefault(); e.stopPropagation(); }
  });
  for (const name of ["items", "current", "progress", "show_predictions", "message", "class_names"]) {
    model.on(`change:${name}`, draw);
  }
  draw();
}
export default { render };
"""

_CSS = """
.cu-label { font-family: sans-serif; outline: none; border: 2px solid transparent; padding: 6px; }
.cu-label:focus { border-color: #0072B2; }
.cu-head { display: flex; gap: 2em; align-items: center; margin-bottom: 6px; }
.cu-progress { font-weight: bold; }
.cu-body { display: flex; gap: 16px; align-items: flex-start; }
.cu-grid { display: grid; grid-template-columns: repeat(5, 96px); gap: 6px; }
.cu-cell { margin: 0; cursor: pointer; border: 3px solid transparent; text-align: center; font-size: 11px; }
.cu-cell img { width: 90px; height: 90px; object-fit: contain; image-rendering: pixelated; background: #000; }
.cu-current { border-color: #0072B2; }
.cu-done { opacity: 0.55; }
.cu-big img { width: 384px; height: 384px; object-fit: contain; image-rendering: pixelated; background: #000; }
.cu-path { margin: 4px 0; font-size: 12px; }
.cu-buttons button { margin: 2px; padding: 6px 10px; font-size: 14px; }
.cu-message { color: #D55E00; min-height: 1.2em; }
"""


class LabelingWidget(anywidget.AnyWidget):
    """The current round's picks of `project`, to label one by one. Python API in the style of ipyannotations:
    `label(name)`, `mark_unsure()`, `skip()`, `undo()`, `select(i)`, and callbacks `on_submit(f)` (f(path, label)
    after each label), `on_skip(f)` (f(path, action) after skip or unsure), `on_undo(f)` (f(withdrawn action))."""

    _esm = _ESM
    _css = _CSS
    items = traitlets.List().tag(sync=True)  # [{path, src (PNG data URL), status, prediction}], pick order
    class_names = traitlets.List().tag(sync=True)
    current = traitlets.Int(0).tag(sync=True)
    progress = traitlets.Unicode("").tag(sync=True)
    show_predictions = traitlets.Bool(False).tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)

    def __init__(self, project: LabelingProject, **kwargs):
        super().__init__(**kwargs)
        self.project = project
        self._callbacks = {"submit": [], "skip": [], "undo": []}
        self._sources: dict[str, str] = {}
        self.class_names = list(project.class_names)
        self.on_msg(self._on_front_end)
        self.observe(lambda _: self._refresh(), names="show_predictions")
        pending = project.pending()
        picks = self._picks()
        self._refresh(picks.index(pending[0]) if pending else 0)

    def _picks(self) -> list[str]:
        current = self.project.current_round()
        return [] if current is None else list(current["picks"])

    def _refresh(self, current: int | None = None) -> None:
        picks = self._picks()
        predictions = (self.project.current_round() or {}).get("predictions", {})
        statuses = self.project.statuses()
        for path in picks:
            if path not in self._sources:
                self._sources[path] = self.project.preview(path)
        self.items = [{"path": p, "src": self._sources[p], "status": statuses.get(p),
                       "prediction": (f"{predictions[p][0]} {predictions[p][1]:.0%}"
                                      if self.show_predictions and p in predictions else None)} for p in picks]
        labeled = sum(1 for item in self.items if (item["status"] or "").startswith("label:"))
        aside = sum(1 for item in self.items if item["status"] in ("unsure", "skip"))
        self.progress = (f"{labeled} of {len(picks)} labeled" + (f", {aside} set aside" if aside else "")
                         if picks else "no round yet: run a round first")
        if current is not None and picks:
            self.current = max(0, min(current, len(picks) - 1))

    def __repr__(self) -> str:  # what a saved notebook shows where the live grid was: say what it held
        current = self.project.current_round()
        return ("labeling grid: no round yet" if current is None else
                f"labeling grid, round {current['round']}: {self.progress} (live while the kernel runs; "
                "picture() draws it)")

    def picture(self, columns: int = 10):
        """The round's picks as a matplotlib figure (saved with the notebook, unlike the live grid): each image
        as the model sees it, titled with its label, 'unsure', 'skip' or '?' while unlabeled."""
        import matplotlib.pyplot as plt

        rows = max(1, -(-len(self.items) // columns))
        fig, axes = plt.subplots(rows, columns, figsize=(1.2 * columns, 1.6 * rows), squeeze=False,
                                 layout="constrained")
        for ax in axes.flat:
            ax.axis("off")
        for ax, item in zip(axes.flat, self.items):
            image = self.project.data.pool[self.project.data.pool_paths.index(item["path"])]
            ax.imshow(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=255)
            status = item["status"] or "?"
            ax.set_title(status.removeprefix("label:"), fontsize=8)
        fig.suptitle(repr(self).split(" (")[0], fontsize=9)
        return fig

    def _next_pending(self) -> int:
        """The first pick without an action after the current one (wrapping), else the current one."""
        order = list(range(self.current + 1, len(self.items))) + list(range(self.current + 1))
        return next((i for i in order if not self.items[i]["status"]), self.current)

    def _on_front_end(self, _widget, content, _buffers) -> None:
        self.message = ""  # before the action, which may leave a message of its own
        try:
            action = content.get("action")
            if action == "label":
                self.label(content["label"])
            elif action == "unsure":
                self.mark_unsure()
            elif action == "skip":
                self.skip()
            elif action == "undo":
                self.undo()
            elif action == "select":
                self.select(int(content["index"]))
        except Exception as err:  # shown in the grid: a kernel-side error must not vanish into the log
            self.message = f"{type(err).__name__}: {err}"

    # ---- the Python API

    def _path(self) -> str:
        if not self.items:
            raise ValueError("no picks to label: run a round first")
        return self.items[self.current]["path"]

    def label(self, name: str) -> None:
        path = self._path()
        self.project.label(path, name)
        self._refresh()
        self.current = self._next_pending()
        for f in self._callbacks["submit"]:
            f(path, name)

    def _set_aside(self, action: str) -> None:
        path = self._path()
        (self.project.skip if action == "skip" else self.project.mark_unsure)(path)
        self._refresh()
        self.current = self._next_pending()
        for f in self._callbacks["skip"]:
            f(path, action)

    def mark_unsure(self) -> None:
        self._set_aside("unsure")

    def skip(self) -> None:
        self._set_aside("skip")

    def undo(self) -> None:
        withdrawn = self.project.undo()
        if withdrawn is None:
            self.message = "nothing to undo in this round"
            return
        picks = self._picks()
        self._refresh(picks.index(withdrawn["path"]) if withdrawn["path"] in picks else self.current)
        for f in self._callbacks["undo"]:
            f(withdrawn)

    def select(self, index: int) -> None:
        self._refresh(index)

    def on_submit(self, callback) -> None:
        self._callbacks["submit"].append(callback)

    def on_skip(self, callback) -> None:
        self._callbacks["skip"].append(callback)

    def on_undo(self, callback) -> None:
        self._callbacks["undo"].append(callback)
