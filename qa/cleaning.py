"""Normalise article text and strip web-page chrome (menus, bylines, share and comment prompts).

The cleaned text is the title line, a blank line, then the body paragraphs. Chrome is removed by
general rules rather than exact strings:

* At the head and tail edges, short lines (few words) without sentence punctuation are dropped,
  as are lines of known chrome families (comments, newsletters, donations, apps, sharing,
  "read more", cookies, copyright), bylines, datelines and breadcrumbs. The first substantive
  line is the title; copies of it in the head are dropped. Long unpunctuated lines (photo
  captions) are kept. The head ends at the first line that ends a sentence.
* In the interior, a line is dropped only when it is short, unpunctuated and of a chrome family
  ("Advertisement", "Read more"), so body sentences are never touched.
* In a file someone wrote (plain text, Markdown), the first line set apart by a blank line is
  the title even when it is one word ("Geology"); chrome and words that are not capitalised
  ("fbpx", "FBPX") before it are skipped.
"""

from __future__ import annotations

import re
import unicodedata

_SHORT_LINE_WORDS = 6

_LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029\x0b\x0c\x85]")
# BOMs, zero-width spaces and control characters carry no text and break line comparisons.
_INVISIBLE = re.compile(r"[\ufeff\u200b\u2060\x00-\x08\x0e-\x1f\x7f]")
_BLANK_RUNS = re.compile(r"\n{3,}")

# A sentence ends with . ! ? or … possibly followed by closing quotes or brackets.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’»)\]]*$")

# Characters that decorate chrome lines ("» Read more", "Share:", "Comments *") but not words.
_DECORATION = " \t-–—•·|»›>→*#:.!?…"

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DATE = (
    rf"(?:{_MONTH} \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)? {_MONTH},? \d{{4}}"
    r"|\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4})"
)
_DATELINE = re.compile(
    r"(?:(?:published|updated|posted|last updated|first published)(?: on)?:? )?"
    rf"(?:[a-z]+,? )?{_DATE}"
    r"(?:,? (?:at )?\d{1,2}[:.]\d{2}(?: ?[ap]\.?m\.?)?(?: [a-z]{2,5})?)?"
    r"(?: ?[|,] .{0,40})?"
)
_BYLINE = re.compile(r"(?:written |reported |reporting |words |story |photos? )?by \S.{0,60}")
_BREADCRUMB_SEPARATORS = re.compile(r"\s[›»>|/]\s")

# Families of chrome lines, matched against the whole lower-cased, undecorated line.
_CHROME = re.compile(
    "|".join(
        [
            # comment forms
            r"(?:leave|post|submit|add|write|view|show|load|see|hide|read|join)"
            r"(?: (?:a|an|the|your|all|\d+))?(?: [\w-]+)?"
            r" (?:comments?|repl(?:y|ies)|responses?|discussion|conversation)(?: \(?\d+\)?)?",
            r"\(?\d+\)? comments?|comments?(?: \(?\d+\)?)?|no comments(?: yet)?",
            r"be the first to comment.{0,40}",
            r"your email address will not be published.*|required fields are marked.*",
            r"(?:log|sign) ?in(?: or (?:sign up|register))?"
            r" to (?:comment|reply|post|continue).{0,60}",
            # newsletters, subscriptions, donations, membership
            r"(?:sign up|subscribe|register|join)(?: now| today| for free| free| here)?"
            r"(?: (?:to|for) (?:our|the|my|a)(?: [\w-]+){0,5})?",
            r"(?:get|receive) (?:our|the)(?: [\w-]+){0,3}"
            r" (?:newsletters?|emails?|alerts|updates)(?: .{0,60})?",
            r"(?:support|donate to|fund) (?:our|independent|quality|local|non-?profit)"
            r"(?: [\w-]+){0,4}",
            r"(?:donate|become a (?:member|subscriber|supporter|patron))(?: now| today| here)?",
            r"already (?:a )?(?:subscriber|member)\??(?: .{0,40})?",
            r"click here(?: .{0,60})?",
            # apps, sharing, social
            r"(?:continue|keep) reading(?: (?:on|in))?(?: (?:the|our))?(?: (?:app|website|site))?",
            r"(?:download|get|open)(?: it)?(?: (?:in|on))? (?:the|our)(?: free)?(?: [\w-]+)?"
            r" app.{0,40}",
            r"(?:share|email|print|tweet|pin|save)(?: (?:this|the))?"
            r"(?: (?:article|story|page|post|link))?(?: (?:on|via|with|to))?"
            r"(?:,? (?:facebook|twitter|x|whatsapp|linkedin|email|reddit|telegram|threads))*",
            r"(?:follow|like|find) us(?: on .{0,40})?",
            r"(?:facebook|twitter|whatsapp|linkedin|telegram|reddit|copy link)"
            r"(?:[ ,/|]+(?:facebook|twitter|x|whatsapp|linkedin|telegram|reddit|email|copy link))*",
            # read more, related content, navigation, ads
            r"(?:read|see|view|show|load) (?:more|next|also|less|full (?:story|article))"
            r"(?:[ :] ?.{0,80})?",
            r"(?:expand|collapse) (?:article|story|all)",
            r"(?:related|recommended|more|popular|trending|latest|top)(?: [\w-]+){0,2}"
            r" (?:topics|articles|stories|posts|news|content|reads|videos|coverage)",
            r"related|recommended(?: for you)?|most (?:read|popular|viewed|shared)(?: [\w-]+)?",
            r"you (?:may|might) also (?:like|enjoy).{0,60}|more from .{1,40}",
            r"(?:tags|topics|filed under|categories|category)(?: ?: ?.{0,100})?",
            r"skip to (?:main )?(?:content|navigation|search)",
            r"(?:toggle |main )?(?:menu|navigation)",
            r"search|home|back to top|advertisement|advertise with us|sponsored(?: content)?",
            r"story continues below(?: this)?(?: advertisement| ad)?|ad feedback",
            # cookies and legal
            r"(?:we|this (?:site|website)) uses? cookies.{0,200}",
            r"(?:accept|reject|manage)(?: all)? cookies.{0,40}",
            r"cookie (?:policy|settings|preferences)",
            r"(?:©|\(c\)|copyright)(?: .{0,100})?|all rights reserved.{0,20}",
        ]
    )
)


