"""Deltaflow's backprop engine: numpy and the standard library only, usable from a notebook.

>>> import numpy as np
>>> from worker.nn import network_from_spec, Trainer, TrainingConfig
>>> spec = {"layers": [{"units": 8, "activation": "tanh"}], "output": {"activation": "softmax"},
...         "loss": "cross_entropy", "init": {"scheme": "glorot"}}
>>> net = network_from_spec(spec, 2, 2, rng=np.random.default_rng(0))
>>> net
Network(2→8 tanh→2 softmax)
"""

from .activations import ACTIVATIONS, Activation
from .config import EarlyStopping, TrainingConfig
from .diagnostics import RunContext, diagnose
from .epoch_stats import EpochStats
from .errors import NonFiniteError, SpecError
from .gradcheck import GradientCheckReport, gradient_check
from .initializers import INITIALIZERS, theta_from_wb, wb_from_theta
from .losses import LOSSES, MATCHED_PAIRS, Loss
from .lr_finder import lr_range_test
from .network import Network
from .optimizers import OPTIMIZERS, Optimizer, make_optimizer
from .schedules import SCHEDULES, Schedule, make_schedule
from .specs import network_from_spec
from .trace import delta_norms, ng_trace
from .training import Trainer

__all__ = [
    "ACTIVATIONS",
    "INITIALIZERS",
    "LOSSES",
    "MATCHED_PAIRS",
    "OPTIMIZERS",
    "SCHEDULES",
    "Activation",
    "EarlyStopping",
    "EpochStats",
    "GradientCheckReport",
    "Loss",
    "Network",
    "NonFiniteError",
    "Optimizer",
    "RunContext",
    "Schedule",
    "SpecError",
    "Trainer",
    "TrainingConfig",
    "delta_norms",
    "diagnose",
    "make_optimizer",
    "gradient_check",
    "lr_range_test",
    "make_schedule",
    "network_from_spec",
    "ng_trace",
    "theta_from_wb",
    "wb_from_theta",
]
