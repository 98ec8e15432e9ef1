"""Request-stage analysis of Triton traces: pure functions over the ``requests`` table and the
raw timestamps, returning DataFrames in raw nanoseconds.

A request is keyed by ``(source, trace_id)``. Ensemble and BLS children carry their parent's
trace id in ``parent_id`` (-1 for a top-level request); ``request_tree`` orders requests so each
child follows its parent, and children's offsets are measured from their root's receive time.

Functions that need the tree take it, not the headers: walking every request is the costly
step, so ``analyze_requests`` builds the tree once and hands it to each of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..model.triton_stages import END_TO_END, NO_MODEL, RECEIVE_NAMES, STAGES
from .stats import DEFAULT_PERCENTILES, describe_by, unreliable_percentiles

KEY = ["source", "trace_id"]
STAGE_ORDER = [END_TO_END, *STAGES]
# waiting for a gRPC request starts before the client sends it: not a step of the request
LAYOUT_EXCLUDED = ("GRPC_WAITREAD_START",)
LAYOUT_MIN_SHARE = 0.5


# --- parents and children ------------------------------------------------------------------

def request_tree(headers: pd.DataFrame) -> pd.DataFrame:
    """``headers`` plus ``root_id`` and ``depth``, ordered depth-first (each child under its
    parent); ``source`` is a plain object column."""
    if headers.empty:
        return headers.astype({"source": "object"}).assign(
            root_id=pd.Series(dtype="int64"), depth=pd.Series(dtype="int64"))
    rows = []
    for _, group in headers.groupby("source", observed=True, sort=True):
        rows += _walk(group)
    order = pd.DataFrame(rows, columns=["source", "trace_id", "root_id", "depth", "_pos"])
    merged = headers.astype({"source": "object"}).merge(order, on=KEY)
    merged = merged.sort_values(["source", "_pos"], kind="stable").drop(columns="_pos")
    return merged.reset_index(drop=True)


def _walk(group: pd.DataFrame) -> list[tuple]:
    source = str(group["source"].iloc[0])
    ids = set(group["trace_id"].tolist())
    children: dict[int, list[int]] = {}
    roots = []
    for trace_id, parent in zip(group["trace_id"].tolist(), group["parent_id"].tolist()):
        # a child whose parent is not in the file (sampled out, truncated) becomes a root
        if parent in ids and parent != trace_id:
            children.setdefault(parent, []).append(trace_id)
        else:
            roots.append(trace_id)
    out: list[tuple] = []
    seen: set[int] = set()
    # ids left unvisited after the roots can only sit on a parent cycle: show them as roots
    for root in sorted(roots) + sorted(ids):
        stack = [(root, 0)] if root not in seen else []
        while stack:
            node, depth = stack.pop()
            seen.add(node)
            out.append((source, node, root, depth, len(out)))
            stack += [(c, depth + 1) for c in sorted(children.get(node, []), reverse=True)
                      if c not in seen]
    return out


def model_order(tree: pd.DataFrame) -> list[str]:
    """Models of ``request_tree``, each child model listed after the first model that calls it."""
    return list(dict.fromkeys(tree["model"].astype(str).tolist()))


def select_model(headers: pd.DataFrame, model: str) -> pd.DataFrame:
    """Keys of the requests of ``model`` and of all their descendants (ensemble/BLS children)."""
    # membership only, no order: the plain headers serve, without walking the tree
    tree = headers[[*KEY, "parent_id", "model"]].astype({"source": "object"})
    roots = tree.loc[tree["model"].astype(str) == model, KEY]
    keep = roots.copy()
    frontier = roots
    for _ in range(64):
        kids = tree.merge(frontier.rename(columns={"trace_id": "parent_id"}),
                          on=["source", "parent_id"])[KEY]
        if kids.empty:
            break
        keep, frontier = pd.concat([keep, kids]), kids
    return keep.drop_duplicates().reset_index(drop=True)


def keep_keys(frame: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``frame`` whose (source, trace_id) is in ``keys``."""
    if frame.empty:
        return frame
    marked = frame.astype({"source": "object"}).merge(keys.assign(_keep=True), on=KEY, how="left")
    return frame[marked["_keep"].fillna(False).to_numpy(dtype=bool)].reset_index(drop=True)


# --- per request ---------------------------------------------------------------------------

