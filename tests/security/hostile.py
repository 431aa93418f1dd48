"""Hostile inputs for the injection properties: fragments that mean something to a
shell, git, SQL, a path or a URL, and hypothesis strategies built from them.

Strategies mix plain random text (hypothesis finds what nobody listed) with
strings glued from the fragments below (the known tricks, in combinations a
table would not hold).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Each means something to at least one interpreter a value could reach.
FRAGMENTS = (
    # options and git syntax
    "--upload-pack=touch /tmp/ocore-pwned",
    "-x",
    "--",
    "-",
    "a..b",
    "..",
    ".",
    "@{",
    "@{-1}",
    "@",
    "~",
    "^",
    ":",
    "?",
    "*",
    "[",
    "\\",
    ".lock",
    "HEAD",
    "refs/heads/",
    # shell
    ";",
    "&&",
    "|",
    "&",
    ">",
    "<",
    "$(id)",
    "`id`",
    "$IFS",
    "${HOME}",
    "'",
    '"',
    "#",
    "!",
    "{a,b}",
    # whitespace and control characters
    " ",
    "\t",
    "\n",
    "\r",
    "\x00",
    "\x1b[31m",
    "\x7f",
    "\u2028",
    "\u202e",
    "\ufeff",
    # SQL
    "' OR '1'='1",
    '"; DROP TABLE projects; --',
    "/*",
    # paths and URLs
    "/",
    "//",
    "../../etc/passwd",
    "%2e%2e",
    "%2f",
    "%00",
    "%25",
    "file:///etc",
    "http://169.254.169.254/",
    # unicode
    "é",
    "ǅ",
    "\u0130",
    "\uff57\uff45\uff42",  # fullwidth "web"
    "\U0001d518",
    # harmless pieces, so that near-valid values are tried too
    "main",
    "feature",
    "a",
    "Z",
    "1",
    "_",
    "-",
    "/",
    "web",
    "database",
)

fragments = st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=8).map("".join)
long_text = st.integers(min_value=150, max_value=600).map(lambda n: ("ab/" * n)[:n])
# Random text, hostile glue, and lengths around the usual limits.
hostile_text = st.one_of(st.text(max_size=40), fragments, fragments, long_text)
# What a JSON body can carry: no lone surrogates (JSON itself refuses them).
json_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
hostile_json_text = st.one_of(json_text, fragments, fragments, long_text)

# Function-scoped fixtures (an app client, a tenant) are built once per test and
# shared by its examples, which is the point: the examples are independent calls.
UNIT = settings(max_examples=300, deadline=None)
API = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SLOW = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
