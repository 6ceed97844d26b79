"""DKIM signing: signatures made by DkimSigner verify with dkimpy, an independent implementation.

dkimpy canonicalises and hashes on its own and checks the signature against a DNS record made
here from the public key, so every ``verifies`` below is a check of our canonicalisation too.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import dkim
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from dkim.util import parse_tag_value
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.delivery.dkim import BodyPieces, DkimSigner, body_hash
from service.mail.compose import EditionMail, Personalisation, compose_simple, prepare

SELECTOR_NAME = b"s2025._domainkey.example.org."
EMPTY_BODY_HASH = b"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="  # base64 of SHA-256 of nothing
# Derandomised so CI sees the same examples every time, like tests/bounces/test_parser_fuzz.py.
FUZZ = settings(deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
Key = tuple[bytes, bytes]  # PEM private key, DKIM TXT record


def pem_of(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
           fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def rsa_record(key: rsa.RSAPrivateKey) -> bytes:
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(spki)


def make_rsa_key(bits: int = 2048, fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> Key:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return pem_of(key, fmt), rsa_record(key)


def make_ed25519_key() -> Key:
    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return pem_of(key), b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw)  # RFC 8463: the raw 32 bytes


def _probable_prime(bits: int) -> int:
    """A random prime of ``bits`` bits (Miller-Rabin): `cryptography` refuses to make RSA keys under 1024 bits."""
    while True:
        n = secrets.randbits(bits) | (3 << (bits - 2)) | 1  # top two bits: p * q has 2 * bits bits
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


def short_rsa_pem() -> bytes:
    """A consistent 512-bit RSA key, too short for DKIM (RFC 8301)."""
    while True:
        p, q = _probable_prime(256), _probable_prime(256)
        phi = (p - 1) * (q - 1)
        if p != q and phi % 65537:
            break
    d = pow(65537, -1, phi)
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p),
                                    rsa.RSAPublicNumbers(65537, p * q))
    return pem_of(numbers.private_key(), serialization.PrivateFormat.TraditionalOpenSSL)


def inconsistent_rsa_pem() -> bytes:
    """A PKCS#1 key whose CRT exponent d mod (p-1) is wrong: it parses, but its parts do not belong together."""
    good = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
    broken = rsa.RSAPrivateNumbers(good.p, good.q, good.d, good.dmp1 + 2, good.dmq1, good.iqmp, good.public_numbers)
    return pem_of(broken.private_key(unsafe_skip_rsa_key_validation=True),
                  serialization.PrivateFormat.TraditionalOpenSSL)


@pytest.fixture(scope="module")
def key() -> Key:
    return make_rsa_key(2048)


@pytest.fixture(scope="module")
def signer(key: Key) -> DkimSigner:
    return DkimSigner(domain="example.org", selector="s2025", private_key_pem=key[0])


class _VerifyKey:
    """The part of PyNaCl's VerifyKey that dkimpy's ed25519 verification uses, done with `cryptography`."""

    def __init__(self, key: bytes, encoder: object) -> None:
        self._key = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(key))

    def verify(self, message: bytes, signature: bytes) -> bytes:
        self._key.verify(signature, message)
        return message


@pytest.fixture
def ed25519_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    # dkimpy verifies ed25519 through PyNaCl, which is not installed here. Only that primitive is
    # replaced; dkimpy still parses, canonicalises and hashes the message itself.
    if not hasattr(dkim, "nacl"):
        monkeypatch.setattr(dkim, "nacl", SimpleNamespace(
            signing=SimpleNamespace(VerifyKey=_VerifyKey), encoding=SimpleNamespace(Base64Encoder=None),
            exceptions=SimpleNamespace(ValueError=ValueError, BadSignatureError=InvalidSignature)), raising=False)