def per_request(requests: pd.DataFrame, tree: pd.DataFrame) -> pd.DataFrame:
    """One row per request, tree-ordered: each stage's start offset and duration (ns).

    Offsets are from the root request's receive (END_TO_END start), else from the root's
    earliest stage, so a child's stages line up inside its parent.
    """
    spans = requests.astype({"source": "object", "stage": "object"})
    own = spans.groupby(KEY)["start_ns"].min().rename("anchor_ns")
    e2e = spans[spans["stage"] == END_TO_END].set_index(KEY)["start_ns"]
    own = e2e.combine_first(own).rename("anchor_ns").reset_index()
    tree = tree.merge(own.rename(columns={"trace_id": "root_id"}), on=["source", "root_id"], how="left")
    wide = _wide_stages(spans)
    out = tree.merge(wide, on=KEY, how="left")
    for stage in _stages_in(spans):
        out[f"{stage}_offset_ns"] = out.pop(f"{stage}_start") - out["anchor_ns"]
        out[f"{stage}_ns"] = out.pop(f"{stage}_dur")
    return out


def _wide_stages(spans: pd.DataFrame) -> pd.DataFrame:
    if spans.empty:
        return pd.DataFrame(columns=KEY)
    spans = spans.assign(dur=spans["end_ns"] - spans["start_ns"])
    start = spans.pivot_table(index=KEY, columns="stage", values="start_ns", aggfunc="min")
    dur = spans.pivot_table(index=KEY, columns="stage", values="dur", aggfunc="max")
    start.columns = [f"{c}_start" for c in start.columns]
    dur.columns = [f"{c}_dur" for c in dur.columns]
    return start.join(dur).reset_index()


def _stages_in(spans: pd.DataFrame) -> list[str]:
    present = set(spans["stage"].astype(str)) if len(spans) else set()
    known = [s for s in STAGE_ORDER if s in present]
    return known + sorted(present - set(known))


# --- summary -------------------------------------------------------------------------------

def stage_summary(requests: pd.DataFrame, tree: pd.DataFrame,
                  percentiles=DEFAULT_PERCENTILES) -> pd.DataFrame:
    """Per (model, stage): count, total, mean, min, max, percentiles (ns) and ``unreliable``."""
    spans = requests.astype({"model": "object", "stage": "object"})
    spans = spans.assign(duration_ns=spans["end_ns"] - spans["start_ns"])
    out = describe_by(spans, ["model", "stage"], "duration_ns", percentiles)
    if out.empty:
        return out.assign(unreliable=pd.Series(dtype="object"))
    out["unreliable"] = [", ".join(unreliable_percentiles(int(n), percentiles)) for n in out["count"]]
    models = {m: i for i, m in enumerate(model_order(tree))}
    stages = {s: i for i, s in enumerate(_stages_in(spans))}
    out = out.assign(_m=out["model"].map(models).fillna(len(models)),
                     _s=out["stage"].map(stages).fillna(len(stages)))
    return out.sort_values(["_m", "_s"]).drop(columns=["_m", "_s"]).reset_index(drop=True)


# --- the seed's layout: timestamps in order, offsets and gaps ------------------------------

def stage_layout(timestamps: pd.DataFrame, tree: pd.DataFrame) -> pd.DataFrame:
    """Per model and path, the timestamp names in time order with mean offset and gap.

    Columns: model, path (see ``request_paths``), name, mean_offset_ns, delta_ns, requests (how
    many were averaged), of (the requests of that model and path). Names seen in fewer than
    half of them are left out, and only requests holding every remaining name are averaged,
    so the gaps add up to the offsets.
    """
    offsets = _offsets(timestamps, tree).merge(request_paths(timestamps, tree), on=KEY)
    parts = [_model_layout(model, path, group)
             for (model, path), group in offsets.groupby(["model", "path"], sort=False)]
    parts = [p for p in parts if not p.empty]
    cols = ["model", "path", "name", "mean_offset_ns", "delta_ns", "requests", "of"]
    if not parts:
        return pd.DataFrame(columns=cols)
    order = {m: i for i, m in enumerate(model_order(tree))}
    out = pd.concat(parts, ignore_index=True)
    out["_m"] = out["model"].map(order).fillna(len(order))
    out["_p"] = out["path"].map(_path_rank)
    return out.sort_values(["_m", "_p", "path"], kind="stable").reset_index(drop=True)[cols]


