"""Run configuration: one dataclass per section, ``--set key=value`` overrides,
YAML/JSON config files, and the lookup of user callables ("module:function")."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from gflownet.errors import ConfigError


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class ModelConfig:
    hidden: int = _f(256, "width of the MLP trunk")
    layers: int = _f(2, "number of hidden layers of the trunk")
    backward: str = _f("learned", "P_B: 'learned' (a head on the shared trunk) or 'uniform'")
    arch: str = _f("auto", "trunk: 'mlp', another name of gflownet.nets.TRUNKS, or 'auto' (the env's choice)")


@dataclass
class TrainConfig:
    batch_size: int = _f(16, "trajectories per training step")
    trajectories: int = _f(160_000, "total trajectories to train on")
    lr: float = _f(1e-3, "Adam learning rate of the networks")
    lr_logz: float = _f(0.1, "Adam learning rate of log Z")
    lr_schedule: str = _f("cosine", "'constant', or 'cosine': constant, then a cosine decay to lr_final")
    lr_final: float = _f(0.1, "final fraction of the learning rates under the cosine schedule")
    lr_decay_start: float = _f(0.75, "fraction of the run after which the cosine decay starts")
    grad_clip: float = _f(0.0, "clip the gradient norm to this value (0: off)")
    epsilon: float = _f(0.0, "probability of a uniformly random action at each rollout step")
    temperature: float = _f(1.0, "rollouts sample softmax(logits / temperature)")
    max_moves: int = _f(0, "cut rollouts after this many moves: incomplete trajectories (0: never)")
    random_cut: bool = _f(False, "cut each rollout after k ~ uniform{1..max_moves} moves instead")
    seed: int = _f(0, "seed of the parameters and of every random draw")
    device: str = _f("cpu", "'cpu', 'cuda' or 'cuda:N'")
    threads: int = _f(0, "CPU threads for torch (0: pick automatically)")
    compile: str = _f("auto", "compiled rollout (gflownet.compiled): 'true', 'false', or 'auto' (where it pays back)")
    cuda_graph: str = _f("auto", "the training step as one CUDA graph (gflownet.graphed): 'true', 'false', 'auto'")
    log_every: int = _f(100, "steps between two lines of metrics.jsonl")
    eval_every: int = _f(16_000, "trajectories between two exact evaluations (0: only at the end)")
    checkpoint_every: int = _f(500, "steps between two checkpoints")


@dataclass
class RunConfig:
    env: str = "hypergrid"
    env_params: dict = field(default_factory=dict)
    objective: str = "tb"
    objective_params: dict = field(default_factory=dict)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        data = dict(data)
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown configuration section(s): {', '.join(sorted(unknown))}")
        for name, sub in (("model", ModelConfig), ("train", TrainConfig)):
            if name in data:
                data[name] = _build(sub, data[name], name)
        return cls(**data)

    def apply(self, assignments: list[str]) -> "RunConfig":
        """Apply ``key=value`` overrides (``key`` may be qualified: ``train.lr``)."""
        for assignment in assignments:
            key, sep, raw = assignment.partition("=")
            if not sep or not key:
                raise ConfigError(f"--set expects key=value, got {assignment!r}")
            self.set(key.strip(), _parse_value(raw))
        return self

    def set(self, key: str, value: Any) -> "RunConfig":
        """Set one parameter by its ``--set`` name (``key`` may be qualified: ``train.lr``)."""
        section, name = self._route(key)
        if section in ("env_params", "objective_params"):
            getattr(self, section)[name] = value
        else:
            target = getattr(self, section)
            setattr(target, name, _coerce(value, type(getattr(target, name)), key))
        return self

    # which section a bare key belongs to
    def _route(self, key: str) -> tuple[str, str]:
        from gflownet.environments import env_parameters
        from gflownet.objectives import get_objective

        sections = {
            "env": ("env_params", set(env_parameters(self.env))),
            "objective": ("objective_params", set(get_objective(self.objective).defaults)),
            "model": ("model", {f.name for f in dataclasses.fields(ModelConfig)}),
            "train": ("train", {f.name for f in dataclasses.fields(TrainConfig)}),
        }
        if "." in key:
            prefix, name = key.split(".", 1)
            if prefix not in sections:
                raise unknown_name("configuration section", prefix, sections)
            attr, names = sections[prefix]
            if name not in names:
                raise unknown_name(f"{prefix} parameter", name, names)
            return attr, name
        hits = [(attr, key) for attr, names in sections.values() if key in names]
        if len(hits) > 1:
            raise ConfigError(f"--set {key} is ambiguous: qualify it, e.g. {hits[0][0].split('_')[0]}.{key}")
        if not hits:
            everything = set().union(*(names for _, names in sections.values()))
            raise unknown_name("parameter", key, everything)
        return hits[0]


def _build(cls, data: dict, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"configuration section {where!r} must be a mapping")
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise unknown_name(f"{where} parameter", key, names)
    defaults = cls()
    return cls(**{k: _coerce(v, type(getattr(defaults, k)), f"{where}.{k}") for k, v in data.items()})


def _parse_value(raw: str) -> Any:
    """int, float (1e-3 included, which YAML 1.1 reads as a string), else YAML."""
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _coerce(value, expected: type, key: str):
    if expected is str and isinstance(value, bool):  # YAML reads true/false as booleans
        return str(value).lower()
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{key} must be {expected.__name__}, got {value!r}")
    return value


def unknown_name(kind: str, name: str, known) -> ConfigError:
    """The error for an unknown name, with the closest known ones."""
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=3)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return ConfigError(f"unknown {kind} {name!r}{hint} (known: {', '.join(known)})")


def lookup(kind: str, name: str, registry: dict):
    """``registry[name]``, or the error for an unknown ``kind`` name with the closest known ones."""
    if name not in registry:
        raise unknown_name(kind, name, registry)
    return registry[name]


def load_config_file(path: str | Path) -> RunConfig:
    """A RunConfig from a YAML or JSON file (the layout of ``RunConfig.to_dict``)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"config file {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping")
    return RunConfig.from_dict(data)


def load_callable(spec: str) -> Callable:
    """``"package.module:function"`` (optionally prefixed ``python:``) -> the callable."""
    spec = spec.removeprefix("python:")
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"a callable is given as 'module:function', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r} for {spec!r}: {exc}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"{spec!r} is not callable")
    return obj
