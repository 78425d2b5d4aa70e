"""authkeys.py: test-only credentials made at run time: a bearer tokens
file, a JWKS with an RSA and an EC P-256 key, an HS256 secret, and JWTs
signed (or deliberately mis-signed) with them. Nothing here is committed
key material: every key is generated when the session starts."""
import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from . import servers

ISSUER = "https://keycloak.test/realms/openova"
AUDIENCE = "openova-flow"
COOKIE = "flow_session"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(n):
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class KeyStore:
    """One directory of credentials the app reads; files are world-readable
    test material because the app may run as the web server's user."""

    def __init__(self):
        self.dir = servers.shared_dir("openova-auth-")
        os.chmod(self.dir, 0o755)
        self.tokens_path = os.path.join(self.dir, "tokens")
        self.jwks_path = os.path.join(self.dir, "jwks.json")
        self.secret_path = os.path.join(self.dir, "hs256.key")
        self.emitter_token = secrets.token_urlsafe(32)
        self.unnamed_token = secrets.token_urlsafe(32)
        self.write_tokens([(self.emitter_token, "emitter-eu"), (self.unnamed_token, None)])
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.rsa_kid, self.ec_kid = "rsa-1", "ec-1"
        self.write_jwks([(self.rsa_kid, self.rsa), (self.ec_kid, self.ec)])
        self.secret = secrets.token_bytes(32)
        self._write(self.secret_path, self.secret)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def _write(self, path, data):
        # Write then rename, as a deploy tool would; bump the mtime past the
        # app's once-a-second check so the change is seen at once.
        tmp = path + ".new"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        later = time.time() + 2
        os.utime(path, (later, later))

    def write_tokens(self, entries):
        lines = ["# test tokens: sha256 digest and name"]
        for token, name in entries:
            digest = hashlib.sha256(token.encode()).hexdigest()
            lines.append(f"{digest} {name}" if name else digest)
        self._write(self.tokens_path, ("\n".join(lines) + "\n").encode())

    @staticmethod
    def public_jwk(kid, key):
        pub = key.public_key().public_numbers()
        if isinstance(key, rsa.RSAPrivateKey):
            return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": _int_b64(pub.n), "e": _int_b64(pub.e)}
        return {"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
                "x": b64url(pub.x.to_bytes(32, "big")), "y": b64url(pub.y.to_bytes(32, "big"))}

    def write_jwks(self, keys):
        self._write(self.jwks_path, json.dumps({"keys": [self.public_jwk(k, v) for k, v in keys]}).encode())

    def rsa_public_pem(self):
        return self.rsa.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)

    def claims(self, **overrides):
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-7", "email": "ada@example.test",
                  "iat": now, "exp": now + 300}
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def jwt(self, alg="RS256", kid=None, key=None, header_extra=None, **claim_overrides):
        """A compact JWS. key overrides the signing key (bytes for HS256)."""
        header = {"alg": alg, "typ": "JWT"}
        if kid is None:
            kid = {"RS256": self.rsa_kid, "ES256": self.ec_kid}.get(alg)
        if kid:
            header["kid"] = kid
        header.update(header_extra or {})
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(self.claims(**claim_overrides)).encode())).encode()
        return signing_input.decode() + "." + b64url(self.sign(alg, signing_input, key))

    def sign(self, alg, data, key=None):
        if alg == "none":
            return b""
        if alg == "HS256":
            return hmac.new(key if key is not None else self.secret, data, hashlib.sha256).digest()
        if alg == "RS256":
            return (key or self.rsa).sign(data, padding.PKCS1v15(), hashes.SHA256())
        if alg == "ES256":
            r, s = decode_dss_signature((key or self.ec).sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        raise ValueError(alg)

    def app_env(self, methods, **extra):
        env = {
            "OPENOVA_FLOW_AUTH": methods,
            "OPENOVA_FLOW_TOKENS_FILE": self.tokens_path,
            "OPENOVA_FLOW_JWKS_FILE": self.jwks_path,
            "OPENOVA_FLOW_JWT_SECRET_FILE": self.secret_path,
            "OPENOVA_FLOW_JWT_COOKIE": COOKIE,
            "OPENOVA_FLOW_JWT_ISSUER": ISSUER,
            "OPENOVA_FLOW_JWT_AUDIENCE": AUDIENCE,
        }
        env.update(extra)
        return env
