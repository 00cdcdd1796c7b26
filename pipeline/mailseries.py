"""Turn a pile of mails into revisions: subjects, cover letters, trailers, gaps.

`[PATCH v2 3/5]`, `[RFC PATCH]`, `[PATCH RESEND net-next v3 0/7]`: the
version (v1 when none is given), the counter and the total come from the
bracketed prefixes. Patches group by version, order by counter. A counter
that is missing, or present twice with different diffs, is reported as a
problem of that revision, never guessed around. Replies are not patches, but
the trailers they give (Reviewed-by: ...) are collected. No I/O.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from email.message import EmailMessage

from pipeline import udiff
from pipeline.mbox import Mail

_PREFIX_RE = re.compile(r"^\s*\[([^\]]*)\]\s*")
_REPLY_RE = re.compile(r"^\s*(re|fwd?|aw|sv)\s*:", re.I)
_TRAILER_RE = re.compile(
    r"^(Signed-off-by|Reviewed-by|Acked-by|Tested-by|Reported-by|Suggested-by|Co-developed-by"
    r"|Cc|Fixes|Link|Closes):\s*(\S.*)$", re.M | re.I)
_BASE_RE = re.compile(r"^base-commit:\s*([0-9a-f]{7,40})\s*$", re.M)


@dataclass(frozen=True)
class Subject:
    title: str  # the subject without its bracketed prefixes
    version: int = 1
    variant: str = ""  # what follows the version number: "-buildfix" in "v2-buildfix"
    counter: int = 1
    total: int = 1
    rfc: bool = False
    resend: bool = False
    reply: bool = False


@dataclass(frozen=True)
class PatchMail:
    subject: Subject
    msgid: str
    sender: str
    date: str
    raw: bytes  # for `git am`
    body: str
    trailers: tuple[str, ...]  # "Reviewed-by: X <x@y>", from the mail and its replies


@dataclass(frozen=True)
class MailRevision:
    version: int
    variant: str
    patches: tuple[PatchMail, ...]  # ordered by counter
    cover: PatchMail | None = None
    problems: tuple[str, ...] = ()  # "patch 2/3 missing", "patch 2/3 sent twice, differently"
    base_commit: str = ""
    rfc: bool = False
    resend: bool = False
    trailers: tuple[str, ...] = ()  # given to the whole revision (replies to the cover)

    @property
    def name(self) -> str:
        return f"v{self.version}{self.variant}"

    @property
    def title(self) -> str:
        m = self.cover or (self.patches[0] if self.patches else None)
        return m.subject.title if m else ""

    @property
    def msgid(self) -> str:
        m = self.cover or (self.patches[0] if self.patches else None)
        return m.msgid if m else ""


@dataclass
class _Group:
    patches: dict[int, list[PatchMail]] = field(default_factory=lambda: defaultdict(list))
    covers: list[PatchMail] = field(default_factory=list)
    totals: set[int] = field(default_factory=set)


def parse_subject(subject: str) -> Subject:
    s = " ".join(subject.split())
    reply = bool(_REPLY_RE.match(s))
    while _REPLY_RE.match(s):
        s = _REPLY_RE.sub("", s, count=1).strip()
    words: list[str] = []
    while m := _PREFIX_RE.match(s):
        words += m.group(1).replace(",", " ").split()
        s = s[m.end():]
    version, variant, counter, total = 1, "", 1, 1
    rfc = resend = False
    for w in words:
        if m := re.fullmatch(r"[vV](\d+)([-_.][\w.-]+)?", w):
            version, variant = int(m.group(1)), m.group(2) or ""
        elif m := re.fullmatch(r"(\d+)/(\d+)", w):
            counter, total = int(m.group(1)), int(m.group(2))
        elif w.upper() == "RFC":
            rfc = True
        elif w.upper() == "RESEND":
            resend = True
    return Subject(s.strip(), version, variant, counter, total, rfc, resend, reply)


def group(mails: list[Mail]) -> list[MailRevision]:
    """The revisions the mails hold, oldest version first."""
    msgs = [(m, m.message()) for m in mails]
    replies = _reply_trailers([msg for _, msg in msgs])
    groups: dict[tuple[int, str], _Group] = defaultdict(_Group)
    for mail, msg in msgs:
        subj = parse_subject(str(msg.get("Subject", "")))
        if subj.reply:
            continue
        body = _body(msg)
        pm = PatchMail(subj, msgid(msg), str(msg.get("From", "")), str(msg.get("Date", "")),
                       mail.raw, body, tuple(_trailers(body) + replies.get(msgid(msg), [])))
        g = groups[(subj.version, subj.variant)]
        if subj.counter == 0 or (not udiff.has_diff(body) and subj.total > 1):
            g.covers.append(pm)
        elif udiff.has_diff(body):
            g.patches[subj.counter].append(pm)
            g.totals.add(subj.total)
    return [_revision(v, g, replies) for v, g in sorted(groups.items()) if g.patches or g.covers]


def _revision(key: tuple[int, str], g: _Group, replies: dict[str, list[str]]) -> MailRevision:
    problems: list[str] = []
    total = max(g.totals, default=len(g.patches))
    if len(g.totals) > 1:
        problems.append(f"patches disagree on the total: {'/'.join(map(str, sorted(g.totals)))}")
    chosen: list[PatchMail] = []
    for n in range(1, total + 1):
        sent = g.patches.get(n, [])
        if not sent:
            problems.append(f"patch {n}/{total} missing")
            continue
        diffs = {_diff_key(p.body) for p in sent}
        if len(diffs) > 1:
            problems.append(f"patch {n}/{total} sent {len(sent)} times with different diffs "
                            f"({', '.join(p.msgid for p in sent)})")
        chosen.append(sent[-1])  # a resend of the same diff: the last one
    for n in sorted(set(g.patches) - set(range(1, total + 1))):
        problems.append(f"patch {n}/{total} is beyond the total")
    cover = g.covers[-1] if g.covers else None
    if not g.patches:
        problems.append("a cover letter but no patches")
    texts = [m.body for m in ([cover] if cover else []) + chosen]
    base = next((m.group(1) for t in texts for m in [_BASE_RE.search(t)] if m), "")
    every = [*g.covers, *(p for ps in g.patches.values() for p in ps)]
    return MailRevision(
        *key, tuple(chosen), cover, tuple(problems), base,
        rfc=any(p.subject.rfc for p in every), resend=any(p.subject.resend for p in every),
        trailers=tuple(replies.get(cover.msgid, [])) if cover else ())


def _reply_trailers(msgs: list[EmailMessage]) -> dict[str, list[str]]:
    """Trailers given in replies, by the Message-ID replied to; quoted lines do not count."""
    out: dict[str, list[str]] = defaultdict(list)
    for msg in msgs:
        if not parse_subject(str(msg.get("Subject", ""))).reply:
            continue
        parent = str(msg.get("In-Reply-To", "")).strip().strip("<>")
        for t in _trailers(_body(msg)):
            if not t.lower().startswith(("signed-off-by", "cc:")) and t not in out[parent]:
                out[parent].append(t)
    return out


def _trailers(body: str) -> list[str]:
    head = body.split("\n---\n", 1)[0]
    return [f"{m.group(1)}: {m.group(2).strip()}" for m in _TRAILER_RE.finditer(head)]


def _body(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",)) if msg.is_multipart() else msg
    if part is None:
        return ""
    try:
        text = part.get_content()
    except (LookupError, UnicodeError, KeyError):
        payload = part.get_payload(decode=True) or b""
        text = payload.decode("utf-8", "replace")
    return text if isinstance(text, str) else text.decode("utf-8", "replace")


def msgid(msg: EmailMessage) -> str:
    """The Message-ID without its angle brackets."""
    return str(msg.get("Message-ID", "")).strip().strip("<>")


def _diff_key(body: str) -> str:
    return "".join(ln for f in udiff.parse(body) for h in f.hunks for ln in h.lines)
