"""Names in a request and the policy rules about them: subject attribute names, `*`
patterns, DNS names (with the wildcard rule below), IP ranges, and the subject and
subjectAltName checks the policy engine (gateway.core.policy) runs. Pure functions.

Wildcard rule (RFC 6125 §6.4.3, narrowed the way CA/Browser Forum practice narrows it):

* In a policy pattern, each `*` matches one or more characters inside ONE label, so
  `*.example.com` allows `a.example.com` but neither `a.b.example.com` nor `example.com`.
* A requested SAN may itself be a wildcard only in the form `*.<name>`: the whole leftmost
  label is `*` (no `f*.example.com`, no `*` elsewhere) and at least two labels follow: a
  wildcard directly under one label (`*.test`, `*.com`) would cover a whole top-level
  domain, which no policy pattern can sensibly mean (CA/Browser Forum BR §3.2.2.6).
* allow: a wildcard SAN is allowed only by a pattern whose label in that position is
  exactly `*`, i.e. a pattern that covers EVERY name the wildcard certificate would be good
  for (`*.example.com` and `*.*.com` allow `*.example.com`; `www.example.com` and
  `w*.example.com` do not).
* deny: a wildcard SAN is denied if ANY name it covers would be denied, so deny
  `secret.example.com` refuses `*.example.com` too.

Subject CN rules match the same way (a CN is a host name to every TLS client that still
reads it, RFC 6125 §6.4.4): `*` stays inside one label, so `127.*` no longer allows
`127.evil.org`; a pattern that is exactly `*` allows any value, and a CN that is an IP
address is matched against CIDR patterns (`127.0.0.0/8`) or, for other patterns, its
canonical text (an IP has no labels to escape from). On a TLS profile (its certificate
carries the server_auth EKU) the CN must be a valid host name or IP address.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from collections.abc import Iterable

from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.core.csr import san_string, san_type
from gateway.core.errors import Violation
from gateway.core.model import NameRule, PolicyRules, SubjectRule


class Findings(list[Violation]):
    """The violations found so far; every check adds to it and none stops early."""

    def add(self, rule: str, message: str, identifier: str | None = None) -> None:
        self.append(Violation(rule, message, identifier))


def listing(values: Iterable[str]) -> str:
    items = list(values)
    return ", ".join(items) if items else "none"


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Short names as operators write them in policies (RFC 4514 §3 where it has one, the
# usual OpenSSL / X.520 spelling otherwise).
_SHORT_NAMES: dict[x509.ObjectIdentifier, str] = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STREET_ADDRESS: "STREET",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.USER_ID: "UID",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.TITLE: "title",
    NameOID.GIVEN_NAME: "givenName",
    NameOID.SURNAME: "surname",
    NameOID.INITIALS: "initials",
    NameOID.GENERATION_QUALIFIER: "generationQualifier",
    NameOID.DN_QUALIFIER: "dnQualifier",
    NameOID.PSEUDONYM: "pseudonym",
    NameOID.BUSINESS_CATEGORY: "businessCategory",
    NameOID.POSTAL_CODE: "postalCode",
    NameOID.POSTAL_ADDRESS: "postalAddress",
    NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier",
    NameOID.UNSTRUCTURED_NAME: "unstructuredName",
    NameOID.X500_UNIQUE_IDENTIFIER: "x500UniqueIdentifier",
    NameOID.JURISDICTION_COUNTRY_NAME: "jurisdictionC",
    NameOID.JURISDICTION_STATE_OR_PROVINCE_NAME: "jurisdictionST",
    NameOID.JURISDICTION_LOCALITY_NAME: "jurisdictionL",
}

# Long spellings an operator may reasonably use in a policy instead of the short name.
_ALIASES: dict[str, str] = {
    "commonname": "CN",
    "organizationname": "O",
    "organizationalunitname": "OU",
    "countryname": "C",
    "stateorprovincename": "ST",
    "localityname": "L",
    "streetaddress": "STREET",
    "domaincomponent": "DC",
    "userid": "UID",
    "e": "emailAddress",
    "email": "emailAddress",
    "sn": "surname",
    "gn": "givenName",
}


def attribute_name(oid: x509.ObjectIdentifier) -> str:
    """Short name of a subject attribute; the dotted OID when it has none."""
    return _SHORT_NAMES.get(oid, oid.dotted_string)


_BY_DOTTED: dict[str, str] = {oid.dotted_string: short for oid, short in _SHORT_NAMES.items()}


def canonical_attribute(name: str) -> str:
    """Case-insensitive key for comparing a policy's attribute name with a CSR's; a rule may
    name the attribute by short name, long name or dotted OID."""
    name = name.strip()
    folded = name.lower()
    return _ALIASES.get(folded, _BY_DOTTED.get(name, name)).lower()


@functools.lru_cache(maxsize=1024)
def _glob_regex(pattern: str, star: str) -> re.Pattern[str]:
    parts = (re.escape(part) for part in pattern.split("*"))
    return re.compile(star.join(parts), re.IGNORECASE | re.DOTALL)


def glob_match(value: str, pattern: str) -> bool:
    """`*` matches any run of characters (also none); everything else literally, any case."""
    return _glob_regex(pattern, ".*").fullmatch(value) is not None


def glob_any(value: str, patterns: Iterable[str]) -> str | None:
    """The first pattern matching `value`, or None."""
    return next((p for p in patterns if glob_match(value, p)), None)


# --- DNS names -------------------------------------------------------------------------

# RFC 5280 §4.2.1.6: dNSName uses the "preferred name syntax" of RFC 1034 §3.5 as relaxed
# by RFC 1123 §2.1 (labels may start with a digit). Names arrive as A-labels (RFC 9549).
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:.+", re.DOTALL)
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def normalize_dns(name: str) -> str:
    """Lower-case and drop one trailing root dot: `WWW.Example.COM.` -> `www.example.com`."""
    name = name.strip().lower()
    return name[:-1] if name.endswith(".") else name


def dns_syntax_problem(name: str) -> str | None:
    """Why a normalized SAN dNSName is not acceptable, or None when it is."""
    if not name:
        return "is empty"
    if not name.isascii():
        return "is not ASCII (internationalized names must be sent as A-labels, RFC 9549)"
    if len(name) > 253:
        return "is longer than 253 characters"
    labels = name.split(".")
    if "*" in name:
        if labels[0] != "*" or any("*" in label for label in labels[1:]):
            return "has a wildcard that is not the whole leftmost label"
        if len(labels) < 2:
            return "is a bare wildcard"
        if len(labels) < 3:
            # `*.test` would cover a whole top-level domain (CA/B Forum BR §3.2.2.6).
            return "is a wildcard directly under a single label"
        labels = labels[1:]
    for label in labels:
        if not _LABEL.fullmatch(label):
            return f"has an invalid label {label!r}"
    return None


def has_control_character(value: str) -> bool:
    """NUL, newlines and the other C0/C1 controls: no name or attribute value needs them,
    and they make `a.example.org\\0.test` read as `a.example.org` to C string code."""
    return any(unicodedata.category(char) == "Cc" for char in value)


def _pattern_labels(pattern: str) -> list[str]:
    return normalize_dns(pattern).split(".")


def _label_allowed(label: str, pattern_label: str) -> bool:
    if label == "*":
        # Only a whole-label `*` covers every label the wildcard could stand for.
        return pattern_label == "*"
    return _glob_regex(pattern_label, "[^.]+").fullmatch(label) is not None


def _label_overlaps(label: str, pattern_label: str) -> bool:
    if label == "*":
        # Some name under the wildcard could carry a label this pattern label matches.
        return True
    return _glob_regex(pattern_label, "[^.]+").fullmatch(label) is not None


def dns_allowed_by(name: str, pattern: str) -> bool:
    """Does allow-pattern `pattern` permit the normalized name (see the module docstring)?"""
    labels, pattern_labels = name.split("."), _pattern_labels(pattern)
    return len(labels) == len(pattern_labels) and all(
        _label_allowed(lab, pat) for lab, pat in zip(labels, pattern_labels, strict=True)
    )


def dns_denied_by(name: str, pattern: str) -> bool:
    """Does deny-pattern `pattern` hit the name, or any name its wildcard would cover?"""
    labels, pattern_labels = name.split("."), _pattern_labels(pattern)
    return len(labels) == len(pattern_labels) and all(
        _label_overlaps(lab, pat) for lab, pat in zip(labels, pattern_labels, strict=True)
    )


# --- IP addresses ----------------------------------------------------------------------


def parse_networks(entries: Iterable[str]) -> list[IPNetwork]:
    """Policy entries as networks; an address is a /32 or /128. Malformed entries never
    match (policy_codec refuses them when the policy is written)."""
    networks: list[IPNetwork] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue
    return networks


def ip_in_any(address: IPAddress, networks: Iterable[IPNetwork]) -> IPNetwork | None:
    """The first network holding `address` (same IP version only), or None."""
    return next(
        (net for net in networks if net.version == address.version and address in net), None
    )


def ip_deny_hit(address: IPAddress, networks: Iterable[IPNetwork]) -> IPNetwork | None:
    """Like `ip_in_any`, but an IPv4-mapped IPv6 address (RFC 4291 §2.5.5.2) is also
    checked as the IPv4 address it stands for, so `::ffff:10.0.0.1` cannot dodge a
    deny of `10.0.0.0/8`."""
    nets = list(networks)
    hit = ip_in_any(address, nets)
    if hit is None and isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        hit = ip_in_any(address.ipv4_mapped, nets)
    return hit


# --- common name (RFC 5280 §4.1.2.6; a host name to TLS clients, RFC 6125 §6.4.4) -------


def _as_ip(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _cn_ip_hit(address: IPAddress, pattern: str, deny: bool) -> bool:
    try:
        network = ipaddress.ip_network(pattern.strip(), strict=False)
    except ValueError:
        # A glob over the canonical text is safe here: an address has no labels, so `*`
        # can only stand for digits, dots or colons (`127.*` is 127.0.0.0/8).
        return glob_match(str(address), pattern.strip())
    hit = ip_deny_hit if deny else ip_in_any
    return hit(address, [network]) is not None


def cn_matches(value: str, pattern: str, *, deny: bool) -> bool:
    """Does a CN rule pattern hit `value`? `*` alone matches any value; otherwise an IP is
    matched as an address and anything else label by label, exactly like a DNS SAN (a
    deny pattern also hits a wildcard CN covering a name it denies)."""
    if pattern.strip() == "*":
        return True
    address = _as_ip(value)
    if address is not None:
        return _cn_ip_hit(address, pattern, deny)
    name = value.lower()
    return dns_denied_by(name, pattern) if deny else dns_allowed_by(name, pattern)


def _first_hit(value: str, patterns: Iterable[str], is_cn: bool, *, deny: bool) -> str | None:
    if not is_cn:
        return glob_any(value, patterns)
    return next((p for p in patterns if cn_matches(value, p, deny=deny)), None)


def cn_host_problem(value: str) -> str | None:
    """Why a CN is not usable as a TLS server's name (a host name or an IP address)."""
    if _as_ip(value) is not None:
        return None
    if value.endswith("."):
        return "it ends with a dot"
    problem = dns_syntax_problem(value.lower())
    return None if problem is None else f"it {problem}"