def request_paths(timestamps: pd.DataFrame, tree: pd.DataFrame) -> pd.DataFrame:
    """How each request arrived: "HTTP", "gRPC", "direct" (in-process API) or "in <parent model>"."""
    tree = tree.astype({"model": "object"})
    names = timestamps[[*KEY, "name"]].astype({"source": "object", "name": "object"})
    names = names.assign(http=names["name"].str.startswith("HTTP_"),
                         grpc=names["name"].str.startswith("GRPC_"))
    proto = names.groupby(KEY)[["http", "grpc"]].any().reset_index()
    tree = tree.merge(proto, on=KEY, how="left")
    parents = tree[[*KEY, "model"]].rename(columns={"trace_id": "parent_id", "model": "caller"})
    tree = tree.merge(parents, on=["source", "parent_id"], how="left")
    path = tree["http"].map({True: "HTTP"}).fillna(tree["grpc"].map({True: "gRPC"})).fillna("direct")
    path = path.where(tree["caller"].isna(), "in " + tree["caller"].astype(str))
    return tree[KEY].assign(path=path.astype(str))


def _path_rank(path: str) -> int:
    return {"HTTP": 0, "gRPC": 1, "direct": 2}.get(path, 3)


def _offsets(timestamps: pd.DataFrame, tree: pd.DataFrame) -> pd.DataFrame:
    """First ns of each (request, name), minus the root request's anchor."""
    stamps = timestamps.astype({"source": "object", "name": "object"})
    stamps = stamps[~stamps["name"].isin(LAYOUT_EXCLUDED)]
    first = stamps.groupby([*KEY, "name"])["ns"].min().reset_index()
    recv = first[first["name"].isin(RECEIVE_NAMES)].groupby(KEY)["ns"].min()
    anchor = recv.combine_first(first.groupby(KEY)["ns"].min()).rename("anchor_ns").reset_index()
    tree = tree[[*KEY, "root_id", "model"]].astype({"model": "object"})
    tree = tree.merge(anchor.rename(columns={"trace_id": "root_id"}), on=["source", "root_id"])
    first = first.merge(tree, on=KEY)
    return first.assign(offset_ns=first["ns"] - first["anchor_ns"])


def _model_layout(model: str, path: str, group: pd.DataFrame) -> pd.DataFrame:
    total = group[KEY].drop_duplicates().shape[0]
    share = group.groupby("name").size() / total
    names = share[share >= LAYOUT_MIN_SHARE].index
    wide = group[group["name"].isin(names)].pivot_table(
        index=KEY, columns="name", values="offset_ns", aggfunc="min").dropna()
    if wide.empty:
        return pd.DataFrame()
    means = wide.mean().sort_values(kind="stable")
    means = means.reindex(sorted(means.index, key=lambda n: (means[n], _name_rank(n))))
    return pd.DataFrame({
        "model": model, "path": path, "name": means.index, "mean_offset_ns": means.to_numpy(),
        "delta_ns": means.diff().fillna(0.0).to_numpy(), "requests": len(wide), "of": total,
    })


def _name_rank(name: str) -> int:
    names = [n for pair in STAGES.values() for n in pair]
    return names.index(name) if name in names else len(names)


# --- incomplete requests -------------------------------------------------------------------

# timestamps that come in pairs: one without the other means the record was cut
_PAIRS = [STAGES[s] for s in ("HTTP_RECV", "GRPC_WAITREAD", "REQUEST", "COMPUTE",
                              "HTTP_SEND", "GRPC_SEND")]
_FRONTEND = {"HTTP_": ("HTTP_RECV_START", "HTTP_RECV_END", "HTTP_SEND_START", "HTTP_SEND_END"),
             "GRPC_": ("GRPC_WAITREAD_START", "GRPC_WAITREAD_END", "GRPC_SEND_START", "GRPC_SEND_END")}


def incomplete_requests(timestamps: pd.DataFrame, tree: pd.DataFrame) -> pd.DataFrame:
    """Requests missing a header or timestamps they should have; column ``missing`` says which.

    Every request needs REQUEST_START/END; one half of a pair needs the other; a top-level
    request that used HTTP or gRPC needs that protocol's receive and send; a request that was
    queued needs its compute, unless it has children (an ensemble schedules, it does not compute).
    """
    have = _presence(timestamps, tree)
    has_kids = pd.Series(list(zip(tree["source"], tree["trace_id"]))).isin(
        set(zip(tree["source"], tree["parent_id"]))).to_numpy()
    need = {n: pd.Series(False, index=have.index) for n in _EXPECTED}
    for n in ("REQUEST_START", "REQUEST_END"):
        need[n][:] = True
    for start, end in _PAIRS:
        either = have[start] | have[end]
        need[start] |= either
        need[end] |= either
    top = (tree["parent_id"] < 0).to_numpy()
    for prefix, names in _FRONTEND.items():
        used = have[[n for n in have.columns if n.startswith(prefix)]].any(axis=1) & top
        for n in names:
            need[n] |= used
    queued = have["QUEUE_START"] & ~has_kids
    need["COMPUTE_START"] |= queued
    need["COMPUTE_END"] |= queued
    return _missing_rows(tree, have, need)


