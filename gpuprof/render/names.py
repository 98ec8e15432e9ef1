"""The one place where names (kernels, layers, NVTX ranges) are cut to fit a terminal column.

Names are data from the profiled program and are shown whole wherever there is room: files,
pipes, CSV and JSON never go through here. When a column is too narrow, a name is cut where
it says least: C++ noise first (``void``, namespaces, parameter lists, then template
arguments, while that keeps different names apart), then the part every name of the column
shares (``sm75_xmma_fprop_implicit_gemm_…``), never the part that tells a name from the others
(the tile sizes of TensorRT kernels). Cuts are marked with ``…``. Two different names never
read the same: ``fit_names`` checks that and, as a last resort, numbers the few that would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

ELLIPSIS = "…"
LIST_SEPARATOR = ", "     # cells of a name-list column ("top kernels"): names joined by this
MIN_LISTED_NAME = 12      # below this many characters per listed name, cut the cell as a whole


def fit_names(texts: Sequence[str], width: int | None) -> list[str]:
    """``texts`` (one column's cells) each at most ``width`` characters (None: never cut),
    equal cells shown equal and different cells shown different."""
    texts = [str(t) for t in texts]
    if width is None or all(len(t) <= width for t in texts):
        return texts
    distinct = list(dict.fromkeys(texts))
    form = _simplest_distinct_form(distinct, width)
    fitted = _distinct_cuts([form[t] for t in distinct], max(width, 1))
    shown = _never_alike(dict(zip(distinct, fitted, strict=True)), width)
    return [shown[t] for t in texts]


def fit_name_lists(cells: Sequence[str], width: int | None) -> list[str]:
    """Cells that list names (``a, b, c``): each name cut against every name of the column, so
    a cell stays a list of told-apart names; cut as whole cells when the column is too narrow."""
    cells = [str(c) for c in cells]
    if width is None or all(len(c) <= width for c in cells):
        return cells
    lists = [c.split(LIST_SEPARATOR) for c in cells]
    most = max(len(names) for names in lists)
    per_name = (width - len(LIST_SEPARATOR) * (most - 1)) // most
    if per_name < MIN_LISTED_NAME:
        return fit_names(cells, width)
    names = list(dict.fromkeys(n for names in lists for n in names))
    short = dict(zip(names, fit_names(names, per_name), strict=True))
    return [LIST_SEPARATOR.join(short[n] for n in names) for names in lists]


# -- C++ names: ever shorter forms ---------------------------------------------------------

# noise in demangled names: namespaces and integer casts of template values ("(int)128")
_NAMESPACE = re.compile(r"\(anonymous namespace\)::|<unnamed>::|\b[A-Za-z_]\w*::")
_CAST = re.compile(r"\((?:unsigned |signed )?(?:int|long|long long|short|char|bool)\)")


def simpler_forms(text: str) -> list[str]:
    """``text``, then without ``void``, namespaces and the parameter list
    (``void at::native::k<at::native::Add<float> >(int)`` -> ``k<Add<float> >(…)``), then with
    template arguments collapsed too (``k<…>(…)``)."""
    plain = _CAST.sub("", _NAMESPACE.sub("", text.removeprefix("void ")))
    if plain.endswith(")") and "(" in plain:
        plain = _collapse_last_parentheses(plain)
    return [text, plain, _collapse_brackets(plain)]


def _simplest_distinct_form(distinct: list[str], width: int) -> dict[str, str]:
    """Each name in the first form where all fit, else in the shortest form that still keeps
    every name apart (the original always does)."""
    forms = [simpler_forms(t) for t in distinct]
    usable = [level for level in range(3)
              if len({f[level] for f in forms}) == len(distinct)]
    fitting = [level for level in usable if all(len(f[level]) <= width for f in forms)]
    level = fitting[0] if fitting else usable[-1]
    return {t: f[level] for t, f in zip(distinct, forms, strict=True)}


def _collapse_last_parentheses(text: str) -> str:
    """``f<T>(int, float*)`` -> ``f<T>(…)``: the parameter list says little about a kernel."""
    depth = 0
    for index in range(len(text) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(text[index], 0)
        if depth == 0:
            return text[:index] + "(…)"
    return text


def _collapse_brackets(text: str) -> str:
    """Replace the contents of each outermost <...> and (...) with an ellipsis."""
    pairs = {"<": ">", "(": ")"}
    out: list[str] = []
    closing: list[str] = []  # closers expected, innermost last
    for char in text:
        if char in pairs:
            if not closing:
                out.append(char + ELLIPSIS)
            closing.append(pairs[char])
        elif closing and char == closing[-1]:
            closing.pop()
            if not closing:
                out.append(char)
        elif not closing:
            out.append(char)
    # unbalanced (e.g. "operator<"): collapsing would hide the rest, so keep the text
    return text if closing else "".join(out)


# -- cuts that keep what tells names apart -------------------------------------------------

_DELIMITERS = " _/,<>():+-"
_TOKEN = re.compile(rf"[^{re.escape(_DELIMITERS)}]+[{re.escape(_DELIMITERS)}]*|[{re.escape(_DELIMITERS)}]+")
MAX_TOKEN_NAMES = 400  # word-level cuts compare every pair of names; beyond this, cut characters


def _distinct_cuts(names: list[str], width: int) -> list[str]:
    """Each of the (different) ``names`` cut to ``width`` around what no other name shares:
    word by word where that is enough, else character by character."""
    by_words = _word_cuts(names, width) if len(names) <= MAX_TOKEN_NAMES else [None] * len(names)
    chars = _character_cuts(names, width)
    return [w if w is not None else c for w, c in zip(by_words, chars, strict=True)]


def _tokens(name: str) -> list[str]:
    """Words with the delimiters after them (``sm75_``, ``tilesize64x64x64_``, ``layer4.0/``);
    delimiters that start the name stay with the first word."""
    tokens = _TOKEN.findall(name)
    if len(tokens) > 1 and not tokens[0].strip(_DELIMITERS):
        tokens[1] = tokens[0] + tokens[1]
        tokens = tokens[1:]
    return tokens


def _word_cuts(names: list[str], width: int) -> list[str | None]:
    """Per name that does not fit: its first word, the words that tell it from every other
    name (few and short), then the words next to them while they fit; left-out
    runs of words show as one ``…``. None where the telling words alone do not fit."""
    tokens = [_tokens(n) for n in names]
    features = [_features(t) for t in tokens]
    frequency: dict[str, int] = {}
    for feature_set in features:
        for feature in feature_set:
            frequency[feature] = frequency.get(feature, 0) + 1
    out: list[str | None] = []
    for index, name in enumerate(names):
        if len(name) <= width:
            out.append(name)
            continue
        others = [f for j, f in enumerate(features) if j != index]
        needed = _telling_words(tokens[index], others)
        shown = None if needed is None else (
            _fill(tokens[index], needed, frequency, width)
            # without its first word when only that does not fit (``…tilesize64x64x64_…``)
            or (_fill(tokens[index], needed - {0}, frequency, width) if len(needed) > 1 else None))
        out.append(shown)
    return out


def _features(words: list[str]) -> set[str]:
    """What a shown name can prove: each word, and each pair of words shown side by side."""
    return set(words) | {a + "\0" + b for a, b in zip(words, words[1:], strict=False)}


def _telling_words(words: list[str], others: list[set[str]]) -> set[int] | None:
    """Positions of few, short words (or adjacent pairs) such that every other name lacks at
    least one of them (greedy set cover); None when no choice tells them apart."""
    candidates = [({p}, w) for p, w in enumerate(words)] + [
        ({p, p + 1}, words[p] + "\0" + words[p + 1]) for p in range(len(words) - 1)]
    chosen = {0}
    left = [other for other in others if words[0] in other]
    while left:
        best, value = None, 0.0
        for positions, feature in candidates:
            count = sum(feature not in other for other in left)
            # names told apart per character shown (weighted greedy set cover)
            cost = 1 + sum(len(words[p]) for p in positions - chosen)
            if count and count / cost > value:
                best, value = (positions, feature), count / cost
        if best is None:
            return None
        chosen |= best[0]
        left = [other for other in left if best[1] in other]
    return chosen


def _fill(words: list[str], kept: set[int], frequency: dict[str, int], width: int) -> str | None:
    """The kept words, grown word by word while they fit: always a word next to one already
    shown, the rarest first, so what most names share is what goes."""
    if not kept or len(_joined(words, kept)) > width:
        return None
    tried: set[int] = set()
    while True:
        nearby = [p for p in range(len(words)) if p not in kept and p not in tried
                  and (p - 1 in kept or p + 1 in kept)]
        if not nearby:
            return _joined(words, kept)
        position = min(nearby, key=lambda p: (frequency[words[p]], p))
        tried.add(position)
        if len(_joined(words, kept | {position})) <= width:
            kept = kept | {position}
            tried.clear()


def _joined(words: list[str], kept: set[int]) -> str:
    """The kept words in order, each run of left-out words shown as one ``…``."""
    out: list[str] = []
    for position, word in enumerate(words):
        if position in kept:
            out.append(word)
        elif not out or out[-1] != ELLIPSIS:
            out.append(ELLIPSIS)
    return "".join(out)


def _character_cuts(names: list[str], width: int) -> list[str]:
    prefix_sorted = sorted(range(len(names)), key=lambda i: names[i])
    reversed_names = [n[::-1] for n in names]
    suffix_sorted = sorted(range(len(names)), key=lambda i: reversed_names[i])
    unique_head = _unique_lengths(names, prefix_sorted)
    unique_tail = _unique_lengths(reversed_names, suffix_sorted)
    shared = (len(os.path.commonprefix(names)),
              len(os.path.commonprefix(reversed_names)) if len(names) > 1 else 0)
    return [_cut(n, width, unique_head[i], unique_tail[i], shared)
            for i, n in enumerate(names)]


def _unique_lengths(names: list[str], order: list[int]) -> list[int]:
    """Per name, the length of its shortest start that no other name shares (sorted
    neighbours have the longest common starts)."""
    out = [1] * len(names)
    for left, right in zip(order, order[1:], strict=False):
        common = len(os.path.commonprefix([names[left], names[right]]))
        out[left] = max(out[left], common + 1)
        out[right] = max(out[right], common + 1)
    return [min(length, len(n)) for length, n in zip(out, names, strict=True)]


def _cut(name: str, width: int, head_needed: int, tail_needed: int,
         shared: tuple[int, int]) -> str:
    """``name`` in ``width``: whole; else its start and end with ``…`` between, keeping a start
    (or end) no other name has; else a window over the part the column's names do not share."""
    if len(name) <= width:
        return name
    room = width - 1
    if head_needed <= room:
        head = min(room, max(head_needed, room * 2 // 3))
        return name[:head] + ELLIPSIS + (name[len(name) - (room - head):] if room > head else "")
    if tail_needed <= room:
        head = min(room - tail_needed, room // 3, shared[0])
        return name[:head] + ELLIPSIS + name[len(name) - (room - head):]
    start = _word_start(name, min(shared[0], len(name) - shared[1]))  # where names differ
    if start == 0:
        return name[:width - 1] + ELLIPSIS
    return ELLIPSIS + name[start:start + width - 2] + ELLIPSIS if width > 2 else ELLIPSIS


_BOUNDARIES = " _/.,<(:-+"


def _word_start(name: str, index: int) -> int:
    """``index`` moved back to the start of the word it falls in (a cut reads better there)."""
    back = index
    while back > 0 and name[back - 1] not in _BOUNDARIES and index - back < 12:
        back -= 1
    return back if back == 0 or name[back - 1] in _BOUNDARIES else index


def _never_alike(shown: dict[str, str], width: int) -> dict[str, str]:
    """Number the names that still read like another one (``…#2``): never hit on the real
    exports the tests read, but two rows must never read the same."""
    seen: dict[str, str] = {}
    out = dict(shown)
    for name, text in shown.items():
        if text in seen and seen[text] != name:
            count = 2
            while True:
                mark = f"{ELLIPSIS}#{count}"
                candidate = text[:max(width - len(mark), 0)] + mark
                if candidate not in seen:
                    break
                count += 1
            out[name] = candidate[-width:] if len(candidate) > width else candidate
            seen[out[name]] = name
        else:
            seen[text] = name
    return out