def clean_text(raw: str, *, title: str = "", first_line_title: bool = False) -> str:
    """Return "title\\n\\nbody" with chrome removed, or "" when no text remains.

    With `title` (from metadata) the text need not contain it; copies of it at the head are
    dropped, and an article with a title but no body comes back as "". Without it, the first
    substantive line is the title.

    Args:
        first_line_title: the text was written as a file, not copied from a web page: its
            first line, when a blank line follows it, is the title, however short.
    """
    lines = _normalise(raw).split("\n")
    title = " ".join(title.split())
    start = 0
    if not title:
        found = _first_line_title(lines) if first_line_title else None
        if found is None:
            found = _find_title(lines)
        if found is None:
            return ""
        start = found + 1
        title = " ".join(lines[found].split())
    body = _strip_chrome(lines[start:], title)
    if not body:
        return "" if start == 0 else title
    return f"{title}\n\n{body}"


def split_title(cleaned: str) -> tuple[str, str]:
    """Split the output of `clean_text` into (title, body)."""
    title, _, body = cleaned.partition("\n")
    return title, body.lstrip("\n")


def _normalise(raw: str) -> str:
    text = unicodedata.normalize("NFC", raw)
    text = _INVISIBLE.sub("", _LINE_BREAKS.sub("\n", text))
    return "\n".join(line.rstrip() for line in text.split("\n"))


def _find_title(lines: list[str]) -> int | None:
    # Tracking pixels ("fbpx"), menus and bylines can precede the headline; a one-token line
    # is never taken as the title.
    for index, line in enumerate(lines):
        if len(_chrome_key(line).split()) > 1 and not _is_edge_chrome(line):
            return index
    return None


def _first_line_title(lines: list[str]) -> int | None:
    """The first line after any chrome, when a blank line follows it: the writer's title."""
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        one_word = len(_chrome_key(line).split()) <= 1
        if _is_edge_chrome(line) or (one_word and not _capitalised(line)):
            continue
        set_apart = index + 1 < len(lines) and not lines[index + 1].strip()
        return index if set_apart else None
    return None


def _capitalised(word: str) -> bool:
    """Whether `word` is written like a name or a title: "Kenya", not "fbpx" or "FBPX"."""
    letters = [c for c in word if c.isalpha()]
    return bool(letters) and letters[0].isupper() and not all(c.isupper() for c in letters)


def _strip_chrome(lines: list[str], title: str) -> str:
    keep = [True] * len(lines)
    body_start = _mark_head(lines, title, keep)
    _mark_tail(lines, body_start, keep)
    for index in range(body_start, len(lines)):
        if keep[index] and _is_interior_chrome(lines[index]):
            keep[index] = False
    text = "\n".join(line for line, kept in zip(lines, keep, strict=True) if kept)
    return _BLANK_RUNS.sub("\n\n", text).strip("\n")


def _mark_head(lines: list[str], title: str, keep: list[bool]) -> int:
    """Drop chrome before the first sentence; return the index where the body starts."""
    title_key = _fold(title)
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        if _fold(line) == title_key or _is_edge_chrome(line) or _is_fragment(line):
            keep[index] = False
        elif _ends_sentence(line):
            return index
        # otherwise a long line without a full stop, such as a photo caption: kept
    return len(lines)


def _mark_tail(lines: list[str], body_start: int, keep: list[bool]) -> None:
    for index in range(len(lines) - 1, body_start, -1):
        line = lines[index]
        if not line.strip():
            continue
        if not (_is_edge_chrome(line) or _is_fragment(line)):
            return
        keep[index] = False


def _is_fragment(line: str) -> bool:
    return len(line.split()) <= _SHORT_LINE_WORDS and not _ends_sentence(line)


def _is_edge_chrome(line: str) -> bool:
    key = _chrome_key(line)
    if _CHROME.fullmatch(key) or _DATELINE.fullmatch(key):
        return True
    if _BYLINE.fullmatch(key) and not _ends_sentence(line):
        return True
    return _is_breadcrumb(line)


def _is_interior_chrome(line: str) -> bool:
    return _is_fragment(line) and _CHROME.fullmatch(_chrome_key(line)) is not None


def _is_breadcrumb(line: str) -> bool:
    parts = _BREADCRUMB_SEPARATORS.split(line.strip())
    return len(parts) >= 3 and all(len(part.split()) <= 4 for part in parts)


def _ends_sentence(line: str) -> bool:
    return _SENTENCE_END.search(line) is not None


def _fold(line: str) -> str:
    return " ".join(line.casefold().split())


def _chrome_key(line: str) -> str:
    return _fold(line).strip(_DECORATION)
