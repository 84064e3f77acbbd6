"""An aiosmtpd handler for the Node test suites: every mail the SMTP server takes is written to a
directory as one JSON file (envelope sender and recipients, subject, content type, and the plain
text and HTML parts as Python's email package decodes them), so a test reads mail without a MIME
parser of its own. Started by tests/support/smtp.mjs:

    PYTHONPATH=tests/support /usr/bin/python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c smtp_sink.JsonMailbox DIR
"""

import json
import os
import time
import uuid
from email import message_from_bytes, policy


class JsonMailbox:
    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("JsonMailbox takes the directory to write mail to")
        return cls(args[0])

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "from": str(message.get("From", "")),
            "to": str(message.get("To", "")),
            "subject": str(message.get("Subject", "")),
            "content_type": message.get_content_type(),
            "text": text.get_content() if text is not None else "",
            "html": html.get_content() if html is not None else "",
        }
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}"
        partial = os.path.join(self.directory, name + ".part")
        with open(partial, "w", encoding="utf-8") as out:
            json.dump(record, out)
        # Readers list *.json only: a file appears whole.
        os.rename(partial, os.path.join(self.directory, name + ".json"))
        return "250 Message accepted for delivery"
