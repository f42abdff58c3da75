"""Egress policy of outgoing webhooks: which destinations the service may connect to.

Deny by default every address that is not a public unicast one: loopback, link-local (169.254/16 and
fe80::/10, cloud metadata included), private (RFC 1918, fc00::/7, fec0::/10), CGNAT 100.64/10, unspecified,
multicast, reserved, broadcast and documentation ranges, also when written as an IPv4-mapped, IPv4-compatible,
6to4, Teredo or NAT64 IPv6 address. Only ``http``/``https`` URLs without userinfo are accepted. Operators allow
internal receivers explicitly (``MLAC_WEBHOOK_ALLOW``: hostnames and/or CIDRs).

A URL is checked twice: at submission (:meth:`EgressPolicy.check_url`: scheme, userinfo, a literal address)
and at send time (:meth:`EgressPolicy.resolve`: the host is resolved and EVERY address checked). The sender
then connects to the address that was checked (pinned), so a DNS answer that changes between the check and
the connect (rebinding) cannot redirect a delivery.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from service.errors import ServiceError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[IPAddress]]

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$")
_NUMERIC_V4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V4COMPAT = ipaddress.IPv6Network("::/96")


class EgressDeniedError(ServiceError):
    """A webhook destination the egress policy refuses (bad scheme, userinfo, or a non-public address)."""

    code = "webhook_url_denied"
    status = 422


class EgressResolveError(ServiceError):
    """The webhook host did not resolve (transient: the delivery is retried)."""

    code = "webhook_unresolved"
    status = 502


@dataclass(frozen=True)
class Destination:
    """A parsed webhook URL: what to connect to and what to call it (Host header, TLS SNI)."""

    scheme: str
    host: str  # lower-case hostname or address literal (IPv6 without brackets)
    port: int

    @property
    def key(self) -> str:
        """The destination's identity for per-destination isolation (``host:port``)."""
        return f"{self.host}:{self.port}"

    @property
    def host_header(self) -> str:
        """``Host`` header value: the host as the URL names it, with the port when not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class PinnedTarget:
    """A destination with the checked address to connect to."""

    destination: Destination
    address: IPAddress


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address ``getaddrinfo`` gives for ``host`` (TCP), in its order, without duplicates."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise EgressResolveError(f"cannot resolve {host!r}: {exc}") from exc
    out: list[IPAddress] = []
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if addr not in out:
            out.append(addr)
    return out


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, compatible, 6to4, Teredo client, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or (ip in _V4COMPAT and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def denial_reason(ip: IPAddress) -> str | None:
    """Why the default policy refuses ``ip`` (None: a public unicast address)."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            reason = denial_reason(inner)
            return f"{reason} (as IPv6 {ip})" if reason else None
    checks: list[tuple[bool, str]] = [
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local (cloud metadata lives here)"),
        (ip.is_multicast, "multicast"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "carrier-grade NAT (100.64.0.0/10)"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "site-local"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
        (not ip.is_global, "not globally routable"),
    ]
    return next((why for hit, why in checks if hit), None)


def parse_destination(url: str) -> Destination:
    """Scheme, host and port of a webhook URL; :class:`EgressDeniedError` for anything but plain http(s)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EgressDeniedError(f"webhook URL {url!r} is malformed: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise EgressDeniedError(f"webhook URL scheme {scheme or '(none)'!r} is not allowed: use http or https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise EgressDeniedError("webhook URL must not carry credentials (user:password@): "
                                "receivers authenticate deliveries by their X-MLAC-Signature")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise EgressDeniedError(f"webhook URL {url!r} has no host")
    return Destination(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80))


def _literal(host: str) -> IPAddress | None:
    """``host`` as an address literal, also the forms ``inet_aton`` accepts (``0x7f000001``, ``127.1``)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_V4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


@dataclass(frozen=True)
class EgressPolicy:
    """Deny-by-default destination policy with an explicit allow-list of hostnames and networks."""

    allow_hosts: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def from_entries(cls, entries: Iterable[str], resolver: Resolver = system_resolver) -> EgressPolicy:
        """A policy from ``MLAC_WEBHOOK_ALLOW`` entries: each a CIDR / address or a hostname (exact match)."""
        hosts: set[str] = set()
        nets: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().rstrip(".").lower()
            if not entry:
                continue
            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if not _HOSTNAME.match(entry):
                raise ValueError(f"webhook allow-list entry {raw!r} is neither a CIDR/address nor a hostname")
            hosts.add(entry)
        return cls(allow_hosts=frozenset(hosts), allow_networks=tuple(nets), resolver=resolver)

    def address_reason(self, ip: IPAddress) -> str | None:
        """Why ``ip`` is refused (None: allowed, by the allow-list or because it is public)."""
        if any(ip.version == net.version and ip in net for net in self.allow_networks):
            return None
        return denial_reason(ip)

    def check_url(self, url: str) -> Destination:
        """The submission-time check: scheme, no userinfo, and a literal address must be allowed."""
        dest = parse_destination(url)
        ip = _literal(dest.host)
        if ip is not None and dest.host not in self.allow_hosts:
            why = self.address_reason(ip)
            if why is not None:
                raise EgressDeniedError(f"webhook destination {ip} is {why}: refused by the egress policy "
                                        "(an operator may allow it with MLAC_WEBHOOK_ALLOW)")
        return dest

    def resolve(self, url: str) -> PinnedTarget:
        """The send-time check: resolve the host, refuse unless EVERY address is allowed, pin the first one."""
        dest = self.check_url(url)
        literal = _literal(dest.host)
        addresses = [literal] if literal is not None else self.resolver(dest.host, dest.port)
        if not addresses:
            raise EgressResolveError(f"{dest.host!r} resolved to no address")
        if dest.host not in self.allow_hosts:
            for ip in addresses:
                why = self.address_reason(ip)
                if why is not None:
                    raise EgressDeniedError(f"webhook host {dest.host!r} resolves to {ip}, which is {why}: refused by "
                                            "the egress policy (an operator may allow it with MLAC_WEBHOOK_ALLOW)")
        return PinnedTarget(destination=dest, address=addresses[0])
