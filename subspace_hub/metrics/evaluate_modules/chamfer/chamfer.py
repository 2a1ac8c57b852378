"""subspace-hub's ``chamfer`` metric as an ``evaluate`` module: ``evaluate.load(<this folder>)``."""

import subspace_hub.metrics.hf_evaluate as _hub


class Chamfer(_hub.SubspaceHubMetric):
    metric_name = "chamfer"