def cn_as_san(value: str) -> x509.GeneralName:
    """The SAN a host-name or IP CN stands for."""
    address = _as_ip(value)
    return x509.IPAddress(address) if address is not None else x509.DNSName(value.lower())


def cn_among_sans(value: str, sans: Iterable[x509.GeneralName]) -> bool:
    wanted = cn_as_san(value)
    for name in sans:
        if isinstance(wanted, x509.DNSName) and isinstance(name, x509.DNSName):
            if normalize_dns(name.value) == wanted.value:
                return True
        elif isinstance(name, x509.IPAddress) and name == wanted:
            return True
    return False


# --- subject -----------------------------------------------------------------------------


def check_subject(
    subject: x509.Name, rules: PolicyRules, out: Findings, *, tls: bool = False
) -> None:
    """Every subject attribute against its rule; `tls`: the certificate is a TLS server
    certificate, so its CN must be a host name or an IP address."""
    by_name: dict[str, SubjectRule] = {}
    for listed in rules.subject:
        by_name.setdefault(canonical_attribute(listed.attribute), listed)
    present: set[str] = set()
    for attr in subject:
        short = attribute_name(attr.oid)
        key = canonical_attribute(short)
        value = attr.value if isinstance(attr.value, str) else attr.value.hex()
        shown = f"{short}={value}"
        present.add(key)
        if has_control_character(value):
            out.add(
                "subject.value.invalid",
                f"Subject {short} {value!r} contains a control character",
                shown,
            )
            continue
        is_cn = attr.oid == NameOID.COMMON_NAME
        if is_cn and tls:
            problem = cn_host_problem(value)
            if problem is not None:
                out.add(
                    "subject.cn.invalid",
                    f"Subject CN '{value}' is neither a valid host name nor an IP address "
                    f"({problem}); on a TLS server profile the CN is one of the server's names",
                    shown,
                )
                continue
        rule = by_name.get(key)
        if rule is None:
            if not rules.allow_other_subject_attributes:
                known = listing(r.attribute for r in rules.subject)
                out.add(
                    "subject.attribute.not_allowed",
                    f"Subject attribute {short} ('{value}') is not allowed by the policy "
                    f"(allowed attributes: {known})",
                    shown,
                )
            continue
        denied = _first_hit(value, rule.deny, is_cn, deny=True)
        if denied is not None:
            out.add(
                "subject.value.denied",
                f"Subject {short} '{value}' is denied by the policy (matches '{denied}')",
                shown,
            )
        elif _first_hit(value, rule.allow, is_cn, deny=False) is None:
            out.add(
                "subject.value.not_allowed",
                f"Subject {short} '{value}' is not allowed by the policy "
                f"(allowed: {listing(rule.allow)})",
                shown,
            )
    for rule in rules.subject:
        if rule.required and canonical_attribute(rule.attribute) not in present:
            out.add(
                "subject.attribute.required",
                f"The policy requires a subject {rule.attribute} attribute, but the CSR has none",
                rule.attribute,
            )