_EXPECTED = ["REQUEST_START", "REQUEST_END", "COMPUTE_START", "COMPUTE_END",
             *[n for pair in _PAIRS for n in pair], *[n for ns in _FRONTEND.values() for n in ns]]
_EXPECTED = sorted(set(_EXPECTED), key=lambda n: _name_rank(n))


def _presence(timestamps: pd.DataFrame, tree: pd.DataFrame) -> pd.DataFrame:
    """A boolean column per timestamp name, one row per request of ``tree`` (same order)."""
    stamps = timestamps[[*KEY, "name"]].astype({"source": "object", "name": "object"})
    stamps = stamps.drop_duplicates().assign(_one=True)
    wide = stamps.pivot_table(index=KEY, columns="name", values="_one", aggfunc="any")
    wide = wide.reindex(pd.MultiIndex.from_frame(tree[KEY]))
    for n in set(_EXPECTED) | {"QUEUE_START"}:
        if n not in wide.columns:
            wide[n] = False
    return wide.fillna(False).astype(bool).reset_index(drop=True)


def _missing_rows(tree: pd.DataFrame, have: pd.DataFrame, need: dict) -> pd.DataFrame:
    lack = pd.DataFrame({n: need[n].to_numpy() & ~have[n].to_numpy() for n in _EXPECTED})
    no_header = (tree["model"].astype(str) == NO_MODEL).to_numpy()
    bad = lack.any(axis=1).to_numpy() | no_header
    names = lack.columns.to_numpy()
    missing = [", ".join((["model header"] if nh else []) + names[row].tolist())
               for row, nh in zip(lack.to_numpy()[bad], no_header[bad])]
    out = tree.loc[bad, [*KEY, "parent_id", "model"]].assign(missing=missing)
    return out.astype({"model": "object"}).assign(model=lambda f: f["model"].astype(str)).reset_index(drop=True)


# --- TENSORS level -------------------------------------------------------------------------

def tensor_summary(tensors: pd.DataFrame, headers: pd.DataFrame) -> pd.DataFrame:
    """Per (model, activity, tensor): how many records, with their dtypes and shapes."""
    cols = ["model", "activity", "tensor", "count", "dtype", "shapes"]
    if tensors.empty:
        return pd.DataFrame(columns=cols)
    info = headers[[*KEY, "model"]].astype({"source": "object", "model": "object"})
    data = tensors.astype({"source": "object", "activity": "object", "tensor": "object",
                           "dtype": "object"}).merge(info, on=KEY, how="left")
    grouped = data.groupby(["model", "activity", "tensor"], sort=False)
    out = grouped.agg(count=("trace_id", "size"),
                      dtype=("dtype", lambda s: ", ".join(sorted(set(s)))),
                      shapes=("shape", lambda s: ", ".join(f"[{x}]" for x in sorted(set(s))[:5])))
    return out.reset_index()[cols]


# --- everything a report needs -------------------------------------------------------------

@dataclass
class RequestAnalysis:
    """All analyses of one parsed trace, in raw ns; render/ lays them out."""

    tree: pd.DataFrame          # headers + root_id, depth, tree-ordered
    summary: pd.DataFrame       # stage_summary
    layout: pd.DataFrame        # stage_layout
    per_request: pd.DataFrame   # per_request (wide)
    incomplete: pd.DataFrame    # incomplete_requests
    tensors: pd.DataFrame       # tensor_summary
    callers: dict[str, list[str]]  # child model -> parent models


def analyze_requests(requests: pd.DataFrame, timestamps: pd.DataFrame, headers: pd.DataFrame,
                     tensors: pd.DataFrame) -> RequestAnalysis:
    tree = request_tree(headers)  # once: every analysis below reads it, none changes it
    return RequestAnalysis(
        tree=tree, summary=stage_summary(requests, tree), layout=stage_layout(timestamps, tree),
        per_request=per_request(requests, tree), incomplete=incomplete_requests(timestamps, tree),
        tensors=tensor_summary(tensors, headers), callers=model_callers(headers))


def model_callers(headers: pd.DataFrame) -> dict[str, list[str]]:
    """For each child model, the models of the requests that called it."""
    info = headers.astype({"source": "object", "model": "object"})
    parents = info[[*KEY, "model"]].rename(columns={"trace_id": "parent_id", "model": "caller"})
    pairs = info.merge(parents, on=["source", "parent_id"])[["model", "caller"]].drop_duplicates()
    return {m: sorted(g["caller"]) for m, g in pairs.groupby("model")}
