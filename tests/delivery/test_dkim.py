"""DKIM signing: signatures made by DkimSigner verify with dkimpy against the matching DNS record."""

from __future__ import annotations

import base64
import secrets
import shutil
import subprocess
from math import gcd
from pathlib import Path

import dkim
import pytest
from dkim.util import parse_tag_value

from service.delivery.compose import EditionMail, Personalisation, prepare
from service.delivery.dkim import DkimSigner

SELECTOR_NAME = b"s2025._domainkey.example.org."
_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]


def _probable_prime(bits: int) -> int:
    """A random prime of exactly ``bits`` bits (Miller-Rabin, 40 rounds)."""
    while True:
        n = secrets.randbits(bits) | (1 << (bits - 1)) | (1 << (bits - 2)) | 1
        if any(n % p == 0 for p in _SMALL_PRIMES):
            continue
        d, r = n - 1, 0
        while d % 2 == 0:
            d, r = d // 2, r + 1
        for _ in range(40):
            x = pow(secrets.randbelow(n - 3) + 2, d, n)
            if x in (1, n - 1):
                continue
            for _ in range(r - 1):
                x = pow(x, 2, n)
                if x == n - 1:
                    break
            else:
                break
        else:
            return n


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    length = bytes([size]) if size < 0x80 else (
        bytes([0x80 | (size.bit_length() + 7) // 8]) + size.to_bytes((size.bit_length() + 7) // 8, "big"))
    return bytes([tag]) + length + body


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))  # spare byte keeps it positive


def make_rsa_key(bits: int, *, break_it: bool = False) -> tuple[bytes, bytes]:
    """A PKCS#1 PEM private key and its DKIM TXT record, made here: `cryptography` is not installed."""
    e = 65537
    while True:
        p, q = _probable_prime(bits // 2), _probable_prime(bits // 2)
        if p != q and gcd(e, (p - 1) * (q - 1)) == 1:
            break
    n, d = p * q, pow(e, -1, (p - 1) * (q - 1))
    exponent1 = d % (p - 1) + (1 if break_it else 0)
    private = _der(0x30, b"".join(_der_int(v) for v in (0, n, e, d, p, q, exponent1, d % (q - 1), pow(q, -1, p))))
    b64 = base64.b64encode(private)
    pem = b"-----BEGIN RSA PRIVATE KEY-----\n" + b"\n".join(b64[i:i + 64] for i in range(0, len(b64), 64)) \
        + b"\n-----END RSA PRIVATE KEY-----\n"
    rsa_encryption = _der(0x30, _der(0x06, bytes.fromhex("2a864886f70d010101")) + _der(0x05, b""))
    spki = _der(0x30, rsa_encryption + _der(0x03, b"\x00" + _der(0x30, _der_int(n) + _der_int(e))))
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(spki)


@pytest.fixture(scope="module")
def key() -> tuple[bytes, bytes]:
    return make_rsa_key(2048)


def rendered(reply_to: str | None = "editor@example.org") -> bytes:
    mail = EditionMail(subject="Weekly \u2014 Zo\u00eb's picks", html="<p>Hi {{name}}</p>", text=None,
                       from_addr="Weekly <news@example.org>", reply_to=reply_to,
                       list_id="weekly.lists.example.org", list_name="Weekly")
    p = Personalisation(to_email="alice@example.net", to_name="Alice", unsubscribe_url="https://l.example.org/u/t1",
                        unsubscribe_mailto="mailto:unsubscribe+t1@bounce.example.org",
                        preferences_url="https://l.example.org/p/t1", message_id="<1.ed@example.org>")
    return prepare(mail, message_id_domain="example.org").render(p)


def verifies(message: bytes, txt_record: bytes) -> bool:
    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return txt_record if name == SELECTOR_NAME else None

    return bool(dkim.verify(message, dnsfunc=dns))


def signature_tags(signed: bytes) -> dict[bytes, bytes]:
    assert signed.startswith(b"DKIM-Signature: ")
    header = signed.split(b"\r\n\r\n")[0].split(b"\r\nFrom:")[0]
    tags: dict[bytes, bytes] = parse_tag_value(header[len(b"DKIM-Signature: "):])
    return tags


def test_signed_copy_verifies(key: tuple[bytes, bytes]) -> None:
    pem, txt = key
    message = rendered()
    signed = DkimSigner(domain="example.org", selector="s2025", private_key_pem=pem).sign(message)
    assert signed.endswith(message)
    assert verifies(signed, txt)


def test_signature_covers_the_rfc8058_headers(key: tuple[bytes, bytes]) -> None:
    tags = signature_tags(DkimSigner(domain="example.org", selector="s2025", private_key_pem=key[0]).sign(rendered()))
    assert (tags[b"a"], tags[b"c"], tags[b"d"], tags[b"s"]) == (b"rsa-sha256", b"relaxed/relaxed", b"example.org",
                                                               b"s2025")
    signed = {name.strip() for name in tags[b"h"].split(b":")}
    assert signed == {b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
                      b"list-id", b"list-unsubscribe", b"list-unsubscribe-post", b"reply-to"}


def test_reply_to_is_signed_only_when_present(key: tuple[bytes, bytes]) -> None:
    signer = DkimSigner(domain="example.org", selector="s2025", private_key_pem=key[0])
    signed = signer.sign(rendered(reply_to=None))
    assert b"reply-to" not in signature_tags(signed)[b"h"]
    assert verifies(signed, key[1])


@pytest.mark.parametrize(("old", "new"), [
    (b"<https://l.example.org/u/t1>", b"<https://evil.example.com/u/t1>"),
    (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: List-Unsubscribe=Two-Click"),
    (b"To: Alice <alice@example.net>", b"To: Mallory <alice@example.net>"),
    (b"\r\nFrom: ", b"\r\nFrom: Evil <ceo@example.com>\r\nFrom: "),  # a second From, added in transit
    (b"\r\nAlice=\r\n", b"\r\nAlicf=\r\n"),  # the body
])
def test_tampering_breaks_the_signature(key: tuple[bytes, bytes], old: bytes, new: bytes) -> None:
    signed = DkimSigner(domain="example.org", selector="s2025", private_key_pem=key[0]).sign(rendered())
    assert old in signed
    assert not verifies(signed.replace(old, new, 1), key[1])


def test_relaxed_canonicalisation_survives_refolding(key: tuple[bytes, bytes]) -> None:
    signed = DkimSigner(domain="example.org", selector="s2025", private_key_pem=key[0]).sign(rendered())
    assert verifies(signed.replace(b"List-Unsubscribe: <", b"List-Unsubscribe:\r\n    <"), key[1])


@pytest.mark.parametrize(("pem", "message"), [
    (b"not a key", "not a PEM RSA private key"),
    (b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n", "not a PEM RSA private key"),
])
def test_unusable_keys_are_refused_at_construction(pem: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DkimSigner(domain="example.org", selector="s2025", private_key_pem=pem)


def test_short_and_inconsistent_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="512 bits"):
        DkimSigner(domain="example.org", selector="s", private_key_pem=make_rsa_key(512)[0])
    with pytest.raises(ValueError, match="inconsistent"):
        DkimSigner(domain="example.org", selector="s", private_key_pem=make_rsa_key(1024, break_it=True)[0])


@pytest.mark.parametrize(("domain", "selector"), [("example.org\r\n", "s"), ("example.org", "s;x=1"), ("", "s")])
def test_bad_domain_or_selector_is_refused(key: tuple[bytes, bytes], domain: str, selector: str) -> None:
    with pytest.raises(ValueError, match="DKIM"):
        DkimSigner(domain=domain, selector=selector, private_key_pem=key[0])


def test_from_file(key: tuple[bytes, bytes], tmp_path: Path) -> None:
    path = tmp_path / "dkim.pem"
    path.write_bytes(key[0])
    signer = DkimSigner.from_file(domain="example.org", selector="s2025", key_file=str(path))
    assert verifies(signer.sign(rendered()), key[1])
    with pytest.raises(ValueError, match="cannot read DKIM key file"):
        DkimSigner.from_file(domain="example.org", selector="s2025", key_file=str(tmp_path / "missing.pem"))
    (tmp_path / "bad.pem").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"bad\.pem"):
        DkimSigner.from_file(domain="example.org", selector="s2025", key_file=str(tmp_path / "bad.pem"))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")
def test_key_made_by_openssl_signs_and_verifies(tmp_path: Path) -> None:
    # What an operator does: `openssl genrsa` (PKCS#8 PEM with OpenSSL 3) and publish the public key.
    key_file = tmp_path / "key.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key_file), "2048"], check=True, capture_output=True)
    public = subprocess.run(["openssl", "rsa", "-in", str(key_file), "-pubout", "-outform", "DER"],
                            check=True, capture_output=True).stdout
    signer = DkimSigner.from_file(domain="example.org", selector="s2025", key_file=str(key_file))
    assert verifies(signer.sign(rendered()), b"v=DKIM1; k=rsa; p=" + base64.b64encode(public))
