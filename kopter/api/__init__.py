"""The read API (`kopter api`): the customers' web application reads kopter's tables over HTTP.

``app.create_app`` builds the ASGI app and ``server.serve`` runs it under uvicorn. The tenant of
every request is its caller's identity (``identity.py``), never a parameter; cursors are signed
and bound to the tenant and query (``cursors.py``); one module per area holds its routes.
"""