def rendered(reply_to: str | None = "editor@example.org", *, to_name: str = "Alice", paragraphs: int = 1) -> bytes:
    html = "<html><body>" + "<p>Hi {{name}}, the caf\u00e9 news\tof the week  (tabs, double spaces).</p>\n" * paragraphs \
        + '<a href="{{unsubscribe_url}}">Unsubscribe</a></body></html>\n'
    mail = EditionMail(subject="Weekly \u2014 Zo\u00eb's picks", html=html, text=None,
                       from_addr="Weekly <news@example.org>", reply_to=reply_to,
                       list_id="weekly.lists.example.org", list_name="Weekly")
    p = Personalisation(to_email="alice@example.net", to_name=to_name, unsubscribe_url="https://l.example.org/u/t1",
                        unsubscribe_mailto="mailto:unsubscribe+t1@bounce.example.org",
                        preferences_url="https://l.example.org/p/t1", message_id="<1.ed@example.org>")
    return prepare(mail, message_id_domain="example.org").render(p)


def verifies(message: bytes, txt_record: bytes) -> bool:
    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return txt_record if name == SELECTOR_NAME else None

    return bool(dkim.verify(message, dnsfunc=dns))


def signature_header(signed: bytes) -> bytes:
    assert signed.startswith(b"DKIM-Signature: ")
    found = re.match(rb"DKIM-Signature: (?:[^\r\n]*\r\n[ \t])*[^\r\n]*\r\n", signed)
    assert found is not None
    return found[0]


def signature_tags(signed: bytes) -> dict[bytes, bytes]:
    unfolded = re.sub(rb"\r\n(?=[ \t])", b"", signature_header(signed)[len(b"DKIM-Signature: "):])
    tags: dict[bytes, bytes] = parse_tag_value(unfolded)
    return tags


def h_tag(signed: bytes) -> list[bytes]:
    return [name.strip() for name in signature_tags(signed)[b"h"].split(b":")]


# --- composed copies --------------------------------------------------------------------------------------------


def test_signed_copy_verifies(key: Key, signer: DkimSigner) -> None:
    message = rendered()
    signed = signer.sign(message)
    assert signed.endswith(message)
    assert signed[: -len(message)] == signature_header(signed)
    assert verifies(signed, key[1])


@pytest.mark.parametrize("message", [
    pytest.param(rendered(paragraphs=250), id="40KB-edition"),
    pytest.param(rendered(to_name="Zo\u00eb \u201cthe editor\u201d O'Brien-Sm\u00f8rrebr\u00f8d of Copenhagen"),
                 id="encoded-word-to"),
    pytest.param(rendered(reply_to=None), id="no-reply-to"),
    pytest.param(compose_simple(from_addr="Letterbox <noreply@example.org>", to_email="bob@example.net",
                                subject="Confirm your subscription to \u201cWeekly\u201d", text="Click:\n\nhttps://x\n",
                                html="<p>Click</p>", headers={"List-Id": "<weekly.example.org>"},
                                message_id_domain="example.org"), id="compose_simple"),
])
def test_composed_messages_verify(key: Key, signer: DkimSigner, message: bytes) -> None:
    signed = signer.sign(message)
    assert signed.endswith(message)
    assert verifies(signed, key[1])


PIECE_EDITIONS = {
    "tabs, double spaces and trailing spaces": ("Hello {{name}}\t and  you  \nline with trailing spaces   \n\n\n",
                                                "<p>Hi  {{name}}\t</p>  \n<p>{{unsubscribe_url}}</p>   "),
    "placeholders first and last": ("{{name}}\nmiddle\n{{unsubscribe_url}}", "{{name}}<p>x</p>{{preferences_url}}"),
    "footer placeholders only": ("A long text  part\n" * 200 + "{{unsubscribe_url}}\n", "<p>x</p>\n" * 200
                                 + "<a href='{{unsubscribe_url}}'>out</a>"),
    "derived text": (None, "<p>Dear {{name}},</p><p>\tnews  of the week</p>\n\n<p>{{view_url}}</p>"),
}


