"""The labeling page's web application (Flask): the page, the batch's images by pool index, answers and undo.

Routes:

- ``GET /``, ``GET /static/annotate.js``, ``GET /static/annotate.css``: the page (fixed texts).
- ``GET /api/state``: the classes (with their keys), the open batch and each item's answer.
- ``GET /image/<index>``: the image of pool item ``index`` of the open batch, looked up in the
  project's index; anything else (an index out of range or outside the batch, a path) is 404.
- ``POST /api/answer`` ``{"index": 12, "label": "cat"|"skip"|"unsure"}``: one answer, through
  :func:`lbench.label.import_answers` (validated, journaled, ``pool.json`` written atomically under
  the pool lock). Returns the journal entry (``seq``, null when the item already had that answer)
  and the new state; a refused answer is HTTP 400 ``{"error": "<one line>"}`` and writes nothing.
- ``POST /api/undo`` ``{"seq": 7}``: takes back the answer of journal entry ``seq`` if this server
  wrote it and the item still holds that answer (:func:`lbench.label.revert_answers`).

Requests must name this machine as the host when the server listens on a loopback address (a
web page elsewhere cannot reach it by DNS rebinding), and answers must be JSON (a form another
site posts is refused), so only this page can write to the pool.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, abort, jsonify, request, send_file

from lbench._subcommand import error_line
from lbench.annotate.batch import PageItem, class_names, load_pool, open_batch
from lbench.annotate.page import PAGE_CSS, PAGE_HTML, PAGE_JS
from lbench.annotate.project import Project
from lbench.errors import DataError, LbenchError
from lbench.label.core import import_answers, revert_answers
from lbench.label.formats import LabelFileError, Parsed
from lbench.locks import LockedError
from lbench.pool import ANSWERS

__all__ = ["LOOPBACK", "AnnotateSession", "create_app", "shortcuts"]

#: Host names of this machine; a server bound to one of them accepts only requests naming one.
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
#: Keys of the classes after 1-9 (s, u and z are skip, unsure and undo).
_LETTERS = "abcdefghijklmnopqrtvwxy"


def shortcuts(n: int) -> list[str]:
    """The keys of ``n`` classes: ``1``-``9``, then letters (``s``, ``u``, ``z`` excepted), then none ("")."""
    keys = [str(k) for k in range(1, 10)] + list(_LETTERS)
    return [keys[k] if k < len(keys) else "" for k in range(n)]


class AnnotateSession:
    """The state of one ``lbench annotate`` server: the project, who answers, and the answers it gave.

    Args:
        project: The project (pool file, images, index).
        annotator: Who answers (kept in the pool's history).
        source: What gave the answers, for the history (the page's address).
        wait: Seconds an answer waits for the pool lock (``select`` holds it while it scores).
    """

    def __init__(self, project: Project, annotator: str, source: str = "lbench annotate", wait: float = 10.0) -> None:
        self.project = project
        self.annotator = annotator
        self.source = source
        self.wait = wait
        self.given: dict[int, tuple[int, int | str]] = {}  # journal seq -> (index, answer) written here
        self.lock = threading.Lock()  # one write at a time; held while the server stops

    def items(self) -> list[PageItem]:
        """The open batch, as persisted now."""
        return open_batch(load_pool(self.project.pool_file), self.project.folder, self.project.files())

    def state(self) -> dict[str, Any]:
        """What ``GET /api/state`` returns."""
        pool = load_pool(self.project.pool_file)
        names = class_names(pool)
        items = open_batch(pool, self.project.folder, self.project.files())
        return {
            "project": self.project.folder.name,
            "pool_file": str(self.project.pool_file),
            "annotator": self.annotator,
            "classes": [{"name": c, "key": k} for c, k in zip(names, shortcuts(len(names)), strict=True)],
            "items": [{**asdict(it), "guess": None if it.guess is None else asdict(it.guess)} for it in items],
            "done": sum(it.answer is not None for it in items),
            "total": len(items),
        }

    def answer(self, index: int, label: str) -> int | None:
        """Import one answer for an item of the open batch; returns the journal entry (None: no change).

        Raises:
            LbenchError: The item is not in the open batch, or the import refused the answer.
        """
        with self.lock:
            if index not in {it.index for it in self.items()}:
                raise DataError(f"item {index} is not in the open batch")
            parsed = Parsed.from_answers([index], [label], source=self.source)
            try:
                outcome = import_answers(self.project.pool_file, parsed, annotator=self.annotator, wait=self.wait)
            except LabelFileError as e:  # "<source> answer 1: why" -> "why"
                raise LabelFileError(str(e).removeprefix(f"{self.source} answer 1: ")) from e
            if outcome.seq is not None:
                for i, y in outcome.plan.rows:
                    self.given[outcome.seq] = (i, y)
            return outcome.seq

    def undo(self, seq: int) -> tuple[int, str]:
        """Take back the answer of journal entry ``seq`` (given here); returns the item and the answer it had.

        Raises:
            LbenchError: ``seq`` was not given here (or was undone), or the item's answer changed since.
        """
        with self.lock:
            if seq not in self.given:
                raise DataError(f"answer {seq} was not given on this page (or was undone already); nothing to undo")
            index, answer = self.given[seq]
            done = revert_answers(
                self.project.pool_file,
                [index],
                expect={index: answer},
                annotator=self.annotator,
                source=self.source,
                wait=self.wait,
            )
            del self.given[seq]
            names = class_names(done.pool)
            return index, names[answer] if isinstance(answer, int) and answer < len(names) else str(answer)


def _error(message: str, status: int) -> Response:
    response = jsonify(error=error_line(message))
    response.status_code = status
    return response


def _json_body(keys: Sequence[str]) -> dict[str, Any]:
    body = request.get_json(silent=True) if request.is_json else None
    if not isinstance(body, dict) or any(k not in body for k in keys):
        abort(_error(f"expected a JSON object with {', '.join(keys)}", 400 if request.is_json else 415))
    return body


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        abort(_error(f"{what} must be an integer, got {value!r}", 400))
    return value


def create_app(session: AnnotateSession, trusted_hosts: Sequence[str] | None = LOOPBACK) -> Flask:
    """The Flask application of the page.

    Args:
        session: What the server serves and writes to.
        trusted_hosts: Host names a request may name (its ``Host`` header, without the port);
            None accepts any (a server listening on a public address).
    """
    app = Flask(__name__, static_folder=None)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.before_request
    def _check_origin() -> Response | None:
        if trusted_hosts is not None:
            if (urlsplit(f"//{request.host}").hostname or "") not in trusted_hosts:
                return _error(f"host {request.host!r} is not this machine", 403)
        origin = request.headers.get("Origin")
        if request.method != "GET" and origin is not None and urlsplit(origin).netloc != request.host:
            return _error(f"requests from {origin} are refused", 403)
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self'; frame-ancestors 'none'"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.get("/")
    def page() -> Response:
        return Response(PAGE_HTML, mimetype="text/html")

    @app.get("/static/annotate.js")
    def script() -> Response:
        return Response(PAGE_JS, mimetype="text/javascript")

    @app.get("/static/annotate.css")
    def style() -> Response:
        return Response(PAGE_CSS, mimetype="text/css")

    @app.get("/api/state")
    def state() -> Response:
        try:
            return jsonify(session.state())
        except LbenchError as e:
            return _error(str(e), 500)

    @app.get("/image/<int:index>")
    def image(index: int) -> Response:
        try:
            batch = {it.index for it in session.items()}
        except LbenchError:
            abort(404)
        path = session.project.image_path(index) if index in batch else None
        if path is None:
            abort(404)
        return send_file(path, max_age=60)

    @app.post("/api/answer")
    def answer() -> Response:
        body = _json_body(("index", "label"))
        index, label = _int(body["index"], "index"), body["label"]
        if not isinstance(label, str) or not label.strip():
            return _error(f"label must be a class name, {' or '.join(ANSWERS)}; got {label!r}", 400)
        try:
            seq = session.answer(index, label)
        except LockedError as e:
            return _error(str(e), 409)
        except LbenchError as e:
            return _error(str(e), 400)
        return jsonify(seq=seq, state=session.state())

    @app.post("/api/undo")
    def undo() -> Response:
        seq = _int(_json_body(("seq",))["seq"], "seq")
        try:
            index, was = session.undo(seq)
        except LockedError as e:
            return _error(str(e), 409)
        except LbenchError as e:
            return _error(str(e), 400)
        return jsonify(index=index, was=was, state=session.state())

    @app.errorhandler(404)
    def _not_found(_: Exception) -> Response:
        return _error("not found", 404)

    @app.errorhandler(405)
    def _not_allowed(_: Exception) -> Response:
        return _error("method not allowed", 405)

    return app
