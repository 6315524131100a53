"""``lbench annotate -c PROJECT_YAML [--port N]``: label the open batch in a local web page."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import re
import socket
import sys

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server, select_address_family

from lbench._subcommand import SubcommandParser, run_subcommand
from lbench.annotate.app import LOOPBACK, AnnotateSession, create_app
from lbench.annotate.project import find_project
from lbench.errors import ConfigError
from lbench.label.core import default_annotator

__all__ = ["DEFAULT_PORT", "build_parser", "main", "make_annotate_server"]

#: The default port of the page.
DEFAULT_PORT = 8765
_ANNOTATOR = re.compile(r"^[\w.@+-][\w.@+ -]{0,63}$")

_EPILOG = """\
The page shows the open batch (the pending items select asked for, in its order) one image at a
time, with the model's guess when the batch file has one. Keys: the number or letter on a class
button answers it (1-9, then letters), s = skip, u = unsure, z or Backspace = undo the last
answer given on the page, arrow keys move. Every answer goes through the same validated import
as lbench label (journaled, pool.json written atomically under the pool lock): closing the
browser loses nothing, and reloading the page shows what is saved. The server listens on
127.0.0.1 (this machine only) unless --host says otherwise, and serves only the batch's images,
by pool index: no other file of the project or of the machine.
"""


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's request handler without a log line per request (errors are still logged)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log nothing for a served request."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``annotate`` subcommand."""
    p = SubcommandParser(
        prog="lbench annotate",
        description="Label the open batch of a project in a local web page (one image at a time, keyboard keys).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-c", "--config", metavar="PROJECT_YAML", help="the project (project.yaml written by lbench init)")
    p.add_argument(
        "--pool",
        "--pool_file",
        metavar="POOL_JSON",
        help="the pool file (default: the project's; alone, the project.yaml next to it is the project)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--annotator", metavar="NAME", help="who labels (default: the login name); kept in the history")
    p.add_argument(
        "--wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long an answer waits for another lbench process (select) to release the pool (default: 10)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the ``annotate`` subcommand until Ctrl-C.

    Args:
        argv: Arguments after ``annotate``; None reads ``sys.argv`` (without a leading ``annotate``).

    Returns:
        0 when stopped with Ctrl-C, 2 on a user error (one line ``lbench: error: ...`` on stderr,
        nothing written, nothing served).
    """
    return run_subcommand("annotate", argv, build_parser(), _annotate)


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_of(server: BaseWSGIServer, host: str) -> str:
    """The page's address (an unspecified address, 0.0.0.0 or ::, is shown as this machine's loopback)."""
    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{server.socket.getsockname()[1]}/"


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (werkzeug would print and exit on an error instead of raising)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, select_address_family(host, port), socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError) as e:
        raise ConfigError(f"cannot listen on {host} port {port}: {getattr(e, 'strerror', None) or e}") from e
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait for TIME_WAIT
        sock.bind(address)
        sock.listen(64)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is in use (another lbench annotate?); choose another with --port, or --port 0 "
                "for a free one"
            ) from e
        raise ConfigError(f"cannot listen on {host} port {port}: {e.strerror or e}") from e
    return sock


def make_annotate_server(session: AnnotateSession, host: str, port: int) -> BaseWSGIServer:
    """A threaded werkzeug server of the page (not yet serving), listening on ``host:port``.

    Raises:
        ConfigError: The port is in use, or the address cannot be listened on.
    """
    app = create_app(session, trusted_hosts=(*LOOPBACK, host.strip("[]")) if _is_loopback(host) else None)
    sock = _listen(host, port)
    try:
        return make_server(host, port, app, threaded=True, request_handler=_QuietHandler, fd=sock.fileno())
    finally:
        sock.close()  # the server holds its own copy of the socket


def _annotate(args: argparse.Namespace) -> list[str]:
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be in 0 .. 65535, got {args.port}")
    if args.wait < 0:
        raise ConfigError(f"--wait must be >= 0 seconds, got {args.wait:g}")
    annotator = args.annotator if args.annotator is not None else default_annotator()
    if not _ANNOTATOR.match(annotator):
        raise ConfigError(
            f"--annotator {annotator!r}: use letters, digits, spaces and . _ @ + - (at most 64 characters)"
        )
    project = find_project(args.config, args.pool)
    session = AnnotateSession(project, annotator, wait=args.wait)
    items = session.items()
    if not any(it.answer is None for it in items):
        config = project.config or "PROJECT_DIR/project.yaml"
        raise ConfigError(
            f"nothing to label: {project.pool_file} has no pending items; run lbench select -c {config} first"
        )
    server = make_annotate_server(session, args.host, args.port)
    url = url_of(server, args.host)
    session.source = f"lbench annotate {url}"
    done = sum(it.answer is not None for it in items)
    print(f"open batch of {project.pool_file}: {len(items)} items, {done} answered; Ctrl-C stops", flush=True)
    if not _is_loopback(args.host):
        print(
            f"warning: listening on {args.host}: other machines can open the page and write labels (no login)",
            flush=True,
        )
    print(url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print(file=sys.stderr)
    finally:
        with session.lock:  # an answer being written is finished first
            server.server_close()
    return [f"stopped; {len(session.given)} answers given on the page are in {project.pool_file}"]
