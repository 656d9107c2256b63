"""What CURVE encryption (docs/protocol.md, "Who gets in") costs on loopback.

A ROUTER/DEALER pair like the server's and the plugin's sends an A4 page in BGRA (35 MB,
a full-size result) and a screen-size preview (as the slider asks for while dragged),
with CURVE, against the same pair without it measured in the same run.

    python benchmarks/bench_transport.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).parent))

from bench_flats import median_seconds  # noqa: E402


def pair(context: zmq.Context, curve: bool):
    router, dealer = context.socket(zmq.ROUTER), context.socket(zmq.DEALER)
    if curve:
        server_public, server_secret = zmq.curve_keypair()
        client_public, client_secret = zmq.curve_keypair()
        router.curve_server, router.curve_secretkey, router.curve_publickey = True, server_secret, server_public
        dealer.curve_serverkey, dealer.curve_publickey, dealer.curve_secretkey = (server_public, client_public,
                                                                                  client_secret)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer.connect(f"tcp://127.0.0.1:{port}")
    dealer.send(b"hello")
    identity, _ = router.recv_multipart()
    return router, dealer, identity


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    context = zmq.Context()
    sizes = {"A4 page 2480x3508 BGRA": 2480 * 3508 * 4, "preview 905x1280 BGRA": 905 * 1280 * 4}
    print(f"pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}, loopback, median of {args.repeat}")
    for name, nbytes in sizes.items():
        payload = bytes(nbytes)
        times = {}
        for curve in (False, True):
            router, dealer, identity = pair(context, curve)

            def send_one(router=router, dealer=dealer, identity=identity, payload=payload):
                router.send_multipart([identity, payload], copy=False)
                dealer.recv(copy=False)

            times[curve] = median_seconds(send_one, args.repeat)
            router.close(0)
            dealer.close(0)
        print(f"{name:26} plain {times[False] * 1000:7.1f} ms  CURVE {times[True] * 1000:7.1f} ms  "
              f"CURVE / plain = {times[True] / times[False]:.2f}  (+{(times[True] - times[False]) * 1000:.1f} ms, "
              f"{(times[True] - times[False]) * 1000 / (nbytes / 1e6):.2f} ms/MB)")
    context.term()


if __name__ == "__main__":
    main()
