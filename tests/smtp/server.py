#!/usr/bin/env python3
"""A real SMTP server for the end-to-end tests (aiosmtpd).

Each accepted message is decoded with Python's email package and stored as
one JSON file in OUT_DIR (recipient, subject, Message-ID, plain-text and
HTML parts), so the Rust tests need no MIME parser. Every RCPT and DATA is
appended to OUT_DIR/events.log, so a test can see a send in flight.

Recipients whose local part starts with "bounce" are refused for good
(550), like an unknown mailbox. --rcpt-delay-ms holds each RCPT command that long: a sender killed in that
window has not handed over a message, which is what "killed mid-send"
means in the tests. --data-reply-delay-ms holds the 250 after DATA that
long, the message already stored (as real servers do at the end of DATA):
a sender killed then has handed it over without knowing. Stop the process to simulate an SMTP outage; start it
again on the same port to end it.
"""

import argparse
import asyncio
import email
import json
import os
import signal
import time
from email import policy

from aiosmtpd.smtp import SMTP


class Handler:
    def __init__(self, out_dir, rcpt_delay, data_reply_delay):
        self.out_dir = out_dir
        self.rcpt_delay = rcpt_delay
        self.data_reply_delay = data_reply_delay
        self.count = 0

    def log(self, line):
        with open(os.path.join(self.out_dir, "events.log"), "a", encoding="utf-8") as f:
            f.write(line + "\n")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.log(f"RCPT {address}")
        if self.rcpt_delay:
            await asyncio.sleep(self.rcpt_delay)
        if address.startswith("bounce"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg.get("From", "")),
            "to": str(msg.get("To", "")),
            "subject": str(msg.get("Subject", "")),
            "message_id": str(msg.get("Message-ID", "")),
            # Line endings as the templates wrote them (SMTP carries CRLF).
            "text": text.get_content().replace("\r\n", "\n") if text is not None else "",
            "html": html.get_content().replace("\r\n", "\n") if html is not None else "",
        }
        self.count += 1
        name = f"{time.time_ns()}-{os.getpid()}-{self.count}.json"
        tmp = os.path.join(self.out_dir, "." + name)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.out_dir, name))
        self.log(f"DATA {record['message_id']}")
        if self.data_reply_delay:
            await asyncio.sleep(self.data_reply_delay)
        return "250 Message accepted for delivery"


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--rcpt-delay-ms", type=int, default=0)
    parser.add_argument("--data-reply-delay-ms", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    handler = Handler(args.out, args.rcpt_delay_ms / 1000, args.data_reply_delay_ms / 1000)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="ordersaga-test-smtp"), "127.0.0.1", args.port
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
