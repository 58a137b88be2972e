"""The live page the HTTP sink serves at ``/`` (docs/live-page.md): ``index.html``, ``app.js`` and
``style.css``, plain files with no build step and nothing fetched from elsewhere (package data)."""