@pytest.mark.parametrize(("text", "html"), PIECE_EDITIONS.values(), ids=PIECE_EDITIONS.keys())
def test_a_copy_signed_from_its_pieces_has_the_whole_messages_body_hash(
    key: Key, signer: DkimSigner, text: str | None, html: str
) -> None:
    mail = prepare(EditionMail(subject="Pieces", html=html, text=text, from_addr="News <news@example.org>",
                               reply_to=None, list_id="news.lists.example.org", list_name="News"),
                   message_id_domain="example.org")
    pieces = BodyPieces()
    for name in ("Alice", "  Bob  the   Builder ", ""):  # the second and third copies reuse the shared pieces
        copy = mail.render_copy(Personalisation(
            to_email="a@example.net", to_name=name, unsubscribe_url="https://l.example.org/u/t1",
            unsubscribe_mailto="mailto:unsubscribe+t1@bounce.example.org", preferences_url="https://l.example.org/p",
            message_id="<1.p@example.org>", view_url="https://l.example.org/v/1"))
        split = pieces.split(copy.pieces, mail.shared)
        assert split is not None, "a composed copy is laid out in whole lines"
        fields, parts = split
        from_pieces = signer.signed_header(fields, body_hash(parts)) + copy.message
        whole = signer.sign(copy.message)
        assert signature_tags(from_pieces)[b"bh"] == signature_tags(whole)[b"bh"]
        assert signature_tags(from_pieces)[b"h"] == signature_tags(whole)[b"h"]
        assert verifies(from_pieces, key[1])


def test_the_body_hash_of_parts_drops_empty_lines_at_the_end_across_parts() -> None:
    def whole(body: bytes) -> bytes:
        return base64.b64encode(hashlib.sha256(body).digest())

    assert body_hash([b"a\r\n", b"\r\n\r\n", b"", b"\r\n"]) == whole(b"a\r\n")
    assert body_hash([b"a\r\n\r\n", b"b\r\n", b"\r\n"]) == whole(b"a\r\n\r\nb\r\n")
    assert body_hash([b"\r\n", b""]) == body_hash([]) == whole(b"")


def test_pieces_not_in_whole_lines_are_left_to_the_whole_message() -> None:
    pieces = BodyPieces()
    assert pieces.split([b"From: a@example.org\r\n\r\nhalf a ", b"line\r\n"], [True, False]) is None
    assert pieces.split([b"From: a@example.org\r\n", b"\r\nbody\r\n"], [True, True]) is None
    assert pieces.split([b"From: a@example.org\r\n\r\nbody\r\n"], [False]) is None
    assert pieces.split([b"From: a@example.org\r\n\r\nbody  here \r\n"], [True]) == (
        b"From: a@example.org", [b"body here\r\n"])


def test_signature_tags_and_the_rfc8058_headers(signer: DkimSigner) -> None:
    before = int(time.time())
    tags = signature_tags(signer.sign(rendered()))
    assert (tags[b"v"], tags[b"a"], tags[b"c"], tags[b"d"], tags[b"s"]) == (
        b"1", b"rsa-sha256", b"relaxed/relaxed", b"example.org", b"s2025")
    assert before <= int(tags[b"t"]) <= time.time()
    names = [name.strip() for name in tags[b"h"].split(b":")]
    assert b"list-unsubscribe" in names
    assert b"list-unsubscribe-post" in names
    assert set(names) == {b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
                          b"list-id", b"list-unsubscribe", b"list-unsubscribe-post", b"reply-to"}
    assert names.count(b"from") == 2  # once more than present: oversigned


def test_reply_to_is_signed_only_when_present(key: Key, signer: DkimSigner) -> None:
    signed = signer.sign(rendered(reply_to=None))
    assert b"reply-to" not in h_tag(signed)
    assert verifies(signed, key[1])


def test_signature_header_is_folded_within_78_characters(signer: DkimSigner) -> None:
    header = signature_header(signer.sign(rendered()))
    lines = header[:-2].split(b"\r\n")
    assert len(lines) > 3
    assert all(len(line) <= 78 for line in lines)
    assert all(line[:1] == b" " for line in lines[1:])


