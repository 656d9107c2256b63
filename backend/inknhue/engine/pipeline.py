"""The inkn'hue pipeline, stage by stage, as the published app (app.py) runs it.

    page --shade--> shaded grey --working size--> condition ----------------\\
    hints/reference/rough image --provider--> rough --working size--> encode --> decode (posterior mean)
                                                                                    |
                                    final = LAB blend(VAE output, rough, ratio) <---/

Working size: the app's `resize_to_nearest` (short side to max size if a side exceeds it,
then up to multiples of 8). Each stage is a method so the server can cache and re-run
only what changed; `Engine.colorize` runs them all.

Deviations from app.py, each where the app has no defined behaviour for an artist's tool:
- the page is converted to grey by luma; the app reads the red channel (the same on grey pages);
- the posterior mean is decoded instead of a random sample, so results repeat;
- rough colours whose working size differs from the shaded page's (within the 1% aspect
  tolerance) are resized to it; the app would fail on the size mismatch;
- the VAE output is converted to 8 bits in float32 rather than bf16.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import weights
from ..defaults import DEFAULT_MAX_SIZE, DEFAULT_RATIO, MAX_MAX_SIZE, MIN_MAX_SIZE
from ..errors import Cancelled, InputError, WeightsError
from ..networks import banded
from ..networks.alignment import AlignmentVAE
from ..networks.nonfinite import nonfinite_tensors, nonfinite_warning
from ..networks.shading import ShadingGenerator
from ..page import imaging_gpu
from ..page.color import check_ratio
from ..page.imaging import (
    check_size,
    check_work_size,
    grey_to_rgb,
    luma,
    resize_pad,
    resize_to,
    shading_size,
    to_working_size,
    working_size,
)
from ..page.output import Colorization
from ..rough import RoughProvider, RoughRequest
from ..runtime import host_memory
from ..runtime.cache import StageCache, digest
from ..runtime.devices import describe, free_memory, out_of_memory_as_error, pick_device
from ..runtime import progress
from ..runtime.progress import JobProgress, measure_work
from ..weights import checkpoints
from .options import EngineOptions, resolve

log = logging.getLogger(__name__)

# Rough colours first: a provider's input errors then come before the slow stages.
STAGES = ("rough", "shade", "condition", "encode", "decode", "blend")
#: the page-size output a caller makes of a result (no stage of the engine's; counted in the time left)
OUTPUT_STAGE = "output"


def output_made(seconds: float, page_size: tuple[int, int]) -> None:
    """A caller made a result's page-size output in `seconds`: the next jobs' time left counts it."""
    progress.SPEEDS.remember_pixels(OUTPUT_STAGE, seconds, page_size[0] * page_size[1])



@dataclass(frozen=True)
class StageEvent:
    stage: str
    index: int                #: 1-based position in STAGES
    total: int
    seconds: float | None     #: None when the stage starts
    cached: bool = False      #: the stage's result came from the cache
    fraction: float | None = None  #: of the stage done, while it runs (network stages)
    done: float | None = None      #: of the job's network work done
    eta: float | None = None       #: seconds left for the job, at this machine's measured speed
    eta_from: str | None = None    #: what `eta` stands on: "calibration" or "measured" (progress.JobProgress.basis)


ProgressCallback = Callable[[StageEvent], None]


def check_max_size(max_size: int) -> int:
    if not (MIN_MAX_SIZE <= max_size <= MAX_MAX_SIZE) or max_size % 32:
        raise InputError(f"max size must be a multiple of 32 between {MIN_MAX_SIZE} and "
                         f"{MAX_MAX_SIZE}, got {max_size}")
    return max_size


def image_to_tensor(rgb: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """H x W x 3 uint8 -> 1 x 3 x H x W in [-1, 1]."""
    x = torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
    return ((x / 255.0) * 2.0 - 1.0).clamp(-1.0, 1.0).to(device=device, dtype=dtype)


def tensor_to_image(y: torch.Tensor) -> np.ndarray:
    """1 x 3 x H x W in [-1, 1] -> H x W x 3 uint8 (truncating, as the app does)."""
    y = ((y[0].float() + 1.0) * 0.5 * 255.0).clamp(0, 255)
    return y.permute(1, 2, 0).to(device="cpu", dtype=torch.uint8).numpy()


# --- models, loaded once per process ---------------------------------------------------

_models: dict[tuple, torch.nn.Module] = {}
_models_lock = threading.Lock()
#: what loading each model found wrong with its weights (NaN...), by the key of `_models`
_model_warnings: dict[tuple, list[str]] = {}
_COND_PREFIXES = ("cond_encoder.", "cond_decoder.")  #: the alignment VAE's tensors from CONDITIONAL


def _nonfinite_warnings(kind: str, model: torch.nn.Module, weights_dir: Path) -> list[str]:
    """One line per weights file whose tensors hold NaN or infinite values."""
    bad = nonfinite_tensors(model)
    if not bad:
        return []
    state = model.state_dict()
    if kind == "shader":
        parts = {weights.SHADER: (bad, len(state))}
    else:
        parts = {name: ([k for k in bad if k.startswith(_COND_PREFIXES) == conditional],
                        sum(k.startswith(_COND_PREFIXES) == conditional for k in state))
                 for name, conditional in ((weights.KL_F8, False), (weights.CONDITIONAL, True))}
    return [nonfinite_warning(str(weights_dir / name), names, total, weights.REPLACE)
            for name, (names, total) in parts.items() if names]
#: convolution work of banded VAE passes, by weights, plan and working size
_banded_work: dict[tuple, dict[str, float]] = {}


def _model_key(kind: str, weights_dir: Path, device: torch.device, dtype: torch.dtype,
               layout: torch.memory_format) -> tuple:
    return (kind, str(weights_dir.resolve()), str(device), dtype, layout)


def _cached_model(kind: str, weights_dir: Path, device: torch.device, dtype: torch.dtype,
                  layout: torch.memory_format):
    key = _model_key(kind, weights_dir, device, dtype, layout)
    with _models_lock:
        if key not in _models:
            started = time.perf_counter()
            loader = checkpoints.load_shading_generator if kind == "shader" else checkpoints.load_alignment_vae
            model = loader(weights_dir)
            # as read, before another dtype could turn a large value infinite
            _model_warnings[key] = _nonfinite_warnings(kind, model, weights_dir)
            for warning in _model_warnings[key]:
                log.warning("%s", warning)
            _models[key] = model.to(device=device, dtype=dtype, memory_format=layout)
            log.info("loaded %s from %s on %s in %.2f s", kind, weights_dir, device,
                     time.perf_counter() - started)
        return _models[key]


# --- the engine ------------------------------------------------------------------------

class Engine:
    """Runs the stages on one device with one weights folder."""

    def __init__(self, weights_dir: str | Path | None = None, device: str = "auto",
                 options: EngineOptions | None = None):
        self.weights_dir = weights.resolve_weights_dir(weights_dir)
        self.device = pick_device(device)
        self.options = options if options is not None else EngineOptions()
        resolved = resolve(self.options, self.device)
        self.shader_dtype = resolved.shader_dtype
        self.vae_dtype = resolved.vae_dtype
        self.memory_format = resolved.memory_format  #: the shading generator's layout
        self.vae_memory_format = resolved.vae_memory_format
        self.precision_why = resolved.why  #: what runs in which precision, and why
        #: the VAE's high-resolution levels in row bands (large pages), or untiled
        self.banding = self.options.banding

    def describe(self) -> dict:
        return {**describe(self.device), "precision": self.options.precision, "precision_why": self.precision_why}

    @property
    def generator(self):
        return _cached_model("shader", self.weights_dir, self.device, self.shader_dtype, self.memory_format)

    @property
    def vae(self):
        return _cached_model("vae", self.weights_dir, self.device, self.vae_dtype, self.vae_memory_format)

    @property
    def weights_warnings(self) -> list[str]:
        """What loading the networks found wrong with their weights (NaN or infinite values),
        one line per file; empty before they are loaded and for sound weights. Every result
        of `colorize` carries them too (with its provider's: `RoughProvider.weights_warnings`)."""
        keys = (_model_key("shader", self.weights_dir, self.device, self.shader_dtype, self.memory_format),
                _model_key("vae", self.weights_dir, self.device, self.vae_dtype, self.vae_memory_format))
        return [w for key in keys for w in _model_warnings.get(key, [])]

    def load(self) -> float:
        """Load both networks now (they are cached per process); returns the seconds it took.
        `weights_warnings` says afterwards whether their weights hold NaN."""
        self.check_weights()
        started = time.perf_counter()
        self.generator  # noqa: B018  (properties that load and cache)
        self.vae  # noqa: B018
        self.work_per_pixel()  # for progress within stages
        return time.perf_counter() - started

    def work_per_pixel(self) -> dict[str, float]:
        """Convolution multiply-adds per input pixel of each network stage (progress.py),
        from a pass of the same networks on the meta device (no memory, no arithmetic)."""
        key = ("work", str(self.weights_dir.resolve()))
        config = self.vae.config  # loads the VAE (under the same lock) if it is not yet
        with _models_lock:
            if key not in _models:
                with torch.device("meta"), torch.no_grad():
                    generator, vae = ShadingGenerator(), AlignmentVAE(config)
                    side = 128
                    image = torch.empty(1, 3, side, side)
                    conditions: list[torch.Tensor] = []
                    latent = torch.empty(1, config.z_channels, side // 8, side // 8)
                    work = {
                        "shade": measure_work(lambda: generator(torch.empty(1, 5, side, side), guide=False)),
                        "condition": measure_work(lambda: conditions.extend(vae.condition(image))),
                        "encode": measure_work(lambda: vae.encode(image)),
                        "decode": measure_work(lambda: vae.decode(latent, conditions)),
                    }
                _models[key] = {stage: value / side ** 2 for stage, value in work.items()}
            return _models[key]

    def plan_work(self, page_size: tuple[int, int], max_size: int) -> dict[str, float]:
        """The multiply-adds of each network stage for a page at a max size."""
        per_pixel = self.work_per_pixel()
        shade_w, shade_h = shading_size(*page_size, max_size)
        work_w, work_h = working_size(*page_size, max_size)
        work = {stage: per_pixel[stage] * (shade_w * shade_h if stage == "shade" else work_w * work_h)
                for stage in per_pixel}
        plan = self.band_plan(work_h, work_w)
        if plan is not None:  # bands recompute some of their work: count theirs
            work.update(self.banded_work(plan, work_h, work_w))
        return work

    def banded_work(self, plan: banded.BandPlan, height: int, width: int) -> dict[str, float]:
        """The multiply-adds of the VAE's stages run in bands, from the banded passes
        themselves on the meta device (a second or two at the largest sizes)."""
        key = (str(self.weights_dir.resolve()), plan, height, width, self.vae_dtype)
        config = self.vae.config
        with _models_lock:
            if key not in _banded_work:
                with torch.device("meta"), torch.no_grad():
                    vae = AlignmentVAE(config).to(self.vae_dtype)
                    image = torch.empty(1, 3, height, width, dtype=self.vae_dtype)
                    scale = config.downscale
                    latent = torch.empty(1, config.z_channels, height // scale, width // scale, dtype=self.vae_dtype)
                    conditions: list = []
                    work = {
                        "condition": measure_work(lambda: conditions.extend(banded.condition(plan, vae, image))),
                        "encode": measure_work(lambda: banded.encode(plan, vae, image)),
                        "decode": measure_work(lambda: banded.decode(plan, vae, latent, conditions)),
                    }
                while len(_banded_work) >= 16:  # a few page sizes
                    _banded_work.pop(next(iter(_banded_work)))
                _banded_work[key] = work
            return _banded_work[key]

    def check_weights(self) -> None:
        missing = weights.missing_files(self.weights_dir)
        if missing:
            raise WeightsError(
                f"weights missing in {self.weights_dir}: {', '.join(missing)}; {weights.HOW_TO_GET}")

    # stages -----------------------------------------------------------------------------

    @torch.inference_mode()
    def run_generator(self, grey: np.ndarray, hints: torch.Tensor | None = None) -> torch.Tensor:
        """The shading generator on a padded grey page (H, W multiples of 32).

        hints: 1 x 4 x H x W (hint RGB in [-1, 1] times the mask, then the mask), or zeros.
        Returns the colour output, 1 x 3 x H x W in [-1, 1], on the CPU.
        """
        x = torch.from_numpy(np.array(grey, dtype=np.float32))[None, None].div(255.0)
        if hints is None:
            hints = torch.zeros(1, 4, *grey.shape[:2])
        x = torch.cat([x, hints.float()], 1).to(self.device, self.shader_dtype)
        colour, _ = self.generator(x, guide=False)
        return colour.float().cpu()

    def shade(self, page: np.ndarray, max_size: int = DEFAULT_MAX_SIZE) -> np.ndarray:
        """The app's Shader.shade(page, size=max_size): grey shading at the shading size, as RGB."""
        padded, (pad_h, pad_w) = resize_pad(luma(page), max_size)
        colour = self.run_generator(padded)
        result = (colour[0].permute(1, 2, 0) * 0.5 + 0.5) * 255.0
        result = result.clamp(0, 255).to(torch.uint8).numpy()
        result = result[: result.shape[0] - pad_h, : result.shape[1] - pad_w]
        return grey_to_rgb(luma(result))

    def to_working_size(self, rgb: np.ndarray, max_size: int) -> np.ndarray:
        """imaging.to_working_size (the app's LANCZOS), on the GPU when the engine runs on one."""
        if self.device.type == "cpu":
            return to_working_size(rgb, max_size)
        return imaging_gpu.to_working_size(rgb, max_size, self.device)

    def band_plan(self, height: int, width: int) -> banded.BandPlan | None:
        """How the VAE runs on a height x width working image: in bands, or None (untiled)."""
        config = self.vae.config
        return self.banding.plan(height, width, self.vae_dtype, config.channels,
                                 len(config.channel_multipliers), self.vae_memory_format, free_memory(self.device))

    @torch.inference_mode()
    def condition(self, shaded_working: np.ndarray) -> list:
        """The conditional encoder's projections, finest first (a lean band plan keeps the
        two finest as `banded.Recomputed` recipes, which `decode` takes as it takes tensors)."""
        x = image_to_tensor(shaded_working, self.device, self.vae_dtype)
        plan = self.band_plan(*x.shape[-2:])
        return banded.condition(plan, self.vae, x) if plan else self.vae.condition(x)

    @torch.inference_mode()
    def encode(self, rough_working: np.ndarray) -> torch.Tensor:
        """The posterior mean of the rough colours."""
        x = image_to_tensor(rough_working, self.device, self.vae_dtype)
        plan = self.band_plan(*x.shape[-2:])
        mean, _ = banded.encode(plan, self.vae, x) if plan else self.vae.encode(x)
        return mean

    @torch.inference_mode()
    def decode(self, latent: torch.Tensor, conditions: list) -> np.ndarray:
        if tuple(latent.shape[-2:]) != tuple(conditions[-1].shape[-2:]):
            raise InputError("rough colours and shaded page have different working sizes")
        scale = self.vae.config.downscale
        plan = self.band_plan(latent.shape[-2] * scale, latent.shape[-1] * scale)
        if plan:
            return tensor_to_image(banded.decode(plan, self.vae, latent, conditions))
        return tensor_to_image(self.vae.decode(latent, [banded.as_tensor(c) for c in conditions]))

    # all of it --------------------------------------------------------------------------

    def colorize(self, page: np.ndarray, provider: RoughProvider, request: RoughRequest | None = None,
                 max_size: int = DEFAULT_MAX_SIZE, ratio: float = DEFAULT_RATIO,
                 progress: ProgressCallback | None = None, cache: StageCache | None = None,
                 cancelled: Callable[[], bool] | None = None) -> Colorization:
        """Run every stage, or take its result from `cache` when its inputs were seen before:
        a new ratio is only a blend; new hints skip the shading and conditioning.
        `cancelled` is polled between stages and between network layers."""
        check_size(page.shape[1], page.shape[0], "page")
        check_max_size(max_size)
        check_work_size(page.shape[1], page.shape[0], max_size)
        check_ratio(ratio)
        self.check_weights()
        request = replace(request or RoughRequest(page=page), max_size=max_size)
        cache = cache if cache is not None else StageCache(budget=0)
        timings: dict[str, float] = {}
        ran: list[str] = []

        planned = self.plan_work((page.shape[1], page.shape[0]), max_size) if progress else {}

        def report(name: str, seconds: float | None, cached: bool = False, fraction: float | None = None) -> None:
            if progress:
                eta = tracker.seconds_left()
                progress(StageEvent(name, STAGES.index(name) + 1, len(STAGES), seconds, cached, fraction,
                                    tracker.fraction_done(), eta, tracker.basis))

        work_pixels = math.prod(working_size(page.shape[1], page.shape[0], max_size))
        page_pixels = page.shape[0] * page.shape[1]
        # the stages without networks, and the page-size output its caller makes next (OUTPUT_STAGE)
        tail = {"rough": page_pixels, "blend": work_pixels, OUTPUT_STAGE: page_pixels} if progress else {}
        tracker = JobProgress(planned, lambda name, fraction: report(name, None, fraction=fraction), tail)

        def stage(steps, key: str | None):
            """Run `steps` ((name, fn(previous result)), each a stage timed and reported on its
            own) in turn; the last result is cached under `key`, so the steps are cached together."""
            found = cache.get(key) if key else None
            if found is not None:
                for name, _ in steps:
                    tracker.skip(name)
                    report(name, 0.0, cached=True)
                return found
            value = None
            for name, fn in steps:
                if cancelled and cancelled():
                    raise Cancelled()
                report(name, None)
                started = time.perf_counter()
                with out_of_memory_as_error(max_size), _interruptible(cancelled), tracker.stage(name):
                    value = fn(value)
                timings[name] = time.perf_counter() - started
                ran.append(name)
                log.debug("stage %s took %.3f s", name, timings[name])
                report(name, timings[name])
            return cache.put(key, value) if key else value

        warnings = provider.check(request)
        for warning in warnings:
            log.info("warning: %s", warning)
        page_id = digest(page) if cache.budget else ""
        rough_key = digest("rough", provider.name, page_id, request.hints, request.reference, request.rough,
                           request.fill_all, request.transfer, max_size)
        page_key = digest("page", page_id, max_size)
        work_w, work_h = working_size(page.shape[1], page.shape[0], max_size)
        host_memory.for_page(banded=self.band_plan(work_h, work_w) is not None)
        rough = stage([("rough", lambda _: self.to_working_size(provider(request, self), max_size))], rough_key)
        shaded, conditions = stage([("shade", lambda _: self.to_working_size(self.shade(page, max_size), max_size)),
                                    ("condition", lambda shaded: (shaded, self.condition(shaded)))], page_key)
        # Within the aspect tolerance, rounding can differ by a few pixels: follow the page.
        rough = resize_to(rough, shaded.shape[1], shaded.shape[0])
        generated = stage([("encode", lambda _: self.encode(rough)),
                           ("decode", lambda latent: self.decode(latent, conditions))],
                          digest("generated", page_key, rough_key))
        # weights that hold NaN make every result wrong: each one says so
        warnings = [*warnings, *self.weights_warnings, *provider.weights_warnings(self.weights_dir, self.device)]
        result = Colorization(page_size=(page.shape[1], page.shape[0]), shaded=shaded, rough=rough,
                              generated=generated, page_grey=luma(page), timings=timings, ran=ran,
                              warnings=warnings, device=None if self.device.type == "cpu" else self.device)
        stage([("blend", lambda _: result.blend(ratio) if result.device is None else result.blend_on_device(ratio))],
              None)
        return result


@contextmanager
def _interruptible(cancelled: Callable[[], bool] | None):
    """Check `cancelled` before every module's forward pass in this thread (cheap next to a
    convolution), so a long network stage stops within a layer."""
    if cancelled is None:
        yield
        return
    thread = threading.get_ident()

    def check(module, args):
        if threading.get_ident() == thread and cancelled():
            raise Cancelled()

    handle = torch.nn.modules.module.register_module_forward_pre_hook(check)
    try:
        yield
    finally:
        handle.remove()
