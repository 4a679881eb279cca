"""The coding timing of ``dic bench``: ``model.compress`` / ``model.decompress`` of one noisy image
through each coding path (:data:`CODING_PATHS`):

- ``exact``: the serial context model, the exact fixed-point coder of ``.dic`` format 3
  (:mod:`dic.models.exact`, portable: what ``dic compress`` runs);
- ``exact-checkerboard``: the same for the checkerboard context model;
- ``ours``: the serial context model, our fast float loop (:mod:`dic.models.fast_coding`,
  format 2);
- ``compressai``: the serial context model, CompressAI's own loop
  (``JointAutoregressiveHierarchicalPriors._compress_ar`` / ``decompress``);
- ``checkerboard``: the two-pass checkerboard context model, our coder
  (:mod:`dic.models.checkerboard`);
- ``compressai-checkerboard``: the same, through CompressAI's ``CheckerboardLatentCodec``;
- ``exact-bf16`` / ``exact-fp16``: ``exact`` with the analysis and the synthesis in bfloat16 /
  float16 (:mod:`dic.models.precision`; the entropy path is the same). Measured by default only
  where that precision is fast (:func:`default_paths`); ``--paths`` may ask for them anyway.

All paths share the analysis, hyper-prior and synthesis. A serial and a checkerboard model are
*twins*: the same weights, the context convolution masked each its own way
(:func:`context_twins`), so their times compare the coders, not the networks (their rates do
not compare: the weights were trained, if at all, for one context). The analysis ``encode``
and the synthesis ``g_s`` are timed alone too, in the same rounds, to show what remains of a
decode besides the entropy coding, in float32 and in each low precision a path runs."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

import torch
import torch.nn as nn

from ...models import apply_context_masks, create_model
from ...models.base import pad_to_multiple
from ...models.checkerboard import CONTEXTS
from ...models.precision import fast_bfloat16
from .arguments import CODING_PATHS
from .roofline import count_gflop
from .timing import summary, time_interleaved

#: Each path's context model, whether it runs our coder (else CompressAI's) and whether in
#: exact fixed point (else in float).
PATH_CONTEXT = {"exact": "serial", "ours": "serial", "compressai": "serial", "exact-checkerboard": "checkerboard",
                "checkerboard": "checkerboard", "compressai-checkerboard": "checkerboard", "exact-bf16": "serial",
                "exact-fp16": "serial"}
PATH_OURS = {"exact": True, "ours": True, "compressai": False, "exact-checkerboard": True, "checkerboard": True,
             "compressai-checkerboard": False, "exact-bf16": True, "exact-fp16": True}
PATH_EXACT = {p: p.startswith("exact") for p in CODING_PATHS}
#: The transforms' precision of each path (dic.models.precision).
PATH_PRECISION = {p: {"exact-bf16": "bfloat16", "exact-fp16": "float16"}.get(p, "float32") for p in CODING_PATHS}
#: Pairs whose latents are compared: (ours, CompressAI's) for each context.
PAIRS = {"serial": ("ours", "compressai"), "checkerboard": ("checkerboard", "compressai-checkerboard")}


def use_coding_path(model: nn.Module, path: str) -> None:
    """Select our coder or CompressAI's for ``path`` (the model's ``fast_coding`` switch)."""
    if path not in CODING_PATHS:
        raise ValueError(f"unknown coding path {path!r}; expected one of {CODING_PATHS}")
    model.fast_coding = PATH_OURS[path]


def coding_op(model: nn.Module, op: str, path: str, noisy: torch.Tensor,
              coded: Mapping[str, Any]) -> Callable[[], None]:
    """A call running ``op`` (``encode`` of ``noisy`` or ``decode`` of ``coded``, the
    ``compress`` output) once through coding path ``path`` of ``model`` (a model of the
    path's context)."""
    def fn() -> None:
        use_coding_path(model, path)
        with torch.no_grad():
            if op == "encode":
                model.compress(noisy, exact=PATH_EXACT[path], precision=PATH_PRECISION[path])
            else:
                model.decompress(coded["strings"], coded["shape"], exact=PATH_EXACT[path],
                                 precision=PATH_PRECISION[path])
    return fn


def default_paths(device: torch.device) -> List[str]:
    """The paths measured when ``--paths`` is not given: every float32 path, ``exact-bf16``
    where bfloat16 is fast on ``device`` and ``exact-fp16`` on CUDA."""
    low = {"exact-bf16": fast_bfloat16(device), "exact-fp16": device.type == "cuda"}
    return [p for p in CODING_PATHS if low.get(p, True)]


def path_precisions(paths: Sequence[str]) -> List[str]:
    """The precisions the paths run their transforms in, float32 first."""
    return ["float32"] + sorted({PATH_PRECISION[p] for p in paths} - {"float32"})


def coding_paths(no_compressai: bool, contexts: Sequence[str] = CONTEXTS) -> List[str]:
    """The paths to measure: ours and (unless ``no_compressai``) CompressAI's, for each context."""
    return [p for p in CODING_PATHS if PATH_CONTEXT[p] in contexts and (PATH_OURS[p] or not no_compressai)]


def context_twins(model: nn.Module, contexts: Sequence[str]) -> Dict[str, nn.Module]:
    """A model per context: ``model`` itself for its own context, and for another a new model
    of the same hyper-parameters holding ``model``'s weights (its own context mask kept, the
    taps masked accordingly), in eval mode with its coder tables built, on ``model``'s device."""
    own = getattr(model, "context", "serial")
    twins: Dict[str, nn.Module] = {}
    for context in contexts:
        if context == own:
            twins[context] = model
            continue
        hparams = {k: v for k, v in model.hparams.items() if k != "context"}
        twin = create_model(model.name, context=context, **hparams)
        state = {k: v for k, v in model.state_dict().items() if k != "context_prediction.mask"}
        twin.load_state_dict(state, strict=False)
        apply_context_masks(twin)
        twin.update(force=True)
        twins[context] = twin.eval().to(next(model.parameters()).device)
    return twins


def component_name(component: str, precision: str = "float32") -> str:
    """``analysis`` / ``synthesis``, suffixed ``_bfloat16`` or ``_float16`` for a low precision."""
    return component if precision == "float32" else f"{component}_{precision}"


def component_ops(model: nn.Module, noisy: torch.Tensor, precisions: Sequence[str] = ("float32",)
                  ) -> Dict[str, Callable[[], None]]:
    """The analysis (``encode`` of the padded image) and the synthesis (``g_s`` of a latent of
    the decoded size, clamped as decoding does) alone, in each of ``precisions``
    (:func:`component_name`)."""
    x = pad_to_multiple(noisy, model.pad_multiple)
    with torch.no_grad():
        y_hat = torch.round(model._analyse(x))
    ops: Dict[str, Callable[[], None]] = {}
    for precision in precisions:
        def analysis(precision: str = precision) -> None:
            with torch.no_grad():
                model._analyse(x, precision=precision)

        def synthesis(precision: str = precision) -> None:
            with torch.no_grad():
                model._synthesize(y_hat, precision)

        ops[component_name("analysis", precision)] = analysis
        ops[component_name("synthesis", precision)] = synthesis
    return ops


def _code_once(models: Mapping[str, nn.Module], noisy: torch.Tensor, paths: List[str]
               ) -> Tuple[Dict[str, Any], Dict[str, torch.Tensor]]:
    """Each path's ``compress`` output (strings, shape, symbols) and decoded image."""
    coded: Dict[str, Any] = {}
    decoded: Dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for path in paths:
            model = models[PATH_CONTEXT[path]]
            use_coding_path(model, path)
            precision = PATH_PRECISION[path]
            coded[path] = model.compress(noisy, exact=PATH_EXACT[path], precision=precision)
            out = model.decompress(coded[path]["strings"], coded[path]["shape"], exact=PATH_EXACT[path],
                                   precision=precision)
            coded[path]["decoded_symbols"] = out["symbols"]
            decoded[path] = out["x_hat"]
            use_coding_path(model, PAIRS[PATH_CONTEXT[path]][0])
    return coded, decoded


def _agreement(coded: Mapping[str, Any], decoded: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    """Whether each path decodes its own symbols, and for each context whose two paths ran,
    whether ours and CompressAI's agree (strings for serial, symbols for both) and how far their
    decoded images differ."""
    out: Dict[str, Any] = {"round_trip_exact": {
        p: all(torch.equal(a, b) for a, b in zip(c["symbols"], c["decoded_symbols"])) for p, c in coded.items()}}
    for context, (ours, theirs) in PAIRS.items():
        if ours not in coded or theirs not in coded:
            continue
        prefix = "" if context == "serial" else "checkerboard_"
        if context == "serial":
            out["strings_identical"] = coded[ours]["strings"] == coded[theirs]["strings"]
        out[prefix + "symbols_identical"] = all(
            torch.equal(a, b) for a, b in zip(coded[ours]["symbols"], coded[theirs]["symbols"]))
        out[prefix + "max_abs_diff"] = float((decoded[ours] - decoded[theirs]).abs().max())
        eight_bit = [(decoded[p] * 255).round() for p in (ours, theirs)]
        out[prefix + "pixels_differing_8bit"] = int((eight_bit[0] != eight_bit[1]).sum())
    return out


def bench_coding(models: Mapping[str, nn.Module], noisy: torch.Tensor, paths: List[str], repeats: int,
                 warmup: int, device: torch.device, count_flops: bool = True) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Encode/decode times of each path (``models``: one per context, :func:`context_twins`),
    their bitstream sizes, the agreement checks of :func:`_agreement`, the analysis and
    synthesis alone (``components``, in each precision a path runs; with ``count_flops`` their
    GFLOP too, :func:`.roofline.count_gflop`); and each path's ``compress`` output (for the
    memory probes)."""
    coded, decoded = _code_once(models, noisy, paths)
    out: Dict[str, Any] = {p: {"bytes": sum(len(s) for group in coded[p]["strings"] for s in group),
                               "context": PATH_CONTEXT[p], "precision": PATH_PRECISION[p]} for p in paths}
    out.update(_agreement(coded, decoded))
    if repeats > 0:
        precisions = path_precisions(paths)
        components = component_ops(next(iter(models.values())), noisy, precisions)
        out["components"] = {}
        if count_flops:
            for component in ("analysis", "synthesis"):
                out["components"][f"{component}_gflop"] = count_gflop(components[component])
        for op, component in (("encode", "analysis"), ("decode", "synthesis")):
            fns = {p: coding_op(models[PATH_CONTEXT[p]], op, p, noisy, coded[p]) for p in paths}
            names = [component_name(component, precision) for precision in precisions]
            fns.update({name: components[name] for name in names})
            times = time_interleaved(fns, repeats, warmup, device)
            for p in paths:
                out[p][f"{op}_s"] = summary(times[p])
            for name in names:
                out["components"][f"{name}_s"] = summary(times[name])
        for model in models.values():
            model.fast_coding = True
    return out, coded