# --- subject alternative names (RFC 5280 §4.2.1.6) ---------------------------------------

# RFC 5280 sets no limit; a certificate with thousands of names is a denial of service on
# every client that parses it, and public CAs stop at 100 (Let's Encrypt's order limit).
MAX_SANS = 100


def unique_sans(sans: Iterable[x509.GeneralName]) -> tuple[x509.GeneralName, ...]:
    """The SANs with repeats dropped (first spelling kept): a DNS name differing only in
    case is the same name (RFC 4343 §3), and a repeated name adds nothing but lint
    findings to the certificate."""
    seen: set[tuple[str, str]] = set()
    kept: list[x509.GeneralName] = []
    for name in sans:
        key = (san_type(name), san_string(name))
        if isinstance(name, x509.DNSName):
            key = ("dns", name.value.lower())
        if key not in seen:
            seen.add(key)
            kept.append(name)
    return tuple(kept)


def check_sans(sans: tuple[x509.GeneralName, ...], rules: PolicyRules, out: Findings) -> None:
    if rules.require_san and not sans:
        out.add(
            "san.required",
            "The policy requires at least one subject alternative name, but the CSR has none",
        )
    if len(sans) > MAX_SANS:
        # Judging thousands of names one by one would only bury this in violations.
        out.add(
            "san.too_many",
            f"The CSR asks for {len(sans)} subject alternative names; at most {MAX_SANS} "
            "are issued in one certificate",
            str(len(sans)),
        )
        return
    for name in sans:
        if isinstance(name, x509.DNSName):
            _check_dns(name.value, rules.dns, out)
        elif isinstance(name, x509.IPAddress):
            _check_ip(name.value, rules.ip, out)
        elif isinstance(name, x509.RFC822Name):
            _check_text("email", "Email address", name.value, rules.email, out)
        elif isinstance(name, x509.UniformResourceIdentifier):
            _check_text("uri", "URI", name.value, rules.uri, out)
        else:
            kind = san_type(name).removeprefix("other:")
            out.add(
                "san.other.not_allowed",
                f"Subject alternative names of type {kind} are not allowed by the policy "
                "(only DNS, IP, email and URI names are)",
                san_string(name),
            )


