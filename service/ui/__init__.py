"""The web view served by the API (``/ui``): server-rendered pages, a session cookie, live progress over SSE.

``service.ui.routes.install_ui(app)`` adds it to the app; :mod:`service.ui.sessions` is the cookie session,
:mod:`service.ui.live` what the job page shows live, :mod:`service.ui.pages` the HTML.
"""
