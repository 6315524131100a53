"""Label the open batch in a local web page: ``lbench annotate -c PROJECT_DIR/project.yaml``.

- :mod:`lbench.annotate.project`: the project's pool file, image folder and index (read only),
  and the one lookup by which an image is served (by pool index, inside the image folder).
- :mod:`lbench.annotate.batch`: the open batch (pending items in ``select``'s order) and its answers.
- :mod:`lbench.annotate.app`: the Flask application; answers go through
  :func:`lbench.label.import_answers`, undo through :func:`lbench.label.revert_answers`.
- :mod:`lbench.annotate.page`: the page's HTML, style sheet and script (no CDN).
- :mod:`lbench.annotate.cli`: the command, served by werkzeug on 127.0.0.1 by default.
"""

from lbench.annotate.app import AnnotateSession, create_app, shortcuts
from lbench.annotate.batch import PageItem, open_batch
from lbench.annotate.project import Project, find_project

__all__ = ["AnnotateSession", "PageItem", "Project", "create_app", "find_project", "open_batch", "shortcuts"]
