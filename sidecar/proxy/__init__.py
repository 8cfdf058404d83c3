"""The proxy: app, access decision, forward-auth, WebSocket, access log, upstream hop, its
HTTP/1.1 client, and the listeners; the leak-report endpoint (``leaks``).
"""
