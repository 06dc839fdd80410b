"""A real SMTP server (aiosmtpd) for the e-mail alert tests.

usage: python server.py <port> <maildir>

Listens on 127.0.0.1:<port>; every message accepted is written to
<maildir>/<n>.eml as `MAIL FROM`, `RCPT TO` lines, a blank line, then the
message exactly as received. Prints "ready" once listening. Stops on
SIGTERM or when its stdin closes (so a test that dies takes it along).
"""
import os
import sys
import threading

from aiosmtpd.controller import Controller


class Keep:
    def __init__(self, out):
        self.out = out
        self.n = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.n += 1
            n = self.n
        path = os.path.join(self.out, f"{n}.eml")
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(f"MAIL FROM: {envelope.mail_from}\n".encode())
            for rcpt in envelope.rcpt_tos:
                f.write(f"RCPT TO: {rcpt}\n".encode())
            f.write(b"\n")
            f.write(envelope.original_content or envelope.content)
        os.replace(tmp, path)
        return "250 OK"


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    os.makedirs(out, exist_ok=True)
    controller = Controller(Keep(out), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
