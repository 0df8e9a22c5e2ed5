"""The aiohttp service: AppKeys, the app factory, the one error-to-HTTP mapping, middleware,
the OpenAPI document, one route module per feature, and the verification page.
"""
