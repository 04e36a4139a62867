"""The web dashboard: server-rendered pages over the same data the ``/v1`` API serves, with a little vendored-free
JavaScript for live curves and the buttons. No front-end server, no CDN: templates and static files ship in the
package."""
