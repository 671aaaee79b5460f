"""Untrusted text (model, tool and memory output) made safe to print, and secrets kept out of it.

``clean`` removes terminal escape sequences (CSI, OSC, DCS, single-character escapes), other
control characters except newline and tab, and the invisible Unicode format characters that
change how a line reads without being seen: bidirectional overrides and isolates (the "Trojan
Source" characters, CVE-2021-42574) and zero-width spaces. So text from a model can never set
the window title, write the clipboard (OSC 52), move the cursor, or display in an order other
than the one it is stored in. The TUI and the headless CLI both use it.

``escape_invisible`` does the same job for JSON output: it keeps the characters but writes them
as ``\\uXXXX`` escapes, so a JSON consumer gets the exact text and a terminal shows no surprise.

``mask_url_credentials`` hides the password (and an API-key-like user name) inside any
``scheme://user:password@host`` URL in a text, for everything that prints or stores a URL:
``holdfast config``, error messages, health details, notices, logs.
"""

from __future__ import annotations

import re

# ESC-based sequences: CSI (ESC [ ... final), OSC/DCS/PM/APC/SOS (ESC ] ... BEL or ST),
# then any other two-character escape. 8-bit C1 equivalents are handled by _CONTROL below.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[@-Z\\-_]"
    r"|\x1b"
)
# C0 controls except \t and \n, DEL, and the C1 block (0x80-0x9f): none is printable.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")

#: Invisible format characters that reorder or hide text (Unicode TR9 and UTS 39):
#: U+061C arabic letter mark, U+200E/U+200F LRM/RLM, U+202A-U+202E embeddings and overrides
#: (U+202E RIGHT-TO-LEFT OVERRIDE), U+2066-U+2069 isolates; U+200B zero-width space, U+2060
#: word joiner, U+2061-U+2064 invisible operators, U+FEFF zero-width no-break space, U+180E
#: Mongolian vowel separator. ZWJ (U+200D) and ZWNJ (U+200C) are kept: emoji sequences and
#: scripts such as Persian need them, and they cannot reorder text. U+2028/U+2029 (line and
#: paragraph separators) become newlines.
INVISIBLE = "\u061c\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff\u180e"
_INVISIBLE = re.compile(f"[{INVISIBLE}]")
_SEPARATORS = re.compile("[\u2028\u2029]")
_JSON_UNSAFE = re.compile(f"[\\x7f-\\x9f{INVISIBLE}\u2028\u2029]")

# scheme://userinfo@ where userinfo has no '/', '@' or whitespace. The user part is kept unless
# it looks like a key; the password part is always hidden.
_URL_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^\s/@:'\"]*)(?::(?P<password>[^\s/@'\"]*))?@"
)
#: What replaces a hidden credential.
MASK = "****"
# A URL's query parameter that carries a secret (redis-py reads ``?password=``; some endpoints
# take ``?api_key=`` or ``?key=``): its value is hidden, the name kept.
_URL_SECRET_PARAM = re.compile(
    r"(?i)(?P<name>[?&;](?:password|passwd|pwd|pass|secret|client_secret|token|access_token|auth|"
    r"api[-_]?key|key|sig|signature)=)(?P<value>[^&#;\s'\"]+)"
)
_KEYLIKE_USER = re.compile(r"^(?:sk|pk|rk)-|^[A-Za-z0-9_\-]{24,}$")


def clean(text: str) -> str:
    """``text`` without terminal escape sequences, control characters or invisible bidi and
    zero-width characters (see :data:`INVISIBLE`); ``\\r\\n``, U+2028 and U+2029 become ``\\n``."""
    if not text:
        return ""
    text = text.replace("\r\n", "\n")
    if "\x1b" in text:
        text = _ESCAPES.sub("", text)
    text = _CONTROL.sub("", text)
    text = _INVISIBLE.sub("", text)
    return _SEPARATORS.sub("\n", text)


def escape_invisible(json_text: str) -> str:
    """JSON text with DEL, C1 controls, :data:`INVISIBLE` characters and U+2028/U+2029 written
    as ``\\uXXXX`` escapes; the decoded value is unchanged (``json.dumps`` already escapes C0).

    Only for text that is JSON: inside a JSON string the escapes decode to the same characters,
    and outside strings JSON never contains them.
    """
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", json_text)


def mask_url_credentials(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` URL replaced by ``****``.

    A user name alone (``http://sk-abc...@host``) is masked too when it looks like an API key
    (``sk-``/``pk-``/``rk-`` or 24+ token characters), since some endpoints take the key there.
    ``redis://:pw@host/0`` becomes ``redis://:****@host/0``; the value of a query parameter that
    carries a secret (``?password=``, ``api_key=``, ``key=``, ``token=``...) is hidden too
    (``redis://host/0?password=****``). Text without credentials is returned unchanged.
    """
    if "://" not in text:
        return text
    if "=" in text:
        text = _URL_SECRET_PARAM.sub(lambda m: m.group("name") + MASK, text)
    if "@" not in text:
        return text

    def hide(match: re.Match[str]) -> str:
        user, password = match.group("user"), match.group("password")
        if user and _KEYLIKE_USER.search(user):
            user = MASK
        shown = user if password is None else f"{user}:{MASK}"
        return f"{match.group('scheme')}{shown}@"

    return _URL_USERINFO.sub(hide, text)
