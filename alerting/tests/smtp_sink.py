"""A real SMTP server for the email receiver's test: aiosmtpd on loopback with PLAIN/LOGIN auth
(user "alerts", password "s3cret"), writing each message as JSON (envelope, auth login, headers,
the text and HTML parts, and whether the session was encrypted) to OUT_DIR/N.json.
Usage: smtp_sink.py PORT OUT_DIR [plain | starttls CERT KEY | tls CERT KEY]
plain offers no TLS; starttls refuses mail until the client said STARTTLS; tls is implicit TLS."""
import email
import email.policy
import json
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, out = int(sys.argv[1]), sys.argv[2]
mode = sys.argv[3] if len(sys.argv) > 3 else "plain"
tls_context = None
if mode != "plain":
    tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_context.load_cert_chain(sys.argv[4], sys.argv[5])


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"alerts" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        parts = {}
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                parts[part.get_content_type()] = part.get_content()
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "login": session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
            "subject": str(msg["Subject"]),
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "content_type": msg.get_content_type(),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "starttls": session.ssl is not None,
        }
        n = len([f for f in os.listdir(out) if f.endswith(".json")])
        tmp = os.path.join(out, f"{n}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(out, f"{n}.json"))
        return "250 OK"


options = dict(authenticator=authenticator, auth_require_tls=False, auth_required=True)
if mode == "starttls":
    options.update(tls_context=tls_context, require_starttls=True)
elif mode == "tls":
    options.update(ssl_context=tls_context)
controller = Controller(Handler(), hostname="127.0.0.1", port=port, **options)
controller.start()
print("ready", flush=True)
try:
    while True:
        time.sleep(3600)
finally:
    controller.stop()
