"""localstripe (a stateful fake Stripe server written by others) on a loopback port.

``python -m calsync.testing.stripe_server --port 8420`` serves the Stripe API, its mock of
Stripe.js at ``/js.stripe.com/v3/`` and its ``/_config/webhooks/{id}`` route. Two changes to
how ``localstripe`` starts itself, both about the machine rather than Stripe's behaviour: it
binds 127.0.0.1 only (its own start binds every interface), and it does not pickle its state
to the fixed path ``/tmp/localstripe.pickle`` after every request (parallel test runs would
share that file); each run starts empty.

Used by the tests (``tests/support/stripe.py``) and by ``calsync demo``; never by the service.
"""

from __future__ import annotations

import argparse
import logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    args = parser.parse_args(argv)

    from aiohttp import web
    from localstripe import resources, server

    # The state lives in memory for this process only (see the module docstring).
    resources.store.dump_to_disk = lambda: None
    logging.basicConfig(level=logging.WARNING)
    web.run_app(server.app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
