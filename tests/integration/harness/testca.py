"""testca.py: a certificate authority of a test's own, made with openssl:
server certificates for host names (the Sovereigns' flow servers), client
certificates (the console's), all valid for two days, in a directory."""
import os
import subprocess


def _openssl(*args, cwd):
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"openssl {' '.join(args)}:\n{proc.stderr}"


class CertificateAuthority:
    def __init__(self, directory, name="ca"):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        self.cert = os.path.join(self.dir, f"{name}.pem")
        self.key = os.path.join(self.dir, f"{name}.key")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", self.key, "-out", self.cert, "-days", "2", "-subj", f"/CN=OpenovaFlow test {name}",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
                 cwd=self.dir)

    def issue(self, name, dns_names=(), client=False):
        """(certificate, key) paths for a server (its DNS names) or a client."""
        key = os.path.join(self.dir, f"{name}.key")
        csr = os.path.join(self.dir, f"{name}.csr")
        cert = os.path.join(self.dir, f"{name}.pem")
        ext = os.path.join(self.dir, f"{name}.ext")
        with open(ext, "w") as f:
            if dns_names:
                f.write("subjectAltName=" + ",".join(f"DNS:{n}" for n in dns_names) + "\n")
            f.write(f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}\n")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                 "-out", csr, "-subj", f"/CN={dns_names[0] if dns_names else name}", cwd=self.dir)
        _openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-CAcreateserial", "-out", cert,
                 "-days", "2", "-extfile", ext, cwd=self.dir)
        return cert, key
