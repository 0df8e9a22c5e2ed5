"""HTTP routes, one module (and one ``RouteTableDef``) per feature.

A route module may also define ``openapi_paths() -> dict`` describing its paths; the OpenAPI
document (:mod:`anchor.http.openapi`) merges them, and a test checks that every served route is
described. Only the application factory (:mod:`anchor.http.app`) imports the route modules; they
read the shared state through the keys of :mod:`anchor.http.appkeys`, and helpers two route
modules share live in ``params``, ``bodies`` and ``links`` (and the status routes' bodies and
OpenAPI paths in ``status_bodies``).
"""
