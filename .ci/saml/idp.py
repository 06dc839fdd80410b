#!/usr/bin/env python3
"""A throwaway SAML 2.0 identity provider (pysaml2) for the SAML sign-in tests.

    python3 .ci/saml/idp.py DIR      # serves on 127.0.0.1, a spare port

At start it generates, in DIR, the IdP's signing key and certificate
(idp.key, idp.pem: what the Service Provider under test trusts) and a
second, untrusted pair (other.key, other.pem), then prints
`ready <port>` on stdout. The Service Provider's metadata is read from
DIR/sp.xml at every request (the test writes it from GET
/auth/saml/metadata).

GET /sso?SAMLRequest=...&user=NAME  (HTTP-Redirect binding) parses the
AuthnRequest with pysaml2, signs the user in without a password (a test
fixture: the user is in the query) and answers JSON
{"SAMLResponse": ..., "acs": ...} instead of an auto-POST form, for the test
to post. Test-only knobs craft the attacks the SP must refuse:
sign=none|assertion|response|both (default both), key=other (sign with the
untrusted key), audience=, destination=, issuer=, in_response_to=,
lifetime=SECONDS (negative: expired), mfa=1 (a two-factor
AuthnContextClassRef).

Nothing here is for production: keys are generated per run and never kept.
"""

import json
import os
import subprocess
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, xmldsig
from saml2.config import IdPConfig
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT
from saml2.server import Server

XMLSEC = "/usr/bin/xmlsec1"
CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
GROUPS = "http://schemas.xmlsoap.org/claims/Group"

# The demo users (/work/shared/DEMO.md): department, groups and e-mail.
USERS = {
    "dave": {"given": "Dave", "sn": "Demo", "dept": "engineering", "groups": ["DataScience"],
             "clearance": "confidential", "country": "GB"},
    "bob": {"given": "Bob", "sn": "Demo", "dept": "sales", "groups": ["Business"],
            "clearance": "internal", "country": "CA"},
    "alice": {"given": "Alice", "sn": "Demo", "dept": "engineering", "groups": ["Admins"],
              "clearance": "secret", "country": "US"},
}


def keypair(directory, name):
    key = os.path.join(directory, name + ".key")
    cert = os.path.join(directory, name + ".pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=kailash-test-" + name, "-keyout", key, "-out", cert],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return key, cert


def server(directory, port, key, cert, entityid, lifetime, audience):
    base = "http://127.0.0.1:%d" % port
    metadata = [os.path.join(directory, "sp.xml")]
    if audience:
        # Another SP's metadata (this one's, renamed), so pysaml2 answers
        # for that audience.
        with open(metadata[0]) as f:
            sp = f.read()
        with open(os.path.join(directory, "sp.xml")) as f:
            import re
            own = re.search(r'entityID="([^"]*)"', f.read()).group(1)
        other = os.path.join(directory, "other-sp.xml")
        with open(other, "w") as f:
            f.write(sp.replace('entityID="%s"' % own, 'entityID="%s"' % audience))
        metadata = [other]
    conf = IdPConfig()
    conf.load({
        "entityid": entityid or base + "/idp",
        "xmlsec_binary": XMLSEC,
        "key_file": key,
        "cert_file": cert,
        "metadata": {"local": metadata},
        "service": {"idp": {
            "endpoints": {"single_sign_on_service": [(base + "/sso", BINDING_HTTP_REDIRECT)]},
            "name_id_format": [NAMEID_FORMAT_PERSISTENT],
            "policy": {"default": {
                "lifetime": {"seconds": lifetime},
                "name_form": NAME_FORMAT_URI,
                "attribute_restrictions": None,
            }},
        }},
    })
    return Server(config=conf)


def main():
    directory = sys.argv[1]
    trusted = keypair(directory, "idp")
    other = keypair(directory, "other")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path != "/sso":
                return self.answer(404, {"error": "not found"})
            try:
                port = self.server.server_address[1]
                key, cert = other if q.get("key") == "other" else trusted
                idp = server(directory, port, key, cert, q.get("issuer"),
                             int(q.get("lifetime", "300")), q.get("audience"))
                req = idp.parse_authn_request(q["SAMLRequest"], BINDING_HTTP_REDIRECT)
                message = req.message
                user = q.get("user", "dave")
                u = USERS[user]
                identity = {
                    CLAIMS + "emailaddress": [user + "@acme.example"],
                    CLAIMS + "givenname": [u["given"]],
                    CLAIMS + "surname": [u["sn"]],
                    CLAIMS + "department": [u["dept"]],
                    GROUPS: u["groups"],
                    CLAIMS + "country": [u["country"]],
                    "urn:kailash:clearance": [u["clearance"]],
                }
                sign = q.get("sign", "both")
                authn = {
                    "class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract"
                    if q.get("mfa") else
                    "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
                }
                acs = message.assertion_consumer_service_url
                response = idp.create_authn_response(
                    identity,
                    in_response_to=q.get("in_response_to", message.id),
                    destination=q.get("destination", acs),
                    sp_entity_id=q.get("audience", message.issuer.text),
                    userid=user,
                    name_id=None,
                    authn=authn,
                    sign_response=sign in ("both", "response"),
                    sign_assertion=sign in ("both", "assertion"),
                    sign_alg=xmldsig.SIG_RSA_SHA256,
                    digest_alg=xmldsig.DIGEST_SHA256,
                )
                import base64
                self.answer(200, {
                    "SAMLResponse": base64.b64encode(str(response).encode()).decode(),
                    "acs": acs,
                })
            except Exception as e:  # a test fixture: say what went wrong
                self.answer(500, {"error": repr(e)})

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("ready %d" % httpd.server_address[1], flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