_PLURALS = {"dns": "DNS names", "ip": "IP addresses", "email": "email addresses", "uri": "URIs"}


def _none_allowed(kind: str, label: str, value: str) -> Violation:
    return Violation(
        f"san.{kind}.not_allowed",
        f"{label} '{value}' is not allowed: the policy allows no {_PLURALS[kind]} at all",
        value,
    )


def _check_dns(value: str, rule: NameRule, out: Findings) -> None:
    name = normalize_dns(value)
    problem = dns_syntax_problem(name)
    if value.endswith(".") and problem is None:
        # RFC 5280 §4.2.1.6: a dNSName is in the preferred name syntax (RFC 1034 §3.5),
        # which has no root label; relying parties compare names without the dot.
        problem = "ends with a dot (a SAN names the host without the DNS root label)"
    if problem is not None:
        out.add("san.dns.invalid", f"DNS name '{value}' {problem}", value)
        return
    if not rule.allow:
        out.append(_none_allowed("dns", "DNS name", value))
        return
    denied = next((p for p in rule.deny if dns_denied_by(name, p)), None)
    if denied is not None:
        covers = " (the wildcard covers names it denies)" if name.startswith("*.") else ""
        out.add(
            "san.dns.denied",
            f"DNS name '{value}' is denied by the policy (matches '{denied}'){covers}",
            value,
        )
    elif not any(dns_allowed_by(name, p) for p in rule.allow):
        out.add(
            "san.dns.not_allowed",
            f"DNS name '{value}' is not allowed by the policy (allowed: {listing(rule.allow)})",
            value,
        )


