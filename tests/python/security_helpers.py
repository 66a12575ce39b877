"""Test key material, made fresh for each run (nothing secret is committed): a CA, the
broker's certificate, client certificates (one from an untrusted CA), an RSA key whose
public half is published as a JWKS, and JWTs signed with it. Uses `cryptography`."""

import base64
import datetime
import ipaddress
import json
import pathlib
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID


def _name(cn, org="Strata Test"):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, key, issuer, issuer_key, ca=False, sans=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem_key(key, password=None):
    enc = (serialization.BestAvailableEncryption(password.encode()) if password
           else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def _pem_cert(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


class Pki:
    """Files under `dir`: ca.pem, broker.pem (key + chain), broker-enc.pem (encrypted key),
    client.crt/client.key, rogue.crt/rogue.key (from another CA), jwks.json."""

    def __init__(self, dir):
        self.dir = pathlib.Path(dir)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _cert(_name("strata-test-ca"), ca_key, _name("strata-test-ca"), ca_key, ca=True)
        self.ca = self._write("ca.pem", _pem_cert(ca))
        bkey = ec.generate_private_key(ec.SECP256R1())
        sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        bcert = _cert(_name("localhost"), bkey, ca.subject, ca_key, sans=sans)
        self.broker = self._write("broker.pem", _pem_key(bkey) + _pem_cert(bcert))
        self.broker_encrypted = self._write("broker-enc.pem", _pem_key(bkey, "key-pass") + _pem_cert(bcert))
        ckey = ec.generate_private_key(ec.SECP256R1())
        self.client_key = self._write("client.key", _pem_key(ckey))
        self.client_cert = self._write("client.crt", _pem_cert(_cert(_name("alice-client"), ckey, ca.subject, ca_key)))
        rca_key = ec.generate_private_key(ec.SECP256R1())
        rkey = ec.generate_private_key(ec.SECP256R1())
        self.rogue_key = self._write("rogue.key", _pem_key(rkey))
        self.rogue_cert = self._write("rogue.crt", _pem_cert(_cert(_name("mallory"), rkey, _name("rogue-ca"), rca_key)))
        # The JWKS: one RSA key, kid "k1".
        self.jwt_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        nums = self.jwt_key.public_key().public_numbers()
        jwk = {"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
               "n": _b64(nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")),
               "e": _b64(nums.e.to_bytes(3, "big"))}
        self.jwks = self._write("jwks.json", json.dumps({"keys": [jwk]}).encode())
        # A second key that no JWKS publishes, for forged tokens.
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def _write(self, name, data):
        path = self.dir / name
        path.write_bytes(data)
        return str(path)

    def token(self, sub, lifetime=300, issuer="https://issuer.test", audience="strata",
              key=None, kid="k1"):
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": kid}
        claims = {"sub": sub, "iss": issuer, "aud": audience, "iat": now, "exp": now + lifetime}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        sig = (key or self.jwt_key).sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(sig)}"


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
