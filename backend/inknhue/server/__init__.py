"""`inknhue serve`, the backend the Krita plugin talks to.

- service.py: the server: its socket, the I/O loop, the request handlers and the workers;
- jobs.py: colorize jobs, their states and the queue limit;
- security.py: CURVE keys and the ZAP handler that keep out whoever lacks the connection file.
"""

from .security import make_curve_keys
from .service import Lease, Server, serve

__all__ = ["Lease", "Server", "make_curve_keys", "serve"]