def _check_ip(value: IPAddress | IPNetwork, rule: NameRule, out: Findings) -> None:
    if not isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        # RFC 5280 §4.2.1.6: in a SAN the iPAddress is 4 or 16 octets, never a range.
        out.add("san.ip.invalid", f"IP SAN '{value}' is a network, not an address", str(value))
        return
    shown = str(value)
    if not rule.allow:
        out.append(_none_allowed("ip", "IP address", shown))
        return
    denied = ip_deny_hit(value, parse_networks(rule.deny))
    if denied is not None:
        out.add(
            "san.ip.denied",
            f"IP address '{shown}' is denied by the policy (inside {denied})",
            shown,
        )
    elif ip_in_any(value, parse_networks(rule.allow)) is None:
        out.add(
            "san.ip.not_allowed",
            f"IP address '{shown}' is not allowed by the policy (allowed: {listing(rule.allow)})",
            shown,
        )


def _text_problem(kind: str, value: str) -> str | None:
    if has_control_character(value):
        return "contains a control character"
    if kind == "email":
        # RFC 5280 §4.2.1.6: an rfc822Name SAN is a mailbox, local-part@domain.
        local, at, domain = value.rpartition("@")
        if not at or not local or not domain:
            return "is not a mailbox address (local-part@domain)"
    elif not _URI_SCHEME.fullmatch(value):
        # RFC 5280 §4.2.1.6: the URI must be absolute, with a scheme.
        return "is not an absolute URI with a scheme"
    return None


def _check_text(kind: str, label: str, value: str, rule: NameRule, out: Findings) -> None:
    problem = _text_problem(kind, value)
    if problem is not None:
        out.add(f"san.{kind}.invalid", f"{label} '{value}' {problem}", value)
        return
    if not rule.allow:
        out.append(_none_allowed(kind, label, value))
        return
    denied = glob_any(value, rule.deny)
    if denied is not None:
        out.add(
            f"san.{kind}.denied",
            f"{label} '{value}' is denied by the policy (matches '{denied}')",
            value,
        )
    elif glob_any(value, rule.allow) is None:
        out.add(
            f"san.{kind}.not_allowed",
            f"{label} '{value}' is not allowed by the policy (allowed: {listing(rule.allow)})",
            value,
        )
