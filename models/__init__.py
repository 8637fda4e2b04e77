"""Architectures and the registry shared by train/, export/ and serve/."""
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .registry import (
                       ARCHITECTURES,
                       REGISTRY,
                       ModelSpec,
                       describe,
                       get_spec,
                       load_model,
                       model_from_checkpoint,
                       resolve_name,
)

__all__ = ["ARCHITECTURES", "REGISTRY", "ModelSpec", "CheckpointError", "describe", "get_spec", "load_model",
           "load_checkpoint", "model_from_checkpoint", "resolve_name", "save_checkpoint"]
