"""A real SMTP server for the end-to-end tests of email (tests/e2e/email.rs): aiosmtpd on
127.0.0.1:<port>, storing each message it accepts as one JSON file in <dir>, which the tests read.

    python3 tests/smtp/sink.py <port> <dir>

Prints "ready" once it listens. While the file <dir>/stall exists, it holds each message after
its data arrived and before it answers (the client waits for the final reply), so that a test can
kill the sender mid-delivery (a file held-<time> tells that a message is held). Recipients
nobody@<anything> are refused with 550. Each file holds: to (the envelope recipients), from, subject,
message_id, text (the text/plain part, decoded).
"""

import asyncio
import email
import email.policy
import json
import os
import signal
import sys
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        # A mailbox that does not exist, for tests of messages refused for good.
        if address.startswith("nobody@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        stall = os.path.join(self.directory, "stall")
        if os.path.exists(stall):
            # Tells the test that a message is held.
            open(os.path.join(self.directory, f"held-{time.time_ns()}"), "w").close()
        while os.path.exists(stall):
            await asyncio.sleep(0.05)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        record = {
            "to": envelope.rcpt_tos,
            "from": envelope.mail_from,
            "subject": str(message["subject"]),
            "message_id": str(message["message-id"]),
            "text": body.get_content() if body is not None else "",
        }
        self.count += 1
        name = f"{time.time_ns()}-{os.getpid()}-{self.count}.json"
        temporary = os.path.join(self.directory, "." + name)
        with open(temporary, "w") as file:
            json.dump(record, file)
        # Whole or not at all for a reader.
        os.rename(temporary, os.path.join(self.directory, name))
        return "250 OK"


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