@pytest.mark.parametrize(("old", "new"), [
    (b"<https://l.example.org/u/t1>", b"<https://evil.example.com/u/t1>"),
    (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: List-Unsubscribe=Two-Click"),
    (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b""),  # removed
    (b"To: Alice <alice@example.net>", b"To: Mallory <alice@example.net>"),
    (b"\r\nFrom: ", b"\r\nFrom: Evil <ceo@example.com>\r\nFrom: "),  # a second From, added in transit
    (b"\r\nMessage-ID: <1.ed@example.org>", b"\r\nMessage-ID: <2.ed@example.org>"),
    (b"\r\nAlice=\r\n", b"\r\nAlicf=\r\n"),  # the body
    (b"</html>", b"</html>\r\nP.S. added in transit"),  # appended to the body
])
def test_tampering_breaks_the_signature(key: Key, signer: DkimSigner, old: bytes, new: bytes) -> None:
    signed = signer.sign(rendered())
    assert old in signed
    assert verifies(signed, key[1])
    assert not verifies(signed.replace(old, new, 1), key[1])


@pytest.mark.parametrize(("old", "new"), [
    (b"List-Unsubscribe: <", b"List-Unsubscribe:\r\n    <"),  # refolded
    (b"Subject: ", b"SUBJECT:  \t "),  # name case and space around the colon
    (b"\r\nTo: Alice <alice@example.net>", b"\r\nTo: Alice   <alice@example.net>  "),
    (b"\r\n\r\n--=_lbx_", b"\r\nX-Added: by a relay\r\n\r\n--=_lbx_"),  # an unsigned header field
    (b"</html>\r\n", b"</html> \t \r\n"),  # trailing whitespace on a body line
    (b"--\r\n", b"--\r\n\r\n \r\n\t\r\n"),  # empty and blank lines at the end of the body
])
def test_relaxed_canonicalisation_survives_harmless_changes(key: Key, signer: DkimSigner, old: bytes,
                                                            new: bytes) -> None:
    signed = signer.sign(rendered())
    assert old in signed
    assert verifies(signed.replace(old, new, 1), key[1])


# --- hand-written messages ---------------------------------------------------------------------------------------

TRICKY = {
    "folded-headers": b"From: Weekly\r\n <news@example.org>\r\nTo: a@example.net,\r\n\tb@example.net\r\n"
                      b"Subject: a subject\r\n  folded\r\n\tthree times\r\n\r\nBody\r\n",
    "wsp-in-headers": b"From:   Weekly \t <news@example.org>  \t\r\nSubject:\t\tlots   of \t space  \r\n"
                      b"to:b@example.net\r\nDATE: Tue, 25 Nov 2025 07:46:00 +0000\r\n\r\nBody\r\n",
    "empty-values": b"From: news@example.org\r\nSubject:\r\nTo: \r\nReply-To: \t \r\n\r\nBody\r\n",
    "wsp-in-body": b"From: news@example.org\r\n\r\n\tleading tab\r\nin  the\t\tmiddle \t x\r\n"
                   b"trailing  \t\r\n \t \r\n\r\nlast line\t \r\n",
    "trailing-blank-lines": b"From: news@example.org\r\n\r\nText\r\n\r\n \r\n\t\r\n\r\n",
    "empty-body": b"From: news@example.org\r\nSubject: nothing\r\n\r\n",
    "whitespace-only-body": b"From: news@example.org\r\n\r\n  \r\n\t\r\n\r\n",
    "no-body-no-blank-line": b"From: news@example.org\r\nSubject: headers only\r\n",
    "no-final-crlf": b"From: news@example.org\r\n\r\nno line break at the end  ",
    "encoded-words": b"From: =?utf-8?b?Wm/DqyDigJQgV2Vla2x5?= <news@example.org>\r\n"
                     b"Subject: =?utf-8?q?Caf=C3=A9_news?=\r\n =?utf-8?b?4oCUIFpvw6sncyBwaWNrcw==?=\r\n"
                     b"To: =?iso-8859-1?q?J=F6rg?= <j@example.net>\r\n\r\nBody\r\n",
    "utf8-headers": "From: Zo\u00eb <news@example.org>\r\nSubject: caf\u00e9 \u2014 picks\r\n\r\n"
                    "Gr\u00fc\u00dfe\r\n".encode(),
    "unsigned-fields-between": b"Received: from a by b; Tue, 25 Nov 2025 07:46:00 +0000\r\n"
                               b"From: news@example.org\r\nX-Mailer: something\r\n  folded\r\nTo: a@example.net\r\n"
                               b"List-Unsubscribe: <https://l.example.org/u/t1>,\r\n <mailto:u@example.org>\r\n"
                               b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nBody\r\n",
    "two-to-fields": b"From: news@example.org\r\nTo: first@example.net\r\nTo: second@example.net\r\n\r\nBody\r\n",
    "long-body-line": b"From: news@example.org\r\n\r\n" + b"word \t " * 2000 + b"\r\n",
}


@pytest.mark.parametrize("message", TRICKY.values(), ids=TRICKY.keys())
def test_tricky_messages_verify(key: Key, signer: DkimSigner, message: bytes) -> None:
    signed = signer.sign(message)
    wire = message if message.endswith(b"\r\n") else message + b"\r\n"  # what the SMTP client sends
    assert signed.endswith(wire)
    assert verifies(signed, key[1])
    # The body is covered: a visible change to it breaks the signature.
    assert not verifies(signed + b"\r\nadded\r\n", key[1])


@pytest.mark.parametrize("name", ["empty-body", "whitespace-only-body", "trailing-blank-lines",
                                  "no-body-no-blank-line"])
def test_body_hash_follows_the_empty_line_rules(signer: DkimSigner, name: str) -> None:
    tags = signature_tags(signer.sign(TRICKY[name]))
    if name == "trailing-blank-lines":  # canonical body "Text\r\n"
        assert tags[b"bh"] == base64.b64encode(hashlib.sha256(b"Text\r\n").digest())
    else:  # an empty (or blank) body canonicalises to nothing at all
        assert tags[b"bh"] == EMPTY_BODY_HASH


def test_every_instance_of_a_signed_field_is_signed(key: Key, signer: DkimSigner) -> None:
    signed = signer.sign(TRICKY["two-to-fields"])
    assert h_tag(signed).count(b"to") == 2
    assert not verifies(signed.replace(b"To: first@", b"To: evil@"), key[1])
    assert not verifies(signed.replace(b"To: second@", b"To: evil@"), key[1])


def test_tampering_with_a_folded_header_breaks_the_signature(key: Key, signer: DkimSigner) -> None:
    signed = signer.sign(TRICKY["folded-headers"])
    assert verifies(signed, key[1])
    assert not verifies(signed.replace(b"\tthree times", b"\tfour times"), key[1])
    assert not verifies(signed.replace(b"\tb@example.net", b"\tc@example.net"), key[1])


@pytest.mark.parametrize(("message", "wire"), [
    (b"From: news@example.org\nSubject: LF only\n\nline one \nline two\n",
     b"From: news@example.org\r\nSubject: LF only\r\n\r\nline one \r\nline two\r\n"),
    (b"From: news@example.org\r\nSubject: mixed\n\r\nbare\rcr and\nbare lf\r\n",
     b"From: news@example.org\r\nSubject: mixed\r\n\r\nbare\r\ncr and\r\nbare lf\r\n"),
])
def test_bare_cr_and_lf_are_signed_as_the_smtp_client_sends_them(key: Key, signer: DkimSigner, message: bytes,
                                                                 wire: bytes) -> None:
    # aiosmtplib turns every bare CR and LF into CRLF for DATA; the signature must match that form.
    signed = signer.sign(message)
    assert signed.endswith(wire)
    assert verifies(signed, key[1])


@pytest.mark.parametrize(("message", "error"), [
    (b"To: a@example.net\r\nSubject: no sender\r\n\r\nBody\r\n", "no From field"),
    (b"", "no From field"),
    (b"\r\nFrom: news@example.org\r\n", "no From field"),  # that From is in the body
    (b"From news@example.org Tue Nov 25 07:46:00 2025\r\nFrom: news@example.org\r\n\r\nBody\r\n",
     "is not a 'Name: value' field"),  # an mbox separator line
    (b" folded-first: x\r\nFrom: news@example.org\r\n\r\nBody\r\n", "is not a 'Name: value' field"),
])
def test_unsignable_messages_are_refused(signer: DkimSigner, message: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        signer.sign(message)


@FUZZ
@given(
    subject=st.lists(st.sampled_from(["a", "B", " ", "  ", "\t", "\r\n ", "\r\n\t", "\u00e9", "=?x?="]), max_size=12),
    body=st.lists(st.sampled_from(["x", " ", "\t", "  ", "\r\n", "\r\n\r\n", " \r\n", "\u00fc", "."]), max_size=30),
    from_name=st.sampled_from(["From", "FROM", "from"]),
)
def test_random_whitespace_and_folding_verify(key: Key, signer: DkimSigner, subject: list[str], body: list[str],
                                              from_name: str) -> None:
    message = (f"{from_name}: news@example.org\r\nSubject:{''.join(subject)}\r\nTo: a@example.net\r\n\r\n"
               f"{''.join(body)}").encode()
    assert verifies(signer.sign(message), key[1])


# --- keys -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL])
def test_pkcs8_and_pkcs1_rsa_keys_sign(fmt: serialization.PrivateFormat) -> None:
    pem, txt = make_rsa_key(2048, fmt)
    assert verifies(DkimSigner(domain="example.org", selector="s2025", private_key_pem=pem).sign(rendered()), txt)


@pytest.mark.usefixtures("ed25519_verification")
def test_ed25519_keys_sign_with_ed25519_sha256() -> None:
    pem, txt = make_ed25519_key()
    signer = DkimSigner(domain="example.org", selector="s2025", private_key_pem=pem)
    for message in (rendered(), *TRICKY.values()):
        signed = signer.sign(message)
        assert signature_tags(signed)[b"a"] == b"ed25519-sha256"
        assert verifies(signed, txt)
        assert not verifies(signed.replace(b"news@example.org", b"news@example.net", 1), txt)  # in From


@pytest.mark.parametrize(("pem", "message"), [
    (b"not a key", "not a PEM RSA or Ed25519 private key"),
    (b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n", "not a PEM RSA or Ed25519"),
    (b"", "not a PEM RSA or Ed25519 private key"),
])
def test_unusable_keys_are_refused_at_construction(pem: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DkimSigner(domain="example.org", selector="s2025", private_key_pem=pem)


def test_public_key_encrypted_key_and_ec_key_are_refused(key: Key) -> None:
    private = serialization.load_pem_private_key(key[0], password=None)
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError, match="not a PEM RSA or Ed25519 private key"):
        DkimSigner(domain="example.org", selector="s2025", private_key_pem=public)
    encrypted = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(b"secret"))
    with pytest.raises(ValueError, match="encrypted"):
        DkimSigner(domain="example.org", selector="s2025", private_key_pem=encrypted)
    with pytest.raises(ValueError, match="RSA or Ed25519 keys"):
        DkimSigner(domain="example.org", selector="s2025",
                   private_key_pem=pem_of(ec.generate_private_key(ec.SECP256R1())))


def test_short_and_inconsistent_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="512 bits"):
        DkimSigner(domain="example.org", selector="s", private_key_pem=short_rsa_pem())
    with pytest.raises(ValueError, match="inconsistent"):
        DkimSigner(domain="example.org", selector="s", private_key_pem=inconsistent_rsa_pem())


@pytest.mark.parametrize(("domain", "selector"), [("example.org\r\n", "s"), ("example.org", "s;x=1"), ("", "s")])
def test_bad_domain_or_selector_is_refused(key: Key, domain: str, selector: str) -> None:
    with pytest.raises(ValueError, match="DKIM"):
        DkimSigner(domain=domain, selector=selector, private_key_pem=key[0])


def test_from_file(key: Key, tmp_path: Path) -> None:
    path = tmp_path / "dkim.pem"
    path.write_bytes(key[0])
    signer = DkimSigner.from_file(domain="example.org", selector="s2025", key_file=str(path))
    assert verifies(signer.sign(rendered()), key[1])
    with pytest.raises(ValueError, match=r"cannot read DKIM key file .*missing\.pem"):
        DkimSigner.from_file(domain="example.org", selector="s2025", key_file=str(tmp_path / "missing.pem"))
    (tmp_path / "a-directory").mkdir()
    with pytest.raises(ValueError, match=r"cannot read DKIM key file .*a-directory"):
        DkimSigner.from_file(domain="example.org", selector="s2025", key_file=str(tmp_path / "a-directory"))
    (tmp_path / "bad.pem").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"bad\.pem: .*not a PEM RSA or Ed25519 private key"):
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
