"""Sending one webhook request: the Standard Webhooks signature, the address checks that
keep a tenant's URL from reaching inside the network (SSRF), and the HTTP POST itself.

- **Signature** (https://www.standardwebhooks.com): headers ``webhook-id`` (the delivery
  id, the same on every attempt), ``webhook-timestamp`` (Unix seconds of this attempt)
  and ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, keyed with
  the base64-decoded part of the ``whsec_…`` secret. During a secret rotation both
  secrets sign, space-separated, so a receiver may switch whenever it likes.
- **Addresses.** A URL's host is resolved and *every* address must be public: private,
  loopback, link-local, multicast, reserved and unspecified ones (IPv4-mapped IPv6
  included) are refused, unless ``DELTAFLOW_WEBHOOK_ALLOW_PRIVATE=1``. This is checked
  when the webhook is created (a 422) and again at every attempt, and the request then
  connects to the address that was checked (the name is not resolved a second time, so a
  DNS answer that changes in between — rebinding — cannot redirect it); TLS still checks
  the certificate against the name.
- **HTTP.** No redirects (a 3xx is a failed attempt), short timeouts, no retries inside
  an attempt (the schedule in ``service.webhooks`` retries), at most 1 KB of the answer
  read. Any 2xx is a success.

Kernel code: standard library and urllib3 only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3

SECRET_PREFIX = "whsec_"  # noqa: S105  (the prefix, not a secret)
SECRET_BYTES = 32
USER_AGENT = "Deltaflow-Webhooks/1"
MAX_ANSWER_BYTES = 1024


class AddressRefused(ValueError):
    """The URL cannot be used: malformed, or it reaches a refused address."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """``v1,<signature>`` of one message with one ``whsec_`` secret."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets_: list[str], msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets_),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with the query
    address: str  # the checked address the request connects to

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return bool(
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def resolve(url: str, *, allow_private: bool) -> Target:
    """Check a webhook URL and resolve it to one allowed address; AddressRefused if not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise AddressRefused("the URL must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise AddressRefused("credentials in the URL are not allowed")
    host = parts.hostname
    if not host:
        raise AddressRefused("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise AddressRefused("the URL's port is not a number from 0 to 65535") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise AddressRefused(f"{host} does not resolve") from None
    addresses = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone
        address = ipaddress.ip_address(text)
        if refused(address) and not allow_private:
            raise AddressRefused(
                f"{host} resolves to {address}, a private, loopback, link-local, multicast or "
                "reserved address (DELTAFLOW_WEBHOOK_ALLOW_PRIVATE=1 allows them)"
            )
        addresses.append(str(address))
    if not addresses:
        raise AddressRefused(f"{host} does not resolve")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, path, addresses[0])


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def post(target: Target, body: str, signed: dict[str, str], timeout: float) -> Answer:
    """One POST to the checked address; never raises for network trouble."""
    started = time.perf_counter()
    limits = urllib3.Timeout(connect=timeout, read=timeout)
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            target.address, target.port, timeout=limits, retries=False, maxsize=1,
            server_hostname=target.host, assert_hostname=target.host,
            ssl_context=ssl.create_default_context(),
        )  # fmt: skip
    else:
        pool = urllib3.HTTPConnectionPool(
            target.address, target.port, timeout=limits, retries=False, maxsize=1
        )
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body.encode(),
            headers={**signed, "Host": target.host_header},
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            response.read(MAX_ANSWER_BYTES)
        finally:
            response.release_conn()
        status = response.status
        error = None
        if 300 <= status < 400:
            error = f"redirect ({status}) not followed"
        elif not 200 <= status < 300:
            error = f"the receiver answered {status}"
        return Answer(status, error, time.perf_counter() - started)
    except urllib3.exceptions.HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        return Answer(None, f"{type(exc).__name__}: {reason}"[:500], time.perf_counter() - started)
    finally:
        pool.close()
